//! Who is calling: the security schemes of the spec (access cookie, bearer token, API key),
//! token and API-key verification with revocation checks on every request, and the role and
//! tenant checks every route makes.

use std::net::IpAddr;
use std::sync::Arc;

use drover_auth::tokens::{Role, TokenKind};
use drover_model::TenantId;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// Name of the access-token cookie (httpOnly, path `/`).
pub const ACCESS_COOKIE: &str = "drover_access";
/// Name of the refresh-token cookie (httpOnly, path [`REFRESH_PATH`]).
pub const REFRESH_COOKIE: &str = "drover_refresh";
/// The only path the refresh cookie is sent to.
pub const REFRESH_PATH: &str = "/api/auth/refresh";
/// API keys start with this.
pub const API_KEY_PREFIX: &str = "drv_";

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A person's access token; `family` is its login's refresh family.
    User {
        family: Option<Uuid>,
        token_id: Uuid,
    },
    /// An integration's API key.
    ApiKey { key_id: Uuid },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    /// `None` only for super_admin.
    pub tenant_id: Option<TenantId>,
    pub role: Role,
    pub via: Via,
    pub scopes: Vec<String>,
    pub ip: Option<IpAddr>,
    pub revocation_ids: Vec<String>,
}

impl Caller {
    /// Allows the call when the caller may act in `tenant` with at least `min` role; a
    /// super_admin may act in every tenant. Another tenant's id is answered with 404, so ids
    /// cannot be probed.
    pub fn in_tenant(&self, tenant: Uuid, min: Role) -> ApiResult<TenantId> {
        let tenant = TenantId(tenant);
        if self.role == Role::SuperAdmin {
            return Ok(tenant);
        }
        if self.tenant_id != Some(tenant) {
            return Err(ApiError::not_found("tenant"));
        }
        if self.role.rank() < min.rank() {
            return Err(ApiError::forbidden(format!(
                "this needs the {} role or higher",
                min.as_str()
            )));
        }
        if let Via::ApiKey { .. } = self.via
            && !self.scopes.is_empty()
            && min.rank() >= Role::Operator.rank()
            && !self.scopes.iter().any(|s| s == "write" || s == "*")
        {
            return Err(ApiError::forbidden("this API key is read-only"));
        }
        Ok(tenant)
    }

    pub fn require_super_admin(&self) -> ApiResult<()> {
        if self.role == Role::SuperAdmin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the super_admin role"))
        }
    }

    /// `user` or `api_key`, for the audit log.
    pub fn actor_kind(&self) -> &'static str {
        match self.via {
            Via::User { .. } => "user",
            Via::ApiKey { .. } => "api_key",
        }
    }

    /// The actor id for the audit log (the API key's id for keys).
    pub fn actor_id(&self) -> Uuid {
        match self.via {
            Via::User { .. } => self.user_id,
            Via::ApiKey { key_id } => key_id,
        }
    }

    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|i| i.to_string())
    }
}

/// The browser's access cookie.
#[derive(Debug, SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "drover_access",
    key_in = "cookie",
    checker = "check_cookie"
)]
pub struct CookieAuth(Caller);

/// `Authorization: Bearer <access token or API key>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerAuth(Caller);

/// Either scheme; the cookie is tried first, then the bearer token.
#[derive(Debug, SecurityScheme)]
pub enum Auth {
    Cookie(CookieAuth),
    Bearer(BearerAuth),
}

impl Auth {
    pub fn caller(&self) -> &Caller {
        match self {
            Auth::Cookie(c) => &c.0,
            Auth::Bearer(b) => &b.0,
        }
    }
}

impl std::ops::Deref for Auth {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        self.caller()
    }
}

async fn check_cookie(req: &Request, key: ApiKey) -> poem::Result<Caller> {
    let state = ApiState::from_request(req)?;
    Ok(authenticate(&state, req, &key.key).await?)
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = ApiState::from_request(req)?;
    Ok(authenticate(&state, req, &bearer.token).await?)
}

/// The client's address: the socket peer, or the last untrusted hop of `X-Forwarded-For` when
/// the peer is a configured proxy.
pub fn client_ip(state: &ApiState, req: &Request) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    if !state.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    forwarded
        .split(',')
        .rev()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .find(|ip| !state.trusted_proxies.contains(ip))
        .or(Some(peer))
}

pub use drover_auth::tokens::api_key_hash;

/// Verifies an access token or API key and its revocation state.
pub async fn authenticate(state: &Arc<ApiState>, req: &Request, token: &str) -> ApiResult<Caller> {
    let ip = client_ip(state, req);
    if token.len() > 8192 {
        return Err(ApiError::unauthenticated("credential too long"));
    }
    let now = chrono::Utc::now();
    if let Some(_rest) = token.strip_prefix(API_KEY_PREFIX) {
        let hash = api_key_hash(token);
        let key = state
            .store
            .auth_find_api_key(&hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "unknown API key"))?;
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized(
                "api_key_revoked",
                "this API key was revoked",
            ));
        }
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::unauthorized(
                "api_key_expired",
                "this API key has expired",
            ));
        }
        let verified =
            state.auth.keys.verify_api_key(token, now).map_err(|_| {
                ApiError::unauthorized("invalid_api_key", "API key signature invalid")
            })?;
        let claims = verified.claims;
        if claims.tenant_id != Some(key.tenant_id) {
            return Err(ApiError::unauthorized(
                "invalid_api_key",
                "API key does not match",
            ));
        }
        if state
            .auth
            .deny
            .any_revoked(&verified.revocation_ids)
            .await?
        {
            return Err(ApiError::unauthorized(
                "api_key_revoked",
                "this API key was revoked",
            ));
        }
        state.touch_api_key(hash);
        return Ok(Caller {
            user_id: key.user_id,
            tenant_id: Some(TenantId(key.tenant_id)),
            role: claims.role,
            via: Via::ApiKey { key_id: key.id },
            scopes: claims.scopes,
            ip,
            revocation_ids: verified.revocation_ids,
        });
    }
    let verified = state.auth.keys.verify_cached(token, now).map_err(|e| {
        use drover_auth::tokens::TokenError as T;
        match e {
            T::Expired => ApiError::unauthorized("token_expired", "the access token has expired"),
            _ => ApiError::unauthenticated("invalid access token"),
        }
    })?;
    let claims = verified.claims;
    if claims.kind != TokenKind::Access {
        return Err(ApiError::unauthenticated("not an access token"));
    }
    let checks = drover_auth::state::access_checks(
        &state.auth.deny,
        &state.auth.validity,
        &verified.revocation_ids,
        claims.user_id,
    )
    .await?;
    if checks.revoked {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "this session has ended",
        ));
    }
    if let Some(after) = checks.valid_after
        && !drover_auth::state::issued_after(claims.issued_at, after)
    {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "this session has ended",
        ));
    }
    Ok(Caller {
        user_id: claims.user_id,
        tenant_id: claims.tenant_id.map(TenantId),
        role: claims.role,
        via: Via::User {
            family: claims.family_id,
            token_id: claims.token_id,
        },
        scopes: claims.scopes,
        ip,
        revocation_ids: verified.revocation_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, tenant: Option<Uuid>) -> Caller {
        Caller {
            user_id: Uuid::new_v4(),
            tenant_id: tenant.map(TenantId),
            role,
            via: Via::User {
                family: None,
                token_id: Uuid::new_v4(),
            },
            scopes: vec![],
            ip: None,
            revocation_ids: vec![],
        }
    }

    #[test]
    fn tenant_and_role_checks() {
        let t = Uuid::new_v4();
        let other = Uuid::new_v4();
        let viewer = caller(Role::Viewer, Some(t));
        assert!(viewer.in_tenant(t, Role::Viewer).is_ok());
        assert_eq!(
            viewer.in_tenant(t, Role::Operator).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(
            viewer.in_tenant(other, Role::Viewer).unwrap_err().code(),
            "not_found"
        );
        let sa = caller(Role::SuperAdmin, None);
        assert!(sa.in_tenant(other, Role::TenantAdmin).is_ok());
        let admin = caller(Role::TenantAdmin, Some(t));
        assert!(admin.require_super_admin().is_err());
    }

    #[test]
    fn api_key_hash_is_sha256_hex() {
        assert_eq!(
            api_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
