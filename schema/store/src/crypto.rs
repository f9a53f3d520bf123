//! Envelope encryption of secrets at rest (device credentials, credential profiles, later SMTP
//! passwords and CA keys): each tenant has data keys (`tenant_data_keys`) wrapped by a
//! key-encryption key ([`KeyEncryptionKey`]: [`LocalKek`] or [`transit::TransitKek`]); each
//! record is sealed with AES-256-GCM whose associated data binds it to its tenant and record
//! id, so a ciphertext copied to another row or tenant does not decrypt.
//!
//! Also: the short-lived cache of decrypted secrets ([`Envelope`]), and
//! [`check_production_secrets`], which the server calls at start.

pub mod transit;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::db::{CrossTenantTx, PollerStore, TenantTx};
use crate::entities::{credential_profiles, device_credentials, tenant_data_keys};
use crate::{Error, Result, TenantId};

/// Bytes that must not leak: zeroed on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A 256-bit data-encryption key.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut k[..])
            .map_err(|_| Error::Encrypt)?;
        Ok(Self(k))
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b.try_into().map_err(|_| Error::Decrypt)?;
        Ok(Self(Zeroizing::new(arr)))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// AES-256-GCM seal: `nonce ‖ ciphertext ‖ tag`.
fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Encrypt)?);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Encrypt)?;
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(Error::Decrypt);
    }
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Decrypt)?);
    let (n, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| Error::Decrypt)?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Error::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// A key-encryption key: wraps and unwraps tenants' data keys. Implementations must bind the
/// wrapped key to its tenant (a wrapped key moved to another tenant must not unwrap).
#[async_trait]
pub trait KeyEncryptionKey: Send + Sync + fmt::Debug {
    /// Identifies the key (and version) that [`KeyEncryptionKey::wrap`] uses now; stored in
    /// `tenant_data_keys.kek_id`.
    fn kek_id(&self) -> String;
    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<String>;
    async fn unwrap(&self, tenant: TenantId, wrapped: &str) -> Result<DataKey>;
}

/// The `local` key-encryption key: AES-256-GCM under `CREDENTIAL_ENCRYPTION_KEY` (base64 of 32
/// bytes). Older keys may be kept for unwrapping during a rotation
/// (`CREDENTIAL_ENCRYPTION_KEY_PREVIOUS`, comma-separated); each is identified by the first 8
/// bytes of its SHA-256 so a wrapped key names the key that wrapped it.
pub struct LocalKek {
    current: String,
    keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn decode_key(b64: &str) -> Result<Zeroizing<[u8; 32]>> {
    let raw = Zeroizing::new(B64.decode(b64.trim()).map_err(|_| {
        Error::InsecureConfig("CREDENTIAL_ENCRYPTION_KEY is not valid base64".into())
    })?);
    let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        Error::InsecureConfig(format!(
            "CREDENTIAL_ENCRYPTION_KEY must decode to 32 bytes, not {}",
            raw.len()
        ))
    })?;
    Ok(Zeroizing::new(arr))
}

fn key_id(key: &[u8; 32]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl LocalKek {
    /// `current` and any `previous` keys, each base64 of 32 bytes.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self> {
        let cur = decode_key(current)?;
        let cur_id = key_id(&cur);
        let mut keys = BTreeMap::new();
        for p in previous {
            let k = decode_key(p)?;
            keys.insert(key_id(&k), k);
        }
        keys.insert(cur_id.clone(), cur);
        Ok(Self {
            current: cur_id,
            keys,
        })
    }

    /// From `CREDENTIAL_ENCRYPTION_KEY` and optional `CREDENTIAL_ENCRYPTION_KEY_PREVIOUS`.
    pub fn from_env() -> Result<Self> {
        let cur = std::env::var("CREDENTIAL_ENCRYPTION_KEY").map_err(|_| {
            Error::InsecureConfig(
                "CREDENTIAL_ENCRYPTION_KEY is not set (generate one: openssl rand -base64 32)"
                    .into(),
            )
        })?;
        let prev = std::env::var("CREDENTIAL_ENCRYPTION_KEY_PREVIOUS").unwrap_or_default();
        let prev: Vec<&str> = prev.split(',').filter(|s| !s.trim().is_empty()).collect();
        Self::new(&cur, &prev)
    }

    fn aad(tenant: TenantId) -> Vec<u8> {
        let mut a = b"drover/dek/v1".to_vec();
        a.extend_from_slice(tenant.0.as_bytes());
        a
    }
}

#[async_trait]
impl KeyEncryptionKey for LocalKek {
    fn kek_id(&self) -> String {
        format!("local:{}", self.current)
    }

    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<String> {
        let k = self.keys.get(&self.current).ok_or(Error::Encrypt)?;
        let sealed = seal(k, &Self::aad(tenant), key.expose())?;
        Ok(format!("local:{}:{}", self.current, B64.encode(sealed)))
    }

    async fn unwrap(&self, tenant: TenantId, wrapped: &str) -> Result<DataKey> {
        let mut parts = wrapped.splitn(3, ':');
        let (Some("local"), Some(id), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Kek("not a local-KEK wrapped key".into()));
        };
        let k = self.keys.get(id).ok_or_else(|| {
            Error::Kek(format!(
                "data key wrapped by local KEK {id}, which is not configured \
                 (set it in CREDENTIAL_ENCRYPTION_KEY_PREVIOUS until the rotation is done)"
            ))
        })?;
        let sealed = B64.decode(b).map_err(|_| Error::Decrypt)?;
        let raw = open(k, &Self::aad(tenant), &sealed)?;
        DataKey::from_bytes(&raw)
    }
}

/// Ciphertext format version byte.
const FORMAT_V1: u8 = 1;

fn record_aad(tenant: TenantId, record: Uuid, version: i32) -> Vec<u8> {
    let mut a = b"drover/record/v1".to_vec();
    a.extend_from_slice(tenant.0.as_bytes());
    a.extend_from_slice(record.as_bytes());
    a.extend_from_slice(&version.to_be_bytes());
    a
}

struct CachedSecret {
    at: Instant,
    ciphertext_digest: [u8; 32],
    secret: Arc<Secret>,
}

/// Encrypts and decrypts records with tenants' data keys; caches unwrapped data keys and
/// decrypted secrets for [`Envelope::with_cache_ttl`] (default 5 minutes). A cached secret is
/// returned only for the exact ciphertext it came from, so a changed credential is never
/// served stale.
pub struct Envelope {
    kek: Arc<dyn KeyEncryptionKey>,
    ttl: Duration,
    max_entries: usize,
    data_keys: Mutex<HashMap<(TenantId, i32), (Instant, DataKey)>>,
    secrets: Mutex<HashMap<(TenantId, Uuid), CachedSecret>>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("kek", &self.kek)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Where the wrapped data keys are read from: a tenant's own transaction, or the poller's
/// cross-tenant read.
#[async_trait]
pub trait KeySource: Send + Sync + private::Sealed {
    #[doc(hidden)]
    async fn wrapped_key(&self, tenant: TenantId, version: i32) -> Result<Option<String>>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::db::TenantTx {}
    impl Sealed for crate::db::PollerStore {}
}

async fn read_wrapped(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    version: i32,
) -> Result<Option<String>> {
    Ok(tenant_data_keys::Entity::find_by_id((tenant.0, version))
        .one(conn)
        .await?
        .map(|m| m.wrapped_key))
}

#[async_trait]
impl KeySource for TenantTx {
    async fn wrapped_key(&self, tenant: TenantId, version: i32) -> Result<Option<String>> {
        if tenant != self.tenant_id() {
            return Err(Error::Decrypt);
        }
        read_wrapped(self.conn(), tenant, version).await
    }
}

#[async_trait]
impl KeySource for PollerStore {
    async fn wrapped_key(&self, tenant: TenantId, version: i32) -> Result<Option<String>> {
        read_wrapped(self.conn(), tenant, version).await
    }
}

impl Envelope {
    pub fn new(kek: Arc<dyn KeyEncryptionKey>) -> Self {
        Self {
            kek,
            ttl: Duration::from_secs(300),
            max_entries: 100_000,
            data_keys: Mutex::new(HashMap::new()),
            secrets: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cached_key(&self, tenant: TenantId, version: i32) -> Option<DataKey> {
        let map = self.data_keys.lock().ok()?;
        map.get(&(tenant, version))
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, k)| k.clone())
    }

    fn remember_key(&self, tenant: TenantId, version: i32, key: &DataKey) {
        if let Ok(mut map) = self.data_keys.lock() {
            if map.len() >= self.max_entries {
                map.clear();
            }
            map.insert((tenant, version), (Instant::now(), key.clone()));
        }
    }

    /// The tenant's current data key, created (and wrapped) on first use.
    async fn current_key(&self, tx: &TenantTx) -> Result<(i32, DataKey)> {
        let tenant = tx.tenant_id();
        let latest = tenant_data_keys::Entity::find()
            .filter(tenant_data_keys::Column::TenantId.eq(tenant.0))
            .order_by_desc(tenant_data_keys::Column::Version)
            .one(tx.conn())
            .await?;
        if let Some(m) = latest {
            if let Some(k) = self.cached_key(tenant, m.version) {
                return Ok((m.version, k));
            }
            let k = self.kek.unwrap(tenant, &m.wrapped_key).await?;
            self.remember_key(tenant, m.version, &k);
            return Ok((m.version, k));
        }
        let key = DataKey::generate()?;
        let wrapped = self.kek.wrap(tenant, &key).await?;
        tenant_data_keys::ActiveModel {
            tenant_id: Set(tenant.0),
            version: Set(1),
            kek_id: Set(self.kek.kek_id()),
            wrapped_key: Set(wrapped),
            created_at: Set(chrono::Utc::now()),
            rewrapped_at: Set(None),
        }
        .insert(tx.conn())
        .await?;
        self.remember_key(tenant, 1, &key);
        Ok((1, key))
    }

    async fn key_version(
        &self,
        src: &impl KeySource,
        tenant: TenantId,
        version: i32,
    ) -> Result<DataKey> {
        if let Some(k) = self.cached_key(tenant, version) {
            return Ok(k);
        }
        let wrapped = src
            .wrapped_key(tenant, version)
            .await?
            .ok_or(Error::Decrypt)?;
        let k = self.kek.unwrap(tenant, &wrapped).await?;
        self.remember_key(tenant, version, &k);
        Ok(k)
    }

    /// Seals `plaintext` for record `record` of the transaction's tenant.
    /// Layout: `0x01 ‖ key version (i32 BE) ‖ nonce ‖ ciphertext ‖ tag`.
    pub async fn encrypt(&self, tx: &TenantTx, record: Uuid, plaintext: &[u8]) -> Result<Vec<u8>> {
        let tenant = tx.tenant_id();
        let (version, key) = self.current_key(tx).await?;
        let sealed = seal(
            key.expose(),
            &record_aad(tenant, record, version),
            plaintext,
        )?;
        let mut out = Vec::with_capacity(5 + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&sealed);
        self.forget(tenant, record);
        Ok(out)
    }

    /// Opens a ciphertext of `record` of `tenant`, reading the data key through `src`.
    pub async fn decrypt(
        &self,
        src: &impl KeySource,
        tenant: TenantId,
        record: Uuid,
        ciphertext: &[u8],
    ) -> Result<Arc<Secret>> {
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ciphertext)
            .as_ref()
            .try_into()
            .map_err(|_| Error::Decrypt)?;
        if let Ok(map) = self.secrets.lock()
            && let Some(c) = map.get(&(tenant, record))
            && c.at.elapsed() < self.ttl
            && c.ciphertext_digest == digest
        {
            return Ok(c.secret.clone());
        }
        if ciphertext.len() < 5 || ciphertext[0] != FORMAT_V1 {
            return Err(Error::Decrypt);
        }
        let version =
            i32::from_be_bytes([ciphertext[1], ciphertext[2], ciphertext[3], ciphertext[4]]);
        let key = self.key_version(src, tenant, version).await?;
        let plain = open(
            key.expose(),
            &record_aad(tenant, record, version),
            &ciphertext[5..],
        )?;
        let secret = Arc::new(Secret::new(plain.to_vec()));
        if let Ok(mut map) = self.secrets.lock() {
            if map.len() >= self.max_entries {
                map.retain(|_, c| c.at.elapsed() < self.ttl);
                if map.len() >= self.max_entries {
                    map.clear();
                }
            }
            map.insert(
                (tenant, record),
                CachedSecret {
                    at: Instant::now(),
                    ciphertext_digest: digest,
                    secret: secret.clone(),
                },
            );
        }
        Ok(secret)
    }

    /// Drops a cached secret (call when a credential changes or a device is removed).
    pub fn forget(&self, tenant: TenantId, record: Uuid) {
        if let Ok(mut map) = self.secrets.lock() {
            map.remove(&(tenant, record));
        }
    }

    /// Key rotation: re-wraps every tenant's data keys with the current KEK. Records are not
    /// touched. Returns how many keys were re-wrapped. Runs in a super_admin transaction
    /// (audited) because it spans tenants.
    pub async fn rewrap_all(&self, tx: &mut CrossTenantTx) -> Result<usize> {
        let current = self.kek.kek_id();
        let keys = tenant_data_keys::Entity::find()
            .filter(tenant_data_keys::Column::KekId.ne(current.clone()))
            .all(tx.conn())
            .await?;
        let mut n = 0;
        for m in keys {
            let tenant = TenantId(m.tenant_id);
            let key = self.kek.unwrap(tenant, &m.wrapped_key).await?;
            let wrapped = self.kek.wrap(tenant, &key).await?;
            tx.act_as(tenant).await?;
            let mut am: tenant_data_keys::ActiveModel = m.into();
            am.wrapped_key = Set(wrapped);
            am.kek_id = Set(current.clone());
            am.rewrapped_at = Set(Some(chrono::Utc::now()));
            am.update(tx.conn()).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// A RouterOS login as stored for a device. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl DeviceCredentials {
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let pw = String::from_utf8_lossy(self.password.expose()).into_owned();
        let pw = Zeroizing::new(pw);
        let v = serde_json::json!({ "username": self.username, "password": pw.as_str() });
        Zeroizing::new(serde_json::to_vec(&v).unwrap_or_default())
    }

    fn from_plaintext(p: &[u8]) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Raw {
            username: String,
            password: String,
        }
        let raw: Raw = serde_json::from_slice(p).map_err(|_| Error::Decrypt)?;
        let pw = Zeroizing::new(raw.password);
        Ok(Self {
            username: raw.username,
            password: Secret::new(pw.as_bytes().to_vec()),
        })
    }
}

/// Stores (encrypted) the credentials of a device of the transaction's tenant.
pub async fn set_device_credentials(
    env: &Envelope,
    tx: &TenantTx,
    device: Uuid,
    creds: &DeviceCredentials,
) -> Result<()> {
    let ct = env.encrypt(tx, device, &creds.to_plaintext()).await?;
    let am = device_credentials::ActiveModel {
        device_id: Set(device),
        tenant_id: Set(tx.tenant_id().0),
        ciphertext: Set(ct),
        updated_at: Set(chrono::Utc::now()),
    };
    device_credentials::Entity::insert(am)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(device_credentials::Column::DeviceId)
                .update_columns([
                    device_credentials::Column::Ciphertext,
                    device_credentials::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// The decrypted credentials of a device, for a device actor (poller role, any tenant).
pub async fn device_credentials_for_poller(
    env: &Envelope,
    poller: &PollerStore,
    device: Uuid,
) -> Result<Option<DeviceCredentials>> {
    match poller.device(device).await? {
        Some(d) => device_row_credentials_for_poller(env, poller, &d).await,
        None => Ok(None),
    }
}

/// As [`device_credentials_for_poller`], for a device row already read.
pub async fn device_row_credentials_for_poller(
    env: &Envelope,
    poller: &PollerStore,
    device: &crate::entities::devices::Model,
) -> Result<Option<DeviceCredentials>> {
    devices_credentials_for_poller(env, poller, std::slice::from_ref(device))
        .await?
        .remove(&device.id)
        .unwrap_or(Ok(None))
}

/// The decrypted credentials of each of `devices` (their own, else their credential
/// profile's, else none), read with one query for the devices' own credentials and one per
/// distinct credential profile (a node's full load of 100,000 devices: 100 queries per page
/// of 1,000 instead of one to three per device). The outer
/// error is a database or key-backend failure (the caller retries the whole load); the
/// inner one, per device, is a credential that does not decrypt or parse.
pub async fn devices_credentials_for_poller(
    env: &Envelope,
    poller: &PollerStore,
    devices: &[crate::entities::devices::Model],
) -> Result<HashMap<Uuid, Result<Option<DeviceCredentials>>>> {
    let ids: Vec<Uuid> = devices.iter().map(|d| d.id).collect();
    let own: HashMap<Uuid, device_credentials::Model> = poller
        .device_credentials_of(&ids)
        .await?
        .into_iter()
        .map(|c| (c.device_id, c))
        .collect();
    let mut profiles: HashMap<Uuid, Option<credential_profiles::Model>> = HashMap::new();
    let mut out = HashMap::with_capacity(devices.len());
    for d in devices {
        let (tenant, record, ciphertext) = if let Some(c) = own.get(&d.id) {
            (c.tenant_id, d.id, &c.ciphertext)
        } else if let Some(profile_id) = d.credential_profile_id {
            if let std::collections::hash_map::Entry::Vacant(slot) = profiles.entry(profile_id) {
                slot.insert(poller.credential_profile(profile_id).await?);
            }
            match profiles.get(&profile_id).and_then(Option::as_ref) {
                Some(p) if p.tenant_id != d.tenant_id => {
                    out.insert(d.id, Err(Error::Decrypt));
                    continue;
                }
                Some(p) => (p.tenant_id, p.id, &p.ciphertext),
                None => {
                    out.insert(d.id, Ok(None));
                    continue;
                }
            }
        } else {
            out.insert(d.id, Ok(None));
            continue;
        };
        let creds = match env
            .decrypt(poller, TenantId(tenant), record, ciphertext)
            .await
        {
            Ok(s) => DeviceCredentials::from_plaintext(s.expose()).map(Some),
            Err(e @ (Error::Decrypt | Error::Invalid(_))) => Err(e),
            Err(e) => return Err(e),
        };
        out.insert(d.id, creds);
    }
    Ok(out)
}

/// Stores (encrypted) the credentials of a credential profile of the transaction's tenant;
/// the profile row must exist.
pub async fn set_profile_credentials(
    env: &Envelope,
    tx: &TenantTx,
    profile: Uuid,
    creds: &DeviceCredentials,
) -> Result<()> {
    let ct = env.encrypt(tx, profile, &creds.to_plaintext()).await?;
    let res = credential_profiles::Entity::update_many()
        .col_expr(
            credential_profiles::Column::Ciphertext,
            sea_orm::sea_query::Expr::value(ct),
        )
        .col_expr(
            credential_profiles::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(credential_profiles::Column::Id.eq(profile))
        .exec(tx.conn())
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound(format!("credential profile {profile}")));
    }
    Ok(())
}

/// The decrypted credentials of a device of the transaction's tenant.
pub async fn device_credentials(
    env: &Envelope,
    tx: &TenantTx,
    device: Uuid,
) -> Result<Option<DeviceCredentials>> {
    let Some(row) = device_credentials::Entity::find_by_id(device)
        .one(tx.conn())
        .await?
    else {
        return Ok(None);
    };
    let s = env
        .decrypt(tx, tx.tenant_id(), device, &row.ciphertext)
        .await?;
    DeviceCredentials::from_plaintext(s.expose()).map(Some)
}

/// The key-encryption key the environment configures: OpenBao/Vault Transit when
/// `OPENBAO_ADDR` is set (with `OPENBAO_TOKEN`, optional `OPENBAO_TRANSIT_MOUNT`), otherwise
/// `local` from `CREDENTIAL_ENCRYPTION_KEY` (+ `CREDENTIAL_ENCRYPTION_KEY_PREVIOUS` during a
/// rotation). `env` looks variables up (pass `|k| std::env::var(k).ok()`).
pub fn kek_from_env(env: impl Fn(&str) -> Option<String>) -> Result<Arc<dyn KeyEncryptionKey>> {
    if let Some(addr) = env("OPENBAO_ADDR").filter(|a| !a.is_empty()) {
        let cfg = transit::TransitConfig {
            addr,
            token: Secret::new(env("OPENBAO_TOKEN").unwrap_or_default().into_bytes()),
            mount: env("OPENBAO_TRANSIT_MOUNT").unwrap_or_else(|| "transit".into()),
            timeout: Duration::from_secs(5),
        };
        return Ok(Arc::new(transit::TransitKek::new(cfg)?));
    }
    let cur = env("CREDENTIAL_ENCRYPTION_KEY").ok_or_else(|| {
        Error::InsecureConfig(
            "CREDENTIAL_ENCRYPTION_KEY is not set: set it to the output of \
             `openssl rand -base64 32` (or configure OPENBAO_ADDR and OPENBAO_TOKEN)"
                .into(),
        )
    })?;
    let prev = env("CREDENTIAL_ENCRYPTION_KEY_PREVIOUS").unwrap_or_default();
    let prev: Vec<&str> = prev.split(',').filter(|p| !p.trim().is_empty()).collect();
    Ok(Arc::new(LocalKek::new(&cur, &prev)?))
}

/// Keys published in examples, documentation or the original product's defaults: refused in
/// production.
pub const KNOWN_DEFAULT_KEYS: &[&str] = &[
    "LLLjnfBZTSycvL2U07HDSxUeTtLxb9cZzryQl0R9E4w=",
    "CHANGE_ME_IN_PRODUCTION",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
];

const KNOWN_DEFAULT_TOKENS: &[&str] = &["", "dev-openbao-token", "root", "CHANGE_ME_IN_PRODUCTION"];
const KNOWN_DEFAULT_DB_PASSWORDS: &[&str] = &[
    "postgres",
    "password",
    "drover",
    "app_password",
    "poller_password",
    "changeme",
    "CHANGE_ME_IN_PRODUCTION",
];

fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let creds = rest.rsplit_once('@')?.0;
    creds.split_once(':').map(|(_, p)| p.to_owned())
}

/// Start-up check of secrets. In every environment a `CREDENTIAL_ENCRYPTION_KEY` that is set
/// must be base64 of 32 bytes. With `DROVER_ENV=production` it also refuses a missing key (when
/// no Transit backend is configured), a known default key or token, and default database
/// passwords. `env` looks variables up (pass `|k| std::env::var(k).ok()`). The error lists
/// every problem with what to set.
pub fn check_production_secrets(env: impl Fn(&str) -> Option<String>) -> Result<()> {
    let production = env("DROVER_ENV").is_some_and(|v| v.eq_ignore_ascii_case("production"));
    let mut problems = Vec::new();
    let key = env("CREDENTIAL_ENCRYPTION_KEY");
    let transit = env("OPENBAO_ADDR").is_some_and(|a| !a.is_empty());
    if let Some(k) = &key
        && !KNOWN_DEFAULT_KEYS.contains(&k.as_str())
        && let Err(e) = decode_key(k)
    {
        problems.push(format!("{e}; generate one with `openssl rand -base64 32`"));
    }
    if production {
        match &key {
            None if !transit => problems.push(
                "CREDENTIAL_ENCRYPTION_KEY is not set: set it to the output of \
                 `openssl rand -base64 32` (or configure OPENBAO_ADDR and OPENBAO_TOKEN)"
                    .into(),
            ),
            Some(k) if KNOWN_DEFAULT_KEYS.contains(&k.trim()) => problems.push(
                "CREDENTIAL_ENCRYPTION_KEY is a published default: set it to the output of \
                 `openssl rand -base64 32`"
                    .into(),
            ),
            Some(k) => {
                if let Ok(raw) = decode_key(k)
                    && raw.iter().all(|b| *b == raw[0])
                {
                    problems.push(
                        "CREDENTIAL_ENCRYPTION_KEY is a constant byte pattern: set it to the \
                         output of `openssl rand -base64 32`"
                            .into(),
                    );
                }
            }
            None => {}
        }
        if transit {
            let token = env("OPENBAO_TOKEN").unwrap_or_default();
            if KNOWN_DEFAULT_TOKENS.contains(&token.as_str()) {
                problems.push(
                    "OPENBAO_TOKEN is missing or a development default: set OPENBAO_TOKEN to a \
                     token whose policy allows transit encrypt/decrypt on tenant_* keys"
                        .into(),
                );
            }
        }
        for var in [
            "DROVER_DATABASE_URL",
            "DATABASE_URL",
            "DROVER_MIGRATE_DATABASE_URL",
        ] {
            if let Some(pw) = env(var).as_deref().and_then(url_password)
                && KNOWN_DEFAULT_DB_PASSWORDS.contains(&pw.as_str())
            {
                problems.push(format!(
                    "{var} uses a default password: set a generated password for that role \
                     (e.g. `openssl rand -base64 24`) in PostgreSQL and in {var}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InsecureConfig(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const GOOD: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    #[test]
    fn production_refuses_missing_and_default_keys() {
        let e = check_production_secrets(env_of(&[("DROVER_ENV", "production")])).unwrap_err();
        assert!(e.to_string().contains("openssl rand -base64 32"), "{e}");
        let e = check_production_secrets(env_of(&[
            ("DROVER_ENV", "production"),
            ("CREDENTIAL_ENCRYPTION_KEY", KNOWN_DEFAULT_KEYS[0]),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("published default"), "{e}");
        let e = check_production_secrets(env_of(&[
            ("DROVER_ENV", "production"),
            ("CREDENTIAL_ENCRYPTION_KEY", GOOD),
            ("OPENBAO_ADDR", "https://bao:8200"),
            ("OPENBAO_TOKEN", "dev-openbao-token"),
            (
                "DROVER_DATABASE_URL",
                "postgres://drover_app:postgres@db/drover",
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("OPENBAO_TOKEN") && e.contains("DROVER_DATABASE_URL"),
            "{e}"
        );
        check_production_secrets(env_of(&[
            ("DROVER_ENV", "production"),
            ("CREDENTIAL_ENCRYPTION_KEY", GOOD),
        ]))
        .unwrap();
    }

    #[test]
    fn kek_is_chosen_from_the_environment() {
        let k = kek_from_env(env_of(&[("CREDENTIAL_ENCRYPTION_KEY", GOOD)])).unwrap();
        assert!(k.kek_id().starts_with("local:"));
        let k = kek_from_env(env_of(&[
            ("CREDENTIAL_ENCRYPTION_KEY", GOOD),
            ("OPENBAO_ADDR", "https://bao:8200"),
            ("OPENBAO_TOKEN", "s.x"),
        ]))
        .unwrap();
        assert!(k.kek_id().starts_with("transit:"));
        assert!(!format!("{k:?}").contains("s.x"));
        assert!(kek_from_env(env_of(&[])).is_err());
    }

    #[test]
    fn malformed_key_is_refused_everywhere_missing_key_only_in_production() {
        assert!(
            check_production_secrets(env_of(&[("CREDENTIAL_ENCRYPTION_KEY", "c2hvcnQ=")])).is_err()
        );
        check_production_secrets(env_of(&[])).unwrap();
    }

    #[tokio::test]
    async fn local_kek_binds_wrapped_keys_to_tenants_and_rotates() {
        let old = LocalKek::new(GOOD, &[]).unwrap();
        let t1 = TenantId::new_random();
        let t2 = TenantId::new_random();
        let dek = DataKey::generate().unwrap();
        let w = old.wrap(t1, &dek).await.unwrap();
        assert_eq!(old.unwrap(t1, &w).await.unwrap().expose(), dek.expose());
        assert!(
            old.unwrap(t2, &w).await.is_err(),
            "wrapped key moved to another tenant"
        );
        let newer = LocalKek::new("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", &[GOOD]).unwrap();
        assert_eq!(newer.unwrap(t1, &w).await.unwrap().expose(), dek.expose());
        assert_ne!(newer.kek_id(), old.kek_id());
        let only_new = LocalKek::new("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", &[]).unwrap();
        assert!(only_new.unwrap(t1, &w).await.is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = DeviceCredentials {
            username: "admin".into(),
            password: Secret::new(b"hunter2".to_vec()),
        };
        let s = format!("{c:?} {:?} {:?}", c.password, DataKey::generate().unwrap());
        assert!(!s.contains("hunter2"), "{s}");
    }

    #[test]
    fn record_ciphertext_is_bound_to_tenant_and_record() {
        let key = [7u8; 32];
        let (t, r) = (TenantId::new_random(), Uuid::new_v4());
        let ct = seal(&key, &record_aad(t, r, 1), b"secret").unwrap();
        assert_eq!(
            &open(&key, &record_aad(t, r, 1), &ct).unwrap()[..],
            b"secret"
        );
        assert!(open(&key, &record_aad(t, Uuid::new_v4(), 1), &ct).is_err());
        assert!(open(&key, &record_aad(TenantId::new_random(), r, 1), &ct).is_err());
        assert!(open(&key, &record_aad(t, r, 2), &ct).is_err());
    }
}
