//! Cross-cutting HTTP behaviour: security headers (CSP, frame, referrer, nosniff, HSTS behind
//! TLS), cache headers, per-request timeouts (not for SSE), and metrics per route.

use std::time::{Duration, Instant};

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::ApiError;

/// The Content-Security-Policy the web UI is built to satisfy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
form-action 'self'";

/// Adds the security headers; `hsts` when the API is served over TLS (directly or behind a
/// TLS-terminating proxy).
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    pub hsts: bool,
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint {
            inner: ep,
            hsts: self.hsts,
        }
    }
}

#[derive(Debug)]
pub struct SecurityHeadersEndpoint<E> {
    inner: E,
    hsts: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let is_docs = req.uri().path().starts_with("/api/docs");
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let h = resp.headers_mut();
        // Swagger UI ships inline scripts; it gets its own, looser policy on its own path.
        let csp = if is_docs {
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
        } else {
            CSP
        };
        h.insert("content-security-policy", HeaderValue::from_static(csp));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        );
        if self.hsts {
            h.insert(
                "strict-transport-security",
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            );
        }
        Ok(resp)
    }
}

/// Fails a request that takes longer than `limit` with 503 `timeout` (the SSE route is mounted
/// outside this middleware).
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    pub limit: Duration,
}

impl<E: Endpoint> Middleware<E> for Timeout {
    type Output = TimeoutEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        TimeoutEndpoint {
            inner: ep,
            limit: self.limit,
        }
    }
}

#[derive(Debug)]
pub struct TimeoutEndpoint<E> {
    inner: E,
    limit: Duration,
}

impl<E: Endpoint> Endpoint for TimeoutEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path().starts_with("/api/sse/") {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let method = req.method().clone();
        let started = Instant::now();
        let out = match tokio::time::timeout(self.limit, self.inner.call(req)).await {
            Ok(Ok(r)) => r.into_response(),
            Ok(Err(e)) => e.into_response(),
            Err(_) => ApiError::unavailable("timeout", "the request took too long; retry", 1)
                .into_response(),
        };
        metrics::histogram!("drover_http_request_seconds", "method" => method.to_string(), "status" => out.status().as_str().to_owned())
            .record(started.elapsed().as_secs_f64());
        Ok(out)
    }
}

/// Refuses request bodies larger than `max` bytes with 413: by `Content-Length` when given,
/// otherwise by reading at most `max + 1` bytes of a chunked body. Requests without a body
/// (no length, not chunked) pass untouched.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub max: usize,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max: self.max,
        }
    }
}

#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
}

fn too_large(max: usize) -> Response {
    ApiError::PayloadTooLarge(poem_openapi::payload::Json(crate::error::ErrorBody {
        code: "payload_too_large".into(),
        message: format!("the request body is larger than {max} bytes"),
        request_id: crate::request_id::RequestId::current().unwrap_or_default(),
    }))
    .into_response()
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let chunked = req
            .headers()
            .get(poem::http::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        match declared {
            Some(n) if n > self.max as u64 => return Ok(too_large(self.max)),
            None if chunked => {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                let reader = req.take_body().into_async_read();
                let mut limited = reader.take(self.max as u64 + 1);
                if limited.read_to_end(&mut buf).await.is_err() {
                    return Ok(ApiError::bad_request(
                        "bad_request",
                        "cannot read the request body",
                    )
                    .into_response());
                }
                if buf.len() > self.max {
                    return Ok(too_large(self.max));
                }
                req.set_body(buf);
            }
            _ => {}
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
