//! `drover-bench cluster`: K real `drover run` nodes as one cluster (mutual-TLS certificates
//! from `drover cluster init-ca` / `issue-node-cert`, shard leases in Redis) supervising N
//! simulated devices seeded into a fresh database. Reports the time until every device is
//! online (summed from the nodes' `drover_devices` gauges), then, over a steady window, how
//! often the simulator itself saw each device polled (its per-device `recent_polls_unix_ms`):
//! exactly once per interval, twice, or missed; the spacing of polls around the interval;
//! the nodes' own lateness quantiles; per-node CPU and RSS; and PostgreSQL connections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::children::{find_sim, http_get, start_sim};
use crate::fleet::SimStats;
use crate::proc_stat::{self, parse_duration};
use crate::report::{device_addresses, unix_ms};
use crate::stack::{
    CpuMark, Database, DroverNode, NodeSettings, PG_ADMIN, SeedDevices, find_drover, free_port,
    psql, run_dir, seeded_tenant,
};

const SIM_PASSWORD: &str = "drover-bench";

/// Options of `drover-bench cluster`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClusterOpts {
    /// drover nodes in the cluster.
    #[arg(long, default_value_t = 6)]
    pub(crate) nodes: usize,
    /// Simulated devices.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) devices: usize,
    /// Poll interval of every device (whole seconds, at least 5).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Steady window measured after every device is online and one interval has passed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Give up when the fleet is not online after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) online_timeout: Duration,
    /// Tenants the devices are split over (seeded in parallel; 0: one per 25,000 devices).
    #[arg(long, default_value_t = 0)]
    pub(crate) tenants: usize,
    /// First simulated device address.
    #[arg(long, default_value = "127.44.0.1")]
    pub(crate) base: String,
    #[arg(long, default_value_t = 9000)]
    pub(crate) devices_per_process: usize,
    /// Use the cluster tests' fast timing (500 ms heartbeat, 3 s failure deadline, 6 s lease
    /// TTL, …) instead of drover's defaults: quick start-up for short runs, but peers are
    /// declared dead and leases lost when the machine is oversubscribed.
    #[arg(long)]
    pub(crate) test_timing: bool,
    #[arg(long)]
    pub(crate) drover_bin: Option<PathBuf>,
    #[arg(long)]
    pub(crate) sim_bin: Option<PathBuf>,
    /// Check that the harness works, not the targets.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Append the JSON result line to this file too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// Poll spacing per device from the simulator's counters, over a window.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PollCheck {
    pub(crate) window_s: f64,
    pub(crate) polls_served: u64,
    pub(crate) polls_planned: f64,
    /// Devices whose every poll gap (and both window edges) is within 0.5–1.5 intervals.
    pub(crate) devices_exactly_once: usize,
    /// Devices with at least one pair of polls less than half an interval apart.
    pub(crate) devices_polled_twice: usize,
    /// Such extra polls, over all devices.
    pub(crate) extra_polls: u64,
    /// Devices with at least one interval without a poll.
    pub(crate) devices_missed: usize,
    /// Intervals without a poll, over all devices.
    pub(crate) missed_intervals: u64,
    /// |gap − interval| between consecutive polls of a device, milliseconds.
    pub(crate) gap_jitter_p50_ms: Option<f64>,
    pub(crate) gap_jitter_p99_ms: Option<f64>,
    pub(crate) gap_jitter_max_ms: Option<f64>,
}

/// Classifies every device's polls within `[from_ms, to_ms]`.
pub(crate) fn check_polls(
    polls_per_device: &[Vec<u64>],
    from_ms: u64,
    to_ms: u64,
    interval: Duration,
) -> PollCheck {
    let iv = interval.as_millis() as u64;
    let mut c = PollCheck {
        window_s: (to_ms - from_ms) as f64 / 1000.0,
        polls_planned: polls_per_device.len() as f64 * (to_ms - from_ms) as f64 / iv as f64,
        ..PollCheck::default()
    };
    let mut jitter: Vec<f64> = Vec::new();
    for polls in polls_per_device {
        let mut times: Vec<u64> = polls
            .iter()
            .copied()
            .filter(|t| (from_ms..=to_ms).contains(t))
            .collect();
        times.sort_unstable();
        c.polls_served += times.len() as u64;
        let mut extra = 0u64;
        let mut missed = 0u64;
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            if gap < iv / 2 {
                extra += 1;
            } else {
                jitter.push(gap.abs_diff(iv) as f64);
                if gap > iv + iv / 2 {
                    missed += (gap + iv / 2) / iv - 1;
                }
            }
        }
        // The window edges: a device must be polled within 1.5 intervals of either end.
        let edges = match (times.first(), times.last()) {
            (Some(&first), Some(&last)) => [first - from_ms, to_ms - last],
            _ => [to_ms - from_ms, 0],
        };
        for gap in edges {
            if gap > iv + iv / 2 {
                missed += (gap + iv / 2) / iv;
            }
        }
        c.extra_polls += extra;
        c.missed_intervals += missed;
        c.devices_polled_twice += usize::from(extra > 0);
        c.devices_missed += usize::from(missed > 0);
        c.devices_exactly_once += usize::from(extra == 0 && missed == 0);
    }
    jitter.sort_by(f64::total_cmp);
    let q = |q: f64| {
        if jitter.is_empty() {
            None
        } else {
            let rank = ((q * jitter.len() as f64).ceil() as usize).clamp(1, jitter.len());
            Some(jitter[rank - 1])
        }
    };
    c.gap_jitter_p50_ms = q(0.5);
    c.gap_jitter_p99_ms = q(0.99);
    c.gap_jitter_max_ms = jitter.last().copied();
    c
}

/// Sum of every sample of `name` whose labels contain `label` (e.g. `status="online"`).
pub(crate) fn metric_sum(body: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((labels, value)) = r.split_once('}') else {
                continue;
            };
            (labels, value)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if label.is_some_and(|l| !labels.contains(l)) {
            continue;
        }
        let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        *found.get_or_insert(0.0) += v;
    }
    found
}

/// One node's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct NodeFigures {
    pub(crate) name: String,
    pub(crate) devices_at_end: f64,
    pub(crate) cpu_cores: f64,
    pub(crate) rss_kb: u64,
    pub(crate) lateness_p50_ms: Option<f64>,
    pub(crate) lateness_p99_ms: Option<f64>,
    pub(crate) alive: bool,
}

/// The result of one cluster run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ClusterResult {
    pub(crate) bench: &'static str,
    pub(crate) nodes: usize,
    pub(crate) devices: usize,
    pub(crate) interval_s: f64,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) seed_s: f64,
    pub(crate) all_online_s: Option<f64>,
    pub(crate) online_at_end: f64,
    pub(crate) polls: PollCheck,
    pub(crate) node: Vec<NodeFigures>,
    pub(crate) nodes_cpu_cores: f64,
    pub(crate) nodes_rss_kb: u64,
    pub(crate) sim_cpu_cores: f64,
    pub(crate) postgres_cpu_cores: f64,
    pub(crate) redis_cpu_cores: f64,
    pub(crate) nats_cpu_cores: f64,
    /// Connections to the benchmark's database at the end, by role.
    pub(crate) postgres_connections: BTreeMap<String, u64>,
    /// Events to NATS and samples to PostgreSQL over the window, summed over the nodes.
    pub(crate) pipeline: Pipeline,
}

/// What the nodes' event pipeline did over the window: samples written by the recorders and
/// events published to JetStream (rates from the nodes' counters), what was dropped, and how
/// far behind the recorders and publishers ran.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Pipeline {
    /// Samples the fleet produces per second (devices / interval).
    pub(crate) samples_offered_per_s: f64,
    pub(crate) samples_written_per_s: f64,
    pub(crate) events_published_per_s: f64,
    /// Events the recorders dropped (queue full) or the fan-out/publisher dropped.
    pub(crate) recorder_dropped: f64,
    pub(crate) events_dropped: f64,
    /// Largest `drover_recorder_lag_seconds` seen on any node, sampled every 10 s.
    pub(crate) recorder_lag_max_s: f64,
    /// Worst node's p99 of each event's time in the recorder (queued → batch written).
    pub(crate) recorder_write_lag_p99_ms: Option<f64>,
    /// Worst node's p99 of the JetStream publish lag.
    pub(crate) publish_lag_p99_ms: Option<f64>,
}

/// The counters behind [`Pipeline`], read from one node's metrics.
#[derive(Debug, Clone, Copy, Default)]
struct PipelineCounters {
    written: f64,
    published: f64,
    recorder_dropped: f64,
    events_dropped: f64,
}

impl PipelineCounters {
    fn read(body: &str) -> Self {
        Self {
            written: metric_sum(
                body,
                "drover_recorder_written_total",
                Some("kind=\"metrics\""),
            )
            .unwrap_or(0.0),
            published: metric_sum(body, "drover_events_published_total", None).unwrap_or(0.0),
            recorder_dropped: metric_sum(body, "drover_recorder_dropped_total", None)
                .unwrap_or(0.0),
            events_dropped: metric_sum(body, "drover_events_dropped_total", None).unwrap_or(0.0),
        }
    }

    fn sum(nodes: &[Self]) -> Self {
        nodes.iter().fold(Self::default(), |a, n| Self {
            written: a.written + n.written,
            published: a.published + n.published,
            recorder_dropped: a.recorder_dropped + n.recorder_dropped,
            events_dropped: a.events_dropped + n.events_dropped,
        })
    }
}

/// Every node's metrics text, in node order; empty for a node that does not answer (every
/// figure read from it is then absent or zero).
async fn scrape(nodes: &[DroverNode]) -> Vec<String> {
    let mut bodies = Vec::with_capacity(nodes.len());
    for n in nodes {
        bodies.push(n.metrics_text().await.unwrap_or_default());
    }
    bodies
}

/// The pipeline counters summed over the nodes' metrics.
fn pipeline_counters(bodies: &[String]) -> PipelineCounters {
    let per: Vec<PipelineCounters> = bodies.iter().map(|b| PipelineCounters::read(b)).collect();
    PipelineCounters::sum(&per)
}

/// The largest recorder lag gauge over the nodes' metrics, in seconds.
fn recorder_lag_s(bodies: &[String]) -> f64 {
    bodies
        .iter()
        .filter_map(|b| metric_sum(b, "drover_recorder_lag_seconds", None))
        .fold(0.0, f64::max)
}

/// Runs `drover cluster …` in `dir`.
async fn cluster_cmd(
    drover: &Path,
    dir: &Path,
    cluster: &str,
    args: &[&str],
) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(drover)
        .arg("cluster")
        .args(args)
        .current_dir(dir)
        .env("DROVER_CLUSTER_NAME", cluster)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "drover cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The cluster test harness's timing (api/server/tests/support/cluster_harness.rs), with
/// `--test-timing`, unless the environment of this benchmark sets them.
const CLUSTER_TIMING: &[(&str, &str)] = &[
    ("DROVER_CLUSTER_HEARTBEAT_MS", "500"),
    ("DROVER_CLUSTER_FAILURE_DEADLINE_MS", "3000"),
    ("DROVER_LEASE_TTL_MS", "6000"),
    ("DROVER_LEASE_RENEW_MS", "1500"),
    ("DROVER_LEASE_MARGIN_MS", "1500"),
    ("DROVER_REBALANCE_HOLD_MS", "2000"),
    ("DROVER_HANDOVER_GRACE_MS", "300"),
    ("DROVER_MIN_OWNERSHIP_MS", "6000"),
];

pub(crate) async fn run(opts: ClusterOpts) -> anyhow::Result<()> {
    if opts.nodes == 0 || opts.devices == 0 {
        bail!("--nodes and --devices must be at least 1");
    }
    let interval_s = opts.interval.as_secs();
    if interval_s < 5 || opts.interval.subsec_nanos() != 0 {
        bail!("--interval must be whole seconds, at least 5 (the store's minimum)");
    }
    let drover = find_drover(opts.drover_bin.as_deref())?;
    let sim_bin = find_sim(opts.sim_bin.as_deref())?;
    let dir = run_dir("cluster")?;
    eprintln!(
        "drover-bench cluster: {} nodes, {} devices, interval {interval_s}s, window {:?}; {} cores, load {}; files in {}",
        opts.nodes,
        opts.devices,
        opts.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_stat::load_average(),
        dir.display()
    );
    let load_before = proc_stat::load_average();
    let t = Instant::now();
    let (mut sim_group, sim) = start_sim(
        &sim_bin,
        opts.devices,
        &opts.base,
        opts.devices_per_process,
        SIM_PASSWORD,
    )
    .await?;
    eprintln!(
        "  drover-sim ready in {:.1}s: {} devices from {}",
        t.elapsed().as_secs_f64(),
        sim.devices,
        sim.first
    );
    let mut db = Database::create(&drover, "cluster").await?;
    let mut nodes: Vec<DroverNode> = Vec::new();
    let result = async {
        // Seed: the devices split over a few tenants, seeded in parallel.
        let t = Instant::now();
        let tenants = if opts.tenants == 0 {
            opts.devices.div_ceil(25_000)
        } else {
            opts.tenants
        }
        .clamp(1, opts.devices);
        let first: std::net::Ipv4Addr = sim.first.parse().context("first device")?;
        let addresses = device_addresses(first, opts.devices);
        let per = opts.devices.div_ceil(tenants);
        let mut seeding = Vec::new();
        for (i, chunk) in addresses.chunks(per).enumerate() {
            let first = chunk[0].to_string();
            let child = db
                .demo_seed_command(
                    &drover,
                    &format!("bench-cluster-{i}"),
                    &SeedDevices {
                        count: chunk.len(),
                        first: &first,
                        port: sim.tls_port,
                        password: SIM_PASSWORD,
                        interval_s,
                    },
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            seeding.push(child);
        }
        for child in seeding {
            seeded_tenant(child).await?;
        }
        let seed_s = t.elapsed().as_secs_f64();
        eprintln!(
            "  seeded {} devices in {tenants} tenant(s) in {seed_s:.1}s",
            opts.devices
        );

        cluster_cmd(&drover, &dir, &db.name, &["init-ca", "--out-dir", "ca"]).await?;
        let listens: Vec<String> = (0..opts.nodes)
            .map(|_| free_port().map(|p| format!("127.0.0.1:{p}")))
            .collect::<anyhow::Result<_>>()?;
        for i in 0..opts.nodes {
            let name = format!("bench-node-{i}");
            cluster_cmd(
                &drover,
                &dir,
                &db.name,
                &[
                    "issue-node-cert",
                    "--ca-cert",
                    "ca/ca.pem",
                    "--ca-key",
                    "ca/ca.key",
                    "--node-name",
                    &name,
                    "--out-dir",
                    "certs",
                ],
            )
            .await?;
        }
        let started = Instant::now();
        for (i, listen) in listens.iter().enumerate() {
            let name = format!("bench-node-{i}");
            let seeds: Vec<&str> = listens
                .iter()
                .filter(|l| *l != listen)
                .map(String::as_str)
                .collect();
            let mut env: Vec<(String, String)> = vec![
                (
                    "DROVER_CLUSTER_REDIS_URL".into(),
                    "redis://127.0.0.1:6379".into(),
                ),
                ("DROVER_CLUSTER_LISTEN".into(), listen.clone()),
                ("DROVER_CLUSTER_SEEDS".into(), seeds.join(",")),
                (
                    "DROVER_CLUSTER_CA".into(),
                    path_text(&dir.join("ca/ca.pem")),
                ),
                (
                    "DROVER_CLUSTER_CERT".into(),
                    path_text(&dir.join(format!("certs/{name}.pem"))),
                ),
                (
                    "DROVER_CLUSTER_KEY".into(),
                    path_text(&dir.join(format!("certs/{name}.key"))),
                ),
            ];
            for (k, v) in CLUSTER_TIMING {
                if opts.test_timing && std::env::var_os(k).is_none() {
                    env.push(((*k).into(), (*v).into()));
                }
            }
            let settings = NodeSettings {
                name: name.clone(),
                roles: "both".into(),
                env,
                log: dir.join(format!("{name}.log")),
            };
            nodes.push(DroverNode::spawn(&drover, &db, &settings).await?);
        }
        for n in &nodes {
            n.wait_ready(Duration::from_secs(180)).await?;
        }
        eprintln!(
            "  {} nodes ready after {:.1}s",
            nodes.len(),
            started.elapsed().as_secs_f64()
        );
        measure(
            &opts,
            &nodes,
            &sim_group,
            &sim.control,
            &db,
            started,
            seed_s,
        )
        .await
    }
    .await;
    for n in &mut nodes {
        n.stop().await;
    }
    sim_group.stop(Duration::from_secs(30)).await;
    db.drop_now().await;
    let mut r = result?;
    r.load_before = load_before;
    r.load_after = proc_stat::load_average();
    print_result(&r);
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
    if !opts.smoke {
        targets(&r);
    }
    if opts.smoke {
        let mut problems = Vec::new();
        if r.all_online_s.is_none() {
            problems.push(format!(
                "only {} of {} devices online",
                r.online_at_end, r.devices
            ));
        }
        if r.polls.polls_served == 0 {
            problems.push("the simulator counted no polls in the window".into());
        }
        if r.node.iter().any(|n| !n.alive || n.rss_kb == 0) {
            problems.push("a node died or has no memory reading".into());
        }
        if !problems.is_empty() {
            bail!("the harness is not working: {}", problems.join("; "));
        }
        eprintln!("smoke: the cluster harness works (targets are not checked in smoke mode)");
    }
    Ok(())
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Devices online or degraded (answering polls) summed over the nodes' gauges.
async fn answering(nodes: &[DroverNode]) -> (f64, Vec<f64>) {
    answering_in(&scrape(nodes).await)
}

/// [`answering`] from metrics already scraped.
fn answering_in(bodies: &[String]) -> (f64, Vec<f64>) {
    let per: Vec<f64> = bodies
        .iter()
        .map(|body| {
            metric_sum(body, "drover_devices", Some("status=\"online\"")).unwrap_or(0.0)
                + metric_sum(body, "drover_devices", Some("status=\"degraded\"")).unwrap_or(0.0)
        })
        .collect();
    (per.iter().sum(), per)
}

async fn measure(
    opts: &ClusterOpts,
    nodes: &[DroverNode],
    sim_group: &crate::children::ChildGroup,
    sim_control: &str,
    db: &Database,
    started: Instant,
    seed_s: f64,
) -> anyhow::Result<ClusterResult> {
    let n = opts.devices as f64;
    let mut all_online_s = None;
    let mut last_print = Instant::now();
    let online_deadline = started + opts.online_timeout;
    let mut online = 0.0;
    while Instant::now() < online_deadline {
        let (sum, per) = answering(nodes).await;
        online = sum;
        if sum >= n {
            all_online_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        if nodes.iter().any(|node| !node.alive()) {
            bail!("a node exited while the fleet came online");
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            eprintln!(
                "  t={:>5.1}s answering {sum:.0}/{n:.0} (per node {per:?}), load {}",
                started.elapsed().as_secs_f64(),
                proc_stat::load_average()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match all_online_s {
        Some(s) => eprintln!("  all {n:.0} devices answering after {s:.1}s"),
        None => eprintln!(
            "  only {online:.0}/{n:.0} answering after {:?}",
            opts.online_timeout
        ),
    }
    // One interval for the schedule to settle, then the window.
    tokio::time::sleep(opts.interval).await;
    let usage = |nodes: &[DroverNode]| {
        let per: Vec<CpuMark> = nodes.iter().map(|x| CpuMark::now(x.usage().0)).collect();
        (
            per,
            CpuMark::now(proc_stat::group_usage(sim_group.pgid()).0),
            CpuMark::now(crate::stack::cpu_of_commands(&["postgres"])),
            CpuMark::now(crate::stack::cpu_of_commands(&["redis-server"])),
            CpuMark::now(crate::stack::cpu_of_commands(&["nats-server"])),
        )
    };
    let from_ms = unix_ms();
    let bodies0 = scrape(nodes).await;
    let pipe0 = pipeline_counters(&bodies0);
    let window_start = Instant::now();
    let (nodes0, sim0, pg0, rd0, nats0) = usage(nodes);
    let window_end = Instant::now() + opts.duration;
    let mut lag_max_s = recorder_lag_s(&bodies0);
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_secs(10).min(window_end - Instant::now())).await;
        let bodies = scrape(nodes).await;
        let (sum, _) = answering_in(&bodies);
        let lag = recorder_lag_s(&bodies);
        lag_max_s = lag_max_s.max(lag);
        eprintln!(
            "  window: {:.0}s left, answering {sum:.0}/{n:.0}, recorder lag {lag:.2}s, load {}",
            (window_end - Instant::now()).as_secs_f64(),
            proc_stat::load_average()
        );
    }
    let (nodes1, sim1, pg1, rd1, nats1) = usage(nodes);
    let bodies = scrape(nodes).await;
    let pipe1 = pipeline_counters(&bodies);
    let window_s = window_start.elapsed().as_secs_f64();
    let to_ms = unix_ms();
    let mut write_lag_p99_ms: Option<f64> = None;
    let mut publish_lag_p99_ms: Option<f64> = None;
    let mut figures = Vec::new();
    for (i, (node, body)) in nodes.iter().zip(&bodies).enumerate() {
        let q = |quantile: &str| {
            metric_sum(
                body,
                "drover_device_poll_lateness_seconds",
                Some(&format!("quantile=\"{quantile}\"")),
            )
            .map(|s| s * 1000.0)
        };
        let p99 =
            |name: &str| metric_sum(body, name, Some("quantile=\"0.99\"")).map(|s| s * 1000.0);
        let worst = |acc: Option<f64>, v: Option<f64>| match (acc, v) {
            (Some(a), Some(v)) => Some(a.max(v)),
            (a, v) => a.or(v),
        };
        write_lag_p99_ms = worst(write_lag_p99_ms, p99("drover_recorder_write_lag_seconds"));
        publish_lag_p99_ms = worst(publish_lag_p99_ms, p99("drover_events_publish_lag_seconds"));
        figures.push(NodeFigures {
            name: node.name.clone(),
            devices_at_end: metric_sum(body, "drover_devices", None).unwrap_or(0.0),
            cpu_cores: nodes0[i].until(&nodes1[i]).1,
            rss_kb: node.usage().1,
            lateness_p50_ms: q("0.5"),
            lateness_p99_ms: q("0.99"),
            alive: node.alive(),
        });
    }
    let (online_at_end, _) = answering(nodes).await;
    let connections = psql(
        &format!("{PG_ADMIN}/postgres"),
        &format!(
            "SELECT usename || '=' || count(*) FROM pg_stat_activity WHERE datname = '{}' GROUP BY usename ORDER BY 1",
            db.name
        ),
    )
    .await
    .unwrap_or_default();
    let postgres_connections = connections
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect();
    let t = Instant::now();
    let body = http_get(sim_control, "/stats").await?;
    let stats: SimStats =
        serde_json::from_slice(&body).context("parsing the simulator's /stats")?;
    eprintln!(
        "  simulator counters: {} devices, {:.1} MB in {:.1}s",
        stats.devices.len(),
        body.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let polls: Vec<Vec<u64>> = stats
        .devices
        .into_iter()
        .map(|d| d.recent_polls_unix_ms)
        .collect();
    Ok(ClusterResult {
        bench: "cluster",
        nodes: nodes.len(),
        devices: opts.devices,
        interval_s: opts.interval.as_secs_f64(),
        seed_s,
        all_online_s,
        online_at_end,
        polls: check_polls(&polls, from_ms, to_ms, opts.interval),
        nodes_cpu_cores: figures.iter().map(|f| f.cpu_cores).sum(),
        nodes_rss_kb: figures.iter().map(|f| f.rss_kb).sum(),
        node: figures,
        sim_cpu_cores: sim0.until(&sim1).1,
        postgres_cpu_cores: pg0.until(&pg1).1,
        redis_cpu_cores: rd0.until(&rd1).1,
        nats_cpu_cores: nats0.until(&nats1).1,
        postgres_connections,
        pipeline: Pipeline {
            samples_offered_per_s: n / opts.interval.as_secs_f64(),
            samples_written_per_s: (pipe1.written - pipe0.written) / window_s,
            events_published_per_s: (pipe1.published - pipe0.published) / window_s,
            recorder_dropped: pipe1.recorder_dropped - pipe0.recorder_dropped,
            events_dropped: pipe1.events_dropped - pipe0.events_dropped,
            recorder_lag_max_s: lag_max_s,
            recorder_write_lag_p99_ms: write_lag_p99_ms,
            publish_lag_p99_ms,
        },
        ..ClusterResult::default()
    })
}

fn print_result(r: &ClusterResult) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let p = &r.polls;
    eprintln!(
        "== cluster ({} nodes, {} devices, interval {}s, window {:.0}s, load {} -> {})",
        r.nodes, r.devices, r.interval_s, p.window_s, r.load_before, r.load_after
    );
    eprintln!(
        "   seeded in {:.1}s; all answering after {} s (at end {:.0})",
        r.seed_s,
        opt(r.all_online_s),
        r.online_at_end
    );
    eprintln!(
        "   polls (simulator)     {} served / {:.0} planned; exactly once per interval: {} devices; polled twice: {} devices ({} extra polls); missed: {} devices ({} intervals)",
        p.polls_served,
        p.polls_planned,
        p.devices_exactly_once,
        p.devices_polled_twice,
        p.extra_polls,
        p.devices_missed,
        p.missed_intervals
    );
    eprintln!(
        "   poll spacing          |gap - interval| p50 {} ms, p99 {} ms, max {} ms",
        opt(p.gap_jitter_p50_ms),
        opt(p.gap_jitter_p99_ms),
        opt(p.gap_jitter_max_ms)
    );
    for n in &r.node {
        eprintln!(
            "   {:<20} {:>7.0} devices, {:.2} cores, RSS {:.1} MiB, lateness p50 {} ms p99 {} ms{}",
            n.name,
            n.devices_at_end,
            n.cpu_cores,
            n.rss_kb as f64 / 1024.0,
            opt(n.lateness_p50_ms),
            opt(n.lateness_p99_ms),
            if n.alive { "" } else { " (DEAD)" }
        );
    }
    eprintln!(
        "   CPU (cores)           nodes {:.2}, simulator {:.2}, PostgreSQL {:.2}, Redis {:.2}, NATS {:.2}; nodes RSS {:.0} MiB",
        r.nodes_cpu_cores,
        r.sim_cpu_cores,
        r.postgres_cpu_cores,
        r.redis_cpu_cores,
        r.nats_cpu_cores,
        r.nodes_rss_kb as f64 / 1024.0
    );
    eprintln!("   PostgreSQL connections {:?}", r.postgres_connections);
    let pl = &r.pipeline;
    eprintln!(
        "   samples to PostgreSQL {:.0}/s of {:.0}/s offered, recorder dropped {:.0}, lag max {:.2} s, time in recorder p99 {} ms (worst node)",
        pl.samples_written_per_s,
        pl.samples_offered_per_s,
        pl.recorder_dropped,
        pl.recorder_lag_max_s,
        opt(pl.recorder_write_lag_p99_ms)
    );
    eprintln!(
        "   events to NATS        {:.0}/s, dropped {:.0}, publish lag p99 {} ms (worst node)",
        pl.events_published_per_s,
        pl.events_dropped,
        opt(pl.publish_lag_p99_ms)
    );
}

fn targets(r: &ClusterResult) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let up = r.all_online_s.unwrap_or(f64::INFINITY);
    eprintln!("== targets (100,000 devices, 6 nodes, 60 s on this machine)");
    eprintln!(
        "   all online within 5 minutes:           {} ({up:.0} s)",
        verdict(up <= 300.0)
    );
    eprintln!(
        "   every device polled once per interval: {} ({} of {} devices)",
        verdict(r.polls.devices_exactly_once == r.devices),
        r.polls.devices_exactly_once,
        r.devices
    );
    let p99 = r
        .node
        .iter()
        .filter_map(|n| n.lateness_p99_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    eprintln!(
        "   lateness p99 <= 1 s (worst node):      {} ({} ms)",
        verdict(p99.is_some_and(|v| v <= 1000.0)),
        p99.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
    );
    let pl = &r.pipeline;
    eprintln!(
        "   samples written, not falling behind:   {} ({:.0} of {:.0}/s, {:.0} dropped, lag max {:.2} s)",
        verdict(keeps_up(pl, r.interval_s)),
        pl.samples_written_per_s,
        pl.samples_offered_per_s,
        pl.recorder_dropped,
        pl.recorder_lag_max_s
    );
}

/// The recorders kept up: (nearly) every offered sample written within the window, none
/// dropped, and no recorder ever more than one poll interval behind.
fn keeps_up(pl: &Pipeline, interval_s: f64) -> bool {
    pl.samples_written_per_s >= 0.98 * pl.samples_offered_per_s
        && pl.recorder_dropped == 0.0
        && pl.recorder_lag_max_s < interval_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_classified_per_interval() {
        let iv = Duration::from_secs(10);
        let (from, to) = (1_000_000u64, 1_060_000u64);
        let steady: Vec<u64> = (0..6).map(|i| from + 5_000 + i * 10_000).collect();
        let mut doubled = steady.clone();
        doubled.push(from + 5_000 + 2_000);
        let gap: Vec<u64> = steady
            .iter()
            .copied()
            .filter(|t| *t != from + 25_000 && *t != from + 35_000)
            .collect();
        let outside = vec![from - 5_000, to + 5_000];
        let c = check_polls(&[steady, doubled, gap, outside], from, to, iv);
        assert_eq!(c.devices_exactly_once, 1);
        assert_eq!((c.devices_polled_twice, c.extra_polls), (1, 1));
        // The gap device misses two intervals; the device polled only outside the window
        // misses all six.
        assert_eq!(c.devices_missed, 2);
        assert_eq!(c.missed_intervals, 2 + 6);
        assert_eq!(c.polls_served, 6 + 7 + 4);
        assert!((c.polls_planned - 24.0).abs() < 1e-9);
        assert_eq!(c.gap_jitter_p50_ms, Some(0.0));
    }

    #[test]
    fn metrics_are_summed_by_label() {
        let body = "# TYPE drover_devices gauge\n\
                    drover_devices{status=\"online\"} 40\n\
                    drover_devices{status=\"offline\"} 2\n\
                    drover_devices_other 7\n\
                    drover_device_poll_lateness_seconds{quantile=\"0.99\"} 0.25\n";
        assert_eq!(metric_sum(body, "drover_devices", None), Some(42.0));
        assert_eq!(
            metric_sum(body, "drover_devices", Some("status=\"online\"")),
            Some(40.0)
        );
        assert_eq!(
            metric_sum(
                body,
                "drover_device_poll_lateness_seconds",
                Some("quantile=\"0.99\"")
            ),
            Some(0.25)
        );
        assert_eq!(metric_sum(body, "drover_missing", None), None);
    }

    #[test]
    fn pipeline_counters_and_the_keep_up_verdict() {
        let body = "drover_recorder_written_total{kind=\"metrics\"} 1200\n\
                    drover_recorder_written_total{kind=\"status\"} 7\n\
                    drover_events_published_total 1300\n\
                    drover_recorder_dropped_total 0\n\
                    drover_events_dropped_total{reason=\"recorder_full\"} 2\n\
                    drover_events_dropped_total{reason=\"nats_down\"} 3\n";
        let c = PipelineCounters::read(body);
        assert_eq!(
            (c.written, c.published, c.recorder_dropped, c.events_dropped),
            (1200.0, 1300.0, 0.0, 5.0)
        );
        let two = PipelineCounters::sum(&[c, c]);
        assert_eq!((two.written, two.events_dropped), (2400.0, 10.0));
        let good = Pipeline {
            samples_offered_per_s: 1667.0,
            samples_written_per_s: 1660.0,
            recorder_lag_max_s: 0.4,
            ..Pipeline::default()
        };
        assert!(keeps_up(&good, 60.0));
        let slow = Pipeline {
            samples_written_per_s: 1500.0,
            ..good.clone()
        };
        assert!(!keeps_up(&slow, 60.0), "10 % short");
        let dropped = Pipeline {
            recorder_dropped: 1.0,
            ..good.clone()
        };
        assert!(!keeps_up(&dropped, 60.0), "a drop");
        let behind = Pipeline {
            recorder_lag_max_s: 61.0,
            ..good
        };
        assert!(!keeps_up(&behind, 60.0), "a minute behind");
    }
}
