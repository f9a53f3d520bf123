//! Connections and transactions: [`Store`] holds the application role's pool and hands out
//! only tenant-scoped ([`TenantTx`]) or explicitly audited cross-tenant ([`CrossTenantTx`])
//! transactions; [`PollerStore`] is the poller role's narrow cross-tenant read path.

use std::fmt;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::entities::{
    api_keys, audit_log, credential_profiles, device_credentials, devices, tenants, users,
};
use crate::{Error, Result, SYSTEM_TENANT, TenantId};

/// How to reach PostgreSQL as one of drover's roles.
#[derive(Clone)]
pub struct StoreConfig {
    /// e.g. `postgres://drover_app:…@127.0.0.1:5432/drover`
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// The NOLOGIN role a [`CrossTenantTx`] assumes (`drover_migration::Roles::cross_tenant`).
    pub cross_tenant_role: String,
}

impl StoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            cross_tenant_role: "drover_cross_tenant".to_owned(),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) async fn pool(cfg: &StoreConfig) -> Result<PgPool> {
    let opts: PgConnectOptions = cfg.url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .test_before_acquire(true)
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// The application role's connection pool. Cloning is cheap.
///
/// There is deliberately no method returning the pool or an unscoped connection: tenant rows
/// are reached through [`Store::begin`], login-time lookups through the `auth_*` methods, and
/// cross-tenant reads through [`Store::begin_cross_tenant`].
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    pool: PgPool,
    cross_tenant_role: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

async fn set_local(conn: &impl ConnectionTrait, name: &str, value: &str) -> Result<()> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config($1, $2, true)",
        [name.into(), value.into()],
    ))
    .await?;
    Ok(())
}

impl Store {
    pub async fn connect(cfg: &StoreConfig) -> Result<Self> {
        let r = &cfg.cross_tenant_role;
        if r.is_empty()
            || r.len() > 63
            || !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::Invalid(format!("invalid cross_tenant_role {r:?}")));
        }
        let pool = pool(cfg).await?;
        Ok(Self {
            db: DatabaseConnection::from(pool.clone()),
            pool,
            cross_tenant_role: r.clone(),
        })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a transaction in which exactly `tenant`'s rows are visible and writable.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx> {
        let tx = self.db.begin().await?;
        set_local(&tx, "app.tenant_id", &tenant.to_string()).await?;
        Ok(TenantTx { tx, tenant })
    }

    /// Starts a super_admin transaction that may read every tenant's rows. It first writes an
    /// `audit_log` row (action `cross_tenant_access`) under [`SYSTEM_TENANT`] in the same
    /// transaction: no cross-tenant read commits without its audit record. Writes go to one
    /// tenant at a time through [`CrossTenantTx::act_as`], which audits in that tenant too.
    ///
    /// The caller (the API layer) is responsible for having checked that the actor is a
    /// super_admin; this method makes the access explicit and recorded, not authorised.
    pub async fn begin_cross_tenant(&self, access: CrossTenantAccess) -> Result<CrossTenantTx> {
        if access.reason.trim().is_empty() {
            return Err(Error::Invalid(
                "a cross-tenant access needs a reason".to_owned(),
            ));
        }
        let tx = self.db.begin().await?;
        set_local(&tx, "app.tenant_id", &SYSTEM_TENANT.to_string()).await?;
        let audit = audit_log::ActiveModel {
            tenant_id: Set(SYSTEM_TENANT.0),
            actor_kind: Set("user".to_owned()),
            actor_id: Set(Some(access.actor_user_id)),
            action: Set("cross_tenant_access".to_owned()),
            ip_address: Set(access.ip_address.clone()),
            details: Set(serde_json::json!({ "reason": access.reason })),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
        // Only this role has the `cross_tenant_read` policies; the app role is NOINHERIT, so
        // its ordinary queries never carry that branch (and keep their index conditions).
        tx.execute_unprepared(&format!("SET LOCAL ROLE \"{}\"", self.cross_tenant_role))
            .await?;
        Ok(CrossTenantTx {
            tx,
            access,
            audit_id: audit.id,
            acting_as: SYSTEM_TENANT,
        })
    }

    /// Login: the user with this e-mail (case-insensitive), whatever their tenant. Sees that one
    /// row only (policy `auth_lookup` on `app.auth_email`).
    pub async fn auth_find_user_by_email(&self, email: &str) -> Result<Option<users::Model>> {
        let email = email.trim().to_lowercase();
        let tx = self.db.begin().await?;
        set_local(&tx, "app.auth_email", &email).await?;
        let user = users::Entity::find()
            .filter(sea_orm::sea_query::ExprTrait::eq(
                sea_orm::sea_query::Func::lower(sea_orm::sea_query::Expr::col(
                    users::Column::Email,
                )),
                email.clone(),
            ))
            .one(&tx)
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Login: records a successful login for the user with this e-mail.
    pub async fn auth_record_login(&self, email: &str) -> Result<()> {
        let email = email.trim().to_lowercase();
        let tx = self.db.begin().await?;
        set_local(&tx, "app.auth_email", &email).await?;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET last_login_at = now() WHERE lower(email) = $1",
            [email.into()],
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// API-key authentication: the key whose SHA-256 (lowercase hex) is `key_hash`, whatever
    /// its tenant. Sees that one row only (policy `auth_lookup` on `app.auth_key_hash`).
    pub async fn auth_find_api_key(&self, key_hash: &str) -> Result<Option<api_keys::Model>> {
        let tx = self.db.begin().await?;
        set_local(&tx, "app.auth_key_hash", key_hash).await?;
        let key = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(key_hash))
            .one(&tx)
            .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Token refresh, enrolment and a user's own account: a transaction in which exactly the
    /// user `user_id` is visible and updatable in `users` (policies `auth_lookup_id`,
    /// `auth_update_id`), whatever their tenant; nothing else of any tenant is visible.
    pub async fn begin_auth_user(&self, user_id: Uuid) -> Result<AuthUserTx> {
        let tx = self.db.begin().await?;
        set_local(&tx, "app.auth_user_id", &user_id.to_string()).await?;
        Ok(AuthUserTx { tx, user_id })
    }

    /// API-key authentication: records that the key with this hash was just used.
    pub async fn auth_touch_api_key(&self, key_hash: &str) -> Result<()> {
        let tx = self.db.begin().await?;
        set_local(&tx, "app.auth_key_hash", key_hash).await?;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1",
            [key_hash.into()],
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// A transaction that sees one user row by id (see [`Store::begin_auth_user`]).
pub struct AuthUserTx {
    tx: DatabaseTransaction,
    user_id: Uuid,
}

impl fmt::Debug for AuthUserTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUserTx")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl AuthUserTx {
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    /// The user row, if it exists.
    pub async fn user(&self) -> Result<Option<users::Model>> {
        Ok(users::Entity::find_by_id(self.user_id)
            .one(&self.tx)
            .await?)
    }

    pub fn conn(&self) -> &DatabaseTransaction {
        &self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A transaction scoped to one tenant: `app.tenant_id` is set (transaction-local) before any
/// other statement, so row-level security shows and accepts that tenant's rows only.
///
/// Use [`TenantTx::conn`] with sea-orm entities and queries. Dropping it without
/// [`TenantTx::commit`] rolls back.
pub struct TenantTx {
    tx: DatabaseTransaction,
    tenant: TenantId,
}

impl fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantTx {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The connection to run sea-orm queries on.
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Who is reaching across tenants, and why. Recorded in `audit_log`.
#[derive(Debug, Clone)]
pub struct CrossTenantAccess {
    pub actor_user_id: Uuid,
    pub reason: String,
    pub ip_address: Option<String>,
}

/// A super_admin transaction: reads see every tenant; writes go to the tenant chosen with
/// [`CrossTenantTx::act_as`] (initially [`SYSTEM_TENANT`]). Its audit record is written when
/// it begins ([`CrossTenantTx::audit_id`]) and commits with it.
#[must_use = "a cross-tenant transaction rolls back (with its audit record) unless committed"]
pub struct CrossTenantTx {
    tx: DatabaseTransaction,
    access: CrossTenantAccess,
    audit_id: i64,
    acting_as: TenantId,
}

impl fmt::Debug for CrossTenantTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossTenantTx")
            .field("actor", &self.access.actor_user_id)
            .field("audit_id", &self.audit_id)
            .field("acting_as", &self.acting_as)
            .finish_non_exhaustive()
    }
}

impl CrossTenantTx {
    /// The `audit_log.id` (in [`SYSTEM_TENANT`]) of this access.
    pub fn audit_id(&self) -> i64 {
        self.audit_id
    }

    pub fn conn(&self) -> &DatabaseTransaction {
        &self.tx
    }

    pub fn acting_as(&self) -> TenantId {
        self.acting_as
    }

    /// Directs writes to `tenant` from now on, and records in that tenant's own audit log that
    /// a super_admin acted on its data.
    pub async fn act_as(&mut self, tenant: TenantId) -> Result<()> {
        set_local(&self.tx, "app.tenant_id", &tenant.to_string()).await?;
        self.acting_as = tenant;
        let exists = tenants::Entity::find_by_id(tenant.0).one(&self.tx).await?;
        if exists.is_some() && tenant != SYSTEM_TENANT {
            audit_log::ActiveModel {
                tenant_id: Set(tenant.0),
                actor_kind: Set("user".to_owned()),
                actor_id: Set(Some(self.access.actor_user_id)),
                action: Set("super_admin_access".to_owned()),
                ip_address: Set(self.access.ip_address.clone()),
                details: Set(serde_json::json!({
                    "reason": self.access.reason,
                    "system_audit_id": self.audit_id,
                })),
                ..Default::default()
            }
            .insert(&self.tx)
            .await?;
        }
        Ok(())
    }

    /// Creates a tenant (and leaves the transaction acting as it).
    pub async fn create_tenant(&mut self, name: &str) -> Result<tenants::Model> {
        let id = TenantId::new_random();
        set_local(&self.tx, "app.tenant_id", &id.to_string()).await?;
        self.acting_as = id;
        let t = tenants::ActiveModel {
            id: Set(id.0),
            name: Set(name.to_owned()),
            created_at: Set(chrono::Utc::now()),
            updated_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&self.tx)
        .await?;
        self.act_as(id).await?;
        Ok(t)
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// The poller role's connection: cross-tenant **read** of devices, their credentials,
/// credential profiles and wrapped tenant data keys — what device actors need to connect —
/// and nothing else (the database refuses everything else for this role).
#[derive(Clone)]
pub struct PollerStore {
    db: DatabaseConnection,
}

impl fmt::Debug for PollerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollerStore").finish_non_exhaustive()
    }
}

impl PollerStore {
    pub async fn connect(cfg: &StoreConfig) -> Result<Self> {
        Ok(Self {
            db: DatabaseConnection::from(pool(cfg).await?),
        })
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Devices in id order after `after`, at most `limit` (for loading a shard at start).
    pub async fn devices_page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<devices::Model>> {
        let mut q = devices::Entity::find().order_by_asc(devices::Column::Id);
        if let Some(a) = after {
            q = q.filter(devices::Column::Id.gt(a));
        }
        Ok(q.limit(limit).all(&self.db).await?)
    }

    /// Every tenant's default poll interval in seconds (the poller may read only these).
    pub async fn tenant_poll_intervals(&self) -> Result<std::collections::HashMap<Uuid, i32>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT id, default_poll_interval_s FROM tenants",
            ))
            .await?;
        let mut out = std::collections::HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(
                r.try_get_by_index::<Uuid>(0)?,
                r.try_get_by_index::<i32>(1)?,
            );
        }
        Ok(out)
    }

    /// One tenant's default poll interval in seconds.
    pub async fn tenant_poll_interval(&self, tenant: Uuid) -> Result<Option<i32>> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT default_poll_interval_s FROM tenants WHERE id = $1",
                [tenant.into()],
            ))
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get_by_index::<i32>(0)?),
            None => None,
        })
    }

    pub async fn device(&self, id: Uuid) -> Result<Option<devices::Model>> {
        Ok(devices::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// The own credentials (encrypted) of those of `ids` that have one, in one query.
    pub async fn device_credentials_of(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<device_credentials::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(device_credentials::Entity::find()
            .filter(device_credentials::Column::DeviceId.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?)
    }

    /// A credential profile (encrypted); decrypt with the profile id as record id.
    pub async fn credential_profile(&self, id: Uuid) -> Result<Option<credential_profiles::Model>> {
        Ok(credential_profiles::Entity::find_by_id(id)
            .one(&self.db)
            .await?)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
