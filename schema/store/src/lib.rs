//! drover's tenant-isolated store: sea-orm entities over the schema `drover-migration`
//! creates, the tenant-scoped transaction type, credential envelope encryption, typed
//! queries, time-series partition management and bucketed range queries, and the recorder's
//! batch writer.
//!
//! # Layout
//! - [`db`]: [`Store`] (the application role's pool), [`TenantTx`] (the only way to reach
//!   tenant rows), [`CrossTenantTx`] (super_admin, audited), the login-time lookups, and
//!   [`PollerStore`] (the poller role's narrow cross-tenant reads).
//! - [`entities`]: one sea-orm entity per table.
//! - [`queries`]: typed queries the API calls (fleet list with paging, search, filter, sort).
//! - [`crypto`]: envelope encryption of credentials (per-tenant data keys wrapped by a
//!   key-encryption key: `local` or OpenBao/Vault Transit), the decrypted-credential cache,
//!   and the production-mode secret check.
//! - [`timeseries`]: daily partitions ahead / retention by dropping partitions
//!   ([`timeseries::Maintenance`]) and range queries with automatic bucket size.
//! - [`recorder`]: the batch writer for `MetricsSample` / `DeviceStatusChanged` with a bounded,
//!   drop-oldest queue that rides out PostgreSQL restarts.
//! - [`testing`]: a throw-away migrated database per test.
//!
//! # Invariants
//! - Tenant data is reachable only through [`TenantTx`], which runs
//!   `set_config('app.tenant_id', $1, true)` before anything else; the pool itself is never
//!   handed out. PostgreSQL's row-level security is the enforcement, the types are the guard
//!   rail that keeps code from forgetting it.
//! - Secrets (decrypted credentials, keys) never appear in `Debug` output or logs.

pub mod crypto;
pub mod db;
pub mod entities;
pub mod queries;
pub mod recorder;
pub mod testing;
pub mod timeseries;

pub use db::{
    AuthUserTx, CrossTenantAccess, CrossTenantTx, PollerStore, Store, StoreConfig, TenantTx,
};
pub use drover_model::{DeviceId, TenantId};

/// The id of the "System (Internal)" tenant that owns records of cross-tenant actions.
pub const SYSTEM_TENANT: TenantId = TenantId(uuid::Uuid::nil());

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] drover_migration::Error),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("decryption failed (wrong key, wrong tenant or record, or tampered ciphertext)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("key-encryption backend: {0}")]
    Kek(String),
    #[error("insecure configuration: {0}")]
    InsecureConfig(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
