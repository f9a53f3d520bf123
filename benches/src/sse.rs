//! `drover-bench sse`: Server-Sent Events fan-out. Starts `drover-sim` with a few devices, a
//! fresh database seeded with them, and a real `drover run`; opens N SSE streams of the tenant
//! (spread over child processes of this binary, `sse-clients`, each below the open-file
//! limit), then makes the devices flap through the simulator's control API and measures, for
//! every `device.status` event, the delay from the transition (the event's own `at`, stamped
//! by the device actor) to the first and to the last client receiving it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::api::median;
use crate::children::{ChildGroup, find_sim, start_sim};
use crate::http1::{Conn, Dechunker, Framing, request_once};
use crate::proc_stat::{self, parse_duration};
use crate::report::{device_addresses, exit_when_stdin_closes};
use crate::stack::{
    CpuMark, Database, DroverNode, NodeSettings, SeedDevices, find_drover, run_dir,
};

const SIM_PASSWORD: &str = "drover-bench";
/// How the parent hands the access token to the client processes (never on a command line).
const TOKEN_ENV: &str = "DROVER_BENCH_SSE_TOKEN";

/// Options of `drover-bench sse`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SseOpts {
    /// Concurrent SSE clients of the tenant.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) clients: usize,
    /// Clients per child process (each process may hold at most 20,000 open files).
    #[arg(long, default_value_t = 2_500)]
    pub(crate) clients_per_process: usize,
    /// Simulated devices in the tenant; each flaps on its own period.
    #[arg(long, default_value_t = 4)]
    pub(crate) devices: usize,
    /// Poll interval of the devices.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Flap period of the first device (the next ones add 1.3 s each); down half of it.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub(crate) flap_period: Duration,
    /// Status events to measure before stopping.
    #[arg(long, default_value_t = 30)]
    pub(crate) changes: usize,
    /// Stop measuring after this long even with fewer events.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub(crate) max_duration: Duration,
    /// Streams being opened at once, per client process.
    #[arg(long, default_value_t = 32)]
    pub(crate) open_concurrency: usize,
    /// First simulated device address.
    #[arg(long, default_value = "127.43.0.1")]
    pub(crate) base: String,
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

/// Options of the hidden `sse-clients` child.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SseClientOpts {
    /// The node's HTTP address.
    #[arg(long)]
    pub(crate) addr: SocketAddr,
    #[arg(long)]
    pub(crate) tenant: String,
    #[arg(long)]
    pub(crate) clients: usize,
    #[arg(long, default_value_t = 32)]
    pub(crate) open_concurrency: usize,
}

/// One event as a client process saw it, summed over its clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EventSeen {
    seq: u64,
    device_id: String,
    status: String,
    /// The event's `at`, unix microseconds.
    at_us: i64,
    received: u64,
    first_us: i64,
    last_us: i64,
}

/// A line of a client process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ClientLine {
    /// Streams open so far, failed to open, and ended after opening.
    State {
        open: u64,
        failed: u64,
        ended: u64,
        first_failure: Option<String>,
    },
    Event(EventSeen),
}

fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn emit(line: &ClientLine) {
    use std::io::Write;
    if let Ok(text) = serde_json::to_string(line) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

// ---------------------------------------------------------------------------------------
// The client processes
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ClientShared {
    open: AtomicU64,
    failed: AtomicU64,
    ended: AtomicU64,
    first_failure: Mutex<Option<String>>,
    /// Per event sequence: what the clients of this process saw, and when it was first seen.
    events: Mutex<HashMap<u64, (EventSeen, Instant)>>,
}

impl ClientShared {
    fn fail(&self, counter: &AtomicU64, why: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_failure.lock()
            && f.is_none()
        {
            *f = Some(why);
        }
    }

    fn state(&self) -> ClientLine {
        ClientLine::State {
            open: self.open.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
            first_failure: self.first_failure.lock().ok().and_then(|f| f.clone()),
        }
    }

    /// Records that one client received event `seq` at `now_us`.
    fn saw(&self, seq: u64, data: &str, now_us: i64) {
        let Ok(mut events) = self.events.lock() else {
            return;
        };
        let entry = events.entry(seq).or_insert_with(|| {
            let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
            let at_us = v["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(0, |t| t.timestamp_micros());
            (
                EventSeen {
                    seq,
                    device_id: v["device_id"].as_str().unwrap_or_default().to_owned(),
                    status: v["status"].as_str().unwrap_or_default().to_owned(),
                    at_us,
                    received: 0,
                    first_us: now_us,
                    last_us: now_us,
                },
                Instant::now(),
            )
        });
        entry.0.received += 1;
        entry.0.first_us = entry.0.first_us.min(now_us);
        entry.0.last_us = entry.0.last_us.max(now_us);
    }

    /// Events every live client has, or first seen more than `patience` ago.
    fn take_finished(&self, patience: Duration) -> Vec<EventSeen> {
        let live = self
            .open
            .load(Ordering::Relaxed)
            .saturating_sub(self.ended.load(Ordering::Relaxed));
        let Ok(mut events) = self.events.lock() else {
            return Vec::new();
        };
        let done: Vec<u64> = events
            .iter()
            .filter(|(_, (e, first))| e.received >= live || first.elapsed() > patience)
            .map(|(seq, _)| *seq)
            .collect();
        done.iter()
            .filter_map(|seq| events.remove(seq).map(|(e, _)| e))
            .collect()
    }
}

pub(crate) fn run_clients(opts: SseClientOpts) -> anyhow::Result<()> {
    exit_when_stdin_closes();
    let token = std::env::var(TOKEN_ENV).context("no access token in the environment")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(clients(opts, token))
}

async fn clients(opts: SseClientOpts, token: String) -> anyhow::Result<()> {
    let shared = Arc::new(ClientShared::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(opts.open_concurrency.max(1)));
    let bearer: Arc<str> = Arc::from(format!("Bearer {token}"));
    let path: Arc<str> = Arc::from(format!("/api/sse/subscribe?tenant_id={}", opts.tenant));
    for _ in 0..opts.clients {
        let shared = Arc::clone(&shared);
        let gate = Arc::clone(&gate);
        let bearer = Arc::clone(&bearer);
        let path = Arc::clone(&path);
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            match open_stream(opts.addr, &path, &bearer).await {
                Ok((stream, rest, chunked)) => {
                    shared.open.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    let why = read_stream(stream, rest, chunked, &shared).await;
                    shared.fail(&shared.ended, why);
                }
                Err(e) => shared.fail(&shared.failed, format!("{e:#}")),
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_state = Instant::now() - Duration::from_secs(10);
    loop {
        tick.tick().await;
        for e in shared.take_finished(Duration::from_secs(10)) {
            emit(&ClientLine::Event(e));
        }
        if last_state.elapsed() >= Duration::from_secs(1) {
            last_state = Instant::now();
            emit(&shared.state());
        }
    }
}

async fn open_stream(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
) -> anyhow::Result<(tokio::net::TcpStream, Vec<u8>, bool)> {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut conn = Conn::connect(addr).await?;
        conn.send_request(
            "GET",
            path,
            &[("Authorization", bearer), ("Accept", "text/event-stream")],
            None,
        )
        .await?;
        let head = conn.read_head().await?;
        if head.status != 200 {
            let body = conn.read_body(&head).await.unwrap_or_default();
            bail!(
                "HTTP {}: {}",
                head.status,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        let chunked = head.framing == Framing::Chunked;
        let (stream, rest) = conn.into_stream();
        Ok((stream, rest, chunked))
    })
    .await
    .context("the stream did not open within 60 s")?
}

/// Reads one event stream until it ends; returns why it ended.
async fn read_stream(
    mut stream: tokio::net::TcpStream,
    first: Vec<u8>,
    chunked: bool,
    shared: &ClientShared,
) -> String {
    let mut dechunker = Dechunker::default();
    let mut text: Vec<u8> = Vec::new();
    let mut raw = first;
    let mut buf = vec![0u8; 4096];
    loop {
        let now_us = unix_us();
        if chunked {
            if let Err(e) = dechunker.feed(&raw, &mut text) {
                return format!("bad chunked stream: {e:#}");
            }
        } else {
            text.extend_from_slice(&raw);
        }
        raw.clear();
        while let Some(end) = text.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = text.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let (mut event, mut id, mut data) = ("", None, String::new());
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event = value,
                    "id" => id = value.parse::<u64>().ok(),
                    "data" => {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(value);
                    }
                    _ => {}
                }
            }
            match (event, id) {
                ("device.status", Some(seq)) => shared.saw(seq, &data, now_us),
                ("error", _) => return format!("server ended the stream: {data}"),
                _ => {}
            }
        }
        if dechunker.ended() {
            return "stream ended".into();
        }
        match stream.read(&mut buf).await {
            Ok(0) => return "connection closed".into(),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return format!("read: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------------------

/// The result of one `drover-bench sse` run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SseResult {
    pub(crate) bench: &'static str,
    pub(crate) clients: usize,
    pub(crate) client_processes: usize,
    pub(crate) devices: usize,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) connect_s: f64,
    pub(crate) clients_open: u64,
    pub(crate) clients_failed: u64,
    pub(crate) clients_ended: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) events_measured: usize,
    /// Events that did not reach every open client within 10 s.
    pub(crate) events_incomplete: usize,
    pub(crate) to_first_p50_ms: Option<f64>,
    pub(crate) to_last_p50_ms: Option<f64>,
    pub(crate) to_last_p99_ms: Option<f64>,
    pub(crate) to_last_max_ms: Option<f64>,
    /// Time from the first to the last client receiving an event (the fan-out itself).
    pub(crate) spread_p50_ms: Option<f64>,
    pub(crate) node_rss_before_kb: u64,
    pub(crate) node_rss_with_clients_kb: u64,
    pub(crate) node_kb_per_client: f64,
    pub(crate) node_cpu_cores: f64,
    pub(crate) clients_cpu_cores: f64,
}

/// Quantile of a sorted slice (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

pub(crate) async fn run(opts: SseOpts) -> anyhow::Result<()> {
    if opts.clients == 0 || opts.devices == 0 || opts.clients_per_process == 0 {
        bail!("--clients, --devices and --clients-per-process must be at least 1");
    }
    let drover = find_drover(opts.drover_bin.as_deref())?;
    let sim_bin = find_sim(opts.sim_bin.as_deref())?;
    let dir = run_dir("sse")?;
    eprintln!(
        "drover-bench sse: {} clients over {} processes, {} flapping devices; {} cores, load {}; logs in {}",
        opts.clients,
        opts.clients.div_ceil(opts.clients_per_process),
        opts.devices,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_stat::load_average(),
        dir.display()
    );
    let (mut sim_group, sim) =
        start_sim(&sim_bin, opts.devices, &opts.base, 9000, SIM_PASSWORD).await?;
    let mut db = Database::create(&drover, "sse").await?;
    let result = async {
        let tenant = db
            .demo_seed(
                &drover,
                "bench-sse",
                &SeedDevices {
                    count: opts.devices,
                    first: &sim.first,
                    port: sim.tls_port,
                    password: SIM_PASSWORD,
                    interval_s: opts.interval.as_secs().max(5),
                },
            )
            .await?;
        let settings = NodeSettings {
            name: "bench-sse".into(),
            roles: "both".into(),
            env: vec![(
                "DROVER_SSE_MAX_CLIENTS".into(),
                (opts.clients + 100).to_string(),
            )],
            log: dir.join("drover.log"),
        };
        let mut node = DroverNode::start(&drover, &db, &settings, Duration::from_secs(120)).await?;
        let r = measure(&opts, &node, &tenant, &sim.control, &sim.first).await;
        node.stop().await;
        r
    }
    .await;
    sim_group.stop(Duration::from_secs(20)).await;
    db.drop_now().await;
    let r = result?;
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
    let p99 = r.to_last_p99_ms.unwrap_or(f64::INFINITY);
    if !opts.smoke {
        eprintln!(
            "== target: a device change reaches all of 10,000 clients with p99 <= 250 ms: {} (p99 {p99:.1} ms at {} clients)",
            if p99 <= 250.0 && r.clients >= 10_000 {
                "met"
            } else {
                "MISSED"
            },
            r.clients_open
        );
    }
    if opts.smoke {
        let mut problems = Vec::new();
        if r.clients_open < r.clients as u64 {
            problems.push(format!(
                "{} of {} streams opened ({:?})",
                r.clients_open, r.clients, r.first_failure
            ));
        }
        if r.events_measured == 0 {
            problems.push("no device.status event reached the clients".into());
        }
        if r.node_rss_with_clients_kb == 0 {
            problems.push("no memory reading of the node".into());
        }
        if !problems.is_empty() {
            bail!("the harness is not working: {}", problems.join("; "));
        }
        eprintln!("smoke: the sse harness works (targets are not checked in smoke mode)");
    }
    Ok(())
}

/// Per client process: its group, the clients it holds, and its latest state.
struct ClientProcess {
    group: ChildGroup,
    clients: usize,
    open: u64,
    failed: u64,
    ended: u64,
}

/// Takes one line of client process `index` into the per-process state and the events seen.
fn absorb(
    procs: &mut [ClientProcess],
    first_failure: &mut Option<String>,
    seen: &mut HashMap<u64, (EventSeen, usize)>,
    (index, line): (usize, ClientLine),
) {
    match line {
        ClientLine::State {
            open,
            failed,
            ended,
            first_failure: f,
        } => {
            if let Some(p) = procs.get_mut(index) {
                p.open = open;
                p.failed = failed;
                p.ended = ended;
            }
            if first_failure.is_none() {
                *first_failure = f;
            }
        }
        ClientLine::Event(e) => {
            let slot = seen.entry(e.seq).or_insert_with(|| {
                (
                    EventSeen {
                        received: 0,
                        first_us: i64::MAX,
                        last_us: i64::MIN,
                        ..e.clone()
                    },
                    0,
                )
            });
            slot.0.received += e.received;
            slot.0.first_us = slot.0.first_us.min(e.first_us);
            slot.0.last_us = slot.0.last_us.max(e.last_us);
            slot.1 += 1;
        }
    }
}

async fn measure(
    opts: &SseOpts,
    node: &DroverNode,
    tenant: &str,
    sim_control: &str,
    first_device: &str,
) -> anyhow::Result<SseResult> {
    let admin = node.admin_session().await.context("super_admin sign-in")?;
    let viewer = admin.create_user(node.http, tenant, "viewer").await?;
    // Every device online before the streams open: no status events while they connect.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = viewer
            .get(
                node.http,
                &format!("/api/tenants/{tenant}/devices?status=online&limit=1"),
            )
            .await?;
        if r.status == 200 && r.json()?["total"].as_u64() == Some(opts.devices as u64) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the devices did not all come online within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, rss_before) = node.usage();
    let load_before = proc_stat::load_average();

    let exe = std::env::current_exe()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, ClientLine)>();
    let mut procs: Vec<ClientProcess> = Vec::new();
    let mut left = opts.clients;
    let connect_start = Instant::now();
    while left > 0 {
        let n = left.min(opts.clients_per_process);
        left -= n;
        let mut cmd = Command::new(&exe);
        cmd.args(["sse-clients", "--addr", &node.http.to_string()])
            .args(["--tenant", tenant, "--clients", &n.to_string()])
            .args(["--open-concurrency", &opts.open_concurrency.to_string()])
            .env(TOKEN_ENV, &viewer.token);
        let index = procs.len();
        let (group, mut lines) = ChildGroup::spawn(&format!("sse-clients-{index}"), cmd)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(l) = serde_json::from_str::<ClientLine>(&line) {
                    let _ = tx.send((index, l));
                }
            }
        });
        procs.push(ClientProcess {
            group,
            clients: n,
            open: 0,
            failed: 0,
            ended: 0,
        });
    }
    drop(tx);
    let mut first_failure: Option<String> = None;
    let mut seen: HashMap<u64, (EventSeen, usize)> = HashMap::new();
    // Wait until every stream is open (or has failed).
    let connect_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let settled = procs
            .iter()
            .all(|p| (p.open + p.failed) as usize >= p.clients);
        if settled {
            break;
        }
        if Instant::now() > connect_deadline {
            bail!("the SSE clients did not finish connecting within 600 s");
        }
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(msg)) => absorb(&mut procs, &mut first_failure, &mut seen, msg),
            Ok(None) => bail!("every SSE client process ended"),
            Err(_) => bail!("no word from the SSE client processes for 30 s"),
        }
    }
    let connect_s = connect_start.elapsed().as_secs_f64();
    let open: u64 = procs.iter().map(|p| p.open).sum();
    eprintln!(
        "  {open} of {} streams open after {connect_s:.1}s ({} failed{})",
        opts.clients,
        procs.iter().map(|p| p.failed).sum::<u64>(),
        first_failure
            .as_deref()
            .map(|f| format!("; first: {f}"))
            .unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_with_clients) = node.usage();
    seen.clear();

    // Make the devices flap, each on its own period, so transitions are spread out.
    let control: SocketAddr = sim_control.parse().context("simulator control address")?;
    let first: std::net::Ipv4Addr = first_device.parse().context("first device address")?;
    let addresses = device_addresses(first, opts.devices);
    let trigger_us = unix_us();
    for (i, addr) in addresses.iter().enumerate() {
        let period = opts.flap_period + Duration::from_millis(1300 * i as u64);
        let body = json!({
            "target": {"device": addr.to_string()},
            "fault": {"kind": "flap", "period_ms": period.as_millis() as u64, "down_ms": (period / 2).as_millis() as u64},
        });
        let r = request_once(
            control,
            "POST",
            "/faults",
            &[],
            Some(&body),
            Duration::from_secs(10),
        )
        .await?;
        if r.status != 200 {
            bail!("simulator fault: HTTP {} {}", r.status, r.snippet());
        }
    }
    let cpu_mark = |node: &DroverNode, procs: &[ClientProcess]| {
        let clients: f64 = procs
            .iter()
            .map(|p| proc_stat::group_usage(p.group.pgid()).0)
            .sum();
        (CpuMark::now(node.usage().0), CpuMark::now(clients))
    };
    let (node0, clients0) = cpu_mark(node, &procs);
    let measure_deadline = Instant::now() + opts.max_duration;
    let mut complete: Vec<EventSeen> = Vec::new();
    let mut incomplete = 0usize;
    let nprocs = procs.len();
    while complete.len() < opts.changes && Instant::now() < measure_deadline {
        let Ok(msg) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await else {
            continue;
        };
        let Some(msg) = msg else {
            bail!("every SSE client process ended");
        };
        absorb(&mut procs, &mut first_failure, &mut seen, msg);
        let finished: Vec<u64> = seen
            .iter()
            .filter(|(_, (_, reports))| *reports >= nprocs)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in finished {
            if let Some((e, _)) = seen.remove(&seq) {
                if e.at_us < trigger_us {
                    continue;
                }
                let live: u64 = procs.iter().map(|p| p.open.saturating_sub(p.ended)).sum();
                if e.received >= live {
                    eprintln!(
                        "  event {seq}: {} {} -> last of {} clients after {:.1} ms",
                        &e.device_id[..8.min(e.device_id.len())],
                        e.status,
                        e.received,
                        (e.last_us - e.at_us) as f64 / 1000.0
                    );
                    complete.push(e);
                } else {
                    incomplete += 1;
                }
            }
        }
    }
    let (node1, clients1) = cpu_mark(node, &procs);
    // Stop the flapping (the simulator stops with the run anyway).
    let _ = request_once(
        control,
        "POST",
        "/faults",
        &[],
        Some(&json!({"clear": "all"})),
        Duration::from_secs(10),
    )
    .await;
    for p in &mut procs {
        p.group.stop(Duration::from_secs(10)).await;
    }
    let ms = |us: i64| us as f64 / 1000.0;
    let mut to_last: Vec<f64> = complete.iter().map(|e| ms(e.last_us - e.at_us)).collect();
    to_last.sort_by(f64::total_cmp);
    let to_first = median(complete.iter().map(|e| ms(e.first_us - e.at_us)).collect());
    let spread = median(
        complete
            .iter()
            .map(|e| ms(e.last_us - e.first_us))
            .collect(),
    );
    let clients_open: u64 = procs.iter().map(|p| p.open).sum();
    Ok(SseResult {
        bench: "sse",
        clients: opts.clients,
        client_processes: procs.len(),
        devices: opts.devices,
        load_before,
        load_after: proc_stat::load_average(),
        connect_s,
        clients_open,
        clients_failed: procs.iter().map(|p| p.failed).sum(),
        clients_ended: procs.iter().map(|p| p.ended).sum(),
        first_failure,
        events_measured: complete.len(),
        events_incomplete: incomplete,
        to_first_p50_ms: to_first,
        to_last_p50_ms: quantile(&to_last, 0.5),
        to_last_p99_ms: quantile(&to_last, 0.99),
        to_last_max_ms: to_last.last().copied(),
        spread_p50_ms: spread,
        node_rss_before_kb: rss_before,
        node_rss_with_clients_kb: rss_with_clients,
        node_kb_per_client: rss_with_clients.saturating_sub(rss_before) as f64
            / clients_open.max(1) as f64,
        node_cpu_cores: node0.until(&node1).1,
        clients_cpu_cores: clients0.until(&clients1).1,
    })
}

fn print_result(r: &SseResult) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    eprintln!(
        "== sse ({} clients in {} processes, {} devices, load {} -> {})",
        r.clients, r.client_processes, r.devices, r.load_before, r.load_after
    );
    eprintln!(
        "   streams               {} open after {:.1}s, {} failed, {} ended early{}",
        r.clients_open,
        r.connect_s,
        r.clients_failed,
        r.clients_ended,
        r.first_failure
            .as_deref()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    eprintln!(
        "   events                {} reached every client, {} did not",
        r.events_measured, r.events_incomplete
    );
    eprintln!(
        "   change -> last client p50 {} ms, p99 {} ms, max {} ms (-> first client p50 {} ms; first -> last p50 {} ms)",
        opt(r.to_last_p50_ms),
        opt(r.to_last_p99_ms),
        opt(r.to_last_max_ms),
        opt(r.to_first_p50_ms),
        opt(r.spread_p50_ms)
    );
    eprintln!(
        "   node                  RSS {:.1} MiB before the clients, {:.1} MiB with them ({:.1} KiB per client); CPU {:.2} cores while measuring (clients {:.2})",
        r.node_rss_before_kb as f64 / 1024.0,
        r.node_rss_with_clients_kb as f64 / 1024.0,
        r.node_kb_per_client,
        r.node_cpu_cores,
        r.clients_cpu_cores
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn client_events_merge_and_finish() {
        let shared = ClientShared::default();
        shared.open.store(2, Ordering::Relaxed);
        let data = r#"{"device_id":"d1","status":"offline","at":"2026-12-04T10:00:00.250Z"}"#;
        shared.saw(7, data, 1_000);
        assert!(shared.take_finished(Duration::from_secs(10)).is_empty());
        shared.saw(7, data, 3_000);
        let done = shared.take_finished(Duration::from_secs(10));
        assert_eq!(done.len(), 1);
        let e = &done[0];
        assert_eq!((e.received, e.first_us, e.last_us), (2, 1_000, 3_000));
        assert_eq!(e.status, "offline");
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00.250Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(e.at_us, at);
        let line = serde_json::to_string(&ClientLine::Event(e.clone())).unwrap();
        assert!(matches!(
            serde_json::from_str::<ClientLine>(&line).unwrap(),
            ClientLine::Event(_)
        ));
    }
}
