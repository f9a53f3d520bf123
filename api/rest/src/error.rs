//! The one error shape of the API: JSON `{code, message, request_id}` with a stable machine
//! `code`, and the middleware that gives every other failure (bad JSON, unknown route, missing
//! credentials, timeouts) the same shape. 5xx bodies never carry internal error text.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::request_id::RequestId;

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_input`, `forbidden`, `not_found`.
    pub code: String,
    /// What went wrong, for people. Never contains secrets or internal error text.
    pub message: String,
    /// The request id (also in the `X-Request-Id` header); quote it when reporting a problem.
    pub request_id: String,
}

/// Every error an endpoint can return, typed in the spec.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request: bad JSON, unknown fields, bad parameters.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Not authenticated, or the credentials are invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated, but the role or tenant does not allow this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource (in the caller's tenant).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state (duplicate name, wrong login method).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Well-formed but invalid values.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Unexpected server error; the details are in the server log under the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, Redis, NATS, the device's owner node) is unavailable; retry.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
        request_id: RequestId::current().unwrap_or_default(),
    })
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthorized(body("unauthenticated", message))
    }
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::Unauthorized(body(code, message))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message))
    }
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(body("not_found", format!("{what} not found")))
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::Conflict(body(code, message))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Unprocessable(body("invalid_input", message))
    }
    pub fn too_many(retry_after_s: u64) -> Self {
        Self::TooManyRequests(
            body("rate_limited", "too many requests; retry later"),
            retry_after_s.max(1),
        )
    }
    pub fn unavailable(code: &str, message: impl Into<String>, retry_after_s: u64) -> Self {
        Self::Unavailable(body(code, message), retry_after_s.max(1))
    }
    /// A 500 whose cause is logged (with the request id) and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let b = body(
            "internal",
            "internal error; see the server log for this request id",
        );
        tracing::error!(request_id = %b.0.request_id, error = %cause, "internal error");
        Self::Internal(b)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::UnsupportedMediaType(b)
            | Self::Unprocessable(b)
            | Self::Internal(b)
            | Self::TooManyRequests(b, _)
            | Self::Unavailable(b, _) => &b.0.code,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.code())
    }
}

impl std::error::Error for ApiError {}

impl From<drover_store::Error> for ApiError {
    fn from(e: drover_store::Error) -> Self {
        use drover_store::Error as E;
        match e {
            E::NotFound(what) => ApiError::not_found(&what),
            E::Invalid(msg) => ApiError::invalid(msg),
            E::Db(ref db) if is_unique_violation(&db.to_string()) => {
                ApiError::conflict("duplicate", "a resource with this name already exists")
            }
            E::Db(ref db) if db.to_string().contains("violates foreign key constraint") => {
                let text = db.to_string();
                if text.contains("_tenant_id_fkey\"") {
                    ApiError::not_found("tenant")
                } else {
                    ApiError::invalid(
                        "a referenced resource (site, group, tag, credential profile) does not exist",
                    )
                }
            }
            E::Db(ref db) if db.to_string().contains("invalid byte sequence") => {
                ApiError::invalid("text must be UTF-8 without NUL characters")
            }
            E::Db(ref db) if is_check_violation(&db.to_string()) => {
                ApiError::invalid("a value is out of range or too long")
            }
            E::Db(ref db) if is_connection_error(&db.to_string()) => {
                tracing::warn!(error = %db, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is unavailable", 5)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        drover_store::Error::Db(e).into()
    }
}

fn is_unique_violation(s: &str) -> bool {
    s.contains("duplicate key") || s.contains("23505")
}

fn is_check_violation(s: &str) -> bool {
    s.contains("violates check constraint")
        || s.contains("value too long")
        || s.contains("invalid input syntax")
        || s.contains("out of range")
}

fn is_connection_error(s: &str) -> bool {
    s.contains("Connection") || s.contains("pool timed out") || s.contains("connection")
}

impl From<drover_auth::state::StateError> for ApiError {
    fn from(e: drover_auth::state::StateError) -> Self {
        tracing::warn!(error = %e, "auth state store unavailable");
        ApiError::unavailable("auth_store_unavailable", "login state store unavailable", 5)
    }
}

/// Code for a status when a failure did not come from an [`ApiError`] (poem's own errors).
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_input",
        429 => "rate_limited",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// Middleware: every error response leaves as the JSON [`ErrorBody`]. Errors that already are
/// [`ApiError`] responses pass through; poem's own (extractor, routing, size limit) are
/// rewritten, and 5xx texts are replaced by a generic message.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrors;

impl<E: Endpoint> Middleware<E> for JsonErrors {
    type Output = JsonErrorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        JsonErrorsEndpoint { inner: ep }
    }
}

#[derive(Debug)]
pub struct JsonErrorsEndpoint<E> {
    inner: E,
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn rewrite(status: StatusCode, message: String) -> Response {
    let message = if status.is_server_error() {
        "internal error; see the server log for this request id".to_owned()
    } else {
        // Extractor messages are short and describe the request, not the server.
        message.chars().take(300).collect()
    };
    let b = ErrorBody {
        code: code_for(status).to_owned(),
        message,
        request_id: RequestId::current().unwrap_or_default(),
    };
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::to_string(&b).unwrap_or_default())
}

impl<E: Endpoint> Endpoint for JsonErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match self.inner.call(req).await {
            Ok(out) => {
                let resp = out.into_response();
                let status = resp.status();
                if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
                    let text = resp.into_body().into_string().await.unwrap_or_default();
                    return Ok(rewrite(status, text));
                }
                Ok(resp)
            }
            Err(err) => {
                let status = err.status();
                if status.is_server_error() {
                    tracing::error!(
                        request_id = %RequestId::current().unwrap_or_default(),
                        error = %err,
                        "request failed"
                    );
                }
                let resp = err.into_response();
                if is_json(&resp) {
                    return Ok(resp);
                }
                let status = resp.status();
                let text = resp.into_body().into_string().await.unwrap_or_default();
                Ok(rewrite(status, text))
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poem_statuses_get_stable_codes() {
        assert_eq!(code_for(StatusCode::NOT_FOUND), "not_found");
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), "internal");
    }

    #[test]
    fn server_errors_never_echo_their_text() {
        let r = rewrite(
            StatusCode::INTERNAL_SERVER_ERROR,
            "password=hunter2 at db.rs:10".into(),
        );
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = futures_util::FutureExt::now_or_never(r.into_body().into_string())
            .and_then(Result::ok)
            .unwrap_or_default();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"code\":\"internal\""), "{text}");
    }
}
