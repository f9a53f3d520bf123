//! `ApiState`: what every request handler reaches — the store, the auth services on Redis, the
//! device router (local actor tree or cluster), the SSE hub and readiness probes — plus the
//! trait the binary implements to reach device actors.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_auth::state::{DenyList, RateLimiter, RefreshFamilies, Tickets, UserValidity};
use drover_auth::tokens::TokenKeys;
use drover_model::{DeviceId, TenantId};
use drover_store::Store;
use drover_store::crypto::Envelope;
use poem::Request;

use crate::config::HttpConfig;
use crate::sse::SseHub;

/// The auth services, all on one Redis connection manager.
#[derive(Debug)]
pub struct AuthServices {
    pub keys: TokenKeys,
    pub families: RefreshFamilies,
    pub deny: DenyList,
    pub validity: UserValidity,
    pub limiter: RateLimiter,
    pub tickets: Tickets,
    /// Secret behind the fake SRP challenges for unknown e-mails (stable per node set).
    pub fake_challenge_secret: Vec<u8>,
}

/// One RouterOS command for a device, as API words (`/interface/print`, `=name=x`, `?type=ether`).
#[derive(Debug, Clone)]
pub struct DeviceCall {
    pub tenant: TenantId,
    pub device: DeviceId,
    pub words: Vec<String>,
    pub timeout: Duration,
}

/// The device's answer: `!re` rows and the `!done` attributes.
#[derive(Debug, Clone, Default)]
pub struct DeviceCallReply {
    pub rows: Vec<BTreeMap<String, String>>,
    pub done: BTreeMap<String, String>,
}

/// Why a device call failed, in terms the API maps to HTTP.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceCallError {
    #[error("the device has no session ({status})")]
    NotConnected { status: String },
    #[error("the device refused the command: {message}")]
    Trap { message: String },
    #[error("the device did not answer in time")]
    Timeout,
    #[error("the device's shard is between owners")]
    NoOwner { retry_after: Duration },
    #[error("the device is not supervised by any node")]
    NotRunning,
    #[error("{0}")]
    Failed(String),
}

/// A one-off connection check against an address with credentials (before or after adding).
#[derive(Clone)]
pub struct ConnectionTest {
    pub address: String,
    pub port: u16,
    pub tls_mode: String,
    pub username: String,
    pub password: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for ConnectionTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTest")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("tls_mode", &self.tls_mode)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Result of a [`ConnectionTest`].
#[derive(Debug, Clone)]
pub struct ConnectionTestResult {
    pub ok: bool,
    pub latency_ms: u64,
    pub identity: Option<String>,
    pub version: Option<String>,
    pub certificate_fingerprint: Option<String>,
    pub error: Option<String>,
}

/// How the API reaches device actors; the binary implements it over the local actor tree or
/// the cluster.
#[async_trait::async_trait]
pub trait DeviceRouter: Send + Sync + std::fmt::Debug {
    async fn call(&self, call: DeviceCall) -> Result<DeviceCallReply, DeviceCallError>;
    async fn test_connection(&self, test: ConnectionTest) -> ConnectionTestResult;
}

/// One dependency's health for `/health/ready`.
#[derive(Debug, Clone)]
pub struct DependencyHealth {
    pub name: &'static str,
    pub ok: bool,
    pub detail: Option<String>,
}

/// Shared state of the API.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    pub envelope: Arc<Envelope>,
    pub redis: redis::aio::ConnectionManager,
    pub nats: Option<async_nats::Client>,
    pub auth: AuthServices,
    pub config: HttpConfig,
    pub trusted_proxies: Vec<IpAddr>,
    pub devices: Arc<dyn DeviceRouter>,
    pub sse: SseHub,
    /// Renders Prometheus metrics for `/metrics`, when the binary installed a recorder.
    pub metrics: Option<MetricsRender>,
    /// Extra readiness probes from the binary (e.g. the cluster).
    pub extra_ready: Vec<ReadyProbe>,
    touched: Mutex<BTreeMap<String, Instant>>,
}

/// A readiness probe the binary adds (e.g. cluster membership).
#[derive(Clone)]
pub struct ReadyProbe(pub Arc<dyn Fn() -> DependencyHealth + Send + Sync>);

impl std::fmt::Debug for ReadyProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyProbe")
    }
}

/// A function rendering the Prometheus text format.
#[derive(Clone)]
pub struct MetricsRender(pub Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsRender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRender")
    }
}

/// Everything needed to build an [`ApiState`].
#[derive(Debug)]
pub struct ApiParts {
    pub store: Store,
    pub envelope: Arc<Envelope>,
    pub redis: redis::aio::ConnectionManager,
    pub nats: Option<async_nats::Client>,
    pub config: HttpConfig,
    pub devices: Arc<dyn DeviceRouter>,
    pub metrics: Option<MetricsRender>,
    pub token_keys: TokenKeys,
    /// Secret behind fake SRP challenges; the same on every node (derive it from the token
    /// key), so an unknown e-mail gets the same salt whichever node answers.
    pub fake_challenge_secret: Vec<u8>,
    /// Extra readiness probes (`/health/ready`).
    pub ready_probes: Vec<ReadyProbe>,
}

impl ApiState {
    pub fn new(parts: ApiParts) -> Result<Arc<Self>, String> {
        let trusted_proxies = parts.config.trusted_proxy_addrs()?;
        let prefix = parts.config.redis_prefix.clone();
        let redis = parts.redis;
        let fake_challenge_secret = parts.fake_challenge_secret;
        let r = drover_auth::state::Redis::new(redis.clone(), prefix);
        let auth = AuthServices {
            keys: parts.token_keys,
            families: r.refresh_families(),
            deny: r.deny_list(),
            validity: r.user_validity(),
            limiter: r.rate_limiter(),
            tickets: r.tickets(),
            fake_challenge_secret,
        };
        let sse = SseHub::new(parts.config.sse_max_clients);
        Ok(Arc::new(Self {
            store: parts.store,
            envelope: parts.envelope,
            redis,
            nats: parts.nats,
            auth,
            trusted_proxies,
            config: parts.config,
            devices: parts.devices,
            sse,
            metrics: parts.metrics,
            extra_ready: parts.ready_probes,
            touched: Mutex::new(BTreeMap::new()),
        }))
    }

    /// [`Caller::in_tenant`], plus, for a super_admin (who may name any tenant), a check that
    /// the tenant exists: a mistyped id answers 404 instead of an empty tenant.
    pub async fn scope(
        &self,
        caller: &crate::caller::Caller,
        tenant: uuid::Uuid,
        min: drover_auth::tokens::Role,
    ) -> crate::error::ApiResult<TenantId> {
        let t = caller.in_tenant(tenant, min)?;
        if caller.role == drover_auth::tokens::Role::SuperAdmin {
            use sea_orm::EntityTrait;
            let tx = self.store.begin(t).await?;
            let exists = drover_store::entities::tenants::Entity::find_by_id(t.0)
                .one(tx.conn())
                .await?
                .is_some();
            tx.commit().await?;
            if !exists {
                return Err(crate::error::ApiError::not_found("tenant"));
            }
        }
        Ok(t)
    }

    pub(crate) fn from_request(req: &Request) -> poem::Result<Arc<ApiState>> {
        req.data::<Arc<ApiState>>().cloned().ok_or_else(|| {
            poem::Error::from_string(
                "api state missing",
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        })
    }

    /// Records an API key's use at most once a minute per key, off the request path.
    pub(crate) fn touch_api_key(&self, hash: String) {
        {
            let Ok(mut t) = self.touched.lock() else {
                return;
            };
            let now = Instant::now();
            if t.get(&hash)
                .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(60))
            {
                return;
            }
            if t.len() > 10_000 {
                t.clear();
            }
            t.insert(hash.clone(), now);
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.auth_touch_api_key(&hash).await {
                tracing::debug!(error = %e, "cannot record API key use");
            }
        });
    }
}
