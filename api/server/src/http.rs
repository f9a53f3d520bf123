//! The HTTP side of `drover run`: builds the API state (Redis, token key, NATS), reaches device
//! actors for the API (`ActorDevices`: the local actor tree, or the owner node through the
//! cluster), runs one-off connection tests with the RouterOS client, serves the API and the
//! web UI, and bootstraps the first super_admin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_api::{
    ApiParts, ApiState, ConnectionTest, ConnectionTestResult, DeviceCall, DeviceCallError,
    DeviceCallReply, DeviceRouter, HttpConfig, MetricsRender,
};
use drover_auth::tokens::TokenKeys;
use drover_cluster::{
    ClusterHandle, DEVICE_CALL_VERSION, GatewayError, RemoteDeviceCall, RouteError,
};
use routeros_client::{Command, ConnectOptions, Credentials, TlsPolicy, Transport};

/// Reaches device actors for the API: through the cluster layer, which runs the call on this
/// node when it holds the device's shard and on the owner node otherwise.
#[derive(Debug, Clone)]
pub(crate) struct ClusterDevices {
    pub(crate) cluster: ClusterHandle,
    /// TLS policy for `verify` connection tests, when a CA bundle is configured.
    pub(crate) verify: Option<TlsPolicy>,
}

/// `=name=value` words of one reply sentence into a map (`.id` keeps its dot).
fn attribute_map(words: &[String]) -> BTreeMap<String, String> {
    words
        .iter()
        .filter_map(|w| w.strip_prefix('='))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn reply_of(sentences: &[Vec<String>]) -> DeviceCallReply {
    let mut reply = DeviceCallReply::default();
    for s in sentences {
        match s.first().map(String::as_str) {
            Some("!re") => reply.rows.push(attribute_map(&s[1..])),
            Some("!done") => reply.done = attribute_map(&s[1..]),
            _ => {}
        }
    }
    reply
}

fn route_error(e: RouteError) -> DeviceCallError {
    match e {
        RouteError::NoOwner { retry_after } => DeviceCallError::NoOwner { retry_after },
        RouteError::Timeout => DeviceCallError::Timeout,
        RouteError::Unavailable(_) => DeviceCallError::NoOwner {
            retry_after: Duration::from_secs(5),
        },
        RouteError::Remote(g) => match g {
            GatewayError::NotFound => DeviceCallError::NotRunning,
            GatewayError::NotOwner => DeviceCallError::NoOwner {
                retry_after: Duration::from_secs(1),
            },
            GatewayError::NotConnected { status } => DeviceCallError::NotConnected { status },
            GatewayError::Device { message } => DeviceCallError::Trap { message },
            GatewayError::Timeout => DeviceCallError::Timeout,
            other => DeviceCallError::Failed(other.to_string()),
        },
        #[allow(unreachable_patterns)]
        other => DeviceCallError::Failed(other.to_string()),
    }
}

#[async_trait::async_trait]
impl DeviceRouter for ClusterDevices {
    async fn call(&self, call: DeviceCall) -> Result<DeviceCallReply, DeviceCallError> {
        let reply = self
            .cluster
            .call_device(RemoteDeviceCall {
                version: DEVICE_CALL_VERSION,
                tenant_id: call.tenant,
                device_id: call.device,
                words: call.words,
                timeout_ms: call.timeout.as_millis() as u64,
            })
            .await
            .map_err(route_error)?;
        Ok(reply_of(&reply.sentences))
    }

    async fn test_connection(&self, test: ConnectionTest) -> ConnectionTestResult {
        test_connection(self.verify.clone(), test).await
    }
}

/// Opens a fresh session with the given settings, asks for identity and version, closes it.
pub(crate) async fn test_connection(
    verify: Option<TlsPolicy>,
    test: ConnectionTest,
) -> ConnectionTestResult {
    let started = Instant::now();
    let transport = match test.tls_mode.as_str() {
        "plain" => Transport::Plain,
        "verify" => match verify {
            Some(p) => Transport::Tls(p),
            None => {
                return ConnectionTestResult {
                    ok: false,
                    latency_ms: 0,
                    identity: None,
                    version: None,
                    certificate_fingerprint: None,
                    error: Some(
                        "tls_mode verify needs a CA bundle (DROVER_DEVICE_CA_BUNDLE)".into(),
                    ),
                };
            }
        },
        _ => Transport::insecure(),
    };
    let mut opts = ConnectOptions::new(
        test.address.clone(),
        Credentials::new(test.username, test.password),
    );
    opts.port = Some(test.port);
    opts.transport = transport;
    opts.connect_timeout = test.timeout;
    opts.login_timeout = test.timeout;
    opts.command_timeout = test.timeout;
    let fail = |e: String, started: Instant| ConnectionTestResult {
        ok: false,
        latency_ms: started.elapsed().as_millis() as u64,
        identity: None,
        version: None,
        certificate_fingerprint: None,
        error: Some(e),
    };
    let client = match routeros_client::connect(&opts).await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string(), started),
    };
    let fingerprint = client.info().fingerprint.map(|f| f.to_string());
    let identity = client
        .execute(Command::new("/system/identity/print"))
        .await
        .ok()
        .and_then(|r| r.first().and_then(|a| a.get("name").map(str::to_owned)));
    let version = client
        .execute(Command::new("/system/resource/print"))
        .await
        .ok()
        .and_then(|r| r.first().and_then(|a| a.get("version").map(str::to_owned)));
    let latency_ms = started.elapsed().as_millis() as u64;
    client.close();
    ConnectionTestResult {
        ok: true,
        latency_ms,
        identity,
        version,
        certificate_fingerprint: fingerprint,
        error: None,
    }
}

/// The token key from configuration, or a fresh one in development.
pub(crate) fn token_keys(cfg: &HttpConfig) -> anyhow::Result<TokenKeys> {
    match &cfg.token_key {
        Some(k) => TokenKeys::from_config(k).map_err(|e| anyhow::anyhow!("DROVER_TOKEN_KEY: {e}")),
        None => {
            tracing::warn!(
                "DROVER_TOKEN_KEY is not set: using a random token key; sessions end when this process stops and other nodes reject its tokens"
            );
            TokenKeys::generate_dev().map_err(|e| anyhow::anyhow!("cannot make a token key: {e}"))
        }
    }
}

/// Everything `serve` needs from the node.
pub(crate) struct HttpDeps {
    pub(crate) store: drover_store::Store,
    pub(crate) envelope: Arc<drover_store::crypto::Envelope>,
    pub(crate) redis_url: String,
    pub(crate) nats_url: String,
    pub(crate) devices: Arc<dyn DeviceRouter>,
    pub(crate) metrics: Option<MetricsRender>,
    pub(crate) ready_probes: Vec<drover_api::ReadyProbe>,
}

/// Connects Redis and NATS, builds the API state and serves HTTP until `shutdown` fires.
pub(crate) async fn serve(
    cfg: HttpConfig,
    deps: HttpDeps,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let keys = token_keys(&cfg)?;
    // Stable across nodes when the token key is configured, so an unknown e-mail gets the same
    // fake salt whichever node answers.
    let fake_challenge_secret = match &cfg.token_key {
        Some(k) => {
            use sha2::Digest;
            sha2::Sha256::digest(format!("drover-srp-fake-challenge:{k}").as_bytes()).to_vec()
        }
        None => {
            let mut b = vec![0u8; 32];
            rand::fill(&mut b[..]);
            b
        }
    };
    let redis_client = redis::Client::open(deps.redis_url.as_str())
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL: {e}"))?;
    let redis = tokio::time::timeout(
        Duration::from_secs(10),
        redis::aio::ConnectionManager::new(redis_client),
    )
    .await
    .map_err(|_| anyhow::anyhow!("Redis did not answer within 10 s"))?
    .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
    let nats = match async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(deps.nats_url.as_str())
        .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "SSE: cannot connect to NATS; streams stay empty until restart");
            None
        }
    };
    let listen = cfg.listen;
    let state = ApiState::new(ApiParts {
        store: deps.store,
        envelope: deps.envelope,
        redis,
        nats: nats.clone(),
        config: cfg,
        devices: deps.devices,
        metrics: deps.metrics,
        token_keys: keys,
        fake_challenge_secret,
        ready_probes: deps.ready_probes,
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(n) = nats {
        state.sse.clone().run(n, shutdown.clone());
    }
    let app = drover_api::app(state);
    let listener = poem::listener::TcpListener::bind(listen);
    let acceptor = poem::listener::Listener::into_acceptor(listener)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "HTTP API listening");
    Ok(tokio::spawn(async move {
        let server = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app,
            async move {
                let _ = shutdown.changed().await;
            },
            Some(Duration::from_secs(5)),
        );
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

/// Creates (or leaves alone) the super_admin `email` with a legacy password hash and the
/// must-enrol flag, through the owner connection (super_admins belong to no tenant).
pub(crate) async fn bootstrap_admin(
    owner_url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<bool> {
    use sqlx::Connection;
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 320 {
        anyhow::bail!("FIRST_ADMIN_EMAIL {email:?} is not an e-mail address");
    }
    if password.len() < 12 {
        anyhow::bail!("FIRST_ADMIN_PASSWORD must be at least 12 characters");
    }
    let hash = drover_auth::password::hash(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    let mut conn = sqlx::PgConnection::connect(owner_url).await?;
    // Look the address up through the login policy (a super_admin row is visible to no
    // tenant), then insert; a concurrent node's insert shows up as a unique violation.
    sqlx::query("SELECT set_config('app.auth_email', $1, false)")
        .bind(&email)
        .execute(&mut conn)
        .await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM users WHERE lower(email) = $1")
        .bind(&email)
        .fetch_optional(&mut conn)
        .await?;
    let inserted = if exists.is_some() {
        0
    } else {
        match sqlx::query(
            "INSERT INTO users (email, role, tenant_id, legacy_password_hash, must_upgrade_auth) \
             VALUES ($1, 'super_admin', NULL, $2, true)",
        )
        .bind(&email)
        .bind(&hash)
        .execute(&mut conn)
        .await
        {
            Ok(r) => r.rows_affected(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => 0,
            Err(e) => return Err(e.into()),
        }
    };
    if inserted == 1 {
        sqlx::query(
            "SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-000000000000', false)",
        )
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, actor_kind, action, resource_type, details) \
             VALUES ('00000000-0000-0000-0000-000000000000', 'system', 'super_admin_bootstrap', 'user', \
                     jsonb_build_object('email', $1::text))",
        )
        .bind(&email)
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    Ok(inserted == 1)
}
