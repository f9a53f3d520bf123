//! The fleet list's `total` in each count mode against the real PostgreSQL: exact when asked,
//! exact below the bound and a lower bound above it by default, an estimate that is never
//! below what was counted, no count at all that still knows the last page, and `has_more`.

use anyhow::ensure;
use drover_store::queries::{self, COUNT_BOUND, CountMode, DeviceFilter, DeviceSort};
use drover_store::testing::{self, TestDb};
use drover_store::{Store, StoreConfig, TenantId};
use sea_orm::Order;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

/// A tenant with `n` devices (`router-00001`…), every tenth offline, the rest online; and a
/// second tenant with as many, which no count may include.
async fn fleet(n: u64) -> anyhow::Result<(TestDb, Store, TenantId)> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let a = testing::create_tenant(&store, &format!("a-{}", Uuid::new_v4())).await?;
    let b = testing::create_tenant(&store, &format!("b-{}", Uuid::new_v4())).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    for t in [a, b] {
        su.execute(AssertSqlSafe(format!(
            "INSERT INTO devices (tenant_id, name, address, status)
             SELECT '{t}', 'router-' || lpad(i::text, 5, '0'), '10.1.' || (i / 256) || '.' || (i % 256),
                    CASE WHEN i % 10 = 0 THEN 'offline' ELSE 'online' END
               FROM generate_series(1, {n}) i;
             ANALYZE devices"
        )))
        .await?;
    }
    Ok((db, store, a))
}

async fn page(
    store: &Store,
    t: TenantId,
    filter: &DeviceFilter,
    offset: u64,
    limit: u64,
    count: CountMode,
) -> anyhow::Result<queries::DevicePage> {
    let tx = store.begin(t).await?;
    let p = queries::list_devices_counted(
        &tx,
        filter,
        DeviceSort::Name,
        Order::Asc,
        offset,
        limit,
        count,
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

#[tokio::test]
async fn a_large_fleet_gets_a_cheap_lower_bound_by_default_and_the_exact_count_on_request()
-> anyhow::Result<()> {
    let n = 3 * COUNT_BOUND; // 3,000 devices: 2,700 online, 300 offline
    let (_db, store, a) = fleet(n).await?;
    let all = DeviceFilter::default();
    let online = DeviceFilter {
        status: Some(drover_model::DeviceStatus::Online),
        ..Default::default()
    };

    // Default: counted up to offset + limit + COUNT_BOUND, then "at least".
    let p = page(&store, a, &all, 0, 100, CountMode::Bounded).await?;
    ensure!(p.items.len() == 100 && p.has_more);
    ensure!(
        !p.total_is_exact && p.total == 100 + COUNT_BOUND,
        "{}",
        p.total
    );
    ensure!(p.items[0].name == "router-00001");
    let p = page(&store, a, &online, 500, 100, CountMode::Bounded).await?;
    ensure!(
        !p.total_is_exact && p.total == 600 + COUNT_BOUND,
        "{}",
        p.total
    );
    ensure!(p.items.iter().all(|d| d.status == "online"));

    // Exact on request, whatever the page.
    let p = page(&store, a, &online, 500, 100, CountMode::Exact).await?;
    ensure!(p.total_is_exact && p.total == 2_700, "{}", p.total);
    let p = page(&store, a, &all, 0, 1, CountMode::Exact).await?;
    ensure!(p.total_is_exact && p.total == n && p.items.len() == 1);
    // The old entry point keeps its exact total.
    let tx = store.begin(a).await?;
    let p = queries::list_devices(&tx, &online, DeviceSort::Name, Order::Asc, 0, 10).await?;
    ensure!(p.total == 2_700);
    drop(tx);

    // Estimate: the planner's figure, never below what the bounded count found.
    let p = page(&store, a, &online, 0, 100, CountMode::Estimate).await?;
    ensure!(
        !p.total_is_exact && p.total >= 100 + COUNT_BOUND,
        "{}",
        p.total
    );
    ensure!(
        (1_350..=5_400).contains(&p.total),
        "estimate {} is far from 2,700",
        p.total
    );

    // None: only what the page proves.
    let p = page(&store, a, &all, 200, 100, CountMode::None).await?;
    ensure!(
        !p.total_is_exact && p.total == 301 && p.has_more,
        "{}",
        p.total
    );
    Ok(())
}

#[tokio::test]
async fn small_results_and_last_pages_are_exact_in_every_mode() -> anyhow::Result<()> {
    let (_db, store, a) = fleet(1_500).await?;
    let offline = DeviceFilter {
        status: Some(drover_model::DeviceStatus::Offline),
        ..Default::default()
    };
    let all = DeviceFilter::default();
    let nothing = DeviceFilter {
        search: Some("no-such-router".into()),
        ..Default::default()
    };
    for mode in [
        CountMode::Bounded,
        CountMode::Exact,
        CountMode::Estimate,
        CountMode::None,
    ] {
        // 150 offline devices: within one page of 500.
        let p = page(&store, a, &offline, 0, 500, mode).await?;
        ensure!(
            p.total_is_exact && p.total == 150 && !p.has_more,
            "{mode:?}: {} {}",
            p.total,
            p.total_is_exact
        );
        // The last page of all 1,500 (the other tenant's 1,500 are never counted).
        let p = page(&store, a, &all, 1_400, 100, mode).await?;
        ensure!(p.total_is_exact && p.total == 1_500 && p.items.len() == 100 && !p.has_more);
        ensure!(p.items[99].name == "router-01500");
        // No match at all.
        let p = page(&store, a, &nothing, 0, 100, mode).await?;
        ensure!(p.total_is_exact && p.total == 0 && p.items.is_empty());
    }
    // Bounded stays exact while the matches end within the bound past the page.
    let p = page(&store, a, &all, 100, 500, CountMode::Bounded).await?;
    ensure!(
        p.total_is_exact && p.total == 1_500 && p.has_more,
        "{}",
        p.total
    );
    // A page past the end: the bounded count still gives the exact total; None cannot.
    let p = page(&store, a, &all, 5_000, 100, CountMode::Bounded).await?;
    ensure!(p.items.is_empty() && p.total_is_exact && p.total == 1_500);
    let p = page(&store, a, &all, 5_000, 100, CountMode::None).await?;
    ensure!(p.items.is_empty() && !p.total_is_exact && !p.has_more);
    Ok(())
}

#[tokio::test]
async fn a_listed_device_has_every_field_the_store_holds() -> anyhow::Result<()> {
    use drover_store::entities::devices;
    use sea_orm::EntityTrait;
    let (db, store, a) = fleet(3).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(AssertSqlSafe(format!(
        "UPDATE devices SET pinned_fingerprint = repeat('ab', 32), poll_interval_s = 30,
                status_reason = 'slow', status_changed_at = now() - interval '1 hour',
                last_seen_at = now(), last_cpu_percent = 12.5, last_memory_percent = 40.25,
                last_disk_percent = 3, last_temperature_c = -4.5, last_wireless_clients = 7,
                uptime_s = 86400, routeros_version = '7.16.1 (stable)', board_name = 'RB5009',
                serial_number = 'HE1', notes = 'rack 4'
          WHERE tenant_id = '{a}' AND name = 'router-00002'"
    )))
    .await?;
    let p = page(
        &store,
        a,
        &DeviceFilter::default(),
        0,
        10,
        CountMode::Bounded,
    )
    .await?;
    ensure!(p.items.len() == 3 && p.total_is_exact && p.total == 3);
    let tx = store.begin(a).await?;
    for listed in &p.items {
        let stored = devices::Entity::find_by_id(listed.id)
            .one(tx.conn())
            .await?
            .expect("listed device exists");
        ensure!(*listed == stored, "listed {listed:?}\nstored {stored:?}");
    }
    ensure!(p.items[1].notes.as_deref() == Some("rack 4"));
    ensure!(p.items[1].last_temperature_c == Some(-4.5));
    Ok(())
}
