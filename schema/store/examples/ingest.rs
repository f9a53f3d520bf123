//! Ingest benchmark for the recorder: feeds the real `Recorder` with synthetic
//! `MetricsSample`s at a fixed rate against a fresh database on the local PostgreSQL and
//! reports samples/s and rows/s written, queue depth, lag, drops, bytes per row, WAL bytes per
//! sample, and the CPU time of this process against the CPU time of PostgreSQL (its backends
//! for the benchmark database plus the WAL writer, checkpointer and background writer, read
//! from /proc).
//!
//! ```text
//! cargo run --release -p drover-store --example ingest -- --devices 2000 --rate 200000 --seconds 20
//! ```
//!
//! Options: `--devices N` (2000), `--tenants N` (1), `--rate SAMPLES_PER_S` (200000),
//! `--seconds S` (20), `--interfaces N` per sample (2; each sample is one `device_samples`
//! row with N interfaces and the wireless figures), `--writers N` and `--batch N` (the recorder's
//! defaults otherwise), `--pool N` connections (16). The database is reached as the
//! superuser of `DROVER_TEST_PG_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! to create it, then as drover's app role, exactly as a node writes. Nothing here is a gate:
//! it prints figures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use drover_model::events::{EVENT_VERSION, InterfaceSample, MetricsSample, WirelessSummary};
use drover_model::{DeviceId, TenantId};
use drover_store::recorder::{Recorder, RecorderConfig, RecorderStats};
use drover_store::testing::TestDb;
use drover_store::timeseries::{Maintenance, Retention};
use drover_store::{CrossTenantAccess, Store};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

struct Args {
    devices: usize,
    tenants: usize,
    rate: u64,
    seconds: u64,
    interfaces: usize,
    writers: Option<usize>,
    batch: Option<usize>,
    pool: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        devices: 2000,
        tenants: 1,
        rate: 200_000,
        seconds: 20,
        interfaces: 2,
        writers: None,
        batch: None,
        pool: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .with_context(|| format!("{flag} {value:?} is not a number"))?;
        match flag.as_str() {
            "--devices" => a.devices = n as usize,
            "--tenants" => a.tenants = n as usize,
            "--rate" => a.rate = n,
            "--seconds" => a.seconds = n,
            "--interfaces" => a.interfaces = n as usize,
            "--writers" => a.writers = Some(n as usize),
            "--batch" => a.batch = Some(n as usize),
            "--pool" => a.pool = n as u32,
            other => bail!("unknown option {other}"),
        }
    }
    if a.devices == 0 || a.tenants == 0 || a.tenants > a.devices || a.rate == 0 || a.seconds == 0 {
        bail!("--devices, --tenants, --rate and --seconds must be positive, tenants ≤ devices");
    }
    Ok(a)
}

/// user + system CPU seconds of one process, from /proc/<pid>/stat (clock ticks of 1/100 s,
/// Linux's USER_HZ).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may contain spaces: the fields start after the last ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU used by PostgreSQL on behalf of this benchmark since the first call.
struct PgCpu {
    base: HashMap<i32, f64>,
    last: HashMap<i32, f64>,
}

impl PgCpu {
    async fn pids(mon: &mut PgConnection) -> anyhow::Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
               OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
        )
        .fetch_all(mon)
        .await?)
    }

    async fn start(mon: &mut PgConnection) -> anyhow::Result<Self> {
        let mut base = HashMap::new();
        for pid in Self::pids(mon).await? {
            if let Some(c) = cpu_seconds(&pid.to_string()) {
                base.insert(pid, c);
            }
        }
        Ok(Self {
            last: base.clone(),
            base,
        })
    }

    /// Total CPU seconds since start (backends that have exited keep their last reading).
    async fn total(&mut self, mon: &mut PgConnection) -> anyhow::Result<f64> {
        for pid in Self::pids(mon).await? {
            if let Some(c) = cpu_seconds(&pid.to_string()) {
                self.last.insert(pid, c);
            }
        }
        Ok(self
            .last
            .iter()
            .map(|(pid, c)| c - self.base.get(pid).copied().unwrap_or(0.0))
            .sum())
    }
}

fn sample(
    tenant: TenantId,
    device: Uuid,
    k: i64,
    t0: chrono::DateTime<Utc>,
    ifaces: usize,
) -> MetricsSample {
    MetricsSample {
        version: EVENT_VERSION,
        device_id: DeviceId(device),
        tenant_id: tenant,
        timestamp: t0 + chrono::Duration::seconds(k),
        cpu_percent: Some((k % 100) as f64),
        memory_percent: Some(40.0),
        disk_percent: Some(10.0),
        uptime: Some(3600 + k as u64),
        temperature_c: Some(45.0),
        interfaces: (0..ifaces)
            .map(|i| InterfaceSample {
                name: format!("ether{}", i + 1),
                running: true,
                rx_bytes: 1_000_000 + k as u64 * 1000,
                tx_bytes: 2_000_000 + k as u64 * 500,
                rx_bps: Some(8000.0),
                tx_bps: Some(4000.0),
            })
            .collect(),
        wireless: Some(WirelessSummary {
            clients: 12,
            mean_signal_dbm: Some(-61.5),
            min_signal_dbm: Some(-80),
        }),
        epoch: 0,
    }
}

async fn wal_lsn(mon: &mut PgConnection) -> anyhow::Result<f64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8")
            .fetch_one(mon)
            .await?,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // one device_samples row per sample since migration 5 (before: 1 health + N interface +
    // 1 wireless row)
    let rows_per_sample = 1u64;
    let db = TestDb::create().await?;
    eprintln!("database {}", db.name);
    let m = Maintenance::connect(&db.owner_url(), Retention::default()).await?;
    m.run(Utc::now()).await?;
    m.close().await;
    let mut cfg = db.app_config();
    cfg.max_connections = args.pool;
    let store = Store::connect(&cfg).await?;
    let mut tenants = Vec::new();
    for i in 0..args.tenants {
        let mut x = store
            .begin_cross_tenant(CrossTenantAccess {
                actor_user_id: Uuid::new_v4(),
                reason: "ingest benchmark".into(),
                ip_address: None,
            })
            .await?;
        tenants.push(TenantId(x.create_tenant(&format!("bench{i}")).await?.id));
        x.commit().await?;
    }
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    let mut devices: Vec<(TenantId, Uuid)> = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let n = args.devices / args.tenants + usize::from(i < args.devices % args.tenants);
        su.execute(AssertSqlSafe(format!(
            "INSERT INTO devices (tenant_id, name, address)
             SELECT '{t}', 'r' || g, '10.0.0.1' FROM generate_series(1, {n}) g"
        )))
        .await?;
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM devices WHERE tenant_id = $1")
            .bind(t.0)
            .fetch_all(&mut su)
            .await?;
        devices.extend(ids.into_iter().map(|d| (*t, d)));
    }

    let mut rc = RecorderConfig::default();
    if let Some(w) = args.writers {
        rc.writers = w;
    }
    if let Some(b) = args.batch {
        rc.batch_max = b;
    }
    eprintln!(
        "{} devices in {} tenant(s), {} samples/s for {} s, {} rows a sample; recorder: {} writer(s), batch {}, queue {}",
        devices.len(),
        tenants.len(),
        args.rate,
        args.seconds,
        rows_per_sample,
        rc.writers,
        rc.batch_max,
        rc.capacity
    );
    let (h, task) = Recorder::spawn(&store, rc);

    let me = std::process::id().to_string();
    let cpu0 = cpu_seconds(&me).unwrap_or(0.0);
    let mut pg = PgCpu::start(&mut su).await?;
    let wal0 = wal_lsn(&mut su).await?;
    let started = Instant::now();
    let t0 = Utc::now() - chrono::Duration::hours(12);

    let producer = {
        let h = h.clone();
        let (rate, seconds, ifaces) = (args.rate, args.seconds, args.interfaces);
        tokio::spawn(async move {
            let mut produced = 0u64;
            let end = rate * seconds;
            let n = devices.len() as u64;
            while produced < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let due = ((rate as f64 * started.elapsed().as_secs_f64()) as u64).min(end);
                while produced < due {
                    let (t, d) = devices[(produced % n) as usize];
                    h.record_metrics(sample(t, d, (produced / n) as i64, t0, ifaces));
                    produced += 1;
                }
            }
            produced
        })
    };

    let mut last = RecorderStats::default();
    let mut last_at = Instant::now();
    let mut peak_queue = 0;
    let mut lags_ms: Vec<u64> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !producer.is_finished() {
        tick.tick().await;
        let s = h.stats();
        let dt = last_at.elapsed().as_secs_f64();
        last_at = Instant::now();
        peak_queue = peak_queue.max(s.queued);
        lags_ms.push(s.lag_ms);
        let w = (s.written_metrics - last.written_metrics) as f64 / dt;
        eprintln!(
            "t={:>5.1}s written {:>8.0} samples/s {:>9.0} rows/s  queue {:>7}  lag {:>6} ms  dropped {:>8}  retries {}",
            started.elapsed().as_secs_f64(),
            w,
            w * rows_per_sample as f64,
            s.queued,
            s.lag_ms,
            s.dropped_overflow,
            s.retries
        );
        last = s;
    }
    let produced = producer.await?;
    let produce_window = started.elapsed().as_secs_f64();
    let written_in_window = h.stats().written_metrics;
    let cpu_window = cpu_seconds(&me).unwrap_or(0.0) - cpu0;
    let pg_window = pg.total(&mut su).await?;
    tokio::time::timeout(Duration::from_secs(300), h.flush())
        .await
        .context("the recorder did not drain within 300 s")?;
    let total = started.elapsed().as_secs_f64();
    let s = h.stats();
    let cpu_all = cpu_seconds(&me).unwrap_or(0.0) - cpu0;
    let pg_all = pg.total(&mut su).await?;
    let wal = wal_lsn(&mut su).await? - wal0;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(relid))::bigint
           FROM pg_partition_tree('device_samples')",
    )
    .fetch_one(&mut su)
    .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM device_samples")
        .fetch_one(&mut su)
        .await?;
    h.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;

    let written = s.written_metrics;
    println!(
        "== ingest: {produced} samples offered in {produce_window:.1} s, all written after {total:.1} s"
    );
    println!(
        "written during the offer window: {:.0} samples/s ({:.0} rows/s); overall incl. drain: {:.0} samples/s ({:.0} rows/s)",
        written_in_window as f64 / produce_window,
        written_in_window as f64 * rows_per_sample as f64 / produce_window,
        written as f64 / total,
        written as f64 * rows_per_sample as f64 / total
    );
    println!(
        "written {written}, dropped (queue full) {}, rejected {}, retries {}, peak queue {peak_queue}",
        s.dropped_overflow, s.rejected, s.retries
    );
    println!(
        "rows in the tables {rows} ({} expected), {:.1} bytes per row on disk (heap + indexes)",
        written * rows_per_sample,
        bytes as f64 / rows.max(1) as f64
    );
    println!(
        "WAL {:.1} MB: {:.0} bytes per sample, {:.0} per row (cluster-wide: includes other users of the server)",
        wal / 1e6,
        wal / written.max(1) as f64,
        wal / rows.max(1) as f64
    );
    println!(
        "CPU over the offer window: this process {:.2} cores, PostgreSQL {:.2} cores; whole run: this process {:.1} µs/sample, PostgreSQL {:.1} µs/sample ({:.2} µs/row)",
        cpu_window / produce_window,
        pg_window / produce_window,
        cpu_all * 1e6 / written.max(1) as f64,
        pg_all * 1e6 / written.max(1) as f64,
        pg_all * 1e6 / rows.max(1) as f64
    );
    lags_ms.sort_unstable();
    let pick = |q: f64| {
        lags_ms
            .get(((lags_ms.len() as f64 * q) as usize).min(lags_ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "lag (oldest unwritten sample, read every second): p50 {} ms, p99 {} ms, max {} ms; kept up with the offered rate: {}",
        pick(0.5),
        pick(0.99),
        lags_ms.last().copied().unwrap_or(0),
        if s.dropped_overflow == 0 && lags_ms.last().copied().unwrap_or(0) < 1000 {
            "yes (nothing dropped, never 1 s behind)"
        } else {
            "no"
        }
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the end: {}", load.trim());
    }
    Ok(())
}
