//! `drover-bench api`: the fleet list under load. Creates a fresh database, starts a real
//! `drover run` (API role only: nothing is polled), creates a tenant through the API, inserts
//! N devices with SQL (as the superuser, triggers off: seeding is not what is measured), signs
//! in a viewer of that tenant over SRP, then drives `GET /api/tenants/{t}/devices` (a page of
//! 100 with a status filter, sorted by name, the total counted as `--count` says: the API's
//! default, a bounded count) from C keep-alive connections for a duration and reports
//! requests/s, latency percentiles, errors, and the CPU of the node, PostgreSQL and Redis
//! over the same window. Nothing is cached between requests: every request runs its queries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::histogram::{AtomicHistogram, Counts};
use crate::http1::Conn;
use crate::proc_stat::{self, parse_duration};
use crate::stack::{
    CpuMark, Database, DroverNode, NodeSettings, cpu_of_commands, find_drover, psql, run_dir,
};

/// Options of `drover-bench api`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ApiOpts {
    /// Devices in the tenant (inserted with SQL before the load starts).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) devices: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
    /// Measured time per run.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Load before each measured window (not counted).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Measured runs against the same node and data (the summary gives medians).
    #[arg(long, default_value_t = 1)]
    pub(crate) runs: usize,
    /// The filter: devices with this status (80 % of the seeded devices are online, 10 %
    /// offline, 10 % degraded).
    #[arg(long, default_value = "online")]
    pub(crate) status: String,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Requests walk the first this-many pages (offset = page × limit), round robin.
    #[arg(long, default_value_t = 10)]
    pub(crate) pages: usize,
    /// How the list computes its total (`count=` of the request): bounded (the API's
    /// default), exact, estimate or none.
    #[arg(long, default_value = "bounded")]
    pub(crate) count: String,
    /// Worker threads of the load generator (it shares the machine with the node).
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// The drover binary (default: next to this binary, $DROVER_BIN, or
    /// $CARGO_TARGET_DIR/release/drover).
    #[arg(long)]
    pub(crate) drover_bin: Option<PathBuf>,
    /// Check that the harness works, not the targets.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Append each run's JSON line to this file too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// The figures of one measured run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ApiRun {
    pub(crate) bench: &'static str,
    pub(crate) run: usize,
    pub(crate) devices: usize,
    pub(crate) matching: u64,
    pub(crate) count: String,
    pub(crate) connections: usize,
    pub(crate) window_s: f64,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) requests_ok: u64,
    pub(crate) requests_per_s: f64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) latency_p50_ms: Option<f64>,
    pub(crate) latency_p90_ms: Option<f64>,
    pub(crate) latency_p99_ms: Option<f64>,
    pub(crate) latency_max_ms: f64,
    pub(crate) response_bytes: f64,
    pub(crate) node_cpu_cores: f64,
    pub(crate) node_cpu_us_per_request: f64,
    pub(crate) node_rss_kb: u64,
    pub(crate) postgres_cpu_cores: f64,
    pub(crate) redis_cpu_cores: f64,
    pub(crate) client_cpu_cores: f64,
}

pub(crate) fn run(opts: ApiOpts) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads.max(1))
        .enable_all()
        .build()?
        .block_on(bench(opts))
}

/// Devices by status out of `n` as the seed writes them (index % 10: 0–7 online, 8 offline,
/// 9 degraded).
fn seeded_with_status(n: usize, status: &str) -> u64 {
    let n = n as u64;
    let per = |residues: &[u64]| -> u64 {
        residues
            .iter()
            .map(|&r| n / 10 + u64::from(n % 10 > r))
            .sum()
    };
    match status {
        "online" => per(&[0, 1, 2, 3, 4, 5, 6, 7]),
        "offline" => per(&[8]),
        "degraded" => per(&[9]),
        _ => 0,
    }
}

/// Inserts `n` devices into `tenant` (superuser, triggers and RLS not involved).
async fn seed_devices(db: &Database, tenant: &str, n: usize) -> anyhow::Result<()> {
    uuid::Uuid::parse_str(tenant).context("tenant id")?;
    let sql = format!(
        "SET session_replication_role = replica; SET synchronous_commit = off;
         INSERT INTO devices (tenant_id, name, address, api_port, tls_mode, poll_interval_s,
                              status, status_reason, status_changed_at, last_seen_at,
                              last_cpu_percent, last_memory_percent, last_disk_percent,
                              uptime_s, routeros_version, board_name, serial_number)
         SELECT '{tenant}', format('bench-%s', lpad(i::text, 7, '0')),
                format('10.%s.%s.%s', (i >> 16) & 255, (i >> 8) & 255, i & 255),
                8729, 'insecure', 60,
                CASE WHEN i % 10 < 8 THEN 'online' WHEN i % 10 = 8 THEN 'offline' ELSE 'degraded' END,
                CASE WHEN i % 10 < 8 THEN NULL ELSE '3 polls missed: connection refused' END,
                now() - (i % 86400) * interval '1 second', now() - (i % 600) * interval '1 second',
                (i * 7) % 100, (i * 13) % 100, (i * 17) % 100, i * 3,
                '7.16.1 (stable)', 'RB5009UG+S+', format('HE%s', lpad(i::text, 8, '0'))
         FROM generate_series(0, {last}) AS i;
         ANALYZE devices;",
        last = n as i64 - 1
    );
    psql(&db.url, &sql).await?;
    Ok(())
}

async fn bench(opts: ApiOpts) -> anyhow::Result<()> {
    if opts.devices == 0 || opts.connections == 0 || opts.limit == 0 {
        bail!("--devices, --connections and --limit must be at least 1");
    }
    let drover = find_drover(opts.drover_bin.as_deref())?;
    let dir = run_dir("api")?;
    eprintln!(
        "drover-bench api: {} devices, {} connections, {:?} x {} runs (warm-up {:?}); {} cores, load {}; logs in {}",
        opts.devices,
        opts.connections,
        opts.duration,
        opts.runs,
        opts.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_stat::load_average(),
        dir.display()
    );
    let t = Instant::now();
    let mut db = Database::create(&drover, "api").await?;
    let settings = NodeSettings {
        name: "bench-api".into(),
        roles: "api".into(),
        env: Vec::new(),
        log: dir.join("drover.log"),
    };
    let outcome = async {
        let mut node = DroverNode::start(&drover, &db, &settings, Duration::from_secs(120)).await?;
        let result = measure(&opts, &db, &node).await;
        node.stop().await;
        result
    };
    eprintln!(
        "  database {} migrated in {:.1}s",
        db.name,
        t.elapsed().as_secs_f64()
    );
    let result = outcome.await;
    db.drop_now().await;
    let runs = result?;
    summarise(&opts, &runs)
}

async fn measure(opts: &ApiOpts, db: &Database, node: &DroverNode) -> anyhow::Result<Vec<ApiRun>> {
    let admin = node.admin_session().await.context("super_admin sign-in")?;
    let tenant = admin
        .create_tenant(
            node.http,
            &format!("bench-api-{}", crate::stack::random_token(6)),
        )
        .await?;
    let t = Instant::now();
    seed_devices(db, &tenant, opts.devices).await?;
    eprintln!(
        "  seeded {} devices with SQL in {:.1}s",
        opts.devices,
        t.elapsed().as_secs_f64()
    );
    let viewer = admin.create_user(node.http, &tenant, "viewer").await?;
    let expected = seeded_with_status(opts.devices, &opts.status);
    // One request checks the answer before the load: the filter and the exact total are right.
    let path = list_path(&tenant, &opts.status, opts.limit, 0, "exact");
    let r = viewer.get(node.http, &path).await?;
    if r.status != 200 {
        bail!("GET {path}: HTTP {} {}", r.status, r.snippet());
    }
    let page = r.json()?;
    let total = page["total"].as_u64().context("no total")?;
    let items = page["items"].as_array().context("no items")?.len();
    if total != expected || items != opts.limit.min(expected as usize) {
        bail!(
            "the list answered total {total} with {items} items; expected {expected} and {}",
            opts.limit.min(expected as usize)
        );
    }
    if page["items"]
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d["status"] != opts.status.as_str()))
    {
        bail!("the list returned devices outside the filter");
    }
    eprintln!(
        "  list checked: {total} devices with status {}, {items} per page, {} bytes",
        opts.status,
        r.body.len()
    );
    let mut runs = Vec::new();
    for run in 1..=opts.runs {
        let r = load(opts, node, &tenant, &viewer.bearer(), run, expected).await?;
        print_run(&r);
        let line = serde_json::to_string(&r)?;
        println!("{line}");
        if let Some(path) = &opts.json {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
        }
        runs.push(r);
    }
    Ok(runs)
}

fn list_path(tenant: &str, status: &str, limit: usize, offset: usize, count: &str) -> String {
    format!(
        "/api/tenants/{tenant}/devices?status={status}&sort=name&order=asc&limit={limit}&offset={offset}&count={count}"
    )
}

/// Counters shared by the connection tasks of one run.
#[derive(Debug, Default)]
struct LoadCounters {
    ok: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl LoadCounters {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock()
            && f.is_none()
        {
            *f = Some(what);
        }
    }
}

async fn load(
    opts: &ApiOpts,
    node: &DroverNode,
    tenant: &str,
    bearer: &str,
    run: usize,
    matching: u64,
) -> anyhow::Result<ApiRun> {
    let hist = Arc::new(AtomicHistogram::default());
    let counters = Arc::new(LoadCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load_before = proc_stat::load_average();
    let start = Instant::now();
    let window_from = start + opts.warmup;
    let window_to = window_from + opts.duration;
    let pages = opts
        .pages
        .max(1)
        .min((matching as usize).div_ceil(opts.limit).max(1));
    let mut tasks = Vec::new();
    for c in 0..opts.connections {
        let hist = Arc::clone(&hist);
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        let addr: SocketAddr = node.http;
        let bearer = bearer.to_owned();
        let paths: Vec<String> = (0..pages)
            .map(|p| {
                list_path(
                    tenant,
                    &opts.status,
                    opts.limit,
                    p * opts.limit,
                    &opts.count,
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let mut current = match conn.take() {
                    Some(existing) if !existing.closed => existing,
                    _ => match Conn::connect(addr).await {
                        Ok(fresh) => fresh,
                        Err(e) => {
                            counters.error(format!("connect: {e:#}"));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let path = &paths[i % paths.len()];
                i += 1;
                let t0 = Instant::now();
                let result = current
                    .request("GET", path, &[("Authorization", bearer.as_str())], None)
                    .await;
                let t1 = Instant::now();
                let in_window = t0 >= window_from && t1 <= window_to;
                match result {
                    Ok(resp) if resp.status == 200 => {
                        if in_window {
                            hist.record_us(t1.duration_since(t0).as_micros() as u64);
                            counters.ok.fetch_add(1, Ordering::Relaxed);
                            counters
                                .bytes
                                .fetch_add(resp.body.len() as u64, Ordering::Relaxed);
                        }
                        conn = Some(current);
                    }
                    Ok(resp) => {
                        if in_window {
                            counters.error(format!("HTTP {}: {}", resp.status, resp.snippet()));
                        }
                        conn = Some(current);
                    }
                    Err(e) => {
                        if in_window {
                            counters.error(format!("{e:#}"));
                        }
                    }
                }
            }
        }));
    }
    let usage = |node: &DroverNode| {
        let (cpu, rss) = node.usage();
        (
            CpuMark::now(cpu),
            CpuMark::now(cpu_of_commands(&["postgres"])),
            CpuMark::now(cpu_of_commands(&["redis-server"])),
            CpuMark::now(proc_stat::self_cpu_seconds()),
            rss,
        )
    };
    tokio::time::sleep_until(window_from.into()).await;
    hist.take_max();
    let (n0, pg0, rd0, me0, _) = usage(node);
    tokio::time::sleep_until(window_to.into()).await;
    let (n1, pg1, rd1, me1, rss) = usage(node);
    let max_us = hist.take_max();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let counts = Counts::from_sparse(&hist.snapshot());
    let ms = |q: f64| counts.quantile_us(q).map(|us| us / 1000.0);
    let ok = counters.ok.load(Ordering::Relaxed);
    let window = opts.duration.as_secs_f64();
    let (node_cpu, node_cores) = n0.until(&n1);
    Ok(ApiRun {
        bench: "api",
        run,
        devices: opts.devices,
        matching,
        count: opts.count.clone(),
        connections: opts.connections,
        window_s: window,
        load_before,
        load_after: proc_stat::load_average(),
        requests_ok: ok,
        requests_per_s: ok as f64 / window,
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error.lock().ok().and_then(|f| f.clone()),
        latency_p50_ms: ms(0.5),
        latency_p90_ms: ms(0.9),
        latency_p99_ms: ms(0.99),
        latency_max_ms: max_us as f64 / 1000.0,
        response_bytes: counters.bytes.load(Ordering::Relaxed) as f64 / ok.max(1) as f64,
        node_cpu_cores: node_cores,
        node_cpu_us_per_request: node_cpu * 1e6 / ok.max(1) as f64,
        node_rss_kb: rss,
        postgres_cpu_cores: pg0.until(&pg1).1,
        redis_cpu_cores: rd0.until(&rd1).1,
        client_cpu_cores: me0.until(&me1).1,
    })
}

fn print_run(r: &ApiRun) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    eprintln!(
        "== api run {} ({} devices, {} matching, count={}, {} connections, {:.0}s window, load {} -> {})",
        r.run,
        r.devices,
        r.matching,
        r.count,
        r.connections,
        r.window_s,
        r.load_before,
        r.load_after
    );
    eprintln!(
        "   requests              {:.0}/s ({} ok, {} errors{}), {:.0} bytes each",
        r.requests_per_s,
        r.requests_ok,
        r.errors,
        r.first_error
            .as_deref()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default(),
        r.response_bytes
    );
    eprintln!(
        "   latency               p50 {} ms, p90 {} ms, p99 {} ms, max {:.1} ms",
        opt(r.latency_p50_ms),
        opt(r.latency_p90_ms),
        opt(r.latency_p99_ms),
        r.latency_max_ms
    );
    eprintln!(
        "   CPU (cores)           node {:.2} ({:.0} us/request), PostgreSQL {:.2}, Redis {:.2}, load generator {:.2}; node RSS {:.1} MiB",
        r.node_cpu_cores,
        r.node_cpu_us_per_request,
        r.postgres_cpu_cores,
        r.redis_cpu_cores,
        r.client_cpu_cores,
        r.node_rss_kb as f64 / 1024.0
    );
}

/// Median of the values (upper median for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn summarise(opts: &ApiOpts, runs: &[ApiRun]) -> anyhow::Result<()> {
    let rps = median(runs.iter().map(|r| r.requests_per_s).collect()).unwrap_or(0.0);
    let p99 = median(runs.iter().filter_map(|r| r.latency_p99_ms).collect());
    if runs.len() > 1 {
        eprintln!(
            "== api median of {} runs: {rps:.0} requests/s, p99 {} ms",
            runs.len(),
            p99.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
        );
    }
    let p99 = p99.unwrap_or(f64::INFINITY);
    let verdict = if rps >= 3000.0 && p99 <= 50.0 {
        "met"
    } else {
        "MISSED"
    };
    if !opts.smoke {
        eprintln!(
            "== target: device list >= 3,000 requests/s at p99 <= 50 ms with 100,000 devices: {verdict} ({rps:.0}/s, p99 {p99:.1} ms, {} devices)",
            opts.devices
        );
    }
    if opts.smoke {
        let mut problems = Vec::new();
        for r in runs {
            if r.requests_ok == 0 {
                problems.push(format!("run {}: no successful request", r.run));
            }
            if r.errors > r.requests_ok {
                problems.push(format!(
                    "run {}: {} errors for {} successes ({:?})",
                    r.run, r.errors, r.requests_ok, r.first_error
                ));
            }
            if r.node_cpu_cores <= 0.0 || r.node_rss_kb == 0 {
                problems.push(format!(
                    "run {}: no CPU or memory reading of the node",
                    r.run
                ));
            }
        }
        if !problems.is_empty() {
            bail!("the harness is not working: {}", problems.join("; "));
        }
        eprintln!("smoke: the api harness works (targets are not checked in smoke mode)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_status_counts_add_up() {
        for n in [1usize, 9, 10, 11, 2000, 100_000, 100_007] {
            let sum: u64 = ["online", "offline", "degraded"]
                .iter()
                .map(|s| seeded_with_status(n, s))
                .sum();
            assert_eq!(sum, n as u64, "{n}");
        }
        assert_eq!(seeded_with_status(100_000, "online"), 80_000);
        assert_eq!(seeded_with_status(11, "online"), 9);
        assert_eq!(seeded_with_status(11, "offline"), 1);
        assert_eq!(seeded_with_status(5, "degraded"), 0);
        assert_eq!(seeded_with_status(10, "connecting"), 0);
    }

    #[test]
    fn median_ignores_order() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5.0, f64::NAN]), Some(5.0));
    }
}
