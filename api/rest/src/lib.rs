//! drover-api: the HTTP API — routes, typed errors, authentication, roles, SSE and audit.
//!
//! [`app`] builds the whole HTTP application for one node: the OpenAPI routes (spec at
//! `/api/openapi.json`, Swagger UI at `/api/docs`), `/health`, `/health/ready`, `/metrics`,
//! the SSE stream, and the built web UI at `/` (SPA fallback to `index.html`). [`spec_json`]
//! is the spec the repository commits as `api/openapi.json`.

pub mod audit;
pub mod caller;
pub mod config;
pub mod error;
pub mod middleware;
pub mod request_id;
pub mod routes;
pub mod sse;
pub mod state;

use std::sync::Arc;

use poem::endpoint::StaticFilesEndpoint;
use poem::middleware::{CookieJarManager, Cors};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OpenApiService;

pub use config::HttpConfig;
pub use state::{
    ApiParts, ApiState, ConnectionTest, ConnectionTestResult, DependencyHealth, DeviceCall,
    DeviceCallError, DeviceCallReply, DeviceRouter, MetricsRender, ReadyProbe,
};

type Apis = (
    routes::auth::AuthApi,
    routes::admin::AdminApi,
    routes::devices::DevicesApi,
    routes::catalog::CatalogApi,
    routes::health::HealthApi,
    sse::SseApi,
);

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            routes::auth::AuthApi,
            routes::admin::AdminApi,
            routes::devices::DevicesApi,
            routes::catalog::CatalogApi,
            routes::health::HealthApi,
            sse::SseApi,
        ),
        "drover API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Supervises fleets of MikroTik RouterOS devices. Authenticate with the `drover_access` \
         cookie (browsers, after SRP-6a login) or `Authorization: Bearer` with an access token \
         or an API key. Errors are JSON `{code, message, request_id}`.",
    )
}

/// The OpenAPI document, pretty-printed (what `api/openapi.json` holds).
pub fn spec_json() -> String {
    service().spec()
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/api" || path == "/metrics" || path.starts_with("/health")
}

/// Sends API paths to the API and everything else to the web UI.
struct Split<A, W> {
    api: A,
    web: Option<W>,
    web_dir: std::path::PathBuf,
}

impl<A: Endpoint, W: Endpoint> Endpoint for Split<A, W> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if is_api_path(req.uri().path()) {
            return self.api.call(req).await.map(IntoResponse::into_response);
        }
        match &self.web {
            Some(web) => {
                let immutable = req.uri().path().starts_with("/assets/");
                // A missing hashed asset is a 404, not the SPA page: a stale tab then knows
                // to reload instead of parsing HTML as JavaScript.
                if immutable
                    && (req.uri().path().contains("..")
                        || !self
                            .web_dir
                            .join(req.uri().path().trim_start_matches('/'))
                            .is_file())
                {
                    return Err(poem::Error::from_status(poem::http::StatusCode::NOT_FOUND));
                }
                let mut resp = web.call(req).await.map(IntoResponse::into_response)?;
                let cache = if immutable {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                resp.headers_mut().insert(
                    poem::http::header::CACHE_CONTROL,
                    poem::http::HeaderValue::from_static(cache),
                );
                Ok(resp)
            }
            None => Err(poem::Error::from_status(poem::http::StatusCode::NOT_FOUND)),
        }
    }
}

/// The HTTP application of one node.
pub fn app(state: Arc<ApiState>) -> impl Endpoint<Output = Response> {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let config = state.config.clone();
    let routes = Route::new()
        .at("/api/openapi.json", spec)
        .nest("/api/docs", docs)
        .nest("/", api);
    let web = config.web_dir.join("index.html").is_file().then(|| {
        StaticFilesEndpoint::new(&config.web_dir)
            .index_file("index.html")
            .fallback_to_index()
    });
    let mut cors = Cors::new().allow_credentials(true);
    for o in config.cors_origins.iter().filter(|o| !o.is_empty()) {
        cors = cors.allow_origin(o.as_str());
    }
    let api = routes
        .with(middleware::BodyLimit {
            max: config.max_body_bytes,
        })
        .with(CookieJarManager::new())
        .with(middleware::Timeout {
            limit: config.request_timeout(),
        })
        .with(error::JsonErrors)
        .with_if(!config.cors_origins.iter().all(String::is_empty), cors)
        .data(state);
    Split {
        api,
        web,
        web_dir: config.web_dir.clone(),
    }
    .with(middleware::SecurityHeaders {
        hsts: config.public_tls,
    })
    .with(request_id::AssignRequestId)
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths_are_told_apart_from_ui_paths() {
        assert!(super::is_api_path("/api/auth/me"));
        assert!(super::is_api_path("/health/ready"));
        assert!(super::is_api_path("/metrics"));
        assert!(!super::is_api_path("/devices/123"));
        assert!(!super::is_api_path("/apiary"));
    }
}
