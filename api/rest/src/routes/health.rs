//! `/health` (liveness), `/health/ready` (PostgreSQL, Redis, NATS and the binary's own probes,
//! each reported) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::routes::ApiTags;
use crate::state::{ApiState, DependencyHealth};

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Liveness {
    /// Always `ok` when the process answers.
    pub status: String,
    pub version: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Dependency {
    pub name: String,
    pub ok: bool,
    /// Why it is not ok; never contains credentials.
    pub detail: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one dependency does not answer.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(Debug, ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text exposition format.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4")]
    Ok(PlainText<String>),
}

#[derive(Debug)]
pub struct HealthApi;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

async fn probe<F>(name: &'static str, f: F) -> DependencyHealth
where
    F: std::future::Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(())) => DependencyHealth {
            name,
            ok: true,
            detail: None,
        },
        Ok(Err(e)) => DependencyHealth {
            name,
            ok: false,
            detail: Some(e),
        },
        Err(_) => DependencyHealth {
            name,
            ok: false,
            detail: Some("no answer within 3 s".into()),
        },
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process answers.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Readiness: PostgreSQL, Redis and NATS (and the cluster, when configured) each answer.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, state: Data<&Arc<ApiState>>) -> ReadyResponse {
        let pg = probe("postgresql", async {
            state
                .store
                .ping()
                .await
                .map_err(|_| "cannot query the database".to_owned())
        });
        let redis = probe("redis", async {
            let mut c = state.redis.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map(|_| ())
                .map_err(|_| "cannot PING redis".to_owned())
        });
        let nats = probe("nats", async {
            match &state.nats {
                None => Err("not connected".to_owned()),
                Some(c) => match c.connection_state() {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("connection {other:?}").to_lowercase()),
                },
            }
        });
        let (pg, redis, nats) = tokio::join!(pg, redis, nats);
        let mut deps = vec![pg, redis, nats];
        deps.extend(state.extra_ready.iter().map(|p| (p.0)()));
        let ready = deps.iter().all(|d| d.ok);
        let body = Readiness {
            status: if ready { "ready" } else { "not_ready" }.into(),
            dependencies: deps
                .into_iter()
                .map(|d| Dependency {
                    name: d.name.to_owned(),
                    ok: d.ok,
                    detail: d.detail,
                })
                .collect(),
        };
        if ready {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }

    /// Prometheus metrics of this node.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&Arc<ApiState>>) -> MetricsResponse {
        let text = state.metrics.as_ref().map(|m| (m.0)()).unwrap_or_default();
        MetricsResponse::Ok(PlainText(text))
    }
}
