//! Request ids: taken from a well-formed `X-Request-Id` header or made fresh, kept in a
//! task-local for log lines and error bodies, and echoed in the response.

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being handled by this task.
#[derive(Debug, Clone, Copy)]
pub struct RequestId;

impl RequestId {
    pub fn current() -> Option<String> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

fn acceptable(v: &str) -> bool {
    (8..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Middleware assigning the request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssignRequestId;

impl<E: Endpoint> Middleware<E> for AssignRequestId {
    type Output = AssignRequestIdEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        AssignRequestIdEndpoint { inner: ep }
    }
}

#[derive(Debug)]
pub struct AssignRequestIdEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for AssignRequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable(v))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let header = HeaderValue::from_str(&id).ok();
        let result = CURRENT
            .scope(id, async {
                self.inner.call(req).await.map(IntoResponse::into_response)
            })
            .await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        if let Some(h) = header {
            resp.headers_mut().insert("x-request-id", h);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_replaced() {
        assert!(acceptable("abcdef0123456789"));
        assert!(!acceptable("short"));
        assert!(!acceptable("has space in it"));
        assert!(!acceptable(&"x".repeat(65)));
        assert!(!acceptable("inject\r\nheader:1"));
    }
}
