//! Devices of a tenant: the fleet list (paging, search, filters, sort), one device, add (one
//! or up to 500 at once), change, delete, bulk tag/group/delete, connection tests, commands run
//! through the device's actor (with the blocklist of dangerous paths), metrics in automatic
//! buckets, interfaces, status history, and the fleet summary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_auth::tokens::Role;
use drover_model::{DeviceId, DeviceStatus};
use drover_store::crypto::{self, DeviceCredentials, Secret};
use drover_store::entities::{
    device_group_memberships, device_groups, device_status_history, device_tag_assignments,
    device_tags, devices,
};
use drover_store::queries::{self, CountMode, DeviceFilter, DeviceSort, NewDevice};
use drover_store::{TenantTx, timeseries};
use poem::IntoResponse;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, FromQueryResult, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use crate::audit::{self, Audit};
use crate::caller::Auth;
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiTags, NoContent};
use crate::state::{ApiState, ConnectionTest, DeviceCall, DeviceCallError};

/// Most devices one bulk request may add.
pub const MAX_BULK: usize = 500;

// `Serialize` (used by the fleet list's `FastJson`) writes exactly what poem-openapi's
// `ToJSON` writes: `None` fields left out, times as `DateTime::to_rfc3339`. (A plain comment:
// a doc comment would become the schema's description in the spec.)
#[derive(Debug, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub api_port: i32,
    /// `verify`, `insecure` or `plain`.
    pub tls_mode: String,
    /// `connecting`, `online`, `degraded`, `offline`, `auth_failed` or `quarantined`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::option"
    )]
    pub status_changed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::option"
    )]
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_percent: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireless_clients: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routeros_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<Uuid>,
    /// `null`: the tenant's default interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_interval_s: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    #[serde(serialize_with = "rfc3339::one")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Times as poem-openapi writes them (`to_rfc3339`: `+00:00`, not serde's `Z`).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub(super) fn one<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub(super) fn option<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => one(t, s),
            None => s.serialize_none(),
        }
    }
}

/// A JSON response serialised straight from `T`'s `serde::Serialize`, documented with `T`'s
/// schema. poem-openapi's `Json` first builds a `serde_json::Value` tree (a map per object)
/// and then writes it; for a page of 100 devices that tree was a tenth of the request's CPU.
/// `T`'s `Serialize` must write what its `ToJSON` writes (a test compares them).
#[derive(Debug)]
pub struct FastJson<T>(pub T);

impl<T: Type> Payload for FastJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + serde::Serialize + Send> IntoResponse for FastJson<T> {
    fn into_response(self) -> poem::Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => poem::Response::builder()
                .content_type(<Self as Payload>::CONTENT_TYPE)
                .body(body),
            Err(e) => ApiError::internal(format!("serialising the response: {e}")).into_response(),
        }
    }
}

impl<T: Type + serde::Serialize + Send> ApiResponse for FastJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

fn device_dto(d: devices::Model, tags: Vec<String>, groups: Vec<String>) -> Device {
    Device {
        id: d.id,
        name: d.name,
        address: d.address,
        api_port: d.api_port,
        tls_mode: d.tls_mode,
        status: d.status,
        status_reason: d.status_reason,
        status_changed_at: d.status_changed_at,
        last_seen_at: d.last_seen_at,
        cpu_percent: d.last_cpu_percent,
        memory_percent: d.last_memory_percent,
        disk_percent: d.last_disk_percent,
        temperature_c: d.last_temperature_c,
        wireless_clients: d.last_wireless_clients,
        uptime_s: d.uptime_s,
        routeros_version: d.routeros_version,
        board_name: d.board_name,
        serial_number: d.serial_number,
        site_id: d.site_id,
        poll_interval_s: d.poll_interval_s,
        notes: d.notes,
        tags,
        groups,
        created_at: d.created_at,
    }
}

#[derive(Debug, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct DevicePage {
    pub items: Vec<Device>,
    /// Devices matching the filters over all pages. Exact when `total_is_exact` is true;
    /// otherwise a lower bound (`count=bounded`, the default, and `count=none`) or the
    /// database's estimate (`count=estimate`).
    pub total: u64,
    /// Whether `total` is the exact number of matching devices. Always true with
    /// `count=exact`, on the last page, and when fewer than `offset + limit + 1000` match.
    pub total_is_exact: bool,
    /// More devices follow this page (`offset + limit < total`, known without counting).
    pub has_more: bool,
    pub limit: u64,
    pub offset: u64,
}

/// How the fleet list computes `total`.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename = "CountMode", rename_all = "snake_case")]
pub enum CountParam {
    /// Count matches up to `offset + limit + 1000`: exact below that, a lower bound above it
    /// (`total_is_exact: false`). Cheap at any fleet size; the default.
    Bounded,
    /// Count every match. Costs a scan of all matches (tens of milliseconds for 100,000
    /// devices): ask once per filter, not for every page.
    Exact,
    /// As `bounded`; above the bound, the database's estimate of the matches (never less than
    /// what was counted). Estimates of substring searches can be far off.
    Estimate,
    /// No count: `total` is what the page proves (`offset` + items, plus one if `has_more`);
    /// exact only on the last page.
    None,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum SortKey {
    Name,
    Address,
    Status,
    LastSeen,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum TlsMode {
    /// Verify the device certificate against the configured CA bundle.
    Verify,
    /// Encrypt without verifying (the fingerprint is recorded and can be pinned).
    Insecure,
    /// Plain API on 8728 — only when chosen explicitly.
    Plain,
}

impl TlsMode {
    fn as_str(self) -> &'static str {
        match self {
            TlsMode::Verify => "verify",
            TlsMode::Insecure => "insecure",
            TlsMode::Plain => "plain",
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewDeviceBody {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    /// IP address or host name.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub address: String,
    #[oai(validator(minimum(value = "1"), maximum(value = "65535")))]
    pub api_port: Option<u16>,
    pub tls_mode: Option<TlsMode>,
    #[oai(validator(minimum(value = "5"), maximum(value = "86400")))]
    pub poll_interval_s: Option<u32>,
    pub site_id: Option<Uuid>,
    /// RouterOS user; with `password`. Omit both to use `credential_profile_id`.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub username: Option<String>,
    #[oai(validator(max_length = 200))]
    pub password: Option<String>,
    pub credential_profile_id: Option<Uuid>,
    /// Tag ids to attach.
    #[oai(default)]
    pub tag_ids: Vec<Uuid>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkDevice {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub address: String,
    pub api_port: Option<u16>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkAddBody {
    /// Up to 500 devices.
    #[oai(validator(min_items = 1, max_items = 500))]
    pub devices: Vec<BulkDevice>,
    pub tls_mode: Option<TlsMode>,
    /// Credentials for every device: a profile, or username + password.
    pub credential_profile_id: Option<Uuid>,
    #[oai(validator(min_length = 1, max_length = 100))]
    pub username: Option<String>,
    #[oai(validator(max_length = 200))]
    pub password: Option<String>,
    #[oai(default)]
    pub tag_ids: Vec<Uuid>,
    pub site_id: Option<Uuid>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BulkAddResult {
    pub created: Vec<Uuid>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct DevicePatch {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: Option<String>,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub address: Option<String>,
    pub api_port: Option<u16>,
    pub tls_mode: Option<TlsMode>,
    /// Seconds; 0 returns the device to the tenant's default.
    #[oai(validator(maximum(value = "86400")))]
    pub poll_interval_s: Option<u32>,
    pub site_id: Option<Uuid>,
    #[oai(validator(max_length = 4000))]
    pub notes: Option<String>,
    #[oai(validator(min_length = 1, max_length = 100))]
    pub username: Option<String>,
    #[oai(validator(max_length = 200))]
    pub password: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkUpdateBody {
    #[oai(validator(min_items = 1, max_items = 5000))]
    pub device_ids: Vec<Uuid>,
    #[oai(default)]
    pub add_tag_ids: Vec<Uuid>,
    #[oai(default)]
    pub remove_tag_ids: Vec<Uuid>,
    /// Add the devices to this group.
    pub group_id: Option<Uuid>,
    /// Delete the devices (tenant_admin).
    #[oai(default)]
    pub delete: bool,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BulkUpdateResult {
    /// Devices of the tenant the request named (others are ignored).
    pub matched: u64,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ConnectionTestBody {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub address: String,
    pub api_port: Option<u16>,
    pub tls_mode: Option<TlsMode>,
    #[oai(validator(min_length = 1, max_length = 100))]
    pub username: String,
    #[oai(validator(max_length = 200))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConnectionTestReport {
    pub ok: bool,
    pub latency_ms: u64,
    pub identity: Option<String>,
    pub version: Option<String>,
    pub certificate_fingerprint: Option<String>,
    /// Why it failed (connect, TLS, login, timeout); never contains the password.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CommandAction {
    Print,
    Add,
    Set,
    Remove,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CommandBody {
    /// Menu path, e.g. `/interface` or `/ip/address`.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub path: String,
    pub action: CommandAction,
    /// Attributes (`=name=value`), e.g. `{".id": "*1", "disabled": "yes"}`.
    #[oai(default)]
    pub params: BTreeMap<String, String>,
    /// Print filters (`?name=value`).
    #[oai(default)]
    pub filters: BTreeMap<String, String>,
    /// Seconds, 1..60 (default 15).
    #[oai(validator(minimum(value = "1"), maximum(value = "60")))]
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CommandReply {
    /// One map per `!re` row.
    pub rows: Vec<BTreeMap<String, String>>,
    /// Attributes of `!done` (e.g. `ret`, the new `.id` after `add`).
    pub done: BTreeMap<String, String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MetricsPoint {
    pub at: chrono::DateTime<chrono::Utc>,
    pub samples: i64,
    pub cpu_percent: Option<f64>,
    pub cpu_max: Option<f64>,
    pub memory_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    pub temperature_c: Option<f64>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InterfacePoint {
    pub at: chrono::DateTime<chrono::Utc>,
    pub name: String,
    pub rx_bps: Option<f64>,
    pub tx_bps: Option<f64>,
    pub rx_bps_max: Option<f64>,
    pub tx_bps_max: Option<f64>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MetricsSeries {
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    pub bucket_seconds: i64,
    pub health: Vec<MetricsPoint>,
    pub interfaces: Vec<InterfacePoint>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StatusChange {
    pub at: chrono::DateTime<chrono::Utc>,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FleetSummary {
    pub total: u64,
    /// Device count per status.
    pub by_status: BTreeMap<String, u64>,
    /// Devices offline, degraded, failing login or quarantined (up to 25, oldest first).
    pub attention: Vec<Device>,
    pub cpu_avg: Option<f64>,
    pub memory_avg: Option<f64>,
}

/// Paths a command may never touch, with the actions refused (case-insensitive prefixes).
fn blocked(path: &str, action: CommandAction) -> Option<&'static str> {
    const NEVER: &[&str] = &[
        "/system/reset-configuration",
        "/system/shutdown",
        "/system/reboot",
        "/system/backup",
        "/system/license",
        "/password",
        "/export",
        "/import",
        "/file",
        "/tool/fetch",
        "/system/script",
        "/system/scheduler",
    ];
    const NO_WRITE: &[&str] = &["/user", "/certificate", "/radius", "/system/package"];
    let p = path.to_ascii_lowercase();
    let hit = |prefix: &&str| p == *prefix || p.starts_with(&format!("{prefix}/"));
    if NEVER.iter().any(hit) {
        return Some("this path is blocked for commands from the API");
    }
    if action != CommandAction::Print && NO_WRITE.iter().any(hit) {
        return Some("this path is read-only from the API");
    }
    None
}

fn valid_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.ends_with('/')
        && p.len() <= 200
        && p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn valid_word_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && !s.contains('\0') && !s.contains('\n') && !s.contains('\r')
}

/// The API words of a command (path + action, `=k=v`, `?k=v`).
fn command_words(body: &CommandBody) -> ApiResult<Vec<String>> {
    if !valid_path(&body.path) {
        return Err(ApiError::invalid("path must look like /ip/address"));
    }
    if let Some(why) = blocked(&body.path, body.action) {
        return Err(ApiError::forbidden(why));
    }
    let action = match body.action {
        CommandAction::Print => "print",
        CommandAction::Add => "add",
        CommandAction::Set => "set",
        CommandAction::Remove => "remove",
    };
    let mut words = vec![format!("{}/{action}", body.path)];
    for (k, v) in &body.params {
        if !valid_word_part(k) || k.contains('=') || v.len() > 4096 || v.contains('\0') {
            return Err(ApiError::invalid(format!("parameter {k:?} is not allowed")));
        }
        words.push(format!("={k}={v}"));
    }
    if body.action != CommandAction::Print && !body.filters.is_empty() {
        return Err(ApiError::invalid("filters apply to print only"));
    }
    for (k, v) in &body.filters {
        if !valid_word_part(k) || k.contains('=') || v.contains('\0') {
            return Err(ApiError::invalid(format!("filter {k:?} is not allowed")));
        }
        words.push(format!("?{k}={v}"));
    }
    if words.len() > 101 {
        return Err(ApiError::invalid("at most 100 parameters"));
    }
    Ok(words)
}

async fn find_device(tx: &TenantTx, id: Uuid) -> ApiResult<devices::Model> {
    devices::Entity::find_by_id(id)
        .one(tx.conn())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))
}

/// Tag and group names of a page of devices, in one query.
async fn with_labels(tx: &TenantTx, rows: Vec<devices::Model>) -> ApiResult<Vec<Device>> {
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let (mut tags, mut groups) = queries::device_labels(tx, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|d| {
            let t = tags.remove(&d.id).unwrap_or_default();
            let g = groups.remove(&d.id).unwrap_or_default();
            device_dto(d, t, g)
        })
        .collect())
}

async fn attach_tags(tx: &TenantTx, device: Uuid, tag_ids: &[Uuid]) -> ApiResult<()> {
    for t in tag_ids {
        let exists = device_tags::Entity::find_by_id(*t).one(tx.conn()).await?;
        if exists.is_none() {
            return Err(ApiError::invalid(format!("tag {t} does not exist")));
        }
        device_tag_assignments::Entity::insert(device_tag_assignments::ActiveModel {
            device_id: Set(device),
            tag_id: Set(*t),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                device_tag_assignments::Column::DeviceId,
                device_tag_assignments::Column::TagId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    }
    Ok(())
}

fn credentials_of(
    username: &Option<String>,
    password: &Option<String>,
) -> ApiResult<Option<DeviceCredentials>> {
    match (username, password) {
        (Some(u), Some(p)) => Ok(Some(DeviceCredentials {
            username: u.clone(),
            password: Secret::new(p.as_bytes().to_vec()),
        })),
        (None, None) => Ok(None),
        _ => Err(ApiError::invalid(
            "give both username and password, or neither",
        )),
    }
}

fn device_error(e: DeviceCallError) -> ApiError {
    match e {
        DeviceCallError::NotConnected { status } => ApiError::conflict(
            "device_not_connected",
            format!("the device has no session right now (status {status})"),
        ),
        DeviceCallError::Trap { message } => {
            ApiError::Unprocessable(poem_openapi::payload::Json(crate::error::ErrorBody {
                code: "device_trap".into(),
                message: format!(
                    "the device refused the command: {}",
                    message.chars().take(500).collect::<String>()
                ),
                request_id: crate::request_id::RequestId::current().unwrap_or_default(),
            }))
        }
        DeviceCallError::Timeout => {
            ApiError::unavailable("device_timeout", "the device did not answer in time", 5)
        }
        DeviceCallError::NoOwner { retry_after } => ApiError::unavailable(
            "device_moving",
            "the device is moving between cluster nodes; retry shortly",
            retry_after.as_secs().max(1),
        ),
        DeviceCallError::NotRunning => ApiError::unavailable(
            "device_not_running",
            "no node is supervising this device yet; retry shortly",
            5,
        ),
        DeviceCallError::Failed(m) => ApiError::internal(m),
    }
}

#[derive(Debug)]
pub struct DevicesApi;

#[OpenApi(prefix_path = "/api/tenants", tag = "ApiTags::Devices")]
impl DevicesApi {
    /// The fleet list: one page of devices matching the filters, with the total.
    ///
    /// `total` is exact only when `total_is_exact` is true. By default (`count=bounded`) the
    /// matches are counted up to `offset + limit + 1000`, so small results and the last page
    /// are exact and a large fleet gets a lower bound at little cost; `count=exact` counts
    /// every match (one scan of all of them; ask once per filter, e.g. on the first page),
    /// `count=estimate` gives the database's estimate above the bound, `count=none` skips the
    /// count. `has_more` says whether another page follows, in every mode.
    #[oai(
        path = "/:tenant_id/devices",
        method = "get",
        operation_id = "list_devices"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        /// Case-insensitive substring of name or address.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
        status: Query<Option<String>>,
        /// Tag id.
        tag: Query<Option<Uuid>>,
        /// Group id.
        group: Query<Option<Uuid>>,
        /// Site id.
        site: Query<Option<Uuid>>,
        sort: Query<Option<SortKey>>,
        order: Query<Option<SortOrder>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
        #[oai(default, validator(maximum(value = "10000000")))] offset: Query<u64>,
        /// How `total` is computed: `bounded` (default), `exact`, `estimate` or `none`.
        count: Query<Option<CountParam>>,
    ) -> ApiResult<FastJson<DevicePage>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let status = match status.0.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<DeviceStatus>()
                    .map_err(|_| ApiError::invalid("status must be connecting, online, degraded, offline, auth_failed or quarantined"))?,
            ),
        };
        let filter = DeviceFilter {
            search: q.0,
            status,
            site_id: site.0,
            group_id: group.0,
            tag_id: tag.0,
        };
        let sort = match sort.0.unwrap_or(SortKey::Name) {
            SortKey::Name => DeviceSort::Name,
            SortKey::Address => DeviceSort::Address,
            SortKey::Status => DeviceSort::Status,
            SortKey::LastSeen => DeviceSort::LastSeen,
        };
        let order = match order.0.unwrap_or(SortOrder::Asc) {
            SortOrder::Asc => sea_orm::Order::Asc,
            SortOrder::Desc => sea_orm::Order::Desc,
        };
        let count = match count.0.unwrap_or(CountParam::Bounded) {
            CountParam::Bounded => CountMode::Bounded,
            CountParam::Exact => CountMode::Exact,
            CountParam::Estimate => CountMode::Estimate,
            CountParam::None => CountMode::None,
        };
        let tx = state.store.begin(t).await?;
        // Page, count and labels in one statement.
        let page =
            queries::list_devices_labelled(&tx, &filter, sort, order, offset.0, limit.0, count)
                .await?;
        tx.commit().await?;
        Ok(FastJson(DevicePage {
            items: page
                .items
                .into_iter()
                .map(|l| device_dto(l.device, l.tags, l.groups))
                .collect(),
            total: page.total,
            total_is_exact: page.total_is_exact,
            has_more: page.has_more,
            limit: limit.0,
            offset: offset.0,
        }))
    }

    /// Adds one device (operator).
    #[oai(
        path = "/:tenant_id/devices",
        method = "post",
        operation_id = "create_device"
    )]
    async fn create(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<NewDeviceBody>,
    ) -> ApiResult<Json<Device>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let creds = credentials_of(&body.username, &body.password)?;
        if creds.is_none() && body.credential_profile_id.is_none() {
            return Err(ApiError::invalid(
                "give username and password, or credential_profile_id",
            ));
        }
        let mut nd = NewDevice::new(body.name.clone(), body.address.clone());
        nd.api_port = body.api_port.unwrap_or(8729);
        nd.tls_mode = body.tls_mode.unwrap_or(TlsMode::Verify).as_str().into();
        nd.poll_interval_s = body.poll_interval_s;
        nd.site_id = body.site_id;
        let tx = state.store.begin(t).await?;
        let d = queries::create_device(&tx, &nd).await?;
        if let Some(p) = body.credential_profile_id {
            let mut m = d.clone().into_active_model();
            m.credential_profile_id = Set(Some(p));
            m.update(tx.conn()).await?;
        }
        if let Some(c) = &creds {
            crypto::set_device_credentials(&state.envelope, &tx, d.id, c).await?;
        }
        attach_tags(&tx, d.id, &body.tag_ids).await?;
        audit::in_tx(
            &tx,
            Audit::by(&auth, "device_create")
                .device(d.id)
                .details(serde_json::json!({"name": d.name, "address": d.address})),
        )
        .await?;
        let d = find_device(&tx, d.id).await?;
        let mut out = with_labels(&tx, vec![d]).await?;
        tx.commit().await?;
        out.pop()
            .map(Json)
            .ok_or_else(|| ApiError::internal("created device vanished"))
    }

    /// Adds up to 500 devices with one set of credentials, all or none: every row is
    /// checked first and the first bad one is named.
    #[oai(
        path = "/:tenant_id/devices/bulk",
        method = "post",
        operation_id = "bulk_add_devices"
    )]
    async fn bulk_add(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<BulkAddBody>,
    ) -> ApiResult<Json<BulkAddResult>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        if body.devices.len() > MAX_BULK {
            return Err(ApiError::invalid(format!(
                "at most {MAX_BULK} devices per request"
            )));
        }
        let creds = credentials_of(&body.username, &body.password)?;
        if creds.is_none() && body.credential_profile_id.is_none() {
            return Err(ApiError::invalid(
                "give username and password, or credential_profile_id",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, d) in body.devices.iter().enumerate() {
            if d.name.trim().is_empty() || d.address.trim().is_empty() {
                return Err(ApiError::invalid(format!(
                    "devices[{i}]: name and address must not be blank"
                )));
            }
            if !seen.insert((d.address.trim().to_lowercase(), d.api_port.unwrap_or(8729))) {
                return Err(ApiError::invalid(format!(
                    "devices[{i}]: address {} appears twice",
                    d.address
                )));
            }
            if d.api_port == Some(0) {
                return Err(ApiError::invalid(format!(
                    "devices[{i}]: port must be 1..65535"
                )));
            }
        }
        let tx = state.store.begin(t).await?;
        let mut created = Vec::with_capacity(body.devices.len());
        for (i, d) in body.devices.iter().enumerate() {
            let mut nd = NewDevice::new(d.name.clone(), d.address.clone());
            nd.api_port = d.api_port.unwrap_or(8729);
            nd.tls_mode = body.tls_mode.unwrap_or(TlsMode::Verify).as_str().into();
            nd.site_id = body.site_id;
            let row =
                queries::create_device(&tx, &nd)
                    .await
                    .map_err(|e| match ApiError::from(e) {
                        ApiError::Unprocessable(b) => {
                            ApiError::invalid(format!("devices[{i}]: {}", b.0.message))
                        }
                        other => other,
                    })?;
            if let Some(p) = body.credential_profile_id {
                let mut m = row.clone().into_active_model();
                m.credential_profile_id = Set(Some(p));
                m.update(tx.conn()).await?;
            }
            if let Some(c) = &creds {
                crypto::set_device_credentials(&state.envelope, &tx, row.id, c).await?;
            }
            attach_tags(&tx, row.id, &body.tag_ids).await?;
            created.push(row.id);
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "device_bulk_add")
                .resource("devices", format!("{} devices", created.len()))
                .details(serde_json::json!({"count": created.len()})),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(BulkAddResult { created }))
    }

    /// One device.
    #[oai(
        path = "/:tenant_id/devices/:device_id",
        method = "get",
        operation_id = "get_device"
    )]
    async fn get(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
    ) -> ApiResult<Json<Device>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        let d = find_device(&tx, device_id.0).await?;
        let mut out = with_labels(&tx, vec![d]).await?;
        tx.commit().await?;
        out.pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("device"))
    }

    /// Changes a device (operator). The running actor picks the change up within a second.
    #[oai(
        path = "/:tenant_id/devices/:device_id",
        method = "patch",
        operation_id = "update_device"
    )]
    async fn update(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
        body: Json<DevicePatch>,
    ) -> ApiResult<Json<Device>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let creds = credentials_of(&body.username, &body.password)?;
        let tx = state.store.begin(t).await?;
        let d = find_device(&tx, device_id.0).await?;
        let mut m = d.into_active_model();
        if let Some(n) = &body.name {
            m.name = Set(n.trim().to_owned());
        }
        if let Some(a) = &body.address {
            m.address = Set(a.trim().to_owned());
        }
        if let Some(p) = body.api_port {
            if p == 0 {
                return Err(ApiError::invalid("port must be 1..65535"));
            }
            m.api_port = Set(i32::from(p));
        }
        if let Some(tls) = body.tls_mode {
            m.tls_mode = Set(tls.as_str().into());
        }
        match body.poll_interval_s {
            Some(0) => m.poll_interval_s = Set(None),
            Some(s) if s < 5 => {
                return Err(ApiError::invalid(
                    "poll_interval_s must be 0 (tenant default) or 5..86400",
                ));
            }
            Some(s) => m.poll_interval_s = Set(Some(s as i32)),
            None => {}
        }
        if let Some(s) = body.site_id {
            m.site_id = Set(Some(s));
        }
        if let Some(n) = &body.notes {
            m.notes = Set(Some(n.clone()));
        }
        m.updated_at = Set(chrono::Utc::now());
        let d = m.update(tx.conn()).await?;
        if let Some(c) = &creds {
            crypto::set_device_credentials(&state.envelope, &tx, d.id, c).await?;
        }
        audit::in_tx(
            &tx,
            Audit::by(&auth, "device_update")
                .device(d.id)
                .details(serde_json::json!({"credentials_changed": creds.is_some()})),
        )
        .await?;
        let mut out = with_labels(&tx, vec![d]).await?;
        tx.commit().await?;
        out.pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("device"))
    }

    /// Deletes a device (tenant_admin); its actor stops within a second.
    #[oai(
        path = "/:tenant_id/devices/:device_id",
        method = "delete",
        operation_id = "delete_device"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let t = state.scope(&auth, tenant_id.0, Role::TenantAdmin).await?;
        let tx = state.store.begin(t).await?;
        let res = devices::Entity::delete_by_id(device_id.0)
            .exec(tx.conn())
            .await?;
        if res.rows_affected == 0 {
            return Err(ApiError::not_found("device"));
        }
        audit::in_tx(&tx, Audit::by(&auth, "device_delete").device(device_id.0)).await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }

    /// Tags, groups or deletes many devices at once.
    #[oai(
        path = "/:tenant_id/devices/bulk-update",
        method = "post",
        operation_id = "bulk_update_devices"
    )]
    async fn bulk_update(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<BulkUpdateBody>,
    ) -> ApiResult<Json<BulkUpdateResult>> {
        let min = if body.delete {
            Role::TenantAdmin
        } else {
            Role::Operator
        };
        let t = state.scope(&auth, tenant_id.0, min).await?;
        let tx = state.store.begin(t).await?;
        let ids: Vec<Uuid> = devices::Entity::find()
            .filter(devices::Column::Id.is_in(body.device_ids.clone()))
            .select_only()
            .column(devices::Column::Id)
            .into_tuple()
            .all(tx.conn())
            .await?;
        if body.delete {
            devices::Entity::delete_many()
                .filter(devices::Column::Id.is_in(ids.clone()))
                .exec(tx.conn())
                .await?;
        } else {
            for d in &ids {
                attach_tags(&tx, *d, &body.add_tag_ids).await?;
            }
            if !body.remove_tag_ids.is_empty() {
                device_tag_assignments::Entity::delete_many()
                    .filter(device_tag_assignments::Column::DeviceId.is_in(ids.clone()))
                    .filter(
                        device_tag_assignments::Column::TagId.is_in(body.remove_tag_ids.clone()),
                    )
                    .exec(tx.conn())
                    .await?;
            }
            if let Some(g) = body.group_id {
                if device_groups::Entity::find_by_id(g)
                    .one(tx.conn())
                    .await?
                    .is_none()
                {
                    return Err(ApiError::invalid("group does not exist"));
                }
                for d in &ids {
                    device_group_memberships::Entity::insert(
                        device_group_memberships::ActiveModel {
                            device_id: Set(*d),
                            group_id: Set(g),
                        },
                    )
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::columns([
                            device_group_memberships::Column::DeviceId,
                            device_group_memberships::Column::GroupId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(tx.conn())
                    .await?;
                }
            }
        }
        audit::in_tx(
            &tx,
            Audit::by(
                &auth,
                if body.delete {
                    "device_bulk_delete"
                } else {
                    "device_bulk_update"
                },
            )
            .resource("devices", format!("{} devices", ids.len()))
            .details(serde_json::json!({
                "count": ids.len(),
                "add_tags": body.add_tag_ids,
                "remove_tags": body.remove_tag_ids,
                "group": body.group_id,
            })),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(BulkUpdateResult {
            matched: ids.len() as u64,
        }))
    }

    /// Tests a connection to an address with credentials before adding it (operator).
    #[oai(
        path = "/:tenant_id/devices/test-connection",
        method = "post",
        operation_id = "test_new_connection"
    )]
    async fn test_new(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        body: Json<ConnectionTestBody>,
    ) -> ApiResult<Json<ConnectionTestReport>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let body = body.0;
        let test = ConnectionTest {
            address: body.address,
            port: body.api_port.unwrap_or(8729),
            tls_mode: body.tls_mode.unwrap_or(TlsMode::Verify).as_str().into(),
            username: body.username,
            password: body.password,
            timeout: Duration::from_secs(10),
        };
        let r = state.devices.test_connection(test).await;
        audit::record(
            &state,
            t,
            Audit::by(&auth, "device_test_connection").details(serde_json::json!({"ok": r.ok})),
        )
        .await;
        Ok(Json(report(r)))
    }

    /// Tests the stored address and credentials of a device with a fresh session (operator).
    #[oai(
        path = "/:tenant_id/devices/:device_id/test-connection",
        method = "post",
        operation_id = "test_device_connection"
    )]
    async fn test_existing(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
    ) -> ApiResult<Json<ConnectionTestReport>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let tx = state.store.begin(t).await?;
        let d = find_device(&tx, device_id.0).await?;
        let creds = crypto::device_credentials(&state.envelope, &tx, d.id).await?;
        tx.commit().await?;
        let Some(creds) = creds else {
            return Err(ApiError::conflict(
                "no_credentials",
                "the device has no credentials of its own",
            ));
        };
        let test = ConnectionTest {
            address: d.address.clone(),
            port: u16::try_from(d.api_port).unwrap_or(8729),
            tls_mode: d.tls_mode.clone(),
            username: creds.username.clone(),
            password: String::from_utf8_lossy(creds.password.expose()).into_owned(),
            timeout: Duration::from_secs(10),
        };
        let r = state.devices.test_connection(test).await;
        audit::record(
            &state,
            t,
            Audit::by(&auth, "device_test_connection")
                .device(d.id)
                .details(serde_json::json!({"ok": r.ok})),
        )
        .await;
        Ok(Json(report(r)))
    }

    /// Runs one command on the device through its actor's session (operator). Dangerous
    /// paths are refused. Every command is audited with its outcome.
    #[oai(
        path = "/:tenant_id/devices/:device_id/commands",
        method = "post",
        operation_id = "run_device_command"
    )]
    async fn command(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
        body: Json<CommandBody>,
    ) -> ApiResult<Json<CommandReply>> {
        let t = state.scope(&auth, tenant_id.0, Role::Operator).await?;
        let words = command_words(&body)?;
        let tx = state.store.begin(t).await?;
        find_device(&tx, device_id.0).await?;
        tx.commit().await?;
        let action = match body.action {
            CommandAction::Print => "config_print",
            CommandAction::Add => "config_add",
            CommandAction::Set => "config_set",
            CommandAction::Remove => "config_remove",
        };
        let result = state
            .devices
            .call(DeviceCall {
                tenant: t,
                device: DeviceId(device_id.0),
                words: words.clone(),
                timeout: Duration::from_secs(body.timeout_s.unwrap_or(15)),
            })
            .await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        audit::record(
            &state,
            t,
            Audit::by(&auth, action)
                .device(device_id.0)
                .details(serde_json::json!({"command": words[0], "params": body.params.keys().collect::<Vec<_>>()}))
                .outcome(&outcome),
        )
        .await;
        let reply = result.map_err(device_error)?;
        Ok(Json(CommandReply {
            rows: reply.rows,
            done: reply.done,
        }))
    }

    /// Health and interface traffic over `[from, to)` (default: the last hour) in automatic
    /// buckets (1 min up to an hour … 1 day beyond a month).
    #[oai(
        path = "/:tenant_id/devices/:device_id/metrics",
        method = "get",
        operation_id = "device_metrics"
    )]
    async fn metrics(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
    ) -> ApiResult<Json<MetricsSeries>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let to = to.0.unwrap_or_else(chrono::Utc::now);
        let from = from.0.unwrap_or(to - chrono::Duration::hours(1));
        if from >= to {
            return Err(ApiError::invalid("from must be before to"));
        }
        if to - from > chrono::Duration::days(400) {
            return Err(ApiError::invalid("the range may span at most 400 days"));
        }
        let tx = state.store.begin(t).await?;
        find_device(&tx, device_id.0).await?;
        let health = timeseries::health_series(&tx, device_id.0, from, to).await?;
        let ifaces = timeseries::interface_series(&tx, device_id.0, from, to).await?;
        tx.commit().await?;
        Ok(Json(MetricsSeries {
            from,
            to,
            bucket_seconds: timeseries::bucket_for_range(from, to).num_seconds(),
            health: health
                .into_iter()
                .map(|h| MetricsPoint {
                    at: h.bucket,
                    samples: h.samples,
                    cpu_percent: h.cpu_avg,
                    cpu_max: h.cpu_max,
                    memory_percent: h.memory_avg,
                    disk_percent: h.disk_avg,
                    temperature_c: h.temperature_max,
                })
                .collect(),
            interfaces: ifaces
                .into_iter()
                .map(|i| InterfacePoint {
                    at: i.bucket,
                    name: i.name,
                    rx_bps: i.rx_bps_avg,
                    tx_bps: i.tx_bps_avg,
                    rx_bps_max: i.rx_bps_max,
                    tx_bps_max: i.tx_bps_max,
                })
                .collect(),
        }))
    }

    /// Recent status changes of the device, newest first.
    #[oai(
        path = "/:tenant_id/devices/:device_id/status-history",
        method = "get",
        operation_id = "device_status_history"
    )]
    async fn status_history(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
        device_id: Path<Uuid>,
        #[oai(
            default = "default_history",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
    ) -> ApiResult<Json<Vec<StatusChange>>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        let tx = state.store.begin(t).await?;
        find_device(&tx, device_id.0).await?;
        let rows = device_status_history::Entity::find()
            .filter(device_status_history::Column::DeviceId.eq(device_id.0))
            .order_by_desc(device_status_history::Column::At)
            .limit(limit.0)
            .all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Json(
            rows.into_iter()
                .map(|r| StatusChange {
                    at: r.at,
                    status: r.status,
                    reason: r.reason,
                })
                .collect(),
        ))
    }

    /// Device counts by status, the devices needing attention, fleet CPU and memory averages.
    #[oai(
        path = "/:tenant_id/fleet/summary",
        method = "get",
        operation_id = "fleet_summary"
    )]
    async fn summary(
        &self,
        state: Data<&Arc<ApiState>>,
        auth: Auth,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<FleetSummary>> {
        let t = state.scope(&auth, tenant_id.0, Role::Viewer).await?;
        #[derive(FromQueryResult)]
        struct Count {
            status: String,
            n: i64,
            cpu: Option<f64>,
            mem: Option<f64>,
        }
        let tx = state.store.begin(t).await?;
        let counts = Count::find_by_statement(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT status, count(*) AS n, avg(last_cpu_percent)::float8 AS cpu, \
                    avg(last_memory_percent)::float8 AS mem FROM devices GROUP BY status",
        ))
        .all(tx.conn())
        .await?;
        let attention = devices::Entity::find()
            .filter(devices::Column::Status.is_in([
                "offline",
                "degraded",
                "auth_failed",
                "quarantined",
            ]))
            .order_by_asc(devices::Column::StatusChangedAt)
            .limit(25)
            .all(tx.conn())
            .await?;
        let attention = with_labels(&tx, attention).await?;
        tx.commit().await?;
        let total: i64 = counts.iter().map(|c| c.n).sum();
        let weighted = |f: fn(&Count) -> Option<f64>| {
            let (sum, n) = counts.iter().fold((0.0, 0i64), |(s, n), c| match f(c) {
                Some(v) => (s + v * c.n as f64, n + c.n),
                None => (s, n),
            });
            (n > 0).then(|| sum / n as f64)
        };
        Ok(Json(FleetSummary {
            total: total as u64,
            cpu_avg: weighted(|c| c.cpu),
            memory_avg: weighted(|c| c.mem),
            by_status: counts
                .iter()
                .map(|c| (c.status.clone(), c.n as u64))
                .collect(),
            attention,
        }))
    }
}

fn report(r: crate::state::ConnectionTestResult) -> ConnectionTestReport {
    ConnectionTestReport {
        ok: r.ok,
        latency_ms: r.latency_ms,
        identity: r.identity,
        version: r.version,
        certificate_fingerprint: r.certificate_fingerprint,
        error: r.error,
    }
}

fn default_limit() -> u64 {
    100
}

fn default_history() -> u64 {
    50
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_device(full: bool) -> Device {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-04T11:30:05.123456+00:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        Device {
            id: Uuid::from_u128(7),
            name: "core \"rtr\" é\n1".into(),
            address: "10.0.0.1".into(),
            api_port: 8729,
            tls_mode: "verify".into(),
            status: "online".into(),
            status_reason: full.then(|| "3 polls missed".into()),
            status_changed_at: full.then_some(t),
            last_seen_at: full.then_some(t),
            cpu_percent: full.then_some(12.5),
            memory_percent: full.then_some(40.0),
            disk_percent: full.then_some(0.25),
            temperature_c: full.then_some(-3.5),
            wireless_clients: full.then_some(4),
            uptime_s: full.then_some(86_400),
            routeros_version: full.then(|| "7.16.1 (stable)".into()),
            board_name: full.then(|| "RB5009UG+S+".into()),
            serial_number: full.then(|| "HE0001".into()),
            site_id: full.then(|| Uuid::from_u128(9)),
            poll_interval_s: full.then_some(60),
            notes: full.then(|| "rack 4".into()),
            tags: if full {
                vec!["core".into(), "lab".into()]
            } else {
                vec![]
            },
            groups: vec!["edge".into()],
            created_at: t,
        }
    }

    #[test]
    fn the_fleet_list_json_is_what_poem_openapi_would_write() {
        use poem_openapi::types::ToJSON;
        let page = DevicePage {
            items: vec![sample_device(true), sample_device(false)],
            total: 1_100,
            total_is_exact: false,
            has_more: true,
            limit: 2,
            offset: 0,
        };
        let via_value = page.to_json().unwrap();
        let direct: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&page).unwrap()).unwrap();
        assert_eq!(direct, via_value);
        assert_eq!(
            direct["items"][0]["last_seen_at"],
            "2026-12-04T11:30:05.123456+00:00"
        );
        assert!(direct["items"][1].get("cpu_percent").is_none());
    }

    fn cmd(path: &str, action: CommandAction) -> CommandBody {
        CommandBody {
            path: path.into(),
            action,
            params: BTreeMap::new(),
            filters: BTreeMap::new(),
            timeout_s: None,
        }
    }

    #[test]
    fn dangerous_paths_are_refused() {
        assert!(command_words(&cmd("/system/reboot", CommandAction::Print)).is_err());
        assert!(command_words(&cmd("/SYSTEM/Reset-Configuration", CommandAction::Print)).is_err());
        assert!(command_words(&cmd("/user", CommandAction::Add)).is_err());
        assert!(command_words(&cmd("/user", CommandAction::Print)).is_ok());
        assert!(command_words(&cmd("/interface", CommandAction::Print)).is_ok());
        // A prefix match is on whole segments.
        assert!(command_words(&cmd("/filesystem", CommandAction::Print)).is_ok());
    }

    #[test]
    fn malformed_paths_and_words_are_refused() {
        assert!(command_words(&cmd("interface", CommandAction::Print)).is_err());
        assert!(command_words(&cmd("/interface/", CommandAction::Print)).is_err());
        assert!(command_words(&cmd("/inter face", CommandAction::Print)).is_err());
        let mut c = cmd("/interface", CommandAction::Set);
        c.params.insert("na=me".into(), "x".into());
        assert!(command_words(&c).is_err());
        let mut c = cmd("/interface", CommandAction::Set);
        c.params.insert(".id".into(), "*1".into());
        c.params.insert("disabled".into(), "yes".into());
        assert_eq!(
            command_words(&c).unwrap(),
            vec!["/interface/set", "=.id=*1", "=disabled=yes"]
        );
    }
}
