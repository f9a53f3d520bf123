//! Administration: tenants (super_admin), users and roles of a tenant, API keys (shown once,
//! stored as a hash), and the audit log. Role grants follow `Role::can_grant`: nobody grants a
//! role above their own, and super_admin is never granted through the API.

use std::sync::Arc;

use drover_auth::tokens::{Claims, Role, TokenKind};
use drover_model::TenantId;
use drover_store::entities::{api_keys, audit_log, tenants, users};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::audit::{self, Audit};
use crate::caller::{API_KEY_PREFIX, Auth};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiTags, NoContent};
use crate::state::ApiState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub contact_email: Option<String>,
    /// Poll interval (s) of devices that set none.
    pub default_poll_interval_s: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<tenants::Model> for Tenant {
    fn from(t: tenants::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            contact_email: t.contact_email,
            default_poll_interval_s: t.default_poll_interval_s,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewTenant {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    #[oai(validator(max_length = 2000))]
    pub description: Option<String>,
    #[oai(validator(max_length = 320))]
    pub contact_email: Option<String>,
    #[oai(validator(minimum(value = "5"), maximum(value = "86400")))]
    pub default_poll_interval_s: Option<i32>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct TenantPatch {
    /// Renaming needs super_admin.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    #[oai(validator(max_length = 2000))]
    pub description: Option<String>,
    #[oai(validator(max_length = 320))]
    pub contact_email: Option<String>,
    #[oai(validator(minimum(value = "5"), maximum(value = "86400")))]
    pub default_poll_interval_s: Option<i32>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub is_active: bool,
    /// True until the user has enrolled for SRP (after a temporary password).
    pub must_enrol: bool,
    pub last_login_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<users::Model> for User {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            tenant_id: u.tenant_id,
            email: u.email,
            name: u.name,
            role: u.role,
            is_active: u.is_active,
            must_enrol: u.srp_verifier.is_none(),
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewUser {
    #[oai(validator(min_length = 3, max_length = 320))]
    pub email: String,
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// `tenant_admin`, `operator` or `viewer`.
    pub role: String,
    /// Temporary password for the first (legacy) login, which leads to SRP enrolment.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UserPatch {
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasswordReset {
    /// New temporary password; the user must enrol for SRP again (new Secret Key).
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn key_role_and_scopes(scopes: &serde_json::Value) -> (String, Vec<String>) {
    let all: Vec<String> = scopes
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let role = all
        .iter()
        .find_map(|s| s.strip_prefix("role:").map(str::to_owned))
        .unwrap_or_else(|| "viewer".into());
    let scopes = all
        .into_iter()
        .filter(|s| !s.starts_with("role:"))
        .collect();
    (role, scopes)
}

impl From<api_keys::Model> for ApiKey {
    fn from(k: api_keys::Model) -> Self {
        let (role, scopes) = key_role_and_scopes(&k.scopes);
        Self {
            id: k.id,
            name: k.name,
            prefix: k.key_prefix,
            role,
            scopes,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewApiKey {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// `tenant_admin`, `operator` or `viewer`; at most the creator's own role.
    pub role: String,
    /// `read` (default when empty: the role decides) or `write`.
    #[oai(default)]
    pub scopes: Vec<String>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// The key itself: shown this once, never again.
    pub key: String,
    pub prefix: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditRecord {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub device_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Pass as `before_id` for the next (older) page; `null` at the end.
    pub next_before_id: Option<i64>,
}

fn parse_role(s: &str) -> ApiResult<Role> {
    s.parse::<Role>()
        .map_err(|_| ApiError::invalid("role must be tenant_admin, operator or viewer"))
}

fn check_grant(caller_role: Role, target: Role) -> ApiResult<()> {
    if target == Role::SuperAdmin {
        return Err(ApiError::forbidden(
            "super_admin accounts are created with `drover admin create`, never through the API",
        ));
    }
    if !caller_role.can_grant(target) {
        return Err(ApiError::forbidden(format!(
            "a {} cannot grant the {} role",
            caller_role.as_str(),
            target.as_str()
        )));
    }
    Ok(())
}

/// A user of tenant `t` the caller (of role `by`) may change: 404 when absent, 403 when the
/// user's role is above the caller's.
async fn user_to_change(
    tx: &drover_store::TenantTx,
    t: TenantId,
    user_id: Uuid,
    by: Role,
) -> ApiResult<users::Model> {
    let user = users::Entity::find_by_id(user_id)
        .filter(users::Column::TenantId.eq(t.0))
        .one(tx.conn())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if parse_role(&user.role)?.rank() > by.rank() {
        return Err(ApiError::forbidden(
            "cannot change a user with a higher role",
        ));
    }
    Ok(user)
}

fn valid_email(e: &str) -> bool {
    let e = e.trim();
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Debug)]
pub struct AdminApi;

#[OpenApi(prefix_path = "/api")]
impl AdminApi {
    /// Tenants the caller may see: every tenant for super_admin (an audited cross-tenant
    /// read), the caller's own otherwise.
    #[oai(
        path = "/tenants",
        method = "get",
        operation_id = "list_tenants",
        tag = "ApiTags::Tenants"
    )]
    async fn list_tenants(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
    ) -> ApiResult<Json<Vec<Tenant>>> {
        if auth.role == Role::SuperAdmin {
            let tx = state
                .store
                .begin_cross_tenant(drover_store::CrossTenantAccess {
                    actor_user_id: auth.user_id,
                    reason: "list tenants".into(),
                    ip_address: auth.ip_string(),
                })
                .await?;
            let all = tenants::Entity::find()
                .filter(tenants::Column::Id.ne(drover_store::SYSTEM_TENANT.0))
                .order_by_asc(tenants::Column::Name)
                .all(tx.conn())
                .await?;
            tx.commit().await?;
            return Ok(Json(all.into_iter().map(Tenant::from).collect()));
        }
        let Some(t) = auth.tenant_id else {
            return Ok(Json(vec![]));
        };
        let tx = state.store.begin(t).await?;
        let own = tenants::Entity::find_by_id(t.0).all(tx.conn()).await?;
        tx.commit().await?;
        Ok(Json(own.into_iter().map(Tenant::from).collect()))
    }

    /// Creates a tenant (super_admin).
    #[oai(
        path = "/tenants",
        method = "post",
        operation_id = "create_tenant",
        tag = "ApiTags::Tenants"
    )]
    async fn create_tenant(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        body: Json<NewTenant>,
    ) -> ApiResult<Json<Tenant>> {
        auth.require_super_admin()?;
        if body.name.trim().is_empty() {
            return Err(ApiError::invalid("name must not be blank"));
        }
        let mut tx = state
            .store
            .begin_cross_tenant(drover_store::CrossTenantAccess {
                actor_user_id: auth.user_id,
                reason: "create tenant".into(),
                ip_address: auth.ip_string(),
            })
            .await?;
        let t = tx.create_tenant(body.name.trim()).await?;
        let mut m = t.into_active_model();
        m.description = Set(body.description.clone());
        m.contact_email = Set(body.contact_email.clone());
        if let Some(i) = body.default_poll_interval_s {
            m.default_poll_interval_s = Set(i);
        }
        let t = m.update(tx.conn()).await?;
        drover_store::queries::audit_cross_tenant(
            &tx,
            Audit::by(&auth, "tenant_create")
                .resource("tenant", t.id.to_string())
                .details(serde_json::json!({"name": t.name}))
                .into_entry(),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(t.into()))
    }

    /// One tenant.
    #[oai(
        path = "/tenants/:tenant_id",
        method = "get",
        operation_id = "get_tenant",
        tag = "ApiTags::Tenants"
    )]
    async fn get_tenant(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Tenant>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        let row = tenants::Entity::find_by_id(t.0).one(tx.conn()).await?;
        tx.commit().await?;
        row.map(|r| Json(r.into()))
            .ok_or_else(|| ApiError::not_found("tenant"))
    }

    /// Updates a tenant (tenant_admin of it; renaming needs super_admin).
    #[oai(
        path = "/tenants/:tenant_id",
        method = "patch",
        operation_id = "update_tenant",
        tag = "ApiTags::Tenants"
    )]
    async fn update_tenant(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<TenantPatch>,
    ) -> ApiResult<Json<Tenant>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        if body.name.is_some() {
            auth.require_super_admin()?;
        }
        let tx = state.store.begin(t).await?;
        let row = tenants::Entity::find_by_id(t.0)
            .one(tx.conn())
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        let mut m = row.into_active_model();
        if let Some(n) = &body.name {
            m.name = Set(n.trim().to_owned());
        }
        if let Some(d) = &body.description {
            m.description = Set(Some(d.clone()));
        }
        if let Some(c) = &body.contact_email {
            m.contact_email = Set(Some(c.clone()));
        }
        if let Some(i) = body.default_poll_interval_s {
            m.default_poll_interval_s = Set(i);
        }
        m.updated_at = Set(chrono::Utc::now());
        let row = m.update(tx.conn()).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "tenant_update").resource("tenant", t.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(row.into()))
    }

    /// Deletes a tenant and everything in it (super_admin). Its audit log is kept.
    #[oai(
        path = "/tenants/:tenant_id",
        method = "delete",
        operation_id = "delete_tenant",
        tag = "ApiTags::Tenants"
    )]
    async fn delete_tenant(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        auth.require_super_admin()?;
        let t = TenantId(tenant_id.0);
        if t == drover_store::SYSTEM_TENANT {
            return Err(ApiError::forbidden("the system tenant cannot be deleted"));
        }
        let tx = state.store.begin(t).await?;
        let res = tenants::Entity::delete_by_id(t.0).exec(tx.conn()).await?;
        if res.rows_affected == 0 {
            return Err(ApiError::not_found("tenant"));
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "tenant_delete").resource("tenant", t.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        audit::record(
            &state,
            drover_store::SYSTEM_TENANT,
            Audit::by(&auth, "tenant_delete").resource("tenant", t.0.to_string()),
        )
        .await;
        Ok(NoContent::Done)
    }

    /// Users of a tenant (tenant_admin).
    #[oai(
        path = "/tenants/:tenant_id/users",
        method = "get",
        operation_id = "list_users",
        tag = "ApiTags::Users"
    )]
    async fn list_users(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<User>>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let rows = users::Entity::find()
            .filter(users::Column::TenantId.eq(t.0))
            .order_by_asc(users::Column::Email)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(rows.into_iter().map(User::from).collect()))
    }

    /// Adds a user with a temporary password; their first login leads to SRP enrolment.
    #[oai(
        path = "/tenants/:tenant_id/users",
        method = "post",
        operation_id = "create_user",
        tag = "ApiTags::Users"
    )]
    async fn create_user(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewUser>,
    ) -> ApiResult<Json<User>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let role = parse_role(&body.role)?;
        check_grant(auth.role, role)?;
        if !valid_email(&body.email) {
            return Err(ApiError::invalid("email is not an e-mail address"));
        }
        let hash = drover_auth::password::hash(&body.password).map_err(ApiError::internal)?;
        let now = chrono::Utc::now();
        let tx = state.store.begin(t).await?;
        let user = users::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(Some(t.0)),
            email: Set(body.email.trim().to_lowercase()),
            name: Set(body.name.clone()),
            role: Set(role.as_str().to_owned()),
            legacy_password_hash: Set(Some(hash)),
            must_upgrade_auth: Set(true),
            is_active: Set(true),
            tokens_valid_after: Set(now),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(tx.conn())
        .await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "user_create")
                .resource("user", user.id.to_string())
                .details(serde_json::json!({"email": user.email, "role": user.role})),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(user.into()))
    }

    /// Changes a user's name, role or active flag. Role changes and deactivation end the
    /// user's sessions at once.
    #[oai(
        path = "/tenants/:tenant_id/users/:user_id",
        method = "patch",
        operation_id = "update_user",
        tag = "ApiTags::Users"
    )]
    async fn update_user(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: Json<UserPatch>,
    ) -> ApiResult<Json<User>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let user = user_to_change(&tx, t, user_id.0, auth.role).await?;
        let current = parse_role(&user.role)?;
        let is_self = user.id == auth.user_id;
        let mut revoke = false;
        let mut m = user.into_active_model();
        if let Some(n) = &body.name {
            m.name = Set(Some(n.clone()));
        }
        if let Some(r) = &body.role {
            let r = parse_role(r)?;
            if is_self {
                return Err(ApiError::forbidden("you cannot change your own role"));
            }
            check_grant(auth.role, r)?;
            if r != current {
                m.role = Set(r.as_str().to_owned());
                revoke = true;
            }
        }
        if let Some(active) = body.is_active {
            if is_self && !active {
                return Err(ApiError::forbidden("you cannot deactivate yourself"));
            }
            m.is_active = Set(active);
            revoke |= !active;
        }
        let now = chrono::Utc::now();
        if revoke {
            m.tokens_valid_after = Set(now);
        }
        m.updated_at = Set(now);
        let user = m.update(tx.conn()).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "user_update")
                .resource("user", user.id.to_string())
                .details(serde_json::json!({"role": user.role, "is_active": user.is_active})),
        )
        .await?;
        tx.commit().await?;
        if revoke {
            state.auth.validity.set_valid_after(user.id, now).await?;
        }
        Ok(Json(user.into()))
    }

    /// Deactivates a user (soft delete: the audit trail keeps their id) and ends their sessions.
    #[oai(
        path = "/tenants/:tenant_id/users/:user_id",
        method = "delete",
        operation_id = "delete_user",
        tag = "ApiTags::Users"
    )]
    async fn delete_user(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        if user_id.0 == auth.user_id {
            return Err(ApiError::forbidden("you cannot deactivate yourself"));
        }
        let tx = state.store.begin(t).await?;
        let user = user_to_change(&tx, t, user_id.0, auth.role).await?;
        let now = chrono::Utc::now();
        let mut m = user.into_active_model();
        m.is_active = Set(false);
        m.tokens_valid_after = Set(now);
        m.updated_at = Set(now);
        let user = m.update(tx.conn()).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "user_deactivate").resource("user", user.id.to_string()),
        )
        .await?;
        tx.commit().await?;
        state.auth.validity.set_valid_after(user.id, now).await?;
        Ok(NoContent::Done)
    }

    /// Sets a temporary password; the user must enrol for SRP again (with a new Secret Key).
    #[oai(
        path = "/tenants/:tenant_id/users/:user_id/reset-password",
        method = "post",
        operation_id = "reset_user_password",
        tag = "ApiTags::Users"
    )]
    async fn reset_password(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: Json<PasswordReset>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let user = user_to_change(&tx, t, user_id.0, auth.role).await?;
        let hash = drover_auth::password::hash(&body.password).map_err(ApiError::internal)?;
        let now = chrono::Utc::now();
        let mut m = user.into_active_model();
        m.legacy_password_hash = Set(Some(hash));
        m.srp_salt = Set(None);
        m.srp_verifier = Set(None);
        m.must_upgrade_auth = Set(true);
        m.tokens_valid_after = Set(now);
        m.updated_at = Set(now);
        let user = m.update(tx.conn()).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "password_reset").resource("user", user.id.to_string()),
        )
        .await?;
        tx.commit().await?;
        state.auth.validity.set_valid_after(user.id, now).await?;
        Ok(NoContent::Done)
    }

    /// API keys of a tenant (tenant_admin). Keys themselves are never shown again.
    #[oai(
        path = "/tenants/:tenant_id/api-keys",
        method = "get",
        operation_id = "list_api_keys",
        tag = "ApiTags::Users"
    )]
    async fn list_api_keys(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<Vec<ApiKey>>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let rows = api_keys::Entity::find()
            .order_by_desc(api_keys::Column::CreatedAt)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(rows.into_iter().map(ApiKey::from).collect()))
    }

    /// Creates an API key bound to this tenant, a role (at most the creator's), optional
    /// scopes and expiry. The key is in this response only.
    #[oai(
        path = "/tenants/:tenant_id/api-keys",
        method = "post",
        operation_id = "create_api_key",
        tag = "ApiTags::Users"
    )]
    async fn create_api_key(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewApiKey>,
    ) -> ApiResult<Json<CreatedApiKey>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let role = parse_role(&body.role)?;
        check_grant(auth.role, role)?;
        for s in &body.scopes {
            if s != "read" && s != "write" {
                return Err(ApiError::invalid("scopes may be \"read\" and \"write\""));
            }
        }
        let now = chrono::Utc::now();
        if body.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::invalid("expires_at must be in the future"));
        }
        let id = Uuid::new_v4();
        // A super_admin creating a key acts for the tenant: the key belongs to a tenant user.
        let owner = if auth.tenant_id == Some(t) {
            auth.user_id
        } else {
            return Err(ApiError::forbidden(
                "API keys are created by the tenant's own admins",
            ));
        };
        let claims = Claims {
            user_id: owner,
            tenant_id: Some(t.0),
            role,
            kind: TokenKind::ApiKey,
            family_id: None,
            token_id: id,
            issued_at: now,
            expires_at: body.expires_at,
            scopes: body.scopes.clone(),
        };
        let minted = state
            .auth
            .keys
            .mint_api_key(&claims)
            .map_err(ApiError::internal)?;
        let key: String = minted.key.to_string();
        debug_assert!(key.starts_with(API_KEY_PREFIX));
        let prefix = minted.prefix.clone();
        let mut stored_scopes: Vec<String> = vec![format!("role:{}", role.as_str())];
        stored_scopes.extend(body.scopes.iter().cloned());
        let tx = state.store.begin(t).await?;
        api_keys::ActiveModel {
            id: Set(id),
            tenant_id: Set(t.0),
            user_id: Set(owner),
            name: Set(body.name.trim().to_owned()),
            key_prefix: Set(prefix.clone()),
            key_hash: Set(minted.hash.clone()),
            scopes: Set(serde_json::json!(stored_scopes)),
            expires_at: Set(body.expires_at),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(tx.conn())
        .await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "api_key_create")
                .resource("api_key", id.to_string())
                .details(serde_json::json!({"name": body.name, "role": role.as_str()})),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(CreatedApiKey { id, key, prefix }))
    }

    /// Revokes an API key at once.
    #[oai(
        path = "/tenants/:tenant_id/api-keys/:key_id",
        method = "delete",
        operation_id = "revoke_api_key",
        tag = "ApiTags::Users"
    )]
    async fn revoke_api_key(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        key_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let key = api_keys::Entity::find_by_id(key_id.0)
            .one(tx.conn())
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        let mut m = key.into_active_model();
        m.revoked_at = Set(Some(chrono::Utc::now()));
        m.update(tx.conn()).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "api_key_revoke").resource("api_key", key_id.0.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }

    /// The tenant's audit log, newest first (tenant_admin).
    #[oai(
        path = "/tenants/:tenant_id/audit",
        method = "get",
        operation_id = "list_audit",
        tag = "ApiTags::Audit"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_audit(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        /// Exact action name, e.g. `device_create`.
        action: Query<Option<String>>,
        actor_id: Query<Option<Uuid>>,
        device_id: Query<Option<Uuid>>,
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Only records older than this id (paging).
        before_id: Query<Option<i64>>,
        /// 1..500, default 100.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<AuditPage>> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let mut q = audit_log::Entity::find().filter(audit_log::Column::TenantId.eq(t.0));
        if let Some(a) = action.0.as_deref().filter(|a| !a.is_empty()) {
            q = q.filter(audit_log::Column::Action.eq(a.chars().take(100).collect::<String>()));
        }
        if let Some(a) = actor_id.0 {
            q = q.filter(audit_log::Column::ActorId.eq(a));
        }
        if let Some(d) = device_id.0 {
            q = q.filter(audit_log::Column::DeviceId.eq(d));
        }
        if let Some(f) = from.0 {
            q = q.filter(audit_log::Column::At.gte(f));
        }
        if let Some(to) = to.0 {
            q = q.filter(audit_log::Column::At.lt(to));
        }
        if let Some(b) = before_id.0 {
            q = q.filter(audit_log::Column::Id.lt(b));
        }
        let tx = state.store.begin(t).await?;
        let rows = q
            .order_by_desc(audit_log::Column::Id)
            .limit(limit.0)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        let next_before_id = (rows.len() as u64 == limit.0)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        Ok(Json(AuditPage {
            items: rows
                .into_iter()
                .map(|r| AuditRecord {
                    id: r.id,
                    at: r.at,
                    actor_kind: r.actor_kind,
                    actor_id: r.actor_id,
                    action: r.action,
                    resource_type: r.resource_type,
                    resource_id: r.resource_id,
                    device_id: r.device_id,
                    ip_address: r.ip_address,
                    details: r.details,
                })
                .collect(),
            next_before_id,
        }))
    }
}

fn default_limit() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_reach_super_admin() {
        assert!(check_grant(Role::TenantAdmin, Role::SuperAdmin).is_err());
        assert!(check_grant(Role::SuperAdmin, Role::SuperAdmin).is_err());
        assert!(check_grant(Role::TenantAdmin, Role::Operator).is_ok());
        assert!(check_grant(Role::Operator, Role::TenantAdmin).is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert!(valid_email("ops@example.com"));
        assert!(!valid_email("ops@example"));
        assert!(!valid_email("ops example@x.com"));
        assert!(!valid_email("@x.com"));
    }

    #[test]
    fn stored_key_scopes_hold_the_role() {
        let (role, scopes) = key_role_and_scopes(&serde_json::json!(["role:operator", "write"]));
        assert_eq!(role, "operator");
        assert_eq!(scopes, vec!["write".to_owned()]);
    }
}
