//! The recorder's batch writer against the real PostgreSQL: samples, status history and the
//! denormalised last values land; bad input is clamped or rejected without stopping the
//! writer; the bounded queue drops oldest first and counts it; and ingest rides out a
//! database outage without losing what fits in the bound.
//!
//! The outage tests cut the connection with a TCP proxy in front of PostgreSQL (so they can
//! run in parallel with other tests on the shared server). The test with a real server
//! restart is `#[ignore]`d because it disturbs every other test using that server; run it
//! alone: `cargo nextest run -p drover-store --run-ignored only -E 'test(real_postgres_restart)'`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::{DateTime, Utc};
use drover_model::events::{
    DeviceStatusChanged, EVENT_VERSION, InterfaceSample, MetricsSample, WirelessSummary,
};
use drover_model::{DeviceId, DeviceStatus, TenantId};
use drover_store::recorder::{Recorder, RecorderConfig, RecorderHandle, WriteFence};
use drover_store::testing::{self, TestDb};
use drover_store::timeseries::{Maintenance, Retention};
use drover_store::{Store, StoreConfig};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

/// A TCP proxy to PostgreSQL that can be cut: `set_down(true)` closes every open connection
/// and refuses new ones until `set_down(false)`.
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    kill: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let down = Arc::new(AtomicBool::new(false));
        let (kill, _) = watch::channel(0u64);
        let (d, k) = (down.clone(), kill.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut killed = k.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Ok(Self { addr, down, kill })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.kill.send_modify(|g| *g += 1);
        }
    }
}

struct Fixture {
    db: TestDb,
    store: Store,
    tenant: TenantId,
    devices: Vec<Uuid>,
}

async fn fixture(devices: usize) -> anyhow::Result<Fixture> {
    let db = TestDb::create().await?;
    let m = Maintenance::connect(&db.owner_url(), Retention::default()).await?;
    m.run(Utc::now()).await?;
    m.close().await;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let tenant = testing::create_tenant(&store, "t").await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(AssertSqlSafe(format!(
        "INSERT INTO devices (tenant_id, name, address)
         SELECT '{tenant}', 'r' || i, '10.0.0.1' FROM generate_series(1, {devices}) i"
    )))
    .await?;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM devices ORDER BY name")
        .fetch_all(&mut su)
        .await?;
    Ok(Fixture {
        db,
        store,
        tenant,
        devices: ids,
    })
}

/// A store for the fixture's database reached through a [`Proxy`] that the test can cut.
async fn store_through_proxy(
    f: &Fixture,
    acquire_timeout: Duration,
) -> anyhow::Result<(Proxy, Store)> {
    let proxy = Proxy::start("127.0.0.1:5432").await?;
    let mut cfg = StoreConfig::new(
        f.db.app_url()
            .replace("127.0.0.1:5432", &proxy.addr.to_string()),
    );
    cfg.acquire_timeout = acquire_timeout;
    let store = Store::connect(&cfg).await?;
    Ok((proxy, store))
}

fn sample(tenant: TenantId, device: Uuid, at: DateTime<Utc>, cpu: f64) -> MetricsSample {
    MetricsSample {
        version: EVENT_VERSION,
        device_id: DeviceId(device),
        tenant_id: tenant,
        timestamp: at,
        cpu_percent: Some(cpu),
        memory_percent: Some(40.0),
        disk_percent: Some(10.0),
        uptime: Some(3600),
        temperature_c: Some(45.0),
        interfaces: vec![
            InterfaceSample {
                name: "ether1".into(),
                running: true,
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_bps: Some(8000.0),
                tx_bps: None,
            },
            InterfaceSample {
                name: "wlan1".into(),
                running: false,
                rx_bytes: 0,
                tx_bytes: 0,
                rx_bps: None,
                tx_bps: None,
            },
        ],
        wireless: Some(WirelessSummary {
            clients: 12,
            mean_signal_dbm: Some(-61.5),
            min_signal_dbm: Some(-80),
        }),
        epoch: 0,
    }
}

fn status(
    tenant: TenantId,
    device: Uuid,
    s: DeviceStatus,
    at: DateTime<Utc>,
) -> DeviceStatusChanged {
    DeviceStatusChanged {
        version: EVENT_VERSION,
        device_id: DeviceId(device),
        tenant_id: tenant,
        status: s,
        previous_status: Some(DeviceStatus::Connecting),
        reason: None,
        routeros_version: Some("7.16.1 (stable)".into()),
        board_name: Some("RB5009UG+S+".into()),
        uptime: Some(60),
        epoch: 0,
        at,
    }
}

async fn count(db: &TestDb, sql: &str) -> anyhow::Result<i64> {
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    Ok(sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut su)
        .await?)
}

async fn flush(h: &RecorderHandle) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), h.flush()).await?;
    Ok(())
}

#[tokio::test]
async fn writes_samples_status_history_and_last_values() -> anyhow::Result<()> {
    let f = fixture(50).await?;
    let (h, task) = Recorder::spawn(&f.store, RecorderConfig::default());
    let t0 = Utc::now() - chrono::Duration::minutes(10);
    for (i, d) in f.devices.iter().enumerate() {
        h.record_status(status(f.tenant, *d, DeviceStatus::Online, t0));
        for k in 0..10 {
            let at = t0 + chrono::Duration::seconds(60 * k);
            h.record_metrics(sample(f.tenant, *d, at, (i as f64) + k as f64));
        }
    }
    flush(&h).await?;
    let s = h.stats();
    ensure!(s.written_metrics == 500 && s.written_status == 50, "{s:?}");
    ensure!(s.rejected == 0 && s.dropped_overflow == 0, "{s:?}");
    ensure!(count(&f.db, "SELECT count(*) FROM health_samples").await? == 500);
    ensure!(count(&f.db, "SELECT count(*) FROM interface_samples").await? == 1000);
    ensure!(count(&f.db, "SELECT count(*) FROM wireless_samples").await? == 500);
    ensure!(count(&f.db, "SELECT count(*) FROM device_status_history").await? == 50);
    // last values are the newest sample's; status and version came from the status event
    let d0 = f.devices[3];
    let mut su = PgConnection::connect(&f.db.superuser_url()).await?;
    let (cpu, st, ver, clients): (Option<f32>, String, Option<String>, Option<i32>) = sqlx::query_as(
        "SELECT last_cpu_percent, status, routeros_version, last_wireless_clients FROM devices WHERE id = $1",
    )
    .bind(d0)
    .fetch_one(&mut su)
    .await?;
    ensure!(
        cpu == Some(12.0)
            && st == "online"
            && ver.as_deref() == Some("7.16.1 (stable)")
            && clients == Some(12)
    );
    // an older sample arriving late does not move last values backwards
    h.record_metrics(sample(
        f.tenant,
        d0,
        t0 - chrono::Duration::minutes(5),
        99.0,
    ));
    flush(&h).await?;
    let cpu: Option<f32> = sqlx::query_scalar("SELECT last_cpu_percent FROM devices WHERE id = $1")
        .bind(d0)
        .fetch_one(&mut su)
        .await?;
    ensure!(cpu == Some(12.0));
    // re-sending the same samples (a retry) adds nothing
    for k in 0..10 {
        h.record_metrics(sample(
            f.tenant,
            d0,
            t0 + chrono::Duration::seconds(60 * k),
            1.0,
        ));
    }
    flush(&h).await?;
    ensure!(count(&f.db, "SELECT count(*) FROM health_samples").await? == 501);
    h.close();
    task.await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_is_clamped_or_rejected_and_the_writer_survives() -> anyhow::Result<()> {
    let f = fixture(2).await?;
    let (h, _task) = Recorder::spawn(&f.store, RecorderConfig::default());
    let now = Utc::now();
    let d = f.devices[0];
    let mut bad = sample(f.tenant, d, now, f64::NAN);
    bad.memory_percent = Some(250.0);
    bad.temperature_c = Some(1e9);
    bad.uptime = Some(u64::MAX);
    bad.interfaces[0].rx_bytes = u64::MAX;
    bad.interfaces[0].name = format!("eth\0{}", "x".repeat(10_000));
    bad.interfaces[1].rx_bps = Some(f64::INFINITY);
    bad.wireless = Some(WirelessSummary {
        clients: u32::MAX,
        mean_signal_dbm: Some(f64::NAN),
        min_signal_dbm: Some(i32::MIN),
    });
    h.record_metrics(bad);
    // unknown device, unknown tenant, and a device of this tenant claimed by another tenant
    h.record_metrics(sample(f.tenant, Uuid::new_v4(), now, 1.0));
    h.record_metrics(sample(TenantId::new_random(), Uuid::new_v4(), now, 1.0));
    h.record_metrics(sample(TenantId::new_random(), f.devices[1], now, 1.0));
    // timestamps outside the partitioned window
    h.record_metrics(sample(
        f.tenant,
        d,
        DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
        1.0,
    ));
    h.record_metrics(sample(f.tenant, d, now + chrono::Duration::days(400), 1.0));
    let mut st = status(f.tenant, f.devices[1], DeviceStatus::Offline, now);
    st.reason = Some("r\0".repeat(5000));
    st.routeros_version = Some("v".repeat(500));
    h.record_status(st);
    // and a good one after all that
    h.record_metrics(sample(f.tenant, f.devices[1], now, 5.0));
    flush(&h).await?;
    let s = h.stats();
    eprintln!("{s:?}");
    ensure!(s.rejected == 5, "{s:?}");
    ensure!(s.clamped >= 9, "{s:?}");
    ensure!(s.written_metrics == 2 && s.written_status == 1, "{s:?}");
    let mut su = PgConnection::connect(&f.db.superuser_url()).await?;
    let (cpu, mem, temp, up): (Option<f32>, Option<f32>, Option<f32>, Option<i64>) = sqlx::query_as(
        "SELECT cpu_percent, memory_percent, temperature_c, uptime_s FROM health_samples WHERE device_id = $1",
    )
    .bind(d)
    .fetch_one(&mut su)
    .await?;
    ensure!(cpu.is_none() && mem == Some(100.0) && temp.is_none() && up == Some(i64::MAX));
    let name_len: i32 =
        sqlx::query_scalar("SELECT max(length(name)) FROM interface_samples WHERE device_id = $1")
            .bind(d)
            .fetch_one(&mut su)
            .await?;
    ensure!(name_len == 255);
    let (reason_len, ver_len): (i32, i32) = sqlx::query_as(
        "SELECT length(status_reason), length(routeros_version) FROM devices WHERE id = $1",
    )
    .bind(f.devices[1])
    .fetch_one(&mut su)
    .await?;
    ensure!(reason_len == 1000 && ver_len == 64);
    Ok(())
}

#[tokio::test]
async fn overflow_drops_oldest_first_and_counts() -> anyhow::Result<()> {
    let f = fixture(1).await?;
    let (proxy, store) = store_through_proxy(&f, Duration::from_millis(500)).await?;
    let rc = RecorderConfig {
        capacity: 100,
        retry_max: Duration::from_millis(200),
        ..Default::default()
    };
    let (h, _task) = Recorder::spawn(&store, rc);
    proxy.set_down(true);
    let t0 = Utc::now() - chrono::Duration::hours(1);
    let d = f.devices[0];
    h.record_metrics(sample(f.tenant, d, t0, 0.0));
    tokio::time::sleep(Duration::from_millis(300)).await; // the writer holds it, retrying
    for k in 1..=300 {
        h.record_metrics(sample(f.tenant, d, t0 + chrono::Duration::seconds(k), 0.0));
    }
    ensure!(h.stats().dropped_overflow == 200, "{:?}", h.stats());
    proxy.set_down(false);
    flush(&h).await?;
    let s = h.stats();
    ensure!(s.written_metrics == 101 && s.retries > 0, "{s:?}");
    // the survivors are the first one (in flight) and the newest 100
    let oldest_kept = count(
        &f.db,
        &format!(
            "SELECT extract(epoch FROM min(time) FILTER (WHERE time > '{}'::timestamptz))::bigint
                  - extract(epoch FROM '{}'::timestamptz)::bigint FROM health_samples",
            t0, t0
        ),
    )
    .await?;
    ensure!(oldest_kept == 201, "oldest survivor at +{oldest_kept}s");
    Ok(())
}

async fn ingest_through_outage(
    f: &Fixture,
    store: &Store,
    outage: impl AsyncFnOnce(),
) -> anyhow::Result<()> {
    let (h, _task) = Recorder::spawn(
        store,
        RecorderConfig {
            capacity: 100_000,
            retry_max: Duration::from_millis(500),
            ..Default::default()
        },
    );
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let producer = {
        let (h, tenant, devices) = (h.clone(), f.tenant, f.devices.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            for tick in 0..300i64 {
                for d in &devices {
                    h.record_metrics(sample(
                        tenant,
                        *d,
                        t0 + chrono::Duration::seconds(tick),
                        1.0,
                    ));
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    outage().await;
    let sent = producer.await?;
    flush(&h).await?;
    let s = h.stats();
    eprintln!("sent {sent}: {s:?}");
    ensure!(s.retries > 0, "the outage was not noticed: {s:?}");
    ensure!(s.dropped_overflow == 0 && s.rejected == 0, "{s:?}");
    ensure!(s.written_metrics == sent, "{s:?}");
    let rows = count(&f.db, "SELECT count(*) FROM health_samples").await?;
    ensure!(rows as u64 == sent, "{rows} rows for {sent} samples");
    Ok(())
}

#[tokio::test]
async fn ingest_rides_out_a_lost_database_connection() -> anyhow::Result<()> {
    let f = fixture(20).await?;
    let (proxy, store) = store_through_proxy(&f, Duration::from_millis(500)).await?;
    ingest_through_outage(&f, &store, async || {
        proxy.set_down(true);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proxy.set_down(false);
    })
    .await
}

/// An operator must see a recorder falling behind: while PostgreSQL is unreachable the
/// lag (age of the oldest unwritten event) grows with the outage, and it is back to 0 once
/// the backlog is written.
#[tokio::test]
async fn the_lag_grows_while_the_database_is_away_and_clears_after() -> anyhow::Result<()> {
    let f = fixture(5).await?;
    let (proxy, store) = store_through_proxy(&f, Duration::from_millis(300)).await?;
    let (h, _task) = Recorder::spawn(
        &store,
        RecorderConfig {
            retry_max: Duration::from_millis(200),
            ..Default::default()
        },
    );
    ensure!(
        h.stats().lag_ms == 0,
        "lag before anything was queued: {:?}",
        h.stats()
    );
    proxy.set_down(true);
    let t0 = Utc::now() - chrono::Duration::minutes(5);
    for (i, d) in f.devices.iter().enumerate() {
        h.record_metrics(sample(
            f.tenant,
            *d,
            t0 + chrono::Duration::seconds(i as i64),
            5.0,
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stuck = h.stats();
    ensure!(
        (1400..5000).contains(&stuck.lag_ms) && stuck.written_metrics == 0 && stuck.retries > 0,
        "during a 1.5 s outage: {stuck:?}"
    );
    proxy.set_down(false);
    flush(&h).await?;
    let after = h.stats();
    ensure!(
        after.lag_ms == 0 && after.queued == 0 && after.written_metrics == 5,
        "after the outage: {after:?}"
    );
    ensure!(count(&f.db, "SELECT count(*) FROM device_samples").await? == 5);
    Ok(())
}

#[tokio::test]
#[ignore = "restarts the shared PostgreSQL server; run alone (see the file's doc comment)"]
async fn ingest_survives_a_real_postgres_restart() -> anyhow::Result<()> {
    let f = fixture(20).await?;
    let mut cfg = StoreConfig::new(f.db.app_url());
    cfg.acquire_timeout = Duration::from_millis(500);
    let store = Store::connect(&cfg).await?;
    ingest_through_outage(&f, &store, async || {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_else(|| "15".into());
        let started = Instant::now();
        let st = tokio::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "restart"])
            .status()
            .await;
        eprintln!("pg_ctlcluster restart: {st:?} in {:?}", started.elapsed());
    })
    .await
}

#[tokio::test]
async fn batch_insert_rate() -> anyhow::Result<()> {
    // A figure, not a gate (performance claims belong in benches/): printed for the record.
    let f = fixture(1000).await?;
    let (h, _task) = Recorder::spawn(&f.store, RecorderConfig::default());
    let t0 = Utc::now() - chrono::Duration::hours(3);
    let started = Instant::now();
    let mut n = 0;
    for tick in 0..20 {
        for d in &f.devices {
            h.record_metrics(sample(
                f.tenant,
                *d,
                t0 + chrono::Duration::seconds(60 * tick),
                1.0,
            ));
            n += 1;
        }
    }
    flush(&h).await?;
    let took = started.elapsed();
    eprintln!(
        "recorder: {n} samples (each 1 health + 2 interface + 1 wireless row + last values) in {took:?}: {:.0} samples/s",
        n as f64 / took.as_secs_f64()
    );
    ensure!(h.stats().written_metrics == n);
    Ok(())
}

#[tokio::test]
async fn the_write_fence_drops_events_of_a_stale_shard_epoch() -> anyhow::Result<()> {
    let f = fixture(4).await?;
    // the shard's current epoch, as the node's lease table would say; device 3 belongs to a
    // shard this node has lost entirely
    let current = Arc::new(AtomicU64::new(2));
    let lost = DeviceId(f.devices[3]);
    let asked = Arc::new(AtomicU64::new(0));
    let fence = {
        let (current, asked) = (current.clone(), asked.clone());
        WriteFence::new(move |device, epoch| {
            asked.fetch_add(1, Ordering::Relaxed);
            device != lost && epoch >= current.load(Ordering::SeqCst)
        })
    };
    let (h, _task) = Recorder::spawn(
        &f.store,
        RecorderConfig {
            fence: Some(fence),
            ..Default::default()
        },
    );
    let t0 = Utc::now() - chrono::Duration::minutes(30);
    let min = chrono::Duration::minutes;
    for d in &f.devices {
        for (epoch, at) in [(1, t0), (2, t0 + min(1)), (3, t0 + min(2))] {
            let mut m = sample(f.tenant, *d, at, epoch as f64);
            m.epoch = epoch;
            h.record_metrics(m);
        }
        // the stale owner's late "offline" is newer in time but must not win
        let mut online = status(f.tenant, *d, DeviceStatus::Online, t0 + min(1));
        online.epoch = 2;
        let mut stale = status(f.tenant, *d, DeviceStatus::Offline, t0 + min(3));
        stale.epoch = 1;
        h.record_status(online);
        h.record_status(stale);
    }
    flush(&h).await?;
    let s = h.stats();
    // devices 0..3: epoch 2 and 3 samples and the online status pass; device 3: nothing
    ensure!(s.written_metrics == 6 && s.written_status == 3, "{s:?}");
    ensure!(s.fenced == 3 * 2 + 5, "{s:?}");
    ensure!(s.rejected == 0, "{s:?}");
    ensure!(
        asked.load(Ordering::Relaxed) == 20,
        "the fence is asked once per event"
    );
    ensure!(count(&f.db, "SELECT count(*) FROM health_samples").await? == 6);
    ensure!(
        count(
            &f.db,
            &format!(
                "SELECT count(*) FROM health_samples WHERE cpu_percent = 1 OR device_id = '{}'",
                lost.0
            )
        )
        .await?
            == 0,
        "a fenced sample was written"
    );
    ensure!(
        count(
            &f.db,
            "SELECT count(*) FROM devices WHERE status = 'online'"
        )
        .await?
            == 3,
        "the stale offline status overwrote a device"
    );
    ensure!(count(&f.db, "SELECT count(*) FROM device_status_history").await? == 3);
    // the shard moves on: what the old epoch still produces is dropped from now on
    current.store(4, Ordering::SeqCst);
    let mut late = sample(f.tenant, f.devices[0], t0 + min(5), 7.0);
    late.epoch = 3;
    h.record_metrics(late);
    flush(&h).await?;
    let s = h.stats();
    ensure!(s.fenced == 12 && s.written_metrics == 6, "{s:?}");
    Ok(())
}

#[tokio::test]
async fn several_writers_write_everything_once() -> anyhow::Result<()> {
    // Devices are split between writers by hash; every event lands exactly once, resent
    // samples (the plain-insert fast path hits the primary key) are absorbed, and the
    // last values are the newest.
    let f = fixture(40).await?;
    let (h, task) = Recorder::spawn(
        &f.store,
        RecorderConfig {
            writers: 3,
            batch_max: 50,
            ..Default::default()
        },
    );
    let t0 = Utc::now() - chrono::Duration::hours(1);
    for k in 0..20 {
        for d in &f.devices {
            h.record_metrics(sample(
                f.tenant,
                *d,
                t0 + chrono::Duration::seconds(k),
                k as f64,
            ));
        }
    }
    flush(&h).await?;
    // resend a slice of them, mixed with new ones
    for k in 15..25 {
        for d in &f.devices {
            h.record_metrics(sample(
                f.tenant,
                *d,
                t0 + chrono::Duration::seconds(k),
                k as f64,
            ));
        }
    }
    flush(&h).await?;
    let s = h.stats();
    ensure!(s.rejected == 0 && s.dropped_overflow == 0, "{s:?}");
    ensure!(count(&f.db, "SELECT count(*) FROM health_samples").await? == 40 * 25);
    ensure!(count(&f.db, "SELECT count(*) FROM interface_samples").await? == 2 * 40 * 25);
    ensure!(
        count(
            &f.db,
            "SELECT count(*) FROM devices WHERE last_cpu_percent = 24"
        )
        .await?
            == 40
    );
    h.close();
    task.await?;
    Ok(())
}
