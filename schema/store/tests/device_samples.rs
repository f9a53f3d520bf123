//! `device_samples` (migration 5: one row per poll, interfaces as parallel arrays) against the
//! real PostgreSQL: awkward interface names survive the array literals, bad and huge interface
//! lists are bounded without losing the sample or the batch, a resent batch adds nothing, the
//! range queries and the compatibility views read the arrays back per interface, and a
//! database upgraded from migration 4 keeps its old rows readable (and drops them with
//! retention) without copying them.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use chrono::{DateTime, Duration, Utc};
use drover_migration::{MigrateOptions, Migrator, MigratorTrait};
use drover_model::events::{EVENT_VERSION, InterfaceSample, MetricsSample, WirelessSummary};
use drover_model::{DeviceId, TenantId};
use drover_store::recorder::{MAX_INTERFACES, Recorder, RecorderConfig, RecorderHandle};
use drover_store::testing::{self, TestDb};
use drover_store::timeseries::{self, Maintenance, Retention, partition_name};
use drover_store::{Store, StoreConfig};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

fn iface(name: &str, rx_bps: Option<f64>) -> InterfaceSample {
    InterfaceSample {
        name: name.into(),
        running: true,
        rx_bytes: 1000,
        tx_bytes: 2000,
        rx_bps,
        tx_bps: Some(1.5),
    }
}

fn sample(
    tenant: TenantId,
    device: Uuid,
    at: DateTime<Utc>,
    interfaces: Vec<InterfaceSample>,
    wireless: bool,
) -> MetricsSample {
    MetricsSample {
        version: EVENT_VERSION,
        device_id: DeviceId(device),
        tenant_id: tenant,
        timestamp: at,
        cpu_percent: Some(10.0),
        memory_percent: Some(40.0),
        disk_percent: Some(10.0),
        uptime: Some(3600),
        temperature_c: Some(45.0),
        interfaces,
        wireless: wireless.then_some(WirelessSummary {
            clients: 7,
            mean_signal_dbm: Some(-61.5),
            min_signal_dbm: Some(-80),
        }),
        epoch: 0,
    }
}

async fn tenant_with_device(
    store: &Store,
    su: &mut PgConnection,
) -> anyhow::Result<(TenantId, Uuid)> {
    let tenant = testing::create_tenant(store, &format!("t{}", Uuid::new_v4())).await?;
    let device: Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
        "INSERT INTO devices (tenant_id, name, address) VALUES ('{tenant}', 'r1', '10.0.0.1') RETURNING id"
    )))
    .fetch_one(&mut *su)
    .await?;
    Ok((tenant, device))
}

async fn flush(h: &RecorderHandle) -> anyhow::Result<()> {
    tokio::time::timeout(std::time::Duration::from_secs(60), h.flush()).await?;
    Ok(())
}

#[tokio::test]
async fn interface_arrays_round_trip_and_bad_lists_are_bounded() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let m = Maintenance::connect(&db.owner_url(), Retention::default()).await?;
    m.run(Utc::now()).await?;
    m.close().await;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    let (tenant, device) = tenant_with_device(&store, &mut su).await?;
    let (h, task) = Recorder::spawn(&store, RecorderConfig::default());

    let t0 = Utc::now() - Duration::minutes(30);
    let awkward = ["a\"b", "c\\d", "{e,f}", "NULL", "", "ü ñ 🚀", "x y", "'q'"];
    let mut first: Vec<InterfaceSample> = awkward.iter().map(|n| iface(n, Some(100.0))).collect();
    first[1].rx_bps = Some(f64::NAN); // → NULL
    first[2].rx_bytes = u64::MAX; // → clamped to bigint
    first.push(iface("a\"b", Some(5.0))); // listed twice: the first is kept
    let huge: Vec<InterfaceSample> = (0..MAX_INTERFACES + 500)
        .map(|i| iface(&format!("vlan{i}"), Some(1.0)))
        .collect();
    let batch = vec![
        sample(tenant, device, t0, first, true),
        sample(tenant, device, t0 + Duration::minutes(1), huge, true),
        sample(tenant, device, t0 + Duration::minutes(2), Vec::new(), false),
    ];
    for s in &batch {
        h.record_metrics(s.clone());
    }
    flush(&h).await?;
    let s = h.stats();
    ensure!(s.written_metrics == 3 && s.rejected == 0, "{s:?}");
    ensure!(s.clamped >= 4, "NaN, bigint, duplicate, too many: {s:?}");

    let rows: Vec<(i32, Option<i32>)> = sqlx::query_as(
        "SELECT cardinality(if_name), wireless_clients FROM device_samples ORDER BY time",
    )
    .fetch_all(&mut su)
    .await?;
    ensure!(
        rows == vec![
            (awkward.len() as i32, Some(7)),
            (MAX_INTERFACES as i32, Some(7)),
            (0, None)
        ],
        "{rows:?}"
    );
    // the names come back exactly, through the compatibility view too
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM interface_samples
          WHERE time = (SELECT min(time) FROM device_samples) ORDER BY name",
    )
    .fetch_all(&mut su)
    .await?;
    let want: BTreeSet<String> = awkward.iter().map(|s| s.to_string()).collect();
    ensure!(
        names.iter().cloned().collect::<BTreeSet<_>>() == want && names.len() == want.len(),
        "{names:?}"
    );
    let (rx_bps, rx_bytes): (Option<f64>, i64) = sqlx::query_as(
        "SELECT if_rx_bps[2], if_rx_bytes[3] FROM device_samples ORDER BY time LIMIT 1",
    )
    .fetch_one(&mut su)
    .await?;
    ensure!(rx_bps.is_none() && rx_bytes == i64::MAX);

    // a resent batch (a retry after a lost commit) adds nothing
    for s in &batch {
        h.record_metrics(s.clone());
    }
    flush(&h).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM device_samples")
        .fetch_one(&mut su)
        .await?;
    ensure!(n == 3, "{n} rows after a resend");

    // range queries, as the API calls them
    let (from, to) = (t0 - Duration::minutes(5), Utc::now());
    let tx = store.begin(tenant).await?;
    let health = timeseries::health_series(&tx, device, from, to).await?;
    ensure!(health.iter().map(|b| b.samples).sum::<i64>() == 3);
    let wireless = timeseries::wireless_series(&tx, device, from, to).await?;
    ensure!(wireless.iter().map(|b| b.samples).sum::<i64>() == 2);
    ensure!(wireless.iter().all(|b| b.clients_max == Some(7)));
    let ifs = timeseries::interface_series(&tx, device, from, to).await?;
    let distinct: BTreeSet<&str> = ifs.iter().map(|b| b.name.as_str()).collect();
    ensure!(
        distinct.len() == awkward.len() + MAX_INTERFACES,
        "{}",
        distinct.len()
    );
    let ab: Vec<_> = ifs.iter().filter(|b| b.name == "a\"b").collect();
    ensure!(
        ab.len() == 1 && ab[0].samples == 1 && ab[0].rx_bps_avg == Some(100.0),
        "{ab:?}"
    );
    let cd: Vec<_> = ifs.iter().filter(|b| b.name == "c\\d").collect();
    ensure!(cd.len() == 1 && cd[0].rx_bps_avg.is_none() && cd[0].tx_bps_max == Some(1.5));
    tx.commit().await?;
    // another tenant sees none of it
    let other = store.begin(TenantId::new_random()).await?;
    ensure!(
        timeseries::interface_series(&other, device, from, to)
            .await?
            .is_empty()
    );
    drop(other);
    h.close();
    task.await?;
    Ok(())
}

/// A database created with migration 4 (no `device_samples`), holding rows in the old tables,
/// then migrated: nothing is copied, the old rows are read together with new ones, the app
/// role can no longer write the old tables, and retention drops their partitions.
#[tokio::test]
async fn upgrade_from_migration_4_keeps_old_rows_readable_until_retention() -> anyhow::Result<()> {
    // A fully migrated database supplies the roles and URLs; the test's own database next to
    // it starts at migration 4.
    let base = TestDb::create().await?;
    let name = format!("drover_test_up_{}", Uuid::new_v4().simple());
    let swap = |url: String| format!("{}/{name}", url.rsplit_once('/').map(|x| x.0).unwrap_or(""));
    let mut admin = PgConnection::connect(&base.superuser_url()).await?;
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" OWNER \"{}\"",
            base.roles.owner.name
        )))
        .await?;
    let result = upgrade(
        &swap(base.owner_url()),
        &swap(base.superuser_url()),
        &swap(base.app_url()),
    )
    .await;
    let _ = admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .await;
    result
}

async fn upgrade(owner_url: &str, su_url: &str, app_url: &str) -> anyhow::Result<()> {
    let owner = sea_orm::Database::connect(owner_url).await?;
    Migrator::up(&owner, Some(4))
        .await
        .context("migrations 1-4")?;
    owner.close().await?;

    // what the old partition maintenance left: daily partitions of the three old tables
    let now = Utc::now();
    let today = now.date_naive();
    let mut own = PgConnection::connect(owner_url).await?;
    for t in ["health_samples", "interface_samples", "wireless_samples"] {
        for k in -2..=1 {
            let day = today + Duration::days(k);
            let p = partition_name(t, day);
            own.execute(AssertSqlSafe(format!(
                "CREATE TABLE \"{p}\" PARTITION OF {t}
                   FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00');
                 ALTER TABLE \"{p}\" ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE \"{p}\" FORCE ROW LEVEL SECURITY;",
                next = day + Duration::days(1)
            )))
            .await?;
        }
    }
    own.close().await?;
    let mut su = PgConnection::connect(su_url).await?;
    let tenant = Uuid::new_v4();
    let device = Uuid::new_v4();
    let old = now - Duration::days(1);
    su.execute(AssertSqlSafe(format!(
        "INSERT INTO tenants (id, name) VALUES ('{tenant}', 'old');
         INSERT INTO devices (id, tenant_id, name, address) VALUES ('{device}', '{tenant}', 'r', '10.0.0.1');
         INSERT INTO health_samples (tenant_id, device_id, time, cpu_percent) VALUES ('{tenant}', '{device}', '{o}', 20);
         INSERT INTO interface_samples (tenant_id, device_id, time, name, running, rx_bytes, tx_bytes, rx_bps)
              VALUES ('{tenant}', '{device}', '{o}', 'ether1', true, 1, 1, 300);
         INSERT INTO wireless_samples (tenant_id, device_id, time, clients) VALUES ('{tenant}', '{device}', '{o}', 3);",
        o = old.to_rfc3339()
    )))
    .await?;

    drover_migration::migrate(
        owner_url,
        &MigrateOptions {
            ensure_roles: false,
            ..Default::default()
        },
    )
    .await
    .context("migration 5 on a database with data")?;

    // old tables and their partitions moved aside, old names are views
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT relname::text, relkind::text FROM pg_class
          WHERE relname IN ('health_samples', 'interface_samples', 'wireless_samples',
                            'health_samples_v1', 'device_samples') ORDER BY 1",
    )
    .fetch_all(&mut su)
    .await?;
    ensure!(
        kinds
            == [
                ("device_samples", "p"),
                ("health_samples", "v"),
                ("health_samples_v1", "p"),
                ("interface_samples", "v"),
                ("wireless_samples", "v")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{kinds:?}"
    );
    let m = Maintenance::connect(owner_url, Retention::default()).await?;
    let legacy = m.partitions_of("interface_samples_v1").await?;
    ensure!(
        legacy.len() == 4 && legacy.contains(&partition_name("interface_samples_v1", today)),
        "{legacy:?}"
    );
    let r = m.run(now).await?;
    ensure!(r.dropped.is_empty(), "{r:?}");
    ensure!(
        r.created.iter().all(|p| p.starts_with("device_samples_p")),
        "{r:?}"
    );

    // a new sample through the recorder, then both old and new read back
    let store = Store::connect(&StoreConfig::new(app_url.to_owned())).await?;
    let (h, task) = Recorder::spawn(&store, RecorderConfig::default());
    h.record_metrics(sample(
        TenantId(tenant),
        device,
        now - Duration::minutes(5),
        vec![iface("ether1", Some(100.0))],
        true,
    ));
    flush(&h).await?;
    ensure!(h.stats().written_metrics == 1, "{:?}", h.stats());
    h.close();
    task.await?;
    let (from, to) = (now - Duration::days(2), now);
    let tx = store.begin(TenantId(tenant)).await?;
    let health = timeseries::health_series(&tx, device, from, to).await?;
    ensure!(
        health.iter().map(|b| b.samples).sum::<i64>() == 2,
        "{health:?}"
    );
    let ifs = timeseries::interface_series(&tx, device, from, to).await?;
    ensure!(
        ifs.iter().map(|b| b.samples).sum::<i64>() == 2
            && ifs.iter().any(|b| b.rx_bps_max == Some(300.0))
            && ifs.iter().any(|b| b.rx_bps_max == Some(100.0)),
        "{ifs:?}"
    );
    let wl = timeseries::wireless_series(&tx, device, from, to).await?;
    ensure!(wl.iter().map(|b| b.samples).sum::<i64>() == 2, "{wl:?}");
    // the views show old and new rows too, under the caller's row-level security
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM interface_samples")
        .fetch_one(&mut su)
        .await?;
    ensure!(n == 2);
    tx.rollback().await?;
    let mut app = PgConnection::connect(app_url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM health_samples")
        .fetch_one(&mut app)
        .await?;
    ensure!(n == 0, "no tenant set: the view shows nothing, {n}");
    // the old tables are read-only for the app role
    let err = app
        .execute(AssertSqlSafe(format!(
            "INSERT INTO health_samples_v1 (tenant_id, device_id, time) VALUES ('{tenant}', '{device}', now())"
        )))
        .await
        .err()
        .and_then(|e| e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned())));
    ensure!(err.as_deref() == Some("42501"), "{err:?}");

    // retention empties the old tables: their partitions are dropped like the new ones
    let short = Maintenance::connect(
        owner_url,
        Retention {
            days: 1,
            ahead_days: 3,
        },
    )
    .await?;
    let r = short.run(now + Duration::days(3)).await?;
    ensure!(
        r.dropped
            .contains(&partition_name("health_samples_v1", today))
            && r.dropped.contains(&partition_name(
                "wireless_samples_v1",
                today + Duration::days(1)
            )),
        "{r:?}"
    );
    ensure!(
        short
            .partitions_of("interface_samples_v1")
            .await?
            .is_empty()
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM interface_samples_v1")
        .fetch_one(&mut su)
        .await?;
    ensure!(n == 0);
    short.close().await;
    m.close().await;
    Ok(())
}
