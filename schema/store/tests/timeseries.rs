//! Time-series partitions against the real PostgreSQL: partitions are created ahead,
//! retention drops whole partitions, and a month-range query prunes to that month's
//! partitions (checked with EXPLAIN) and returns automatically sized buckets.

use std::time::Instant;

use anyhow::ensure;
use chrono::{Duration, TimeZone, Utc};
use drover_store::testing::{self, TestDb};
use drover_store::timeseries::{self, Maintenance, Retention, partition_name};
use drover_store::{Store, StoreConfig, TenantId};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

#[tokio::test]
async fn partitions_are_created_ahead_and_dropped_past_retention() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let retention = Retention {
        days: 5,
        ahead_days: 2,
    };
    let m = Maintenance::connect(&db.owner_url(), retention).await?;
    let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
    let r = m.run(now).await?;
    ensure!(r.created.len() == 8, "created {}", r.created.len()); // 5 back + today + 2 ahead
    ensure!(r.dropped.is_empty());
    // a second run is a no-op
    ensure!(m.run(now).await? == Default::default());
    // write a row into the oldest partition, then move 3 days on
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(
        "INSERT INTO device_samples (tenant_id, device_id, time, cpu_percent)
         VALUES (gen_random_uuid(), gen_random_uuid(), '2026-03-05 01:00+00', 1)",
    )
    .await?;
    let later = now + Duration::days(3);
    let r = m.run(later).await?;
    let oldest = partition_name("device_samples", now.date_naive() - Duration::days(5));
    ensure!(r.dropped.contains(&oldest), "{:?}", r.dropped);
    ensure!(r.dropped.len() == 3 && r.created.len() == 3, "{r:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM health_samples")
        .fetch_one(&mut su)
        .await?;
    ensure!(left == 0, "the expired row went with its partition");
    let parts = m.partitions_of("device_samples").await?;
    ensure!(parts.len() == 8);
    ensure!(
        parts.last()
            == Some(&partition_name(
                "device_samples",
                later.date_naive() + Duration::days(2)
            ))
    );
    // every partition is RLS-forced (reached only through its parent)
    let unforced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r' AND NOT (relrowsecurity AND relforcerowsecurity)",
    )
    .fetch_one(&mut su)
    .await?;
    ensure!(unforced == 0);
    Ok(())
}

#[tokio::test]
async fn month_range_query_prunes_partitions_and_buckets() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let m = Maintenance::connect(&db.owner_url(), Retention::default()).await?;
    let now = Utc::now();
    m.run(now).await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let tenant = testing::create_tenant(&store, "t").await?;

    // 100 devices × 60 days × one sample per 5 minutes = 1.73 M rows
    let devices = 100;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    let started = Instant::now();
    su.execute(AssertSqlSafe(format!(
        "INSERT INTO device_samples (tenant_id, device_id, time, cpu_percent, memory_percent)
         SELECT '{tenant}', ('00000000-0000-0000-0000-' || lpad(d::text, 12, '0'))::uuid, t,
                (extract(epoch FROM t)::bigint % 100), 50
           FROM generate_series(1, {devices}) d,
                generate_series(date_trunc('day', now()) - interval '60 days', now(), interval '5 minutes') t"
    )))
    .await?;
    su.execute("ANALYZE device_samples").await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM device_samples")
        .fetch_one(&mut su)
        .await?;
    eprintln!("loaded {rows} health rows in {:?}", started.elapsed());

    let device = Uuid::parse_str("00000000-0000-0000-0000-000000000007")?;
    let to = now;
    let from = now - Duration::days(30);
    let tx = store.begin(tenant).await?;

    // EXPLAIN the exact query: only the partitions for the 31 days touched are scanned
    let sql = format!(
        "EXPLAIN {}",
        timeseries::health_series_sql(timeseries::bucket_for_range(from, to))
    );
    let plan = tx
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [device.into(), from.into(), to.into()],
        ))
        .await?;
    let plan: Vec<String> = plan
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    let scanned: std::collections::BTreeSet<&str> = plan
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix("device_samples_p"))
        .filter(|rest| rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let total = m.partitions_of("device_samples").await?.len();
    eprintln!("month query scans {} of {total} partitions", scanned.len());
    ensure!(
        (30..=32).contains(&scanned.len()),
        "expected ~31 partitions scanned, got {}:\n{}",
        scanned.len(),
        plan.join("\n")
    );

    let started = Instant::now();
    let buckets = timeseries::health_series(&tx, device, from, to).await?;
    let first = started.elapsed();
    let started = Instant::now();
    let again = timeseries::health_series(&tx, device, from, to).await?;
    let warm = started.elapsed();
    eprintln!(
        "month range for one device: {} buckets of 6 h, {first:?} cold, {warm:?} warm",
        buckets.len()
    );
    ensure!(buckets == again);
    ensure!(
        (120..=125).contains(&buckets.len()),
        "{} buckets",
        buckets.len()
    );
    let samples: i64 = buckets.iter().map(|b| b.samples).sum();
    ensure!((8600..=8700).contains(&samples), "{samples} samples");
    ensure!(buckets.iter().all(|b| b.memory_avg == Some(50.0)));
    // 1 hour → 1-minute buckets, at most 60 (one sample per 5 min → 12 non-empty)
    let short = timeseries::health_series(&tx, device, now - Duration::hours(1), now).await?;
    ensure!((11..=13).contains(&short.len()), "{}", short.len());
    // another tenant sees nothing of it
    tx.commit().await?;
    let other = store.begin(TenantId::new_random()).await?;
    ensure!(
        timeseries::health_series(&other, device, from, to)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_maintenance_runs_serialise_and_create_each_partition_once() -> anyhow::Result<()>
{
    // Nodes of a cluster start together: every one runs maintenance on the same fresh
    // database at the same instant. Each run must succeed, and every partition must be
    // created by exactly one of them.
    let db = TestDb::create().await?;
    let retention = Retention {
        days: 20,
        ahead_days: 3,
    };
    let now = Utc::now();
    let runners = 6;
    let mut ms = Vec::new();
    for _ in 0..runners {
        ms.push(Maintenance::connect(&db.owner_url(), retention).await?);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(runners));
    let tasks: Vec<_> = ms
        .into_iter()
        .map(|m| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let r = m.run(now).await;
                m.close().await;
                r
            })
        })
        .collect();
    let mut created = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let report = t.await?;
        let report = report.map_err(|e| anyhow::anyhow!("run {i} failed: {e}"))?;
        ensure!(report.dropped.is_empty(), "run {i}: {report:?}");
        created.extend(report.created);
    }
    let per_table = (retention.days + 1 + retention.ahead_days) as usize;
    let mut unique = created.clone();
    unique.sort();
    unique.dedup();
    ensure!(
        unique.len() == created.len(),
        "some partitions were reported created twice"
    );
    ensure!(
        created.len() == timeseries::PARTITIONED_TABLES.len() * per_table,
        "{} partitions created, expected {}",
        created.len(),
        timeseries::PARTITIONED_TABLES.len() * per_table
    );
    let m = Maintenance::connect(&db.owner_url(), retention).await?;
    for table in timeseries::PARTITIONED_TABLES {
        let parts = m.partitions_of(table).await?;
        ensure!(
            parts.len() == per_table,
            "{table}: {} partitions",
            parts.len()
        );
    }
    // and one more run afterwards has nothing to do
    ensure!(m.run(now).await? == Default::default());
    Ok(())
}
