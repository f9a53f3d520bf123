//! Helpers for the cluster end-to-end tests (`tests/cluster.rs` includes this file as a
//! module; it lives in `support/` so cargo does not build it as a test of its own): a seeded database, a simulated fleet, `drover run` node processes with cluster
//! flags, a poll recorder built on the simulator's own per-device counters, metrics
//! scraping, and network namespaces for partitions.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // test helpers

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use routeros_sim::{Fleet, SimConfig};

pub const KEY: &str = "q6mBvX5r1qZ6w0yqz8l2Lw9yJ3m0o5Xo7s0YV3n1kTQ=";
/// Poll interval of every seeded device.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The niceness nodes run at (the simulator, in the test process, keeps 0).
const NODE_NICENESS: &str = "5";

pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test environment: database, fleet, CA, node processes.
pub struct Env {
    pub name: String,
    pub db_url: String,
    pub fleet: Arc<Fleet>,
    pub dir: PathBuf,
    pub devices: usize,
}

impl Env {
    /// Starts a fleet of `devices` (at `base` when given) and seeds them into a new database.
    pub async fn new(tag: &str, devices: usize, base: Option<std::net::Ipv4Addr>) -> Self {
        let mut sim = SimConfig {
            devices,
            plain_port: None,
            ..SimConfig::for_tests()
        };
        if let Some(b) = base {
            sim.base = b;
            sim.random_base = false;
        }
        let fleet = Fleet::start(sim).await.unwrap();
        let name = format!("drover_cl_{tag}_{:x}", rand::random::<u32>());
        let db_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(drover_bin())
            .args([
                "demo",
                "seed",
                "--tenant",
                "cluster",
                "--devices",
                &devices.to_string(),
                "--first",
                &fleet.ip(0).to_string(),
                "--port",
                &fleet.device_addr(0).port().to_string(),
                "--password",
                fleet.credentials().1,
                "--interval",
                &INTERVAL.as_secs().to_string(),
            ])
            .env("DATABASE_URL", &db_url)
            .env("CREDENTIAL_ENCRYPTION_KEY", KEY)
            .env("DROVER_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Self {
            name,
            db_url,
            fleet: Arc::new(fleet),
            dir,
            devices,
        };
        env.cluster_cmd(&["init-ca", "--out-dir", "ca"]);
        env
    }

    /// Runs `drover cluster …` in the test directory.
    pub fn cluster_cmd(&self, args: &[&str]) {
        let out = Command::new(drover_bin())
            .arg("cluster")
            .args(args)
            .current_dir(&self.dir)
            .env("DROVER_CLUSTER_NAME", &self.name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drover cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Issues a node certificate from the environment's CA (or from `ca_dir`).
    pub fn issue(&self, node: &str, ca_dir: &str) {
        let cert = format!("{ca_dir}/ca.pem");
        let key = format!("{ca_dir}/ca.key");
        self.cluster_cmd(&[
            "issue-node-cert",
            "--ca-cert",
            &cert,
            "--ca-key",
            &key,
            "--node-name",
            node,
            "--out-dir",
            "certs",
        ]);
    }

    pub fn node_spec(&self, name: &str, listen: &str, seeds: &[String]) -> NodeSpec {
        self.issue(name, "ca");
        NodeSpec {
            name: name.to_owned(),
            listen: listen.to_owned(),
            seeds: seeds.to_vec(),
            ca: self.dir.join("ca/ca.pem"),
            cert: self.dir.join(format!("certs/{name}.pem")),
            key: self.dir.join(format!("certs/{name}.key")),
            metrics_port: free_port(),
            db_url: self.db_url.clone(),
            redis_url: "redis://127.0.0.1:6379".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            cluster: self.name.clone(),
            netns: None,
            log: self.dir.join(format!("{name}.log")),
            roles: "both".into(),
        }
    }

    pub async fn drop_db(&self) {
        let _ = psql(
            "postgres://postgres@127.0.0.1:5432/postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub listen: String,
    pub seeds: Vec<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub metrics_port: u16,
    pub db_url: String,
    pub redis_url: String,
    pub nats_url: String,
    pub cluster: String,
    /// Run inside this network namespace.
    pub netns: Option<String>,
    pub log: PathBuf,
    pub roles: String,
}

/// A running `drover run`; killed on drop.
pub struct Node {
    pub spec: NodeSpec,
    pub child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub fn start(spec: &NodeSpec) -> Node {
        // Nodes run at a lower CPU priority than the simulator in this process: real
        // routers have their own CPUs, and a simulator starved by a node's handshake storm
        // would stamp polls seconds after they arrived (`nice` and `ip netns exec` exec, so
        // the child's pid is the node's).
        let mut c = match &spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nice", "-n", NODE_NICENESS]);
                c
            }
            None => {
                let mut c = Command::new("nice");
                c.args(["-n", NODE_NICENESS]);
                c
            }
        };
        c.arg(drover_bin());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .unwrap();
        c.args([
            "run",
            "--metrics-addr",
            &format!("127.0.0.1:{}", spec.metrics_port),
            "--status-every-secs",
            "0",
            "--nats-url",
            &spec.nats_url,
        ])
        .env("DATABASE_URL", &spec.db_url)
        .env("DROVER_CREATE_DATABASE", "false")
        .env("DROVER_HTTP_ADDR", "127.0.0.1:0")
        .env("CREDENTIAL_ENCRYPTION_KEY", KEY)
        .env(
            "DROVER_LOG",
            std::env::var("DROVER_TEST_NODE_LOG")
                .unwrap_or_else(|_| "info,ractor_cluster=warn,ractor=warn".into()),
        )
        .env("DROVER_CLUSTER_NAME", &spec.cluster)
        .env("DROVER_NODE_NAME", &spec.name)
        .env("DROVER_ROLES", &spec.roles)
        .env("DROVER_CLUSTER_REDIS_URL", &spec.redis_url)
        // The HTTP API's own Redis (auth state, rate limits): the same server.
        .env("REDIS_URL", &spec.redis_url)
        .env("DROVER_CLUSTER_LISTEN", &spec.listen)
        .env("DROVER_CLUSTER_SEEDS", spec.seeds.join(","))
        .env("DROVER_CLUSTER_CA", &spec.ca)
        .env("DROVER_CLUSTER_CERT", &spec.cert)
        .env("DROVER_CLUSTER_KEY", &spec.key)
        .env("DROVER_CLUSTER_HEARTBEAT_MS", "500")
        .env("DROVER_CLUSTER_FAILURE_DEADLINE_MS", "3000")
        .env("DROVER_LEASE_TTL_MS", "6000")
        .env("DROVER_LEASE_RENEW_MS", "1500")
        .env("DROVER_LEASE_MARGIN_MS", "1500")
        .env("DROVER_REBALANCE_HOLD_MS", "2000")
        .env("DROVER_HANDOVER_GRACE_MS", "300")
        .env("DROVER_MIN_OWNERSHIP_MS", "6000")
        .env("DROVER_FULL_RELOAD_SECS", "300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let child = c.spawn().unwrap();
        Node {
            spec: spec.clone(),
            child,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: &str) {
        // In a namespace the child is `ip`, which execs drover: same pid.
        Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{} exited with {status}", self.spec.name);
                return;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.spec.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/metrics` of this node (from inside its namespace when it has one).
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.spec.metrics_port);
        let mut c = match &self.spec.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, "curl"]);
                c
            }
            None => tokio::process::Command::new("curl"),
        };
        let out = c
            .args(["-s", "-m", "1", &url])
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One metric's value (summed over label sets); `None` when unreachable or absent.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = self.metrics().await?;
        metric_value(&body, name)
    }
}

/// Sum of every sample of `name` in a Prometheus text body.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *found.get_or_insert(0.0) += v;
    }
    found
}

pub async fn psql(db_url: &str, sql: &str) -> Vec<Vec<String>> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
                .collect()
        })
        .collect()
}

/// Every poll the simulator served, per device, at the instant the simulator itself
/// stamped it (its per-device `recent_polls_unix_ms`, mapped onto this process's monotonic
/// clock), so a busy test process cannot shift or bunch the times it reads.
#[derive(Clone)]
pub struct PollLog {
    polls: Arc<Mutex<Vec<Vec<Instant>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl PollLog {
    pub fn start(fleet: &Arc<Fleet>) -> (PollLog, tokio::task::JoinHandle<()>) {
        let n = fleet.len();
        let log = PollLog {
            polls: Arc::new(Mutex::new(vec![Vec::new(); n])),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let fleet = fleet.clone();
        let l = log.clone();
        // One anchor maps the simulator's unix-ms stamps onto `Instant`s.
        let anchor_ms = drover_cluster::lease::unix_ms_now();
        let anchor = Instant::now();
        let at = move |ms: u64| {
            if ms >= anchor_ms {
                anchor + Duration::from_millis(ms - anchor_ms)
            } else {
                anchor
                    .checked_sub(Duration::from_millis(anchor_ms - ms))
                    .unwrap_or(anchor)
            }
        };
        let task = tokio::spawn(async move {
            let mut last: Vec<u64> = fleet.all_stats().iter().map(|s| s.polls_served).collect();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !l.stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let stats = fleet.all_stats();
                let mut polls = l.polls.lock().unwrap();
                for (i, s) in stats.iter().enumerate() {
                    let new = usize::try_from(s.polls_served.saturating_sub(last[i])).unwrap();
                    let stamps = &s.recent_polls_unix_ms;
                    let skip = stamps.len().saturating_sub(new);
                    polls[i].extend(stamps[skip..].iter().map(|ms| at(*ms)));
                    last[i] = s.polls_served;
                }
            }
        });
        (log, task)
    }

    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Polls of each device in `[from, to)`.
    pub fn counts(&self, from: Instant, to: Instant) -> Vec<usize> {
        self.polls
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.iter().filter(|t| **t >= from && **t < to).count())
            .collect()
    }

    /// Devices polled at least once since `since`.
    pub fn polled_since(&self, since: Instant) -> usize {
        self.polls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.last().is_some_and(|t| *t >= since))
            .count()
    }

    /// Pairs of consecutive polls of one device, both after `since`, closer than `gap`:
    /// a device polled twice in one interval. Returns (device, spacing) of each.
    pub fn double_polls(&self, since: Instant, gap: Duration) -> Vec<DoublePoll> {
        let polls = self.polls.lock().unwrap();
        let mut out = Vec::new();
        for (i, p) in polls.iter().enumerate() {
            for w in p.windows(2) {
                if w[0] >= since && w[1].duration_since(w[0]) < gap {
                    out.push(DoublePoll {
                        device: i,
                        spacing: w[1].duration_since(w[0]),
                        after: w[0].duration_since(since),
                    });
                }
            }
        }
        out
    }

    /// How many devices had at least two polls in `[from, to]`, every two consecutive
    /// ones between `lo` and `hi` apart.
    pub fn devices_with_spacing_within(
        &self,
        from: Instant,
        to: Instant,
        lo: Duration,
        hi: Duration,
    ) -> usize {
        let polls = self.polls.lock().unwrap();
        polls
            .iter()
            .filter(|p| {
                let inside: Vec<&Instant> = p.iter().filter(|t| **t >= from && **t <= to).collect();
                inside.len() >= 2
                    && inside.windows(2).all(|w| {
                        let d = w[1].duration_since(*w[0]);
                        d >= lo && d <= hi
                    })
            })
            .count()
    }

    /// The longest time any device went without a poll within `[from, to]` (a device never
    /// polled in the window counts the whole window).
    pub fn max_gap(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let polls = self.polls.lock().unwrap();
        let mut worst = (0, Duration::ZERO);
        for (i, p) in polls.iter().enumerate() {
            let mut prev = from;
            for t in p.iter().filter(|t| **t > from && **t <= to) {
                let g = t.duration_since(prev);
                if g > worst.1 {
                    worst = (i, g);
                }
                prev = *t;
            }
            let g = to.duration_since(prev);
            if g > worst.1 {
                worst = (i, g);
            }
        }
        worst
    }

    /// The poll times of `device`, counted from `from` (for failure reports).
    pub fn timeline(&self, device: usize, from: Instant) -> Vec<String> {
        self.polls.lock().unwrap()[device]
            .iter()
            .filter(|t| **t >= from)
            .map(|t| format!("{:.2}", t.duration_since(from).as_secs_f64()))
            .collect()
    }

    /// For each device in `devices`: time from `since` to its first poll after `since`.
    pub fn first_poll_after(&self, since: Instant, devices: &[usize]) -> Vec<Option<Duration>> {
        let polls = self.polls.lock().unwrap();
        devices
            .iter()
            .map(|i| {
                polls[*i]
                    .iter()
                    .find(|t| **t > since)
                    .map(|t| t.duration_since(since))
            })
            .collect()
    }
}

/// Two polls of one device closer than allowed.
#[derive(Debug, Clone, Copy)]
pub struct DoublePoll {
    pub device: usize,
    pub spacing: Duration,
    /// The first of the two, counted from the window's start.
    pub after: Duration,
}

/// Which devices (fleet indices) each node's sessions serve now, from the simulator's
/// active connection counts is not attributable; instead, map device index → shard owner
/// through Redis leases and the devices' ids in the database.
pub async fn device_shards(env: &Env) -> HashMap<usize, u32> {
    // address → fleet index
    let by_ip: HashMap<String, usize> = (0..env.devices)
        .map(|i| (env.fleet.ip(i).to_string(), i))
        .collect();
    let rows = psql(&env.db_url, "SELECT id::text, address::text FROM devices").await;
    rows.into_iter()
        .filter_map(|r| {
            let id: uuid::Uuid = r[0].parse().ok()?;
            let i = *by_ip.get(&r[1])?;
            Some((i, drover_model::DeviceId(id).shard().0))
        })
        .collect()
}

/// Lease owners of every shard now, from Redis.
pub async fn lease_owners(cluster: &str) -> HashMap<u32, String> {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    // Generous timeout: the test process also runs the simulator and may be busy.
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_connection_timeout(Some(Duration::from_secs(10)));
    let mut c = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap();
    let keys: Vec<String> = (0..drover_model::SHARD_COUNT)
        .map(|s| format!("drover:{cluster}:lease:{s}"))
        .collect();
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .unwrap();
    vals.into_iter()
        .enumerate()
        .filter_map(|(s, v)| {
            let v = v?;
            let (owner, _) = v.rsplit_once('|')?;
            Some((s as u32, owner.to_owned()))
        })
        .collect()
}

/// A network namespace joined to the host by a veth pair: host side `10.77.N.1/30`,
/// namespace side `10.77.N.2/30`, and a route from the namespace to `10.78.0.0/16` (the
/// host's extra loopback range) through the host side. Removed on drop.
pub struct NetNs {
    pub name: String,
    pub host_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    pub fn create(n: u8) -> NetNs {
        let name = format!("drvcl{n}");
        let host_if = format!("vhdrv{n}");
        let ns_if = format!("vndrv{n}");
        let host_ip = format!("10.77.{n}.1");
        let ns_ip = format!("10.77.{n}.2");
        // Leftovers of an earlier run, if any (quietly: usually there are none).
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        sh(&format!("ip netns add {name}"));
        sh(&format!(
            "ip link add {host_if} type veth peer name {ns_if}"
        ));
        sh(&format!("ip link set {ns_if} netns {name}"));
        sh(&format!("ip addr add {host_ip}/30 dev {host_if}"));
        sh(&format!("ip link set {host_if} up"));
        sh(&format!(
            "ip netns exec {name} ip addr add {ns_ip}/30 dev {ns_if}"
        ));
        sh(&format!("ip netns exec {name} ip link set {ns_if} up"));
        sh(&format!("ip netns exec {name} ip link set lo up"));
        sh(&format!(
            "ip netns exec {name} ip route add 10.78.0.0/16 via {host_ip}"
        ));
        NetNs {
            name,
            host_if,
            host_ip,
            ns_ip,
        }
    }

    /// Cut (`false`) or restore (`true`) the link.
    pub fn link(&self, up: bool) {
        sh(&format!(
            "ip link set {} {}",
            self.host_if,
            if up { "up" } else { "down" }
        ));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `10.78.0.1/16` on the host's loopback (so the simulator can bind 10.78.x.y and the
/// namespace can reach it); removed on drop.
pub struct ExtraLoopback;

impl ExtraLoopback {
    pub fn add() -> ExtraLoopback {
        let _ = Command::new("ip")
            .args(["addr", "del", "10.78.0.1/16", "dev", "lo"])
            .output();
        sh("ip addr add 10.78.0.1/16 dev lo");
        ExtraLoopback
    }
}

impl Drop for ExtraLoopback {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", "10.78.0.1/16", "dev", "lo"])
            .output();
    }
}

/// Forwards TCP from `listen` to `target` (host services bound to 127.0.0.1, for a node in
/// a namespace). Stops when the task is aborted.
pub async fn tcp_proxy(listen: &str, target: &'static str) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

/// Waits until `f` holds, checking every 200 ms; returns the time it took, or `None`.
pub async fn wait_for<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn dir_of(p: &Path) -> String {
    p.display().to_string()
}
