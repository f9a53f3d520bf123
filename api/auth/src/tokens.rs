//! Biscuit (v6, Ed25519) tokens: access, refresh, SSE and API keys; roles and their rules.
//!
//! A token's authority block holds facts only drover's root key can sign:
//!
//! ```text
//! user("<uuid>"); tenant("<uuid>");   // no tenant fact for super_admin
//! role("operator"); kind("access"); jti("<uuid>"); family("<uuid>");  // family: refresh only
//! issued_at(2026-11-27T10:00:00Z); expires_at(2026-11-27T10:15:00Z);
//! scope("devices:read");              // zero or more
//! check if time($t), $t <= 2026-11-27T10:15:00Z;
//! ```
//!
//! Times have second precision. API keys are the same token with `kind("api_key")` plus an
//! attenuation block restating their limits as checks, shown as
//! `drv_<first 8 hex digits of jti>_<biscuit>`. docs/auth.md lists everything.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration as StdDuration, SystemTime};

use base64::Engine as _;
use biscuit_auth::builder::{Algorithm, AuthorizerBuilder, BlockBuilder, Term, date, fact, string};
use biscuit_auth::error::{Format, Logic, Token as BiscuitError};
use biscuit_auth::{AuthorizerLimits, Biscuit, BiscuitBuilder, KeyPair, PrivateKey};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::rng::random_bytes;

/// Access token lifetime.
pub const ACCESS_TTL: Duration = Duration::minutes(15);
/// Refresh token lifetime (and the refresh family's TTL in Redis).
pub const REFRESH_TTL: Duration = Duration::days(7);
/// SSE token lifetime (an SSE ticket in [`crate::state::Tickets`] lives as long).
pub const SSE_TTL: Duration = Duration::seconds(30);
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "drv_";
/// Length of `api_keys.key_prefix` ("drv_" + 8 hex digits).
pub const API_KEY_PREFIX_LEN: usize = 12;

/// Token lifetimes, configurable; [`Default`] gives the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub sse: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            access: ACCESS_TTL,
            refresh: REFRESH_TTL,
            sse: SSE_TTL,
        }
    }
}

/// drover's roles, as stored in `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    TenantAdmin,
    SuperAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Operator,
        Role::TenantAdmin,
        Role::SuperAdmin,
    ];

    /// viewer 0 < operator 1 < tenant_admin 2 < super_admin 3.
    pub fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Operator => 1,
            Role::TenantAdmin => 2,
            Role::SuperAdmin => 3,
        }
    }

    /// The database string.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant_admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    /// Whether a user with this role may give `target` to someone (create or change a user):
    /// only tenant_admin and super_admin manage users, and nobody grants above their own rank
    /// — so only a super_admin can make a super_admin.
    pub fn can_grant(self, target: Role) -> bool {
        self.rank() >= Role::TenantAdmin.rank() && target.rank() <= self.rank()
    }

    /// Whether this role is at least `min`.
    pub fn at_least(self, min: Role) -> bool {
        self.rank() >= min.rank()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the four role strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// What a token is for. A token is only accepted where its kind is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
    ApiKey,
    /// Short-lived token for opening an SSE stream (`?token=`), where headers cannot be set.
    Sse,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::ApiKey => "api_key",
            TokenKind::Sse => "sse",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            TokenKind::Access,
            TokenKind::Refresh,
            TokenKind::ApiKey,
            TokenKind::Sse,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token says. Times are truncated to whole seconds when minted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user_id: Uuid,
    /// None only for super_admin.
    pub tenant_id: Option<Uuid>,
    pub role: Role,
    pub kind: TokenKind,
    /// The refresh family (refresh tokens; access tokens minted with them may carry it too).
    pub family_id: Option<Uuid>,
    /// jti: unique per token (for API keys: the `api_keys.id`).
    pub token_id: Uuid,
    pub issued_at: DateTime<Utc>,
    /// Required for every kind except API keys, which may never expire.
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

impl Claims {
    /// Claims for a new token of `kind` for a user, issued `now`, expiring after `ttl`, with a
    /// fresh jti.
    pub fn new(
        user_id: Uuid,
        tenant_id: Option<Uuid>,
        role: Role,
        kind: TokenKind,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        let now = now.trunc_subsecs(0);
        Claims {
            user_id,
            tenant_id,
            role,
            kind,
            family_id: None,
            token_id: Uuid::new_v4(),
            issued_at: now,
            expires_at: Some(now + ttl),
            scopes: Vec::new(),
        }
    }
}

/// A token whose signature, expiry and checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: Claims,
    /// One per block, lowercase hex: check them against [`crate::state::DenyList`].
    pub revocation_ids: Vec<String>,
}

/// Why a token was refused. Map all of them to 401; the variants are for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token: bad base64, bad protobuf, missing or odd facts, too long.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Not signed by our root key (or tampered with).
    #[error("token signature does not verify")]
    Forged,
    #[error("token expired")]
    Expired,
    #[error("expected a {expected} token, got {found}")]
    WrongKind {
        expected: TokenKind,
        found: TokenKind,
    },
    /// Well signed and not expired, but a check (e.g. an attenuation block's) failed.
    #[error("token rejected by its checks")]
    Rejected,
    /// Minting failed (bad claims, biscuit error): a server-side bug, answer 500.
    #[error("cannot mint token: {0}")]
    Mint(String),
}

/// Why a configured root key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeyError {
    #[error(
        "the token root key must be 32 bytes as 64 hex digits or base64 (got {0} bytes); make one with `openssl rand -hex 32`"
    )]
    Length(usize),
    #[error("the token root key is neither hex nor base64")]
    Encoding,
    #[error("the token root key is not a valid Ed25519 secret: {0}")]
    Invalid(String),
    #[error(transparent)]
    Rng(#[from] crate::RngError),
}

/// The Ed25519 root key that signs every token. Never printed.
pub struct TokenKeys {
    keypair: KeyPair,
    limits: AuthorizerLimits,
    /// Tokens already verified (by SHA-256 of their text), for [`Self::verify_cached`].
    verified: std::sync::Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

/// Most tokens [`TokenKeys::verify_cached`] remembers; when full, expired ones are dropped
/// and, if none were, everything (the next requests verify again).
const VERIFIED_CACHE_MAX: usize = 10_000;
/// How long a verified token without an expiry is remembered (every drover token expires;
/// this only bounds a hand-made one).
const VERIFIED_CACHE_NO_EXPIRY: i64 = 300;

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("public", &self.public_key_hex())
            .field("private", &"<redacted>")
            .finish()
    }
}

fn to_system(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

fn from_system(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn classify(e: BiscuitError) -> TokenError {
    match e {
        BiscuitError::Format(
            Format::Signature(_)
            | Format::SealedSignature
            | Format::UnknownPublicKey
            | Format::UnknownExternalKey,
        ) => TokenError::Forged,
        BiscuitError::FailedLogic(Logic::Unauthorized { .. } | Logic::NoMatchingPolicy { .. }) => {
            TokenError::Rejected
        }
        BiscuitError::RunLimit(_) => TokenError::Rejected,
        other => TokenError::Malformed(other.to_string()),
    }
}

fn mint_err(e: impl fmt::Display) -> TokenError {
    TokenError::Mint(e.to_string())
}

impl TokenKeys {
    /// From the 32-byte Ed25519 secret.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, TokenKeyError> {
        let private = PrivateKey::from_bytes(secret, Algorithm::Ed25519)
            .map_err(|e| TokenKeyError::Invalid(e.to_string()))?;
        Ok(Self::from_keypair(KeyPair::from(&private)))
    }

    fn from_keypair(keypair: KeyPair) -> Self {
        TokenKeys {
            keypair,
            limits: AuthorizerLimits {
                max_facts: 1000,
                max_iterations: 100,
                max_time: StdDuration::from_millis(50),
            },
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// [`Self::verify`], remembering tokens that passed until they expire: a client sends the
    /// same access token with every request, and the signature check and Datalog run cost more
    /// than the rest of a small request. Only what [`Self::verify`] decides is cached — the
    /// caller still checks revocation (deny list, `valid_after`) on every request. A token
    /// that failed is never remembered; a remembered one is refused again once `now` passes its
    /// expiry.
    pub fn verify_cached(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long".into()));
        }
        let key: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let live = |v: &VerifiedToken| {
            let until = v
                .claims
                .expires_at
                .unwrap_or(v.claims.issued_at + Duration::seconds(VERIFIED_CACHE_NO_EXPIRY));
            now <= until
        };
        if let Ok(cache) = self.verified.lock()
            && let Some(v) = cache.get(&key)
        {
            if live(v) {
                return Ok(v.clone());
            }
            if v.claims.expires_at.is_some_and(|exp| now > exp) {
                return Err(TokenError::Expired);
            }
        }
        let v = self.verify(token, now)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.retain(|_, v| live(v));
                if cache.len() >= VERIFIED_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, v.clone());
        }
        Ok(v)
    }

    /// From configuration: 64 hex digits, or base64 (standard or URL-safe, padded or not) of
    /// 32 bytes. Surrounding whitespace is ignored.
    pub fn from_config(text: &str) -> Result<Self, TokenKeyError> {
        let text = text.trim();
        let bytes: Zeroizing<Vec<u8>> =
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                Zeroizing::new(crate::hex::decode(text).map_err(|_| TokenKeyError::Encoding)?)
            } else {
                let engines = [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                    base64::engine::general_purpose::URL_SAFE,
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ];
                Zeroizing::new(
                    engines
                        .iter()
                        .find_map(|e| e.decode(text).ok())
                        .ok_or(TokenKeyError::Encoding)?,
                )
            };
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| TokenKeyError::Length(bytes.len()))?,
        );
        Self::from_secret(&secret)
    }

    /// A random key for development, with a loud warning: every token dies with the process,
    /// and nodes of a cluster would not accept each other's tokens.
    pub fn generate_dev() -> Result<Self, TokenKeyError> {
        tracing::warn!(
            "DROVER TOKEN ROOT KEY IS EPHEMERAL: a random key was generated because none is configured; \
             every session ends on restart and other nodes reject these tokens. Configure a 32-byte key \
             (openssl rand -hex 32) for anything but development."
        );
        let secret = Zeroizing::new(random_bytes::<32>()?);
        Self::from_secret(&secret)
    }

    /// The root public key, lowercase hex (32 bytes), for other verifiers.
    pub fn public_key_hex(&self) -> String {
        crate::hex::encode(&self.keypair.public().to_bytes())
    }

    fn authority(&self, claims: &Claims) -> Result<BiscuitBuilder, TokenError> {
        let mut b = BiscuitBuilder::new()
            .fact(fact("user", &[string(&claims.user_id.to_string())]))
            .and_then(|b| b.fact(fact("role", &[string(claims.role.as_str())])))
            .and_then(|b| b.fact(fact("kind", &[string(claims.kind.as_str())])))
            .and_then(|b| b.fact(fact("jti", &[string(&claims.token_id.to_string())])))
            .and_then(|b| {
                b.fact(fact(
                    "issued_at",
                    &[date(&to_system(claims.issued_at.trunc_subsecs(0)))],
                ))
            })
            .map_err(mint_err)?;
        if let Some(tenant) = claims.tenant_id {
            b = b
                .fact(fact("tenant", &[string(&tenant.to_string())]))
                .map_err(mint_err)?;
        }
        if let Some(family) = claims.family_id {
            b = b
                .fact(fact("family", &[string(&family.to_string())]))
                .map_err(mint_err)?;
        }
        for scope in &claims.scopes {
            b = b.fact(fact("scope", &[string(scope)])).map_err(mint_err)?;
        }
        if let Some(exp) = claims.expires_at {
            let exp = date(&to_system(exp.trunc_subsecs(0)));
            b = b
                .fact(fact("expires_at", std::slice::from_ref(&exp)))
                .map_err(mint_err)?;
            let params = HashMap::from([("exp".to_owned(), exp)]);
            b = b
                .code_with_params("check if time($t), $t <= {exp};", params, HashMap::new())
                .map_err(mint_err)?;
        }
        Ok(b)
    }

    fn check_claims(claims: &Claims) -> Result<(), TokenError> {
        if (claims.role == Role::SuperAdmin) != claims.tenant_id.is_none() {
            return Err(TokenError::Mint(
                "super_admin is the only role without a tenant".into(),
            ));
        }
        if claims.expires_at.is_none() && claims.kind != TokenKind::ApiKey {
            return Err(TokenError::Mint(format!(
                "a {} token needs an expiry",
                claims.kind
            )));
        }
        Ok(())
    }

    /// Mint a token (URL-safe base64). For API keys use [`Self::mint_api_key`].
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        Self::check_claims(claims)?;
        if claims.kind == TokenKind::ApiKey {
            return Err(TokenError::Mint("use mint_api_key for API keys".into()));
        }
        self.authority(claims)?
            .build(&self.keypair)
            .and_then(|t| t.to_base64())
            .map_err(mint_err)
    }

    /// Verify any kind of token: signature, expiry, every block's checks. Never panics.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long".into()));
        }
        let biscuit =
            Biscuit::from_base64(token.trim(), self.keypair.public()).map_err(classify)?;
        let mut authz = AuthorizerBuilder::new()
            .fact(fact("time", &[date(&to_system(now))]))
            .and_then(|a| a.policy("allow if true"))
            .map(|a| a.set_limits(self.limits.clone()))
            .and_then(|a| a.build(&biscuit))
            .map_err(classify)?;
        let claims = read_claims(&mut authz)?;
        if let Some(exp) = claims.expires_at
            && now > exp
        {
            return Err(TokenError::Expired);
        }
        authz.authorize().map_err(classify)?;
        let revocation_ids = biscuit
            .revocation_identifiers()
            .iter()
            .map(|id| crate::hex::encode(id))
            .collect();
        Ok(VerifiedToken {
            claims,
            revocation_ids,
        })
    }

    /// [`Self::verify`], then insist on `kind`.
    pub fn verify_kind(
        &self,
        token: &str,
        kind: TokenKind,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenError> {
        let v = self.verify(token, now)?;
        if v.claims.kind != kind {
            return Err(TokenError::WrongKind {
                expected: kind,
                found: v.claims.kind,
            });
        }
        Ok(v)
    }

    /// Mint an API key for `claims` (kind must be `ApiKey`; `token_id` should be the
    /// `api_keys.id`). The authority block is the claims; an attenuation block restates the
    /// key's limits as checks (expiry, scopes), so a key cannot outgrow them.
    pub fn mint_api_key(&self, claims: &Claims) -> Result<ApiKey, TokenError> {
        Self::check_claims(claims)?;
        if claims.kind != TokenKind::ApiKey {
            return Err(TokenError::Mint("an API key needs kind ApiKey".into()));
        }
        let token = self
            .authority(claims)?
            .build(&self.keypair)
            .map_err(mint_err)?;
        let mut block = BlockBuilder::new()
            .code(r#"check if kind("api_key");"#)
            .map_err(mint_err)?;
        if let Some(exp) = claims.expires_at {
            let params =
                HashMap::from([("exp".to_owned(), date(&to_system(exp.trunc_subsecs(0))))]);
            block = block
                .code_with_params("check if time($t), $t <= {exp};", params, HashMap::new())
                .map_err(mint_err)?;
        }
        if !claims.scopes.is_empty() {
            let set: BTreeSet<Term> = claims.scopes.iter().map(|s| string(s)).collect();
            let params = HashMap::from([("scopes".to_owned(), Term::Set(set))]);
            block = block
                .code_with_params(
                    "check all scope($s), {scopes}.contains($s);",
                    params,
                    HashMap::new(),
                )
                .map_err(mint_err)?;
        }
        let b64 = token
            .append(block)
            .and_then(|t| t.to_base64())
            .map_err(mint_err)?;
        let simple = claims.token_id.simple().to_string();
        let key = format!("{API_KEY_PREFIX}{}_{b64}", &simple[..8]);
        Ok(ApiKey {
            prefix: api_key_prefix(&key).to_owned(),
            hash: api_key_hash(&key),
            key: Zeroizing::new(key),
        })
    }

    /// Verify a `drv_` API key: its form, then the token (must be kind `ApiKey`). The caller
    /// then looks the key up by [`api_key_hash`] and checks `revoked_at`.
    pub fn verify_api_key(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenError> {
        let rest = key
            .strip_prefix(API_KEY_PREFIX)
            .ok_or_else(|| TokenError::Malformed("not a drv_ key".into()))?;
        let (id8, token) = rest
            .split_once('_')
            .ok_or_else(|| TokenError::Malformed("not a drv_ key".into()))?;
        if id8.len() != 8 {
            return Err(TokenError::Malformed("not a drv_ key".into()));
        }
        let v = self.verify_kind(token, TokenKind::ApiKey, now)?;
        if !v.claims.token_id.simple().to_string().starts_with(id8) {
            return Err(TokenError::Malformed("key id does not match".into()));
        }
        Ok(v)
    }
}

/// A freshly minted API key. Show `key` once; store `prefix` and `hash`.
pub struct ApiKey {
    /// The full key, `drv_xxxxxxxx_…`.
    pub key: Zeroizing<String>,
    /// `api_keys.key_prefix`: the first 12 characters.
    pub prefix: String,
    /// `api_keys.key_hash`: SHA-256 of the full key, 64 lowercase hex digits.
    pub hash: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("prefix", &self.prefix)
            .field("hash", &self.hash)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of the whole key string, lowercase hex (what `api_keys.key_hash` stores).
pub fn api_key_hash(key: &str) -> String {
    crate::hex::encode(&Sha256::digest(key.trim().as_bytes()))
}

/// The displayable prefix of a key (its first 12 characters, or fewer if it is shorter).
pub fn api_key_prefix(key: &str) -> &str {
    let end = key
        .char_indices()
        .nth(API_KEY_PREFIX_LEN)
        .map(|(i, _)| i)
        .unwrap_or(key.len());
    &key[..end]
}

fn one<T>(mut v: Vec<T>, what: &str) -> Result<T, TokenError> {
    if v.len() == 1 {
        v.pop()
            .ok_or_else(|| TokenError::Malformed(format!("missing {what}")))
    } else {
        Err(TokenError::Malformed(format!("{} {what} facts", v.len())))
    }
}

fn at_most_one<T>(mut v: Vec<T>, what: &str) -> Result<Option<T>, TokenError> {
    match v.len() {
        0 => Ok(None),
        1 => Ok(v.pop()),
        n => Err(TokenError::Malformed(format!("{n} {what} facts"))),
    }
}

fn uuid_of(s: &str, what: &str) -> Result<Uuid, TokenError> {
    Uuid::parse_str(s).map_err(|_| TokenError::Malformed(format!("bad {what}")))
}

/// Read the claims from the authority block (queries see only authority and authorizer facts).
fn read_claims(authz: &mut biscuit_auth::Authorizer) -> Result<Claims, TokenError> {
    let strings =
        |authz: &mut biscuit_auth::Authorizer, rule: &str| -> Result<Vec<String>, TokenError> {
            let rows: Vec<(String,)> = authz.query(rule).map_err(classify)?;
            Ok(rows.into_iter().map(|(s,)| s).collect())
        };
    let dates =
        |authz: &mut biscuit_auth::Authorizer, rule: &str| -> Result<Vec<SystemTime>, TokenError> {
            let rows: Vec<(SystemTime,)> = authz.query(rule).map_err(classify)?;
            Ok(rows.into_iter().map(|(t,)| t).collect())
        };
    let user = one(strings(authz, "data($v) <- user($v)")?, "user")?;
    let role = one(strings(authz, "data($v) <- role($v)")?, "role")?;
    let kind = one(strings(authz, "data($v) <- kind($v)")?, "kind")?;
    let jti = one(strings(authz, "data($v) <- jti($v)")?, "jti")?;
    let tenant = at_most_one(strings(authz, "data($v) <- tenant($v)")?, "tenant")?;
    let family = at_most_one(strings(authz, "data($v) <- family($v)")?, "family")?;
    let mut scopes = strings(authz, "data($v) <- scope($v)")?;
    scopes.sort();
    let issued = one(dates(authz, "data($v) <- issued_at($v)")?, "issued_at")?;
    let expires = at_most_one(dates(authz, "data($v) <- expires_at($v)")?, "expires_at")?;
    Ok(Claims {
        user_id: uuid_of(&user, "user")?,
        tenant_id: tenant
            .as_deref()
            .map(|t| uuid_of(t, "tenant"))
            .transpose()?,
        role: role
            .parse()
            .map_err(|_| TokenError::Malformed("bad role".into()))?,
        kind: TokenKind::parse(&kind).ok_or_else(|| TokenError::Malformed("bad kind".into()))?,
        family_id: family
            .as_deref()
            .map(|f| uuid_of(f, "family"))
            .transpose()?,
        token_id: uuid_of(&jti, "jti")?,
        issued_at: from_system(issued),
        expires_at: expires.map(from_system),
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(&[7u8; 32]).unwrap()
    }

    fn claims(kind: TokenKind) -> Claims {
        let mut c = Claims::new(
            Uuid::new_v4(),
            Some(Uuid::new_v4()),
            Role::Operator,
            kind,
            Utc::now(),
            ACCESS_TTL,
        );
        c.scopes = vec!["devices:read".into()];
        c
    }

    /// The cache answers what `verify` answers: the same claims for a good token, expiry once
    /// the clock passes it (even for a remembered token), and a refusal for a bad one, which
    /// is never remembered.
    #[test]
    fn verify_cached_agrees_with_verify_and_honours_expiry() {
        let k = keys();
        let c = claims(TokenKind::Access);
        let t = k.mint(&c).unwrap();
        let now = Utc::now();
        let first = k.verify_cached(&t, now).unwrap();
        assert_eq!(first, k.verify(&t, now).unwrap());
        assert_eq!(k.verify_cached(&t, now).unwrap(), first, "from the cache");
        assert_eq!(k.verified.lock().unwrap().len(), 1);
        let later = c.expires_at.unwrap() + Duration::seconds(1);
        assert_eq!(k.verify_cached(&t, later), Err(TokenError::Expired));
        // a token signed by another key, and a mangled one, are refused and not remembered
        let other = TokenKeys::from_secret(&[8u8; 32])
            .unwrap()
            .mint(&c)
            .unwrap();
        assert!(k.verify_cached(&other, now).is_err());
        let mut mangled = t.clone();
        mangled.replace_range(40..44, "AAAA");
        assert!(k.verify_cached(&mangled, now).is_err());
        assert_eq!(k.verified.lock().unwrap().len(), 1);
        assert!(
            k.verify_cached(&"x".repeat(MAX_TOKEN_LEN + 1), now)
                .is_err()
        );
    }

    #[test]
    fn mint_and_verify_round_trip() {
        let k = keys();
        let mut c = claims(TokenKind::Refresh);
        c.family_id = Some(Uuid::new_v4());
        let t = k.mint(&c).unwrap();
        let v = k.verify(&t, Utc::now()).unwrap();
        assert_eq!(v.claims, c);
        assert_eq!(v.revocation_ids.len(), 1);
        assert_eq!(v.revocation_ids[0].len(), 128);
        assert!(t.len() < 1024, "{}", t.len());
    }

    #[test]
    fn super_admin_has_no_tenant() {
        let k = keys();
        let c = Claims::new(
            Uuid::new_v4(),
            None,
            Role::SuperAdmin,
            TokenKind::Access,
            Utc::now(),
            ACCESS_TTL,
        );
        let v = k.verify(&k.mint(&c).unwrap(), Utc::now()).unwrap();
        assert_eq!(v.claims.tenant_id, None);
        assert_eq!(v.claims.role, Role::SuperAdmin);
        let mut bad = c.clone();
        bad.role = Role::Operator;
        assert!(matches!(k.mint(&bad), Err(TokenError::Mint(_))));
    }

    #[test]
    fn expiry() {
        let k = keys();
        let c = claims(TokenKind::Access);
        let t = k.mint(&c).unwrap();
        let exp = c.expires_at.unwrap();
        assert!(k.verify(&t, exp).is_ok());
        assert_eq!(
            k.verify(&t, exp + Duration::seconds(1)).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn forged_with_other_key() {
        let other = TokenKeys::from_secret(&[8u8; 32]).unwrap();
        let t = other.mint(&claims(TokenKind::Access)).unwrap();
        assert_eq!(
            keys().verify(&t, Utc::now()).unwrap_err(),
            TokenError::Forged
        );
    }

    #[test]
    fn wrong_kind() {
        let k = keys();
        let t = k.mint(&claims(TokenKind::Refresh)).unwrap();
        assert_eq!(
            k.verify_kind(&t, TokenKind::Access, Utc::now())
                .unwrap_err(),
            TokenError::WrongKind {
                expected: TokenKind::Access,
                found: TokenKind::Refresh
            }
        );
        assert!(k.verify_kind(&t, TokenKind::Refresh, Utc::now()).is_ok());
    }

    #[test]
    fn truncated_and_garbage() {
        let k = keys();
        let t = k.mint(&claims(TokenKind::Access)).unwrap();
        for cut in [0, 1, 10, t.len() / 2, t.len() - 3] {
            assert!(k.verify(&t[..cut], Utc::now()).is_err());
        }
        assert!(matches!(
            k.verify("not a token", Utc::now()),
            Err(TokenError::Malformed(_))
        ));
        assert!(
            k.verify(&"A".repeat(MAX_TOKEN_LEN + 1), Utc::now())
                .is_err()
        );
        // flipping a character in the middle never verifies
        let mut bytes = t.clone().into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(k.verify(&flipped, Utc::now()).is_err());
    }

    #[test]
    fn attenuated_access_token_with_failing_check_is_rejected() {
        let k = keys();
        let t = k.mint(&claims(TokenKind::Access)).unwrap();
        let b = Biscuit::from_base64(&t, k.keypair.public()).unwrap();
        let att = b
            .append(
                BlockBuilder::new()
                    .code(r#"check if role("viewer");"#)
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(
            k.verify(&att, Utc::now()).unwrap_err(),
            TokenError::Rejected
        );
    }

    #[test]
    fn api_key_round_trip() {
        let k = keys();
        let mut c = claims(TokenKind::ApiKey);
        c.expires_at = None;
        c.scopes = vec!["config:read".into(), "devices:read".into()];
        let key = k.mint_api_key(&c).unwrap();
        assert!(key.key.starts_with("drv_"));
        assert_eq!(key.prefix.len(), API_KEY_PREFIX_LEN);
        assert_eq!(key.hash.len(), 64);
        assert_eq!(key.hash, api_key_hash(&key.key));
        assert!(
            key.prefix
                .starts_with(&format!("drv_{}", &c.token_id.simple().to_string()[..8]))
        );
        let v = k.verify_api_key(&key.key, Utc::now()).unwrap();
        assert_eq!(v.claims, c);
        assert_eq!(v.revocation_ids.len(), 2);
        assert!(!format!("{key:?}").contains(&key.key[20..40]));
        // an access token is not an API key, and an API key is not an access token
        let t = k.mint(&claims(TokenKind::Access)).unwrap();
        assert!(
            k.verify_api_key(&format!("drv_00000000_{t}"), Utc::now())
                .is_err()
        );
        let raw = key.key.splitn(3, '_').nth(2).unwrap();
        assert!(matches!(
            k.verify_kind(raw, TokenKind::Access, Utc::now()),
            Err(TokenError::WrongKind { .. })
        ));
        assert!(k.verify_api_key("drv_", Utc::now()).is_err());
        assert!(k.verify_api_key("xyz", Utc::now()).is_err());
    }

    #[test]
    fn api_key_expiry() {
        let k = keys();
        let c = claims(TokenKind::ApiKey);
        let key = k.mint_api_key(&c).unwrap();
        let exp = c.expires_at.unwrap();
        assert!(k.verify_api_key(&key.key, exp).is_ok());
        assert_eq!(
            k.verify_api_key(&key.key, exp + Duration::seconds(5))
                .unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn key_config_forms() {
        let hex = "07".repeat(32);
        let a = TokenKeys::from_config(&hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let b = TokenKeys::from_config(&format!(" {b64}\n")).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        assert_eq!(a.public_key_hex().len(), 64);
        assert!(matches!(
            TokenKeys::from_config("abcd"),
            Err(TokenKeyError::Length(_)) | Err(TokenKeyError::Encoding)
        ));
        assert!(TokenKeys::from_config("!!!").is_err());
        let dbg = format!("{a:?}");
        assert!(dbg.contains("redacted") && !dbg.contains(&hex));
        assert!(TokenKeys::generate_dev().is_ok());
    }

    #[test]
    fn roles() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Viewer.rank() < Role::Operator.rank());
        assert!(Role::Operator.rank() < Role::TenantAdmin.rank());
        assert!(Role::TenantAdmin.rank() < Role::SuperAdmin.rank());
        assert!(!Role::TenantAdmin.can_grant(Role::SuperAdmin));
        assert!(Role::TenantAdmin.can_grant(Role::TenantAdmin));
        assert!(Role::TenantAdmin.can_grant(Role::Viewer));
        assert!(Role::SuperAdmin.can_grant(Role::SuperAdmin));
        assert!(!Role::Operator.can_grant(Role::Viewer));
        assert!(!Role::Viewer.can_grant(Role::Viewer));
        for a in Role::ALL {
            for b in Role::ALL {
                if a.can_grant(b) {
                    assert!(b.rank() <= a.rank());
                }
            }
        }
        assert_eq!(
            serde_json::to_string(&Role::TenantAdmin).unwrap(),
            "\"tenant_admin\""
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn verify_never_panics(s in ".{0,400}") {
            let k = keys();
            let _ = k.verify(&s, Utc::now());
            let _ = k.verify_api_key(&s, Utc::now());
        }

        #[test]
        fn verify_never_panics_on_base64ish(s in "[A-Za-z0-9_=-]{0,600}") {
            let _ = keys().verify(&s, Utc::now());
        }

        #[test]
        fn mutated_tokens_never_verify_as_other_claims(pos in 0usize..400, byte in any::<u8>()) {
            let k = keys();
            let c = claims(TokenKind::Access);
            let t = k.mint(&c).unwrap();
            let mut raw = base64::engine::general_purpose::URL_SAFE.decode(&t).unwrap();
            let i = pos % raw.len();
            raw[i] ^= byte | 1;
            let m = base64::engine::general_purpose::URL_SAFE.encode(&raw);
            if let Ok(v) = k.verify(&m, Utc::now()) {
                prop_assert_eq!(v.claims, c);
            }
        }
    }
}
