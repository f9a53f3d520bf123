//! drover's PostgreSQL schema history: forward-only sea-orm migrations, the three database
//! roles, row-level security, and [`migrate`], which applies pending migrations once per
//! database under an advisory lock.
//!
//! # Invariants
//! - **Frozen history.** A migration, once released, is never edited: a change is a new
//!   migration appended to [`Migrator::migrations`]. Migrations never import entities (the
//!   store's entities describe *today's* schema; a migration describes one step).
//! - **Forward-only.** `down` is not implemented; production rolls forward.
//! - **Every tenant table** has `tenant_id`, `ENABLE` + `FORCE ROW LEVEL SECURITY` and a
//!   `USING … WITH CHECK …` policy on `NULLIF(current_setting('app.tenant_id', true), '')::uuid`.
//!   Join tables without `tenant_id` get their policy through their parents. drover-store's
//!   catalog-driven tests enforce this on every table.
//! - Role names are not hard-coded: [`migrate`] publishes them to the migrations through the
//!   session settings `drover.app_role`, `drover.poller_role` and `drover.cross_tenant_role`
//!   (defaults `drover_app`, `drover_poller`, `drover_cross_tenant`).

use std::fmt;
use std::time::Duration;

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

mod m20261127_000001_initial;
mod m20261127_000002_device_change_notify;
mod m20261127_000003_tenant_poll_interval;
mod m20261127_000004_auth_by_user_id;
mod m20261204_000005_device_samples;

/// The ordered, frozen list of drover's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_device_change_notify::Migration),
            Box::new(m20261127_000003_tenant_poll_interval::Migration),
            Box::new(m20261127_000004_auth_by_user_id::Migration),
            Box::new(m20261204_000005_device_samples::Migration),
        ]
    }
}

/// Key of the session-level advisory lock that serialises migrations of one database.
/// (`hashtext('drover.migrate')` would do too; a constant is easier to find in `pg_locks`.)
pub const MIGRATION_LOCK_KEY: i64 = 0x6472_6f76_6572_4d31; // "droverM1"

/// Everything that can go wrong while migrating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(#[from] sea_orm_migration::sea_orm::DbErr),
    #[error("invalid role name {0:?}: use lowercase letters, digits and '_' (max 63)")]
    InvalidRoleName(String),
    #[error(
        "role {0} does not exist and {1} may not create roles: create it (e.g. `drover migrate \
         --bootstrap-roles` as a superuser) or run the migrations as a role with CREATEROLE"
    )]
    MissingRole(String, String),
    #[error("timed out after {0:?} waiting for the migration lock (another node is migrating)")]
    LockTimeout(Duration),
}

/// A database role drover uses, with an optional password set when the role is ensured.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    pub password: Option<String>,
}

impl RoleSpec {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password: None,
        }
    }
}

impl fmt::Debug for RoleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleSpec")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The three roles. `owner` owns every object and runs migrations; `app` (NOSUPERUSER,
/// NOBYPASSRLS, NOINHERIT) serves every tenant request under row-level security; `poller`
/// may read devices, their credentials, credential profiles and wrapped tenant data keys
/// across tenants (what device actors need to connect) and nothing else.
///
/// `cross_tenant` is a NOLOGIN role the app role may `SET LOCAL ROLE` to for an audited
/// super_admin transaction: only it has the `cross_tenant_read` policies. Because the app role
/// is NOINHERIT, those policies are not OR-ed into its ordinary queries, which keeps the
/// tenant policy an index condition (`tenant_id = …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub owner: RoleSpec,
    pub app: RoleSpec,
    pub poller: RoleSpec,
    pub cross_tenant: RoleSpec,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            owner: RoleSpec::named("drover_owner"),
            app: RoleSpec::named("drover_app"),
            poller: RoleSpec::named("drover_poller"),
            cross_tenant: RoleSpec::named("drover_cross_tenant"),
        }
    }
}

impl Roles {
    fn validate(&self) -> Result<(), Error> {
        for r in [&self.owner, &self.app, &self.poller, &self.cross_tenant] {
            valid_role_name(&r.name)?;
        }
        Ok(())
    }
}

fn valid_role_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRoleName(name.to_owned()))
    }
}

/// `'text'` as an SQL string literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Names of the migrations applied by this call (empty when already up to date).
    pub applied: Vec<String>,
}

/// Options for [`migrate`].
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub roles: Roles,
    /// Create missing roles (and set passwords given in [`Roles`]) when the connected user
    /// may. Roles are cluster-global: creation is idempotent and safe under concurrency.
    pub ensure_roles: bool,
    /// How long to wait for another node's migration to finish.
    pub lock_timeout: Duration,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            roles: Roles::default(),
            ensure_roles: true,
            lock_timeout: Duration::from_secs(300),
        }
    }
}

/// Applies pending migrations to the database at `url`, once per database however many
/// nodes call it at the same time: a session-level advisory lock ([`MIGRATION_LOCK_KEY`])
/// is held on a dedicated connection for the whole run.
///
/// `url` is the owner role's, or a superuser's (the session then `SET ROLE`s to the owner so
/// the owner owns every object, and creates `pg_trgm` first).
pub async fn migrate(url: &str, opts: &MigrateOptions) -> Result<MigrateReport, Error> {
    opts.roles.validate()?;
    let mut co = ConnectOptions::new(url.to_owned());
    co.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30));
    let db = Database::connect(co).await?;
    let result = migrate_on(&db, opts).await;
    let _ = db.close().await;
    result
}

async fn scalar_bool(db: &DatabaseConnection, sql: &str) -> Result<bool, Error> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<bool>(0)?,
        None => false,
    })
}

async fn migrate_on(
    db: &DatabaseConnection,
    opts: &MigrateOptions,
) -> Result<MigrateReport, Error> {
    // Wait for the lock with a bounded number of tries rather than blocking forever.
    let started = std::time::Instant::now();
    loop {
        let got = scalar_bool(
            db,
            &format!("SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})"),
        )
        .await?;
        if got {
            break;
        }
        if started.elapsed() > opts.lock_timeout {
            return Err(Error::LockTimeout(opts.lock_timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = migrate_locked(db, opts).await;
    let _ = db
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .await;
    result
}

/// Runs a role-changing statement, retrying a few times: concurrent changes to the shared
/// role catalog from other databases can fail with "tuple concurrently updated".
async fn exec_retrying(db: &impl ConnectionTrait, sql: &str) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        match db.execute_unprepared(sql).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 8 => {
                tracing::debug!(error = %e, "retrying role statement");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates the roles when missing (idempotent, race-safe) and sets any passwords given.
/// Needs a connection whose user has CREATEROLE (or is a superuser).
pub async fn ensure_roles(db: &impl ConnectionTrait, roles: &Roles) -> Result<(), Error> {
    roles.validate()?;
    for (spec, attrs) in [
        (
            &roles.owner,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
        ),
        (
            &roles.app,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
        ),
        (
            &roles.poller,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
        ),
        (
            &roles.cross_tenant,
            "NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
        ),
    ] {
        let name = &spec.name;
        let create = format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN \
                 CREATE ROLE \"{name}\" {attrs}; \
               END IF; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
             END $$",
            lit = quote_literal(name)
        );
        // Concurrent CREATE ROLE in other databases can still fail with "tuple concurrently
        // updated"; the role then exists, so a retry succeeds.
        exec_retrying(db, &create).await?;
        if let Some(pw) = &spec.password {
            exec_retrying(
                db,
                &format!("ALTER ROLE \"{name}\" PASSWORD {}", quote_literal(pw)),
            )
            .await?;
        }
    }
    // Enforced on every run, also for roles that existed before: the app role must not
    // inherit the cross-tenant role's policies, and may only assume it explicitly.
    exec_retrying(
        db,
        &format!(
            "DO $$ BEGIN \
               IF (SELECT rolinherit FROM pg_roles WHERE rolname = {app_lit}) THEN \
                 ALTER ROLE \"{app}\" NOINHERIT; \
               END IF; \
               IF NOT pg_has_role({app_lit}, {xt_lit}, 'MEMBER') THEN \
                 GRANT \"{xt}\" TO \"{app}\"; \
               END IF; \
             END $$",
            app = roles.app.name,
            xt = roles.cross_tenant.name,
            app_lit = quote_literal(&roles.app.name),
            xt_lit = quote_literal(&roles.cross_tenant.name),
        ),
    )
    .await?;
    Ok(())
}

async fn migrate_locked(
    db: &DatabaseConnection,
    opts: &MigrateOptions,
) -> Result<MigrateReport, Error> {
    let roles = &opts.roles;
    let is_super = scalar_bool(
        db,
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .await?;
    let can_create_roles = scalar_bool(
        db,
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .await?;
    let current_user = {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text",
            ))
            .await?;
        row.map(|r| r.try_get_by_index::<String>(0))
            .transpose()?
            .unwrap_or_default()
    };
    if opts.ensure_roles && can_create_roles {
        ensure_roles(db, roles).await?;
    }
    for spec in [&roles.owner, &roles.app, &roles.poller, &roles.cross_tenant] {
        let exists = scalar_bool(
            db,
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {})",
                quote_literal(&spec.name)
            ),
        )
        .await?;
        if !exists {
            return Err(Error::MissingRole(spec.name.clone(), current_user.clone()));
        }
    }
    if is_super {
        // Trusted extensions can be created by the database owner too, but a superuser
        // session may be connected to a database the owner role does not own.
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .await?;
    }
    if current_user != roles.owner.name {
        db.execute_unprepared(&format!("SET ROLE \"{}\"", roles.owner.name))
            .await?;
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('drover.app_role', $1, false), set_config('drover.poller_role', $2, false), \
                set_config('drover.cross_tenant_role', $3, false)",
        [
            roles.app.name.clone().into(),
            roles.poller.name.clone().into(),
            roles.cross_tenant.name.clone().into(),
        ],
    ))
    .await?;
    let before: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let up = Migrator::up(db, None).await;
    let _ = db.execute_unprepared("RESET ROLE").await;
    up?;
    if !before.is_empty() {
        tracing::info!(applied = ?before, "database migrated");
    }
    Ok(MigrateReport { applied: before })
}

/// Role names as the migrations see them.
pub(crate) struct RoleNames {
    pub(crate) app: String,
    pub(crate) poller: String,
    pub(crate) cross_tenant: String,
}

/// Reads the role names published by [`migrate`] (or the defaults) inside a migration.
pub(crate) async fn role_names(m: &SchemaManager<'_>) -> Result<RoleNames, DbErr> {
    let row = m
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COALESCE(NULLIF(current_setting('drover.app_role', true), ''), 'drover_app'), \
                    COALESCE(NULLIF(current_setting('drover.poller_role', true), ''), 'drover_poller'), \
                    COALESCE(NULLIF(current_setting('drover.cross_tenant_role', true), ''), 'drover_cross_tenant')",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no row from current_setting".into()))?;
    let names = RoleNames {
        app: row.try_get_by_index(0)?,
        poller: row.try_get_by_index(1)?,
        cross_tenant: row.try_get_by_index(2)?,
    };
    for n in [&names.app, &names.poller, &names.cross_tenant] {
        valid_role_name(n).map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_validated() {
        assert!(valid_role_name("drover_app").is_ok());
        assert!(valid_role_name("x\"; DROP").is_err());
        assert!(valid_role_name("1abc").is_err());
        assert!(valid_role_name("").is_err());
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        let mut r = Roles::default();
        r.app.password = Some("hunter2".into());
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
    }
}
