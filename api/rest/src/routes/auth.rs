//! `/api/auth/*`: SRP-6a login in two steps, the legacy password step that leads to SRP
//! enrolment, refresh with rotation and reuse detection, logout, the caller's own account,
//! password change (re-enrolment) and single-use SSE tickets.

use std::sync::Arc;
use std::time::Duration;

use drover_auth::srp;
use drover_auth::state::{RateLimitError, RefreshError};
use drover_auth::tokens::{Claims, Role, TokenKind};
use drover_model::TenantId;
use poem::Request;
use poem::web::Data;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::audit::{self, Audit};
use crate::caller::{ACCESS_COOKIE, Auth, Caller, REFRESH_COOKIE, REFRESH_PATH, Via, client_ip};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiTags, NoContent};
use crate::state::ApiState;
use drover_auth::hex;

/// Access tokens live this long.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Refresh tokens (and their families) live this long.
pub const REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// SRP server state lives this long between init and verify.
const SRP_SESSION_TTL: Duration = Duration::from_secs(60);
/// An enrolment ticket from the legacy login lives this long.
const ENROL_TICKET_TTL: Duration = Duration::from_secs(15 * 60);
/// SSE tickets live this long.
const SSE_TICKET_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SrpInitRequest {
    /// The account's e-mail (case-insensitive).
    #[oai(validator(min_length = 3, max_length = 320))]
    pub email: String,
    /// The client's public ephemeral A, lowercase hex.
    #[oai(validator(min_length = 1, max_length = 514))]
    pub a: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SrpInitResponse {
    /// Pass back to `/api/auth/srp/verify` within 60 s; single use.
    pub session_id: String,
    /// The account's SRP salt, hex.
    pub salt: String,
    /// The server's public ephemeral B, hex.
    pub b: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SrpVerifyRequest {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub session_id: String,
    /// The client's proof M1, hex.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub m1: String,
    /// Also return the refresh token in the body (for non-browser clients; browsers use the
    /// httpOnly cookie).
    #[oai(default)]
    pub include_refresh_token: bool,
}

/// The caller's own account.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    /// `super_admin`, `tenant_admin`, `operator` or `viewer`.
    pub role: String,
    /// `null` for super_admin.
    pub tenant_id: Option<Uuid>,
    /// `user` or `api_key`.
    pub via: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LoginResponse {
    /// The server's proof M2, hex: check it before trusting the session.
    pub m2: String,
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Only when asked for with `include_refresh_token`.
    pub refresh_token: Option<String>,
    pub user: Me,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LegacyLoginRequest {
    #[oai(validator(min_length = 3, max_length = 320))]
    pub email: String,
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LegacyLoginResponse {
    /// Always `enrolment_required`: the account must enrol for SRP before it can log in.
    pub status: String,
    /// Pass to `/api/auth/srp/enrol`; single use, 15 minutes.
    pub enrolment_ticket: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct EnrolRequest {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub enrolment_ticket: String,
    /// New SRP salt, hex (16..64 bytes).
    #[oai(validator(min_length = 32, max_length = 128))]
    pub salt: String,
    /// New SRP verifier v = g^x mod N, hex.
    #[oai(validator(min_length = 2, max_length = 514))]
    pub verifier: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// New SRP salt, hex (16..64 bytes).
    #[oai(validator(min_length = 32, max_length = 128))]
    pub salt: String,
    /// New SRP verifier, hex.
    #[oai(validator(min_length = 2, max_length = 514))]
    pub verifier: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RefreshRequest {
    /// For non-browser clients; browsers send the refresh cookie instead.
    pub refresh_token: Option<String>,
    #[oai(default)]
    pub include_refresh_token: bool,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SseTicketRequest {
    pub tenant_id: Uuid,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SseTicketResponse {
    /// Single use; pass as `ticket` to `/api/sse/subscribe` within `expires_in` seconds.
    pub ticket: String,
    pub expires_in: u64,
}

/// What the SRP session keeps in Redis between init and verify.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PendingSrp {
    user_id: Uuid,
    email: String,
    a: String,
    login: srp::PendingLogin,
}

/// What an SSE ticket carries.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SseGrant {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: String,
}

#[derive(Debug)]
pub struct AuthApi;

fn lower_email(e: &str) -> String {
    drover_auth::normalize_email(e.trim())
}

async fn limit(state: &ApiState, key: String) -> ApiResult<()> {
    let per_min = state.config.auth_rate_per_minute;
    match state
        .auth
        .limiter
        .hit(&key, per_min, Duration::from_secs(60))
        .await
    {
        Ok(()) => Ok(()),
        Err(RateLimitError::Limited(retry)) => Err(ApiError::too_many(retry.as_header_secs())),
        Err(RateLimitError::State(e)) => Err(e.into()),
    }
}

async fn limit_ip_and_account(state: &ApiState, req: &Request, email: &str) -> ApiResult<()> {
    let ip = client_ip(state, req)
        .map(|i| i.to_string())
        .unwrap_or_default();
    limit(state, format!("auth:ip:{ip}")).await?;
    limit(state, format!("auth:acct:{email}")).await
}

fn me_of(user: &drover_store::entities::users::Model, via: &str) -> Me {
    Me {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role.clone(),
        tenant_id: user.tenant_id,
        via: via.to_owned(),
    }
}

fn role_of(user: &drover_store::entities::users::Model) -> ApiResult<Role> {
    user.role
        .parse::<Role>()
        .map_err(|_| ApiError::internal(format!("user {} has an unknown role", user.id)))
}

fn cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> Cookie {
    let mut c = Cookie::new_with_str(name, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_path(path);
    c.set_secure(secure);
    c.set_max_age(max_age);
    c
}

fn clear_cookie(name: &str, path: &str, secure: bool) -> Cookie {
    cookie(name, "", path, Duration::ZERO, secure)
}

struct Issued {
    access: String,
    refresh: String,
}

/// Mints an access token and a refresh token of `family` (a new family when `None`).
async fn issue_tokens(
    state: &ApiState,
    user: &drover_store::entities::users::Model,
    family: Option<Uuid>,
    previous_refresh: Option<Uuid>,
) -> ApiResult<Issued> {
    let role = role_of(user)?;
    let now = chrono::Utc::now();
    let family_id = family.unwrap_or_else(Uuid::new_v4);
    let refresh_id = Uuid::new_v4();
    match previous_refresh {
        Some(prev) => {
            match state
                .auth
                .families
                .rotate(family_id, prev, refresh_id, REFRESH_TTL)
                .await
            {
                Ok(()) => {}
                Err(RefreshError::Reused) => {
                    tracing::warn!(user = %user.id, "refresh token reuse; family revoked");
                    return Err(ApiError::unauthorized(
                        "refresh_reused",
                        "this refresh token was already used; the session was ended",
                    ));
                }
                Err(RefreshError::Revoked | RefreshError::Unknown) => {
                    return Err(ApiError::unauthorized(
                        "token_revoked",
                        "this session has ended",
                    ));
                }
                Err(RefreshError::State(e)) => return Err(e.into()),
            }
        }
        None => {
            state
                .auth
                .families
                .start(family_id, refresh_id, REFRESH_TTL)
                .await?
        }
    }
    let base = Claims {
        user_id: user.id,
        tenant_id: user.tenant_id,
        role,
        kind: TokenKind::Access,
        family_id: Some(family_id),
        token_id: Uuid::new_v4(),
        issued_at: now,
        expires_at: Some(now + chrono::Duration::from_std(ACCESS_TTL).unwrap_or_default()),
        scopes: Vec::new(),
    };
    let access = state.auth.keys.mint(&base).map_err(ApiError::internal)?;
    let refresh_claims = Claims {
        kind: TokenKind::Refresh,
        token_id: refresh_id,
        expires_at: Some(now + chrono::Duration::from_std(REFRESH_TTL).unwrap_or_default()),
        ..base
    };
    let refresh = state
        .auth
        .keys
        .mint(&refresh_claims)
        .map_err(ApiError::internal)?;
    Ok(Issued { access, refresh })
}

fn set_session_cookies(jar: &CookieJar, state: &ApiState, issued: &Issued) {
    let secure = state.config.public_tls;
    jar.add(cookie(
        ACCESS_COOKIE,
        &issued.access,
        "/",
        ACCESS_TTL,
        secure,
    ));
    jar.add(cookie(
        REFRESH_COOKIE,
        &issued.refresh,
        REFRESH_PATH,
        REFRESH_TTL,
        secure,
    ));
}

fn user_tenant(user: &drover_store::entities::users::Model) -> TenantId {
    user.tenant_id
        .map(TenantId)
        .unwrap_or(drover_store::SYSTEM_TENANT)
}

/// Salt 16..64 bytes; verifier 1..256 bytes and not zero (v = g^x mod N is never 0).
fn check_enrolment(salt: &[u8], verifier: &[u8]) -> ApiResult<()> {
    if !(16..=64).contains(&salt.len()) {
        return Err(ApiError::invalid("salt must be 16 to 64 bytes"));
    }
    if verifier.is_empty() || verifier.len() > 256 || verifier.iter().all(|b| *b == 0) {
        return Err(ApiError::invalid(
            "verifier must be a non-zero number below N",
        ));
    }
    Ok(())
}

fn parse_hex(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    hex::decode(s).map_err(|_| ApiError::invalid(format!("{field} must be hex")))
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// SRP-6a step 1: send the e-mail and A, receive the salt, B and a session id.
    ///
    /// Unknown e-mails get a well-formed fake challenge, so accounts cannot be enumerated.
    #[oai(path = "/srp/init", method = "post", operation_id = "srp_init")]
    async fn srp_init(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        body: Json<SrpInitRequest>,
    ) -> ApiResult<Json<SrpInitResponse>> {
        let email = lower_email(&body.email);
        limit_ip_and_account(&state, req, &email).await?;
        let a = parse_hex("a", &body.a)?;
        if a.is_empty() || a.len() > 256 || a.iter().all(|b| *b == 0) {
            return Err(ApiError::invalid("a is not a valid SRP public value"));
        }
        let user = state.store.auth_find_user_by_email(&email).await?;
        let usable = user.filter(|u| u.is_active).and_then(|u| {
            let salt = u.srp_salt.clone()?;
            let verifier = u.srp_verifier.clone()?;
            Some((u, salt, verifier))
        });
        match usable {
            Some((user, salt, verifier)) => {
                let challenge = srp::start_login(&email, &salt, &verifier)
                    .map_err(|e| ApiError::internal(format!("stored verifier unusable: {e}")))?;
                let pending = PendingSrp {
                    user_id: user.id,
                    email: email.clone(),
                    a: body.a.to_lowercase(),
                    login: challenge.session,
                };
                let payload = serde_json::to_string(&pending).map_err(ApiError::internal)?;
                // A single-use ticket is the session: GETDEL at verify, gone after 60 s.
                let session_id = state
                    .auth
                    .tickets
                    .issue("srp", &payload, SRP_SESSION_TTL)
                    .await?;
                Ok(Json(SrpInitResponse {
                    session_id,
                    salt: hex::encode(&salt),
                    b: hex::encode(&challenge.b_pub),
                }))
            }
            None => {
                let session_id = drover_auth::state::random_id().map_err(ApiError::internal)?;
                let (salt, b) = srp::fake_challenge(&state.auth.fake_challenge_secret, &email);
                Ok(Json(SrpInitResponse {
                    session_id,
                    salt: hex::encode(&salt),
                    b: hex::encode(&b),
                }))
            }
        }
    }

    /// SRP-6a step 2: send M1, receive M2 and the session (cookies, and the access token).
    #[oai(path = "/srp/verify", method = "post", operation_id = "srp_verify")]
    async fn srp_verify(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        jar: &CookieJar,
        body: Json<SrpVerifyRequest>,
    ) -> ApiResult<Json<LoginResponse>> {
        let ip = client_ip(&state, req).map(|i| i.to_string());
        limit(
            &state,
            format!("auth:ip:{}", ip.clone().unwrap_or_default()),
        )
        .await?;
        let bad = || {
            ApiError::unauthorized(
                "invalid_credentials",
                "wrong e-mail, password or Secret Key",
            )
        };
        let Some(raw) = state.auth.tickets.redeem("srp", &body.session_id).await? else {
            return Err(bad());
        };
        let pending: PendingSrp = serde_json::from_str(&raw).map_err(|_| bad())?;
        limit(&state, format!("auth:acct:{}", pending.email)).await?;
        let a = parse_hex("a", &pending.a)?;
        let m1 = parse_hex("m1", &body.m1)?;
        let proof = match pending.login.finish(&a, &m1) {
            Ok(p) => p,
            Err(_) => {
                if let Some(user) = state.store.auth_find_user_by_email(&pending.email).await? {
                    audit::record(
                        &state,
                        user_tenant(&user),
                        Audit::new("user", Some(user.id), "login_failed")
                            .resource("user", user.id.to_string())
                            .ip(ip.clone())
                            .details(serde_json::json!({"method": "srp", "reason": "wrong proof"})),
                    )
                    .await;
                }
                return Err(bad());
            }
        };
        let user = state
            .store
            .auth_find_user_by_email(&pending.email)
            .await?
            .filter(|u| u.is_active && u.id == pending.user_id)
            .ok_or_else(bad)?;
        let issued = issue_tokens(&state, &user, None, None).await?;
        state.store.auth_record_login(&user.email).await?;
        audit::record(
            &state,
            user_tenant(&user),
            Audit::new("user", Some(user.id), "login")
                .resource("user", user.id.to_string())
                .ip(ip)
                .details(serde_json::json!({"method": "srp"})),
        )
        .await;
        set_session_cookies(jar, &state, &issued);
        Ok(Json(LoginResponse {
            m2: hex::encode(&proof.m2),
            token_type: "Bearer".into(),
            expires_in: ACCESS_TTL.as_secs(),
            refresh_token: body.include_refresh_token.then(|| issued.refresh.clone()),
            access_token: issued.access,
            user: me_of(&user, "user"),
        }))
    }

    /// Legacy password step for accounts that have not enrolled for SRP yet (the bootstrap
    /// admin, admin-created users). Returns an enrolment ticket; SRP accounts get 409
    /// `srp_required`.
    #[oai(path = "/login", method = "post", operation_id = "legacy_login")]
    async fn legacy_login(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        body: Json<LegacyLoginRequest>,
    ) -> ApiResult<Json<LegacyLoginResponse>> {
        let email = lower_email(&body.email);
        limit_ip_and_account(&state, req, &email).await?;
        let ip = client_ip(&state, req).map(|i| i.to_string());
        let bad = || ApiError::unauthorized("invalid_credentials", "wrong e-mail or password");
        let user = state.store.auth_find_user_by_email(&email).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            drover_auth::password::dummy_verify();
            return Err(bad());
        };
        let Some(hash) = user.legacy_password_hash.clone() else {
            drover_auth::password::dummy_verify();
            if user.srp_verifier.is_some() {
                return Err(ApiError::conflict(
                    "srp_required",
                    "this account logs in with SRP (password and Secret Key)",
                ));
            }
            return Err(bad());
        };
        if !drover_auth::password::verify(&body.password, &hash) {
            audit::record(
                &state,
                user_tenant(&user),
                Audit::new("user", Some(user.id), "login_failed")
                    .resource("user", user.id.to_string())
                    .ip(ip)
                    .details(serde_json::json!({"method": "password"})),
            )
            .await;
            return Err(bad());
        }
        let ticket = state
            .auth
            .tickets
            .issue("enrol", &user.id.to_string(), ENROL_TICKET_TTL)
            .await?;
        audit::record(
            &state,
            user_tenant(&user),
            Audit::new("user", Some(user.id), "login_legacy")
                .resource("user", user.id.to_string())
                .ip(ip),
        )
        .await;
        Ok(Json(LegacyLoginResponse {
            status: "enrolment_required".into(),
            enrolment_ticket: ticket,
        }))
    }

    /// SRP enrolment with a ticket from the legacy step: stores the salt and verifier and
    /// deletes the legacy password hash. Then log in with SRP.
    #[oai(path = "/srp/enrol", method = "post", operation_id = "srp_enrol")]
    async fn srp_enrol(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        body: Json<EnrolRequest>,
    ) -> ApiResult<NoContent> {
        let ip = client_ip(&state, req).map(|i| i.to_string());
        limit(
            &state,
            format!("auth:ip:{}", ip.clone().unwrap_or_default()),
        )
        .await?;
        let salt = parse_hex("salt", &body.salt)?;
        let verifier = parse_hex("verifier", &body.verifier)?;
        check_enrolment(&salt, &verifier)?;
        let Some(user_id) = state
            .auth
            .tickets
            .redeem("enrol", &body.enrolment_ticket)
            .await?
        else {
            return Err(ApiError::unauthorized(
                "invalid_ticket",
                "the enrolment ticket is unknown, used or expired",
            ));
        };
        let user_id: Uuid = user_id
            .parse()
            .map_err(|_| ApiError::internal("enrolment ticket payload is not a user id"))?;
        let user = set_verifier(&state, user_id, salt, verifier).await?;
        audit::record(
            &state,
            user_tenant(&user),
            Audit::new("user", Some(user.id), "srp_enrol")
                .resource("user", user.id.to_string())
                .ip(ip),
        )
        .await;
        Ok(NoContent::Done)
    }

    /// New access token (and rotated refresh token) from the refresh cookie or body (send
    /// `{}` to use the cookie). A refresh token presented twice ends its whole session family.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        jar: &CookieJar,
        body: Json<RefreshRequest>,
    ) -> ApiResult<Json<TokenResponse>> {
        let include = body.include_refresh_token;
        let token = body
            .0
            .refresh_token
            .or_else(|| jar.get(REFRESH_COOKIE).map(|c| c.value_str().to_owned()))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("no refresh token"))?;
        let ip = client_ip(&state, req).map(|i| i.to_string());
        let verified = state
            .auth
            .keys
            .verify(&token, chrono::Utc::now())
            .map_err(|_| {
                ApiError::unauthorized("invalid_refresh_token", "invalid or expired refresh token")
            })?;
        let claims = verified.claims;
        let (TokenKind::Refresh, Some(family)) = (claims.kind, claims.family_id) else {
            return Err(ApiError::unauthorized(
                "invalid_refresh_token",
                "not a refresh token",
            ));
        };
        if state
            .auth
            .deny
            .any_revoked(&verified.revocation_ids)
            .await?
        {
            return Err(ApiError::unauthorized(
                "token_revoked",
                "this session has ended",
            ));
        }
        let tx = state.store.begin_auth_user(claims.user_id).await?;
        let user = tx.user().await?;
        tx.commit().await?;
        let user = user
            .filter(|u| {
                u.is_active
                    && drover_auth::state::issued_after(claims.issued_at, u.tokens_valid_after)
            })
            .ok_or_else(|| ApiError::unauthorized("token_revoked", "this session has ended"))?;
        let issued = match issue_tokens(&state, &user, Some(family), Some(claims.token_id)).await {
            Ok(i) => i,
            Err(e) => {
                if e.code() == "refresh_reused" {
                    audit::record(
                        &state,
                        user_tenant(&user),
                        Audit::new("user", Some(user.id), "refresh_reuse_detected")
                            .resource("user", user.id.to_string())
                            .ip(ip)
                            .details(serde_json::json!({"family": family})),
                    )
                    .await;
                    jar.add(clear_cookie(ACCESS_COOKIE, "/", state.config.public_tls));
                    jar.add(clear_cookie(
                        REFRESH_COOKIE,
                        REFRESH_PATH,
                        state.config.public_tls,
                    ));
                }
                return Err(e);
            }
        };
        set_session_cookies(jar, &state, &issued);
        Ok(Json(TokenResponse {
            token_type: "Bearer".into(),
            expires_in: ACCESS_TTL.as_secs(),
            refresh_token: include.then(|| issued.refresh.clone()),
            access_token: issued.access,
        }))
    }

    /// Ends this session: its refresh family and access token are revoked, cookies cleared.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&Arc<ApiState>>,
        jar: &CookieJar,
        auth: Auth,
    ) -> ApiResult<NoContent> {
        let caller = auth.caller();
        if let Via::User { family, .. } = &caller.via {
            if let Some(f) = family {
                state.auth.families.revoke(*f, REFRESH_TTL).await?;
            }
            state
                .auth
                .deny
                .revoke_ids(&caller.revocation_ids, ACCESS_TTL)
                .await?;
        }
        audit_caller(&state, caller, "logout", None).await;
        jar.add(clear_cookie(ACCESS_COOKIE, "/", state.config.public_tls));
        jar.add(clear_cookie(
            REFRESH_COOKIE,
            REFRESH_PATH,
            state.config.public_tls,
        ));
        Ok(NoContent::Done)
    }

    /// The caller's own account.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, state: Data<&Arc<ApiState>>, auth: Auth) -> ApiResult<Json<Me>> {
        let caller = auth.caller();
        let tx = state.store.begin_auth_user(caller.user_id).await?;
        let user = tx.user().await?;
        tx.commit().await?;
        let user = user
            .filter(|u| u.is_active)
            .ok_or_else(|| ApiError::unauthorized("token_revoked", "this account is disabled"))?;
        let mut me = me_of(&user, caller.actor_kind());
        me.role = caller.role.as_str().to_owned();
        Ok(Json(me))
    }

    /// Changes the password (and/or Secret Key): a new salt and verifier computed in the
    /// browser. Every other session of the account ends; this one gets fresh tokens.
    #[oai(path = "/password", method = "post", operation_id = "change_password")]
    async fn change_password(
        &self,
        state: Data<&Arc<ApiState>>,
        jar: &CookieJar,
        auth: Auth,
        body: Json<PasswordChangeRequest>,
    ) -> ApiResult<Json<TokenResponse>> {
        let caller = auth.caller();
        if !matches!(caller.via, Via::User { .. }) {
            return Err(ApiError::forbidden("API keys cannot change passwords"));
        }
        let salt = parse_hex("salt", &body.salt)?;
        let verifier = parse_hex("verifier", &body.verifier)?;
        check_enrolment(&salt, &verifier)?;
        let user = set_verifier(&state, caller.user_id, salt, verifier).await?;
        let issued = issue_tokens(&state, &user, None, None).await?;
        audit_caller(&state, caller, "password_change", None).await;
        set_session_cookies(jar, &state, &issued);
        Ok(Json(TokenResponse {
            token_type: "Bearer".into(),
            expires_in: ACCESS_TTL.as_secs(),
            refresh_token: None,
            access_token: issued.access,
        }))
    }

    /// A single-use ticket (30 s) to open the tenant's SSE stream with `EventSource`.
    #[oai(path = "/sse-ticket", method = "post", operation_id = "sse_ticket")]
    async fn sse_ticket(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        body: Json<SseTicketRequest>,
    ) -> ApiResult<Json<SseTicketResponse>> {
        let caller = auth.caller();
        let tenant = state.scope(caller, body.tenant_id, Role::Viewer).await?;
        let grant = SseGrant {
            user_id: caller.user_id,
            tenant_id: tenant.0,
            role: caller.role.as_str().to_owned(),
        };
        let payload = serde_json::to_string(&grant).map_err(ApiError::internal)?;
        let ticket = state
            .auth
            .tickets
            .issue("sse", &payload, SSE_TICKET_TTL)
            .await?;
        Ok(Json(SseTicketResponse {
            ticket,
            expires_in: SSE_TICKET_TTL.as_secs(),
        }))
    }
}

/// Stores a new SRP salt and verifier for `user_id`, deletes the legacy hash and ends every
/// existing session of the account.
async fn set_verifier(
    state: &ApiState,
    user_id: Uuid,
    salt: Vec<u8>,
    verifier: Vec<u8>,
) -> ApiResult<drover_store::entities::users::Model> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
    let tx = state.store.begin_auth_user(user_id).await?;
    let user = tx
        .user()
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::not_found("user"))?;
    let now = chrono::Utc::now();
    let version = user.secret_key_version.unwrap_or(0) + 1;
    let mut m = user.into_active_model();
    m.srp_salt = Set(Some(salt));
    m.srp_verifier = Set(Some(verifier));
    m.legacy_password_hash = Set(None);
    m.must_upgrade_auth = Set(false);
    m.secret_key_version = Set(Some(version));
    m.secret_key_created_at = Set(Some(now));
    // Tokens issued before this instant are refused (refresh checks the database; access
    // tokens check the Redis copy below).
    m.tokens_valid_after = Set(now);
    m.updated_at = Set(now);
    let user = m.update(tx.conn()).await?;
    tx.commit().await?;
    state.auth.validity.set_valid_after(user_id, now).await?;
    Ok(user)
}

/// Audits an action of an authenticated caller in their tenant (super_admin: the system tenant).
pub(crate) async fn audit_caller(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    details: Option<serde_json::Value>,
) {
    let tenant = caller.tenant_id.unwrap_or(drover_store::SYSTEM_TENANT);
    let mut a = Audit::new(caller.actor_kind(), Some(caller.actor_id()), action)
        .resource("user", caller.user_id.to_string())
        .ip(caller.ip_string());
    if let Some(d) = details {
        a = a.details(d);
    }
    audit::record(state, tenant, a).await;
}
