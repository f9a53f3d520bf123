//! Test support: a freshly created and migrated database per test (`drover_test_<random>`)
//! on the local PostgreSQL, dropped when the [`TestDb`] is dropped, so tests run in parallel.
//!
//! The server is reached as a superuser through `DROVER_TEST_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth); the three roles use their
//! default names and are created once per cluster, idempotently.

use std::fmt;

use drover_migration::{MigrateOptions, Roles};
use sea_orm::{ConnectionTrait, Database};

use crate::{CrossTenantAccess, Result, Store, TenantId};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A throw-away database, migrated to the latest schema.
pub struct TestDb {
    pub name: String,
    pub roles: Roles,
    server: String,
    admin_url: String,
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb").field("name", &self.name).finish()
    }
}

/// `postgres://user@host:port/db` → (`postgres://`, `host:port`) pieces we rebuild URLs from.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|x| x.1).unwrap_or(rest);
    rest.split('/')
        .next()
        .unwrap_or("127.0.0.1:5432")
        .to_owned()
}

impl TestDb {
    /// Creates and migrates a new database with the default role names.
    pub async fn create() -> Result<Self> {
        Self::create_with_roles(Roles::default()).await
    }

    pub async fn create_with_roles(roles: Roles) -> Result<Self> {
        let admin_url =
            std::env::var("DROVER_TEST_PG_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let server = server_of(&admin_url);
        let name = format!("drover_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url.as_str()).await?;
        drover_migration::ensure_roles(&admin, &roles).await?;
        admin
            .execute_unprepared(&format!(
                "CREATE DATABASE \"{name}\" OWNER \"{}\"",
                roles.owner.name
            ))
            .await?;
        let _ = admin.close().await;
        let db = Self {
            name,
            roles,
            server,
            admin_url,
        };
        drover_migration::migrate(
            &db.owner_url(),
            &MigrateOptions {
                roles: db.roles.clone(),
                ensure_roles: false,
                ..Default::default()
            },
        )
        .await?;
        Ok(db)
    }

    fn url_for(&self, user: &str) -> String {
        format!("postgres://{user}@{}/{}", self.server, self.name)
    }

    pub fn owner_url(&self) -> String {
        self.url_for(&self.roles.owner.name)
    }

    /// The application role's store configuration for this database.
    pub fn app_config(&self) -> crate::StoreConfig {
        let mut c = crate::StoreConfig::new(self.app_url());
        c.cross_tenant_role = self.roles.cross_tenant.name.clone();
        c
    }

    pub fn app_url(&self) -> String {
        self.url_for(&self.roles.app.name)
    }

    pub fn poller_url(&self) -> String {
        self.url_for(&self.roles.poller.name)
    }

    /// The superuser, connected to this database (bypasses row-level security: test setup
    /// and inspection only).
    pub fn superuser_url(&self) -> String {
        let user = self
            .admin_url
            .split_once("://")
            .and_then(|(_, r)| r.rsplit_once('@'))
            .map(|(u, _)| u.split(':').next().unwrap_or("postgres").to_owned())
            .unwrap_or_else(|| "postgres".to_owned());
        self.url_for(&user)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Synchronous on purpose (Drop cannot await, and may run while a runtime shuts down).
        let _ = std::process::Command::new("psql")
            .args([
                "-w",
                "-q",
                &self.admin_url,
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Creates a tenant named `name` through an audited cross-tenant transaction (as a
/// super_admin would) and returns its id.
pub async fn create_tenant(store: &Store, name: &str) -> Result<TenantId> {
    let mut x = store
        .begin_cross_tenant(CrossTenantAccess {
            actor_user_id: uuid::Uuid::new_v4(),
            reason: "test setup".into(),
            ip_address: None,
        })
        .await?;
    let tenant = TenantId(x.create_tenant(name).await?.id);
    x.commit().await?;
    Ok(tenant)
}
