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
    device_at(r, 0)
}

/// [`device_by_position`] for a row whose [`PAGE_COLUMNS`] start at column `at`.
fn device_at(r: &sea_orm::QueryResult, at: usize) -> std::result::Result<devices::Model, DbErr> {
    Ok(devices::Model {
        id: r.try_get_by_index(at)?,
        tenant_id: r.try_get_by_index(at + 1)?,
        name: r.try_get_by_index(at + 2)?,
        address: r.try_get_by_index(at + 3)?,
        api_port: r.try_get_by_index(at + 4)?,
        tls_mode: r.try_get_by_index(at + 5)?,
        pinned_fingerprint: r.try_get_by_index(at + 6)?,
        poll_interval_s: r.try_get_by_index(at + 7)?,
        site_id: r.try_get_by_index(at + 8)?,
        credential_profile_id: r.try_get_by_index(at + 9)?,
        status: r.try_get_by_index(at + 10)?,
        status_reason: r.try_get_by_index(at + 11)?,
        status_changed_at: r.try_get_by_index(at + 12)?,
        last_seen_at: r.try_get_by_index(at + 13)?,
        last_cpu_percent: r.try_get_by_index(at + 14)?,
        last_memory_percent: r.try_get_by_index(at + 15)?,
        last_disk_percent: r.try_get_by_index(at + 16)?,
        last_temperature_c: r.try_get_by_index(at + 17)?,
        last_wireless_clients: r.try_get_by_index(at + 18)?,
        uptime_s: r.try_get_by_index(at + 19)?,
        routeros_version: r.try_get_by_index(at + 20)?,
        board_name: r.try_get_by_index(at + 21)?,
        serial_number: r.try_get_by_index(at + 22)?,
        notes: r.try_get_by_index(at + 23)?,
        created_at: r.try_get_by_index(at + 24)?,
        updated_at: r.try_get_by_index(at + 25)?,
    })
}

fn sort_column(sort: DeviceSort) -> devices::Column {
    match sort {
        DeviceSort::Name => devices::Column::Name,
        DeviceSort::Address => devices::Column::Address,
        DeviceSort::Status => devices::Column::Status,
        DeviceSort::LastSeen => devices::Column::LastSeenAt,
    }
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
    let col = sort_column(sort);
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

/// Whether two filters are the same (search compared as given).
fn filter_is(a: &DeviceFilter, b: &DeviceFilter) -> bool {
    let search = |f: &DeviceFilter| {
        f.search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    search(a) == search(b)
        && a.status == b.status
        && a.site_id == b.site_id
        && a.group_id == b.group_id
        && a.tag_id == b.tag_id
}

/// Tag and group names of these devices (each list sorted by name), in one query; the fleet
/// list and the API's single-device answers share it.
pub async fn device_labels(tx: &TenantTx, ids: &[Uuid]) -> Result<(Labels, Labels)> {
    let mut tags = Labels::new();
    let mut groups = Labels::new();
    if ids.is_empty() {
        return Ok((tags, groups));
    }
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT a.device_id, t.name, false AS is_group FROM device_tag_assignments a \
               JOIN device_tags t ON t.id = a.tag_id WHERE a.device_id = ANY($1) \
             UNION ALL \
             SELECT m.device_id, g.name, true FROM device_group_memberships m \
               JOIN device_groups g ON g.id = m.group_id WHERE m.device_id = ANY($1) \
             ORDER BY name",
            [ids.to_vec().into()],
        ))
        .await?;
    for r in &rows {
        let id: Uuid = r.try_get_by_index(0)?;
        let name: String = r.try_get_by_index(1)?;
        let is_group: bool = r.try_get_by_index(2)?;
        let into = if is_group { &mut groups } else { &mut tags };
        into.entry(id).or_default().push(name);
    }
    Ok((tags, groups))
}

/// Names by device id.
pub type Labels = std::collections::HashMap<Uuid, Vec<String>>;

/// A device of the fleet list with its tag and group names (each sorted by name).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledDevice {
    pub device: devices::Model,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
}

/// One page of the fleet list with each device's labels (see [`list_devices_labelled`]).
#[derive(Debug, Clone)]
pub struct LabelledDevicePage {
    pub items: Vec<LabelledDevice>,
    /// As [`DevicePage::total`].
    pub total: u64,
    pub total_is_exact: bool,
    pub has_more: bool,
}

/// The fleet list as [`list_devices_counted`] answers it, with every device's tag and group
/// names, in two statements instead of three: the page and its count in one, the labels of
/// the page's devices in the other (skipped for an empty page).
///
/// ```sql
/// WITH page AS MATERIALIZED (SELECT <columns> FROM devices WHERE <filter>
///                            ORDER BY <sort>, id LIMIT <limit + 1> OFFSET <offset>)
/// SELECT CASE WHEN <the page does not prove the total> THEN (<count>) END, p.<columns>
///   FROM (SELECT 1) AS one LEFT JOIN page AS p ON true
///  ORDER BY p.<sort>, p.id
/// ```
///
/// The count is an uncorrelated subquery behind a `CASE`, so PostgreSQL runs it only when the
/// page needs it (has_more, or an empty page past offset 0), as the separate query did; the
/// `LEFT JOIN` gives one row (page columns NULL) when the page is empty, so the count still
/// arrives. Rows are decoded by position. With no filter but the status, the bounded count
/// reads its matches in name order, so PostgreSQL counts them from the `(tenant_id, status,
/// name)` or `(tenant_id, name)` index instead of scanning the table (which evaluates the
/// row-level-security condition on every row). The labels stay a query of their own: joined
/// into the page statement, their row-level-security policies were planned on every request
/// (≈ 0.5 ms of PostgreSQL CPU), while on their own the plan is cached.
/// [`CountMode::Estimate`] above the bound still asks the planner in a further statement.
pub async fn list_devices_labelled(
    tx: &TenantTx,
    filter: &DeviceFilter,
    sort: DeviceSort,
    order: Order,
    offset: u64,
    limit: u64,
    count: CountMode,
) -> Result<LabelledDevicePage> {
    use sea_orm::sea_query::{CommonTableExpression, JoinType, WithClause};

    let limit = limit.clamp(1, MAX_PAGE);
    let cond = filter_condition(filter);
    let col = sort_column(sort);
    let page_select = Query::select()
        .columns(PAGE_COLUMNS)
        .from(devices::Entity)
        .cond_where(cond.clone())
        .order_by(col, order.clone())
        .order_by(devices::Column::Id, order.clone())
        .offset(offset)
        .limit(limit + 1)
        .to_owned();
    let page = Alias::new("page");
    let p = Alias::new("p");
    let cap = match count {
        CountMode::None => None,
        CountMode::Exact => Some(None),
        CountMode::Bounded | CountMode::Estimate => Some(Some(offset + limit + COUNT_BOUND)),
    };
    let counted = match cap {
        None => Expr::cust("NULL::bigint"),
        Some(cap) => {
            let mut inner = matching(cond.clone());
            if let Some(cap) = cap {
                inner.limit(cap);
                // Only the status filter, or none: an index on (tenant_id[, status], name)
                // yields the matches in this order, so the planner counts from it.
                let by_status_only = DeviceFilter {
                    status: filter.status,
                    ..DeviceFilter::default()
                };
                if filter_is(filter, &by_status_only) {
                    inner.order_by(devices::Column::Name, Order::Asc);
                }
            }
            let count_select = Query::select()
                .expr(Func::count(Expr::val(1)))
                .from_subquery(inner, Alias::new("m"))
                .to_owned();
            // `limit` is a clamped integer, not user text.
            let needed = if offset == 0 {
                format!("(SELECT count(*) FROM page) > {limit}")
            } else {
                format!("(SELECT count(*) FROM page) NOT BETWEEN 1 AND {limit}")
            };
            Expr::case(
                Expr::cust(needed),
                Expr::SubQuery(None, Box::new(count_select.into())),
            )
            .into()
        }
    };
    let outer = Query::select()
        .expr(counted)
        .exprs(PAGE_COLUMNS.map(|c| Expr::col((p.clone(), c))))
        .from_subquery(
            Query::select().expr(Expr::cust("1")).to_owned(),
            Alias::new("one"),
        )
        .join_as(
            JoinType::LeftJoin,
            page.clone(),
            p.clone(),
            Expr::cust("true"),
        )
        .order_by((p.clone(), col), order.clone())
        .order_by((p, devices::Column::Id), order)
        .to_owned();
    let cte = CommonTableExpression::new()
        .query(page_select)
        .table_name(page)
        .materialized(true)
        .to_owned();
    let stmt = outer.with(WithClause::new().cte(cte).to_owned());
    let stmt = tx.conn().get_database_backend().build(&stmt);
    let rows = tx.conn().query_all_raw(stmt).await?;

    let mut counted: Option<i64> = None;
    let mut devices = Vec::with_capacity(rows.len());
    for r in &rows {
        counted = r.try_get_by_index(0)?;
        // The one row of an empty page has no device.
        if r.try_get_by_index::<Option<Uuid>>(1)?.is_none() {
            continue;
        }
        devices.push(device_at(r, 1)?);
    }
    drop(rows);
    let has_more = devices.len() as u64 > limit;
    devices.truncate(limit as usize);
    let ids: Vec<Uuid> = devices.iter().map(|d| d.id).collect();
    let (mut tags, mut groups) = device_labels(tx, &ids).await?;
    let items: Vec<LabelledDevice> = devices
        .into_iter()
        .map(|d| LabelledDevice {
            tags: tags.remove(&d.id).unwrap_or_default(),
            groups: groups.remove(&d.id).unwrap_or_default(),
            device: d,
        })
        .collect();
    let seen = offset + items.len() as u64;
    if !has_more && (!items.is_empty() || offset == 0) {
        return Ok(LabelledDevicePage {
            items,
            total: seen,
            total_is_exact: true,
            has_more,
        });
    }
    let n = || -> Result<u64> {
        counted
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| Error::Invalid("the fleet list's count is missing".into()))
    };
    let (total, total_is_exact) = match count {
        CountMode::Exact => (n()?, true),
        CountMode::None => (if has_more { seen + 1 } else { 0 }, false),
        CountMode::Bounded | CountMode::Estimate => {
            let cap = offset + limit + COUNT_BOUND;
            let n = n()?;
            if n < cap {
                (n, true)
            } else if count == CountMode::Estimate {
                (estimate_matches(tx, cond).await?.max(n), false)
            } else {
                (n, false)
            }
        }
    };
    Ok(LabelledDevicePage {
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
