//! Configuration of a node: command-line flags with environment fallbacks (the seed's
//! names: `DATABASE_URL`, `NATS_URL`, `CREDENTIAL_ENCRYPTION_KEY`), validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// A configuration value that cannot work; the process exits with code 64.
#[derive(Debug)]
pub(crate) struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where PostgreSQL is, as the roles drover uses.
#[derive(Args, Debug, Clone)]
pub(crate) struct DatabaseArgs {
    /// Owner or superuser URL, used for migrations (e.g. postgres://postgres@127.0.0.1:5432/drover).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/drover"
    )]
    pub(crate) database_url: String,
    /// The application role's URL; default: DATABASE_URL with the user drover_app.
    #[arg(long, env = "DROVER_APP_DATABASE_URL")]
    pub(crate) app_database_url: Option<String>,
    /// The poller role's URL; default: DATABASE_URL with the user drover_poller.
    #[arg(long, env = "DROVER_POLLER_DATABASE_URL")]
    pub(crate) poller_database_url: Option<String>,
    /// Create the database named in DATABASE_URL when it does not exist.
    #[arg(long, env = "DROVER_CREATE_DATABASE", default_value_t = true)]
    pub(crate) create_database: bool,
}

impl DatabaseArgs {
    pub(crate) fn app_url(&self) -> String {
        self.app_database_url
            .clone()
            .unwrap_or_else(|| with_user(&self.database_url, "drover_app"))
    }

    /// The owner role's URL, for partition maintenance (DDL on the owner's tables).
    pub(crate) fn owner_url(&self) -> String {
        with_user(
            &self.database_url,
            &drover_migration::Roles::default().owner.name,
        )
    }

    pub(crate) fn poller_url(&self) -> String {
        self.poller_database_url
            .clone()
            .unwrap_or_else(|| with_user(&self.database_url, "drover_poller"))
    }

    /// Creates the database if asked and missing, then applies pending migrations.
    pub(crate) async fn migrate(&self) -> anyhow::Result<drover_migration::MigrateReport> {
        if self.create_database {
            create_database_if_missing(&self.database_url).await?;
        }
        Ok(drover_migration::migrate(
            &self.database_url,
            &drover_migration::MigrateOptions::default(),
        )
        .await?)
    }
}

/// `postgres://user:pw@host/db` with the user replaced (and no password: trust or peer
/// auth, or give the role URL explicitly).
fn with_user(url: &str, user: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{}://{user}@{host}", &url[..scheme_end])
}

async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let (base, name) = url.rsplit_once('/').ok_or_else(|| {
        ConfigError(format!(
            "DATABASE_URL has no database name: {}",
            drover_store::db::redact_url(url)
        ))
    })?;
    let name = name.split('?').next().unwrap_or(name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError(format!("unsupported database name {name:?}")).into());
    }
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres")).await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        // The owner role owns the database, and so (PostgreSQL 15+) its `public` schema,
        // where the migrations create everything.
        let owner = drover_migration::Roles::default().owner.name;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN CREATE ROLE \"{owner}\" LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )))
        .execute(&mut conn)
        .await?;
        // `name` was checked above to be [A-Za-z0-9_]+, and the role name is ours: no injection.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER \"{owner}\""
        )))
        .execute(&mut conn)
        .await?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

/// Everything `drover run` needs.
#[derive(Args, Debug, Clone)]
pub(crate) struct NodeConfig {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// NATS server with JetStream; events are buffered while it is unreachable.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats_url: String,
    /// Where Prometheus metrics are served (`/metrics`).
    #[arg(long, env = "DROVER_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) metrics_addr: SocketAddr,
    /// Most TLS handshakes in progress at once.
    #[arg(long, env = "DROVER_MAX_HANDSHAKES", default_value_t = 64)]
    pub(crate) max_handshakes: usize,
    /// Most PostgreSQL sessions in each of the node's two pools (API and sample writers;
    /// device reads): a node opens at most about twice this many. Every node of a cluster
    /// must fit in the server's `max_connections`.
    #[arg(long, env = "DROVER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub(crate) db_max_connections: u32,
    /// CA bundle for devices in `verify` TLS mode (default: the system's).
    #[arg(long, env = "DROVER_DEVICE_CA_BUNDLE")]
    pub(crate) device_ca_bundle: Option<PathBuf>,
    /// Full re-read of the device table, besides change notifications, every this many seconds.
    #[arg(long, env = "DROVER_FULL_RELOAD_SECS", default_value_t = 300)]
    pub(crate) full_reload_secs: u64,
    /// Consecutive missed polls before a device is offline.
    #[arg(long, env = "DROVER_OFFLINE_AFTER_MISSES", default_value_t = 3)]
    pub(crate) offline_after_misses: u32,
    /// `production` refuses known-insecure secrets.
    #[arg(long, env = "DROVER_ENV", default_value = "development")]
    pub(crate) environment: String,
    /// Print a status line every this many seconds (0: never).
    #[arg(long, env = "DROVER_STATUS_EVERY_SECS", default_value_t = 10)]
    pub(crate) status_every_secs: u64,
    /// Cluster membership and shard leases (defaults: a lone node that still takes leases).
    #[command(flatten)]
    pub(crate) cluster: drover_cluster::ClusterConfig,
    /// The HTTP API and web UI (nodes with the `api` role).
    #[command(flatten)]
    pub(crate) http: drover_api::HttpConfig,
    /// Redis for login state, token revocation and rate limits.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis_url: String,
    /// Creates this super_admin at start if no account has the address (first login then
    /// leads to SRP enrolment); with `FIRST_ADMIN_PASSWORD`.
    #[arg(long, env = "FIRST_ADMIN_EMAIL")]
    pub(crate) first_admin_email: Option<String>,
    #[arg(long, env = "FIRST_ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) first_admin_password: Option<String>,
}

impl NodeConfig {
    /// Checks everything that can be checked before connecting anywhere.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(
            self.environment.as_str(),
            "production" | "development" | "test"
        ) {
            return Err(ConfigError(format!(
                "DROVER_ENV must be production, development or test, not {:?}",
                self.environment
            )));
        }
        if self.max_handshakes == 0 {
            return Err(ConfigError(
                "DROVER_MAX_HANDSHAKES must be at least 1".into(),
            ));
        }
        if self.db_max_connections < 2 {
            return Err(ConfigError(
                "DROVER_DB_MAX_CONNECTIONS must be at least 2".into(),
            ));
        }
        if !self.nats_url.starts_with("nats://") && !self.nats_url.starts_with("tls://") {
            return Err(ConfigError(format!(
                "NATS_URL must start with nats:// or tls://, got {:?}",
                self.nats_url
            )));
        }
        self.cluster.validate().map_err(ConfigError)?;
        self.http
            .validate(self.environment == "production")
            .map_err(ConfigError)?;
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            return Err(ConfigError(format!(
                "REDIS_URL must start with redis:// or rediss://, got {:?}",
                drover_store::db::redact_url(&self.redis_url)
            )));
        }
        match (&self.first_admin_email, &self.first_admin_password) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError(
                    "FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD go together".into(),
                ));
            }
            (Some(_), Some(p)) if p.len() < 12 => {
                return Err(ConfigError(
                    "FIRST_ADMIN_PASSWORD must be at least 12 characters".into(),
                ));
            }
            _ => {}
        }
        if self.environment == "production" {
            drover_store::crypto::check_production_secrets(|k| std::env::var(k).ok())
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        if std::env::var("CREDENTIAL_ENCRYPTION_KEY").is_err() {
            return Err(ConfigError(
                "CREDENTIAL_ENCRYPTION_KEY is not set: set it to base64 of 32 random bytes (openssl rand -base64 32)".into(),
            ));
        }
        Ok(())
    }

    /// The cluster settings in effect: an unset cluster name becomes `db-<database name>`,
    /// so nodes sharing a database share leases and unrelated fleets never meet.
    pub(crate) fn cluster(&self) -> drover_cluster::ClusterConfig {
        let mut c = self.cluster.clone();
        if c.cluster_name.is_none() {
            let db = self
                .database
                .database_url
                .rsplit_once('/')
                .map(|(_, n)| n.split('?').next().unwrap_or(n))
                .unwrap_or("drover");
            let db: String = db
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(100)
                .collect();
            c.cluster_name = Some(format!("db-{db}"));
        }
        c
    }

    pub(crate) fn full_reload(&self) -> Duration {
        Duration::from_secs(self.full_reload_secs.max(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_pool_size_is_a_setting_with_a_floor() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            node: super::NodeConfig,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("drover").chain(args.iter().copied()))
                .unwrap()
                .node
        };
        // (`validate` also wants secrets from the environment: only the pool's own error
        // is asserted here.)
        let pool_error = |c: &super::NodeConfig| {
            c.validate()
                .err()
                .is_some_and(|e| e.0.contains("DROVER_DB_MAX_CONNECTIONS"))
        };
        let defaults = parse(&[]);
        assert_eq!(defaults.db_max_connections, 16);
        assert!(!pool_error(&defaults));
        let small = parse(&["--db-max-connections", "6"]);
        assert_eq!(small.db_max_connections, 6);
        assert!(!pool_error(&small));
        let err = parse(&["--db-max-connections", "1"])
            .validate()
            .unwrap_err();
        assert!(err.0.contains("DROVER_DB_MAX_CONNECTIONS"), "{}", err.0);
    }

    #[test]
    fn role_urls_replace_the_user_and_drop_the_password() {
        assert_eq!(
            with_user(
                "postgres://postgres:secret@127.0.0.1:5432/drover",
                "drover_app"
            ),
            "postgres://drover_app@127.0.0.1:5432/drover"
        );
        assert_eq!(
            with_user("postgres://127.0.0.1/drover", "drover_poller"),
            "postgres://drover_poller@127.0.0.1/drover"
        );
    }
}
