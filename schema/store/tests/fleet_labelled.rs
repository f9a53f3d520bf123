//! The fleet list in one statement (`queries::list_devices_labelled`) against the real
//! PostgreSQL: the same page, total, `total_is_exact` and `has_more` as the three-query path
//! (`list_devices_counted`) for every filter, sort, order and count mode, labels and counts as
//! computed by hand from how the fleet was built, and never a row or label of another tenant.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use drover_store::queries::{
    self, COUNT_BOUND, CountMode, DeviceFilter, DeviceSort, LabelledDevicePage,
};
use drover_store::testing::{self, TestDb};
use drover_store::{Store, StoreConfig, TenantId};
use sea_orm::Order;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};
use uuid::Uuid;

const N: u64 = 1_500;

/// What the filters of the tests refer to in tenant `a`.
struct Fleet {
    _db: TestDb,
    store: Store,
    a: TenantId,
    b: TenantId,
    tag_even: Uuid,
    group_seven: Uuid,
    site_four: Uuid,
    /// A group of tenant `a` without members, and tenant `b`'s tag (foreign to `a`).
    group_empty: Uuid,
    tag_of_b: Uuid,
}

/// Two tenants with `N` devices each (`router-00001`…). In tenant `a`, device `i` is offline
/// when `i.is_multiple_of(10)`, online otherwise; has tag `even` when `i` is even and `five` when
/// `i.is_multiple_of(5)`; is in group `all` and, when `i.is_multiple_of(7)`, in group `seven`; is at site `four`
/// when `i.is_multiple_of(4)`; was last seen `i` seconds ago unless `i.is_multiple_of(3)` (never). Tenant `b`'s
/// devices carry the same names, tag `b-secret` and group `b-group`.
async fn fleet() -> anyhow::Result<Fleet> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let a = testing::create_tenant(&store, &format!("a-{}", Uuid::new_v4())).await?;
    let b = testing::create_tenant(&store, &format!("b-{}", Uuid::new_v4())).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(AssertSqlSafe(format!(
        "INSERT INTO sites (tenant_id, name) VALUES ('{a}', 'four');
         INSERT INTO devices (tenant_id, name, address, status, last_seen_at, site_id)
         SELECT '{a}', 'router-' || lpad(i::text, 5, '0'), '10.1.' || (i / 256) || '.' || (i % 256),
                CASE WHEN i % 10 = 0 THEN 'offline' ELSE 'online' END,
                CASE WHEN i % 3 = 0 THEN NULL ELSE now() - i * interval '1 second' END,
                CASE WHEN i % 4 = 0 THEN (SELECT id FROM sites WHERE tenant_id = '{a}') END
           FROM generate_series(1, {N}) i;
         INSERT INTO devices (tenant_id, name, address, status)
         SELECT '{b}', 'router-' || lpad(i::text, 5, '0'), '10.2.' || (i / 256) || '.' || (i % 256), 'online'
           FROM generate_series(1, {N}) i;
         INSERT INTO device_tags (tenant_id, name) VALUES ('{a}', 'even'), ('{a}', 'five'), ('{b}', 'b-secret');
         INSERT INTO device_groups (tenant_id, name)
              VALUES ('{a}', 'all'), ('{a}', 'seven'), ('{a}', 'empty'), ('{b}', 'b-group');
         INSERT INTO device_tag_assignments (device_id, tag_id)
         SELECT d.id, t.id FROM devices d JOIN device_tags t ON t.tenant_id = d.tenant_id
          WHERE (t.name = 'even' AND substr(d.name, 8)::int % 2 = 0)
             OR (t.name = 'five' AND substr(d.name, 8)::int % 5 = 0)
             OR t.name = 'b-secret';
         INSERT INTO device_group_memberships (device_id, group_id)
         SELECT d.id, g.id FROM devices d JOIN device_groups g ON g.tenant_id = d.tenant_id
          WHERE g.name IN ('all', 'b-group')
             OR (g.name = 'seven' AND substr(d.name, 8)::int % 7 = 0);
         ANALYZE"
    )))
    .await?;
    let tag_even = id(
        &mut su,
        format!("SELECT id FROM device_tags WHERE tenant_id = '{a}' AND name = 'even'"),
    )
    .await?;
    let tag_of_b = id(
        &mut su,
        format!("SELECT id FROM device_tags WHERE tenant_id = '{b}'"),
    )
    .await?;
    let group_seven = id(
        &mut su,
        format!("SELECT id FROM device_groups WHERE tenant_id = '{a}' AND name = 'seven'"),
    )
    .await?;
    let group_empty = id(
        &mut su,
        format!("SELECT id FROM device_groups WHERE tenant_id = '{a}' AND name = 'empty'"),
    )
    .await?;
    let site_four = id(
        &mut su,
        format!("SELECT id FROM sites WHERE tenant_id = '{a}'"),
    )
    .await?;
    Ok(Fleet {
        _db: db,
        store,
        a,
        b,
        tag_even,
        group_seven,
        site_four,
        group_empty,
        tag_of_b,
    })
}

async fn id(su: &mut PgConnection, sql: String) -> anyhow::Result<Uuid> {
    Ok(sqlx::query(AssertSqlSafe(sql))
        .fetch_one(su)
        .await?
        .try_get::<Uuid, _>(0)?)
}

fn number(name: &str) -> anyhow::Result<u64> {
    name.strip_prefix("router-")
        .context("device name")?
        .parse()
        .context("device number")
}

/// Tags and groups of tenant `a`'s device `i`, as [`fleet`] assigned them (sorted by name).
fn labels_of(i: u64) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    if i.is_multiple_of(2) {
        tags.push("even".to_owned());
    }
    if i.is_multiple_of(5) {
        tags.push("five".to_owned());
    }
    let mut groups = vec!["all".to_owned()];
    if i.is_multiple_of(7) {
        groups.push("seven".to_owned());
    }
    (tags, groups)
}

#[allow(clippy::too_many_arguments)]
async fn both(
    store: &Store,
    t: TenantId,
    filter: &DeviceFilter,
    sort: DeviceSort,
    order: Order,
    offset: u64,
    limit: u64,
    count: CountMode,
) -> anyhow::Result<(queries::DevicePage, LabelledDevicePage)> {
    let tx = store.begin(t).await?;
    let old = queries::list_devices_counted(&tx, filter, sort, order.clone(), offset, limit, count)
        .await?;
    let new =
        queries::list_devices_labelled(&tx, filter, sort, order, offset, limit, count).await?;
    tx.commit().await?;
    Ok((old, new))
}

#[tokio::test]
async fn one_statement_answers_as_the_three_queries_did_for_every_filter_sort_and_mode()
-> anyhow::Result<()> {
    let f = fleet().await?;
    let online = drover_model::DeviceStatus::Online;
    let offline = drover_model::DeviceStatus::Offline;
    // (filter, its matches in tenant a, counted by hand from how the fleet was built)
    let filters: Vec<(DeviceFilter, u64)> = vec![
        (DeviceFilter::default(), N),
        (
            DeviceFilter {
                status: Some(online),
                ..Default::default()
            },
            N - N / 10,
        ),
        (
            DeviceFilter {
                status: Some(offline),
                ..Default::default()
            },
            N / 10,
        ),
        // router-00010 … router-00019
        (
            DeviceFilter {
                search: Some("ROUTER-0001".into()),
                ..Default::default()
            },
            10,
        ),
        (
            DeviceFilter {
                search: Some("no-such-router".into()),
                ..Default::default()
            },
            0,
        ),
        (
            DeviceFilter {
                tag_id: Some(f.tag_even),
                ..Default::default()
            },
            N / 2,
        ),
        (
            DeviceFilter {
                group_id: Some(f.group_seven),
                ..Default::default()
            },
            N / 7,
        ),
        (
            DeviceFilter {
                site_id: Some(f.site_four),
                ..Default::default()
            },
            N / 4,
        ),
        (
            DeviceFilter {
                group_id: Some(f.group_empty),
                ..Default::default()
            },
            0,
        ),
        // Another tenant's tag matches nothing here.
        (
            DeviceFilter {
                tag_id: Some(f.tag_of_b),
                ..Default::default()
            },
            0,
        ),
        (
            DeviceFilter {
                status: Some(offline),
                tag_id: Some(f.tag_even),
                group_id: Some(f.group_seven),
                ..Default::default()
            },
            // i.is_multiple_of(10) and i.is_multiple_of(7): multiples of 70
            N / 70,
        ),
    ];
    let mut compared = 0;
    for (filter, matches) in &filters {
        for sort in [
            DeviceSort::Name,
            DeviceSort::Address,
            DeviceSort::Status,
            DeviceSort::LastSeen,
        ] {
            for order in [Order::Asc, Order::Desc] {
                for (offset, limit) in [(0, 100), (0, 500), (100, 1), (1_400, 100), (5_000, 100)] {
                    for count in [
                        CountMode::Bounded,
                        CountMode::Exact,
                        CountMode::Estimate,
                        CountMode::None,
                    ] {
                        let at =
                            format!("{filter:?} {sort:?} {order:?} {offset}+{limit} {count:?}");
                        let (old, new) = both(
                            &f.store,
                            f.a,
                            filter,
                            sort,
                            order.clone(),
                            offset,
                            limit,
                            count,
                        )
                        .await?;
                        let devices: Vec<_> = new.items.iter().map(|l| &l.device).collect();
                        ensure!(
                            devices == old.items.iter().collect::<Vec<_>>(),
                            "{at}: pages differ"
                        );
                        ensure!(
                            (new.total, new.total_is_exact, new.has_more)
                                == (old.total, old.total_is_exact, old.has_more),
                            "{at}: new {} {} {}, old {} {} {}",
                            new.total,
                            new.total_is_exact,
                            new.has_more,
                            old.total,
                            old.total_is_exact,
                            old.has_more
                        );
                        // And by hand.
                        let expect_len = matches.saturating_sub(offset).min(limit);
                        ensure!(
                            new.items.len() as u64 == expect_len,
                            "{at}: {} items",
                            new.items.len()
                        );
                        ensure!(
                            new.has_more == (offset + limit < *matches),
                            "{at}: has_more"
                        );
                        let cap = offset + limit + COUNT_BOUND;
                        let (total, exact) =
                            if offset + limit >= *matches && (expect_len > 0 || offset == 0) {
                                (*matches, true)
                            } else {
                                match count {
                                    CountMode::Exact => (*matches, true),
                                    CountMode::Bounded if *matches < cap => (*matches, true),
                                    CountMode::Bounded => (cap, false),
                                    CountMode::Estimate if *matches < cap => (*matches, true),
                                    CountMode::Estimate => (new.total.max(cap), false),
                                    CountMode::None if new.has_more => (offset + limit + 1, false),
                                    CountMode::None => (0, false),
                                }
                            };
                        ensure!(
                            (new.total, new.total_is_exact) == (total, exact),
                            "{at}: total {} {}, by hand {total} {exact}",
                            new.total,
                            new.total_is_exact
                        );
                        for l in &new.items {
                            ensure!(l.device.tenant_id == f.a.0, "{at}: another tenant's device");
                            let (tags, groups) = labels_of(number(&l.device.name)?);
                            ensure!(
                                l.tags == tags && l.groups == groups,
                                "{at}: {} has {:?} {:?}",
                                l.device.name,
                                l.tags,
                                l.groups
                            );
                        }
                        compared += 1;
                    }
                }
            }
        }
    }
    ensure!(compared == filters.len() * 4 * 2 * 5 * 4);
    Ok(())
}

#[tokio::test]
async fn one_statement_orders_nulls_and_ties_as_the_page_query() -> anyhow::Result<()> {
    let f = fleet().await?;
    // Last seen ascending: the most recent (smallest i) last, never-seen devices (i.is_multiple_of(3))
    // after every seen one, ties among them by id.
    let tx = f.store.begin(f.a).await?;
    let all = queries::list_devices_labelled(
        &tx,
        &DeviceFilter::default(),
        DeviceSort::LastSeen,
        Order::Asc,
        0,
        500,
        CountMode::Bounded,
    )
    .await?;
    let more = queries::list_devices_labelled(
        &tx,
        &DeviceFilter::default(),
        DeviceSort::LastSeen,
        Order::Asc,
        1_000,
        500,
        CountMode::Bounded,
    )
    .await?;
    tx.commit().await?;
    let first: Vec<u64> = all
        .items
        .iter()
        .map(|l| number(&l.device.name))
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        first[0] == 1_499 && first[1] == 1_498 && first[2] == 1_496,
        "{:?}",
        &first[..3]
    );
    ensure!(all.items.iter().all(|l| l.device.last_seen_at.is_some()));
    let last = more.items.last().context("a last page")?;
    ensure!(last.device.last_seen_at.is_none() && !more.has_more && more.total == N);
    let ids: Vec<Uuid> = more
        .items
        .iter()
        .filter(|l| l.device.last_seen_at.is_none())
        .map(|l| l.device.id)
        .collect();
    ensure!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "never-seen devices not ordered by id"
    );
    Ok(())
}

#[tokio::test]
async fn one_statement_shows_each_tenant_its_own_rows_and_labels_only() -> anyhow::Result<()> {
    let f = fleet().await?;
    let c = testing::create_tenant(&f.store, &format!("c-{}", Uuid::new_v4())).await?;
    for (t, expect) in [(f.a, N), (f.b, N), (c, 0)] {
        for count in [CountMode::Exact, CountMode::Bounded] {
            let tx = f.store.begin(t).await?;
            let p = queries::list_devices_labelled(
                &tx,
                &DeviceFilter::default(),
                DeviceSort::Name,
                Order::Asc,
                0,
                500,
                count,
            )
            .await?;
            let past = queries::list_devices_labelled(
                &tx,
                &DeviceFilter::default(),
                DeviceSort::Name,
                Order::Asc,
                10_000,
                100,
                count,
            )
            .await?;
            tx.commit().await?;
            ensure!(p.items.iter().all(|l| l.device.tenant_id == t.0));
            ensure!(p.items.len() as u64 == expect.min(500));
            // Past the end, only the count speaks, and it counts this tenant's rows only.
            ensure!(
                past.items.is_empty() && past.total_is_exact && past.total == expect,
                "{}",
                past.total
            );
            if count == CountMode::Exact && t != c {
                ensure!(p.total == N && p.total_is_exact);
            }
            let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
            for l in &p.items {
                for name in l.tags.iter().chain(&l.groups) {
                    *labels.entry(name.as_str()).or_default() += 1;
                }
            }
            if t == f.b {
                ensure!(
                    labels.keys().copied().collect::<Vec<_>>() == ["b-group", "b-secret"],
                    "{labels:?}"
                );
                ensure!(labels.values().all(|n| *n == 500));
            } else {
                ensure!(
                    !labels.contains_key("b-secret") && !labels.contains_key("b-group"),
                    "{labels:?}"
                );
            }
        }
    }
    Ok(())
}
