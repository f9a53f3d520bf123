//! Typed queries the API layer calls, all inside a [`TenantTx`]: the fleet list (paging,
//! substring search, filters, sort, and a total that is exact, bounded or estimated — see
//! [`CountMode`]), device creation with validation, and audit records.

use sea_orm::sea_query::extension::postgres::PgExpr;
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

use drover_model::DeviceStatus;

use crate::entities::{audit_log, device_group_memberships, device_tag_assignments, devices};
use crate::{Error, Result, TenantTx};

/// Largest page the fleet list returns.
pub const MAX_PAGE: u64 = 500;

/// Sort key of the fleet list (ties broken by id, so pages are stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSort {
    #[default]
    Name,
    Address,
    Status,
    LastSeen,
}

/// Filters of the fleet list; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Case-insensitive substring of name or address (uses the trigram indexes).
    pub search: Option<String>,
    pub status: Option<DeviceStatus>,
    pub site_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub tag_id: Option<Uuid>,
}

/// How many rows past the end of the page [`CountMode::Bounded`] counts before it stops.
pub const COUNT_BOUND: u64 = 1_000;

/// How the fleet list computes `total`, the number of devices matching the filter.
///
/// Counting every match exactly costs PostgreSQL a scan of all of them (≈ 40 ms for 80,000 of
/// 100,000 devices), on every page; the page itself costs a fraction of a millisecond. So the
/// default counts only up to a bound, and an exact count is asked for explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// Count up to `offset + limit + COUNT_BOUND` matches: exact below that, a lower bound
    /// (`total_is_exact == false`) above it. Costs at most the bound's worth of index entries.
    #[default]
    Bounded,
    /// Count every match (a scan of all of them).
    Exact,
    /// As `Bounded`; above the bound, PostgreSQL's planner estimate of the matches (never less
    /// than the bound found). Planner estimates can be off by a large factor for searches.
    Estimate,
    /// No count query: `total` is what the page itself proves (`offset + items`, one more if
    /// there is a next page), exact only on the last page.
    None,
}

/// One page of the fleet list.
#[derive(Debug, Clone)]
pub struct DevicePage {
    pub items: Vec<devices::Model>,
    /// Devices matching the filter over all pages: exact when `total_is_exact`, otherwise a
    /// lower bound ([`CountMode::Bounded`], [`CountMode::None`]) or an estimate
    /// ([`CountMode::Estimate`]).
    pub total: u64,
    pub total_is_exact: bool,
    /// More matches follow this page (known from the page query itself, whatever the mode).
    pub has_more: bool,
}

fn like_pattern(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The fleet list with an exact `total` (see [`list_devices_counted`] for the cheaper modes).
pub async fn list_devices(
    tx: &TenantTx,
    filter: &DeviceFilter,
    sort: DeviceSort,
    order: Order,
    offset: u64,
    limit: u64,
) -> Result<DevicePage> {
    list_devices_counted(tx, filter, sort, order, offset, limit, CountMode::Exact).await
}

fn filter_condition(filter: &DeviceFilter) -> Condition {
    let mut cond = Condition::all();
    if let Some(s) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p = like_pattern(&s.chars().take(200).collect::<String>());
        cond = cond.add(
            Condition::any()
                .add(Expr::col(devices::Column::Name).ilike(p.clone()))
                .add(Expr::col(devices::Column::Address).ilike(p)),
        );
    }
    if let Some(st) = filter.status {
        cond = cond.add(devices::Column::Status.eq(st.as_str()));
    }
    if let Some(site) = filter.site_id {
        cond = cond.add(devices::Column::SiteId.eq(site));
    }
    if let Some(g) = filter.group_id {
        cond = cond.add(
            devices::Column::Id.in_subquery(
                Query::select()
                    .column(device_group_memberships::Column::DeviceId)
                    .from(device_group_memberships::Entity)
                    .and_where(device_group_memberships::Column::GroupId.eq(g))
                    .to_owned(),
            ),
        );
    }
    if let Some(t) = filter.tag_id {
        cond = cond.add(
            devices::Column::Id.in_subquery(
                Query::select()
                    .column(device_tag_assignments::Column::DeviceId)
                    .from(device_tag_assignments::Entity)
                    .and_where(device_tag_assignments::Column::TagId.eq(t))
                    .to_owned(),
            ),
        );
    }
    cond
}

/// `SELECT 1 FROM devices WHERE cond`: what the count and the estimate measure.
fn matching(cond: Condition) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(devices::Entity)
        .cond_where(cond)
        .to_owned()
}

/// Matches of `cond`, counting at most `cap` (`SELECT count(*) FROM (SELECT 1 … LIMIT cap)`).
async fn count_matches(tx: &TenantTx, cond: Condition, cap: Option<u64>) -> Result<u64> {
    let mut inner = matching(cond);
    if let Some(cap) = cap {
        inner.limit(cap);
    }
    let outer = Query::select()
        .expr(Func::count(Expr::val(1)))
        .from_subquery(inner, Alias::new("m"))
        .to_owned();
    let stmt = tx.conn().get_database_backend().build(&outer);
    let n: i64 = tx
        .conn()
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| Error::Invalid("count returned no row".into()))?
        .try_get_by_index(0)?;
    Ok(n.max(0) as u64)
}

/// PostgreSQL's planner estimate of the matches of `cond` (`EXPLAIN (FORMAT JSON)`, no scan).
async fn estimate_matches(tx: &TenantTx, cond: Condition) -> Result<u64> {
    let stmt = tx.conn().get_database_backend().build(&matching(cond));
    let explain = Statement::from_sql_and_values(
        stmt.db_backend,
        format!("EXPLAIN (FORMAT JSON) {}", stmt.sql),
        stmt.values.map(|v| v.0).unwrap_or_default(),
    );
    let plan: serde_json::Value = tx
        .conn()
        .query_one_raw(explain)
        .await?
        .ok_or_else(|| Error::Invalid("EXPLAIN returned no row".into()))?
        .try_get_by_index(0)?;
    Ok(plan[0]["Plan"]["Plan Rows"]
        .as_f64()
        .map_or(0, |r| r.max(0.0).round() as u64))
}

/// The columns of a fleet-list page, in the order [`device_by_position`] reads them.
const PAGE_COLUMNS: [devices::Column; 26] = {
    use devices::Column as C;
    [
        C::Id,
        C::TenantId,
        C::Name,
        C::Address,
        C::ApiPort,
        C::TlsMode,
        C::PinnedFingerprint,
        C::PollIntervalS,
        C::SiteId,
        C::CredentialProfileId,
        C::Status,
        C::StatusReason,
        C::StatusChangedAt,
        C::LastSeenAt,
        C::LastCpuPercent,
        C::LastMemoryPercent,
        C::LastDiskPercent,
        C::LastTemperatureC,
        C::LastWirelessClients,
        C::UptimeS,
        C::RouterosVersion,
        C::BoardName,
        C::SerialNumber,
        C::Notes,
        C::CreatedAt,
        C::UpdatedAt,
    ]
};

/// A device row selected with [`PAGE_COLUMNS`], decoded by column position. sea-orm's
/// by-name decoding formats each column's name into a new `String` and looks it up, for every
/// field of every row: a fifth of the fleet list's CPU before this.
fn device_by_position(r: &sea_orm::QueryResult) -> std::result::Result<devices::Model, DbErr> {
    Ok(devices::Model {
        id: r.try_get_by_index(0)?,
        tenant_id: r.try_get_by_index(1)?,
        name: r.try_get_by_index(2)?,
        address: r.try_get_by_index(3)?,
        api_port: r.try_get_by_index(4)?,
        tls_mode: r.try_get_by_index(5)?,
        pinned_fingerprint: r.try_get_by_index(6)?,
        poll_interval_s: r.try_get_by_index(7)?,
        site_id: r.try_get_by_index(8)?,
        credential_profile_id: r.try_get_by_index(9)?,
        status: r.try_get_by_index(10)?,
        status_reason: r.try_get_by_index(11)?,
        status_changed_at: r.try_get_by_index(12)?,
        last_seen_at: r.try_get_by_index(13)?,
        last_cpu_percent: r.try_get_by_index(14)?,
        last_memory_percent: r.try_get_by_index(15)?,
        last_disk_percent: r.try_get_by_index(16)?,
        last_temperature_c: r.try_get_by_index(17)?,
        last_wireless_clients: r.try_get_by_index(18)?,
        uptime_s: r.try_get_by_index(19)?,
        routeros_version: r.try_get_by_index(20)?,
        board_name: r.try_get_by_index(21)?,
        serial_number: r.try_get_by_index(22)?,
        notes: r.try_get_by_index(23)?,
        created_at: r.try_get_by_index(24)?,
        updated_at: r.try_get_by_index(25)?,
    })
}

/// The fleet list: devices of the transaction's tenant matching `filter`, sorted, one page,
/// with a `total` computed as `count` says.
///
/// The page query reads one row more than the page, so the last page always knows its exact
/// total without a count query, whatever the mode.
pub async fn list_devices_counted(
    tx: &TenantTx,
    filter: &DeviceFilter,
    sort: DeviceSort,
    order: Order,
    offset: u64,
    limit: u64,
    count: CountMode,
) -> Result<DevicePage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let cond = filter_condition(filter);
    let col = match sort {
        DeviceSort::Name => devices::Column::Name,
        DeviceSort::Address => devices::Column::Address,
        DeviceSort::Status => devices::Column::Status,
        DeviceSort::LastSeen => devices::Column::LastSeenAt,
    };
    let page = devices::Entity::find()
        .select_only()
        .columns(PAGE_COLUMNS)
        .filter(cond.clone())
        .order_by(col, order.clone())
        .order_by(devices::Column::Id, order)
        .offset(offset)
        .limit(limit + 1);
    let stmt = tx.conn().get_database_backend().build(&page.into_query());
    let rows = tx.conn().query_all_raw(stmt).await?;
    let mut items = rows
        .iter()
        .map(device_by_position)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let has_more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    let seen = offset + items.len() as u64;
    // The page reached the end of the list: its total needs no count.
    if !has_more && (!items.is_empty() || offset == 0) {
        return Ok(DevicePage {
            items,
            total: seen,
            total_is_exact: true,
            has_more,
        });
    }
    let (total, total_is_exact) = match count {
        CountMode::Exact => (count_matches(tx, cond, None).await?, true),
        CountMode::None => (if has_more { seen + 1 } else { 0 }, false),
        CountMode::Bounded | CountMode::Estimate => {
            let cap = offset + limit + COUNT_BOUND;
            let n = count_matches(tx, cond.clone(), Some(cap)).await?;
            if n < cap {
                (n, true)
            } else if count == CountMode::Estimate {
                (estimate_matches(tx, cond).await?.max(n), false)
            } else {
                (n, false)
            }
        }
    };
    Ok(DevicePage {
        items,
        total,
        total_is_exact,
        has_more,
    })
}

/// What the API needs to add a device.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub name: String,
    pub address: String,
    pub api_port: u16,
    pub tls_mode: String,
    /// `None`: follow the tenant's default interval.
    pub poll_interval_s: Option<u32>,
    pub site_id: Option<Uuid>,
}

impl NewDevice {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            api_port: 8729,
            tls_mode: "verify".into(),
            poll_interval_s: None,
            site_id: None,
        }
    }
}

/// Adds a device to the transaction's tenant.
pub async fn create_device(tx: &TenantTx, d: &NewDevice) -> Result<devices::Model> {
    if d.name.trim().is_empty() || d.name.len() > 255 {
        return Err(Error::Invalid(
            "device name must be 1..255 characters".into(),
        ));
    }
    if d.address.trim().is_empty() || d.address.len() > 255 {
        return Err(Error::Invalid(
            "device address must be 1..255 characters".into(),
        ));
    }
    if !["verify", "insecure", "plain"].contains(&d.tls_mode.as_str()) {
        return Err(Error::Invalid(
            "tls_mode must be verify, insecure or plain".into(),
        ));
    }
    if d.poll_interval_s
        .is_some_and(|s| !(5..=86_400).contains(&s))
        || d.api_port == 0
    {
        return Err(Error::Invalid(
            "poll interval 5..86400 s, port 1..65535".into(),
        ));
    }
    let now = chrono::Utc::now();
    Ok(devices::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tx.tenant_id().0),
        name: Set(d.name.trim().to_owned()),
        address: Set(d.address.trim().to_owned()),
        api_port: Set(i32::from(d.api_port)),
        tls_mode: Set(d.tls_mode.clone()),
        poll_interval_s: Set(d.poll_interval_s.map(|s| s as i32)),
        site_id: Set(d.site_id),
        status: Set(DeviceStatus::Connecting.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(tx.conn())
    .await?)
}

/// One audit record in the transaction's tenant.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `user`, `api_key`, `system` or `device`.
    pub actor_kind: &'static str,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub device_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub details: serde_json::Value,
}

/// Appends to the tenant's audit log (commits with the transaction).
pub async fn audit(tx: &TenantTx, e: AuditEntry) -> Result<i64> {
    insert_audit(tx.conn(), tx.tenant_id(), e).await
}

/// Appends to the audit log of the tenant a cross-tenant transaction acts as (commits with it).
pub async fn audit_cross_tenant(tx: &crate::CrossTenantTx, e: AuditEntry) -> Result<i64> {
    insert_audit(tx.conn(), tx.acting_as(), e).await
}

async fn insert_audit(
    conn: &sea_orm::DatabaseTransaction,
    tenant: drover_model::TenantId,
    e: AuditEntry,
) -> Result<i64> {
    let m = audit_log::ActiveModel {
        tenant_id: Set(tenant.0),
        actor_kind: Set(e.actor_kind.to_owned()),
        actor_id: Set(e.actor_id),
        action: Set(e.action),
        resource_type: Set(e.resource_type),
        resource_id: Set(e.resource_id),
        device_id: Set(e.device_id),
        ip_address: Set(e.ip_address),
        details: Set(e.details),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(m.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
