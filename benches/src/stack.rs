//! A real drover stack for the API, SSE, idle and cluster benchmarks: a fresh PostgreSQL
//! database (migrated by `drover migrate`, dropped at the end), `drover run` child processes
//! with their own Redis key prefix, and sign-in over HTTP exactly as a browser does it
//! (legacy password step, SRP enrolment, SRP-6a login). Secrets (the bootstrap password,
//! the encryption key, tokens) are generated here and never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::children::{ChildGroup, find_binary};
use crate::hexcodec::{hex, unhex};
use crate::http1::{Response, request_once};
use crate::proc_stat;
use drover_auth::srp::{SrpClient, verifier};

/// The server PostgreSQL runs on, as its superuser (trust auth on this machine).
pub(crate) const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432";
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Random lowercase alphanumerics.
pub(crate) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs SQL through `psql` against `url`; returns its stdout (tuples only, unaligned).
pub(crate) async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A fresh database, dropped with [`Database::drop_now`] (or, as a last resort, on drop).
#[derive(Debug)]
pub(crate) struct Database {
    pub(crate) name: String,
    pub(crate) url: String,
    /// The key `drover` encrypts device credentials with (base64 of 32 random bytes).
    pub(crate) encryption_key: String,
    dropped: bool,
}

impl Database {
    /// Creates and migrates `drover_bench_<tag>_<random>` with `drover migrate`.
    pub(crate) async fn create(drover: &Path, tag: &str) -> anyhow::Result<Self> {
        let name = format!("drover_bench_{tag}_{}", random_token(8));
        let url = format!("{PG_ADMIN}/{name}");
        let key: [u8; 32] = rand::random();
        let db = Self {
            name,
            url,
            encryption_key: base64_encode(&key),
            dropped: false,
        };
        let out = db
            .drover(drover)
            .arg("migrate")
            .output()
            .await
            .context("running drover migrate")?;
        if !out.status.success() {
            bail!(
                "drover migrate failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(db)
    }

    /// A `drover` command with this database's environment.
    pub(crate) fn drover(&self, drover: &Path) -> Command {
        let mut c = Command::new(drover);
        c.env("DATABASE_URL", &self.url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &self.encryption_key)
            .env("DROVER_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// `drover demo seed`: a tenant named `tenant` whose devices are a running simulator's;
    /// returns the tenant id.
    pub(crate) async fn demo_seed(
        &self,
        drover: &Path,
        tenant: &str,
        devices: &SeedDevices<'_>,
    ) -> anyhow::Result<String> {
        let child = self
            .demo_seed_command(drover, tenant, devices)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running drover demo seed")?;
        seeded_tenant(child).await
    }

    /// The `drover demo seed` command (to run several at once); see [`seeded_tenant`].
    pub(crate) fn demo_seed_command(
        &self,
        drover: &Path,
        tenant: &str,
        devices: &SeedDevices<'_>,
    ) -> Command {
        let mut c = self.drover(drover);
        c.args(["demo", "seed", "--tenant", tenant])
            .args([
                "--devices",
                &devices.count.to_string(),
                "--first",
                devices.first,
            ])
            .args(["--port", &devices.port.to_string()])
            .args(["--interval", &devices.interval_s.to_string()])
            .env("DROVER_SIM_PASSWORD", devices.password);
        c
    }

    pub(crate) async fn drop_now(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        if let Err(e) = psql(
            &format!("{PG_ADMIN}/postgres"),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
        {
            eprintln!("drover-bench: could not drop database {}: {e:#}", self.name);
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = std::process::Command::new("psql")
                .args([
                    &format!("{PG_ADMIN}/postgres"),
                    "-X",
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Simulated devices for `drover demo seed`: `count` consecutive addresses from `first`.
#[derive(Debug, Clone)]
pub(crate) struct SeedDevices<'a> {
    pub(crate) count: usize,
    pub(crate) first: &'a str,
    pub(crate) port: u16,
    pub(crate) password: &'a str,
    pub(crate) interval_s: u64,
}

/// Waits for a `drover demo seed` child (stdout and stderr piped) and returns its tenant id.
pub(crate) async fn seeded_tenant(child: tokio::process::Child) -> anyhow::Result<String> {
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "drover demo seed failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("demo seed output")?;
    v["tenant_id"]
        .as_str()
        .map(str::to_owned)
        .context("demo seed printed no tenant_id")
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Finds the `drover` binary: `--drover-bin`, `$DROVER_BIN`, next to this executable, or
/// `$CARGO_TARGET_DIR/release`.
pub(crate) fn find_drover(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    find_binary("drover", explicit, "DROVER_BIN", "drover-server")
}

/// How to start one `drover run`.
#[derive(Debug, Clone)]
pub(crate) struct NodeSettings {
    pub(crate) name: String,
    /// `DROVER_ROLES`: `both`, `api` or `poller`.
    pub(crate) roles: String,
    /// Extra environment (cluster settings and the like).
    pub(crate) env: Vec<(String, String)>,
    /// Where its log (stderr) goes.
    pub(crate) log: PathBuf,
}

/// A running `drover run` in its own process group; stopped on drop.
#[derive(Debug)]
pub(crate) struct DroverNode {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) http: SocketAddr,
    pub(crate) metrics: SocketAddr,
    pub(crate) admin_email: String,
    admin_password: String,
    pub(crate) log: PathBuf,
    group: ChildGroup,
}

impl DroverNode {
    /// Starts the node (HTTP and metrics on free ports, a bootstrap super_admin) and waits
    /// until `GET /health/ready` answers 200.
    pub(crate) async fn start(
        drover: &Path,
        db: &Database,
        settings: &NodeSettings,
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        let node = Self::spawn(drover, db, settings).await?;
        node.wait_ready(ready_within).await?;
        Ok(node)
    }

    /// Starts the node without waiting for it to be ready.
    pub(crate) async fn spawn(
        drover: &Path,
        db: &Database,
        settings: &NodeSettings,
    ) -> anyhow::Result<Self> {
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let admin_email = format!("bench-admin-{}@example.com", random_token(10));
        let admin_password = format!("bootstrap-{}", random_token(24));
        // The shell ends drover when the harness's pipe closes, even if the harness was killed,
        // and prints drover's pid first so its CPU and memory can be read from /proc.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(concat!(
                r#"exec 2>>"$DROVER_BENCH_NODE_LOG"; "$0" "$@" </dev/null >/dev/null & p=$!; "#,
                r#"echo "$p"; cat >/dev/null; kill -TERM "$p" 2>/dev/null; wait "$p""#
            ))
            .arg(drover)
            .args(["run", "--status-every-secs", "0"])
            .env("DROVER_BENCH_NODE_LOG", &settings.log)
            .env("DATABASE_URL", &db.url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &db.encryption_key)
            .env("DROVER_CREATE_DATABASE", "false")
            .env("DROVER_HTTP_ADDR", http.to_string())
            .env("DROVER_METRICS_ADDR", metrics.to_string())
            .env("DROVER_ROLES", &settings.roles)
            .env("DROVER_REDIS_PREFIX", format!("{}:", db.name))
            .env("DROVER_AUTH_RATE_PER_MINUTE", "10000")
            .env("DROVER_CLUSTER_NAME", &db.name)
            .env("DROVER_NODE_NAME", &settings.name)
            .env("FIRST_ADMIN_EMAIL", &admin_email)
            .env("FIRST_ADMIN_PASSWORD", &admin_password)
            .env(
                "DROVER_LOG",
                std::env::var("DROVER_BENCH_NODE_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            );
        for (k, v) in &settings.env {
            cmd.env(k, v);
        }
        let (group, mut lines) = ChildGroup::spawn(&settings.name, cmd)?;
        let pid: u32 = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("drover run did not start")??
            .context("drover run wrapper ended")?
            .trim()
            .parse()
            .context("drover run pid")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            name: settings.name.clone(),
            pid,
            http,
            metrics,
            admin_email,
            admin_password,
            log: settings.log.clone(),
            group,
        })
    }

    /// Whether the drover process still runs.
    pub(crate) fn alive(&self) -> bool {
        proc_stat::cpu_seconds(&self.pid.to_string()).is_some()
    }

    /// Waits until `GET /health/ready` answers 200.
    pub(crate) async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = request_once(
                self.http,
                "GET",
                "/health/ready",
                &[],
                None,
                Duration::from_secs(2),
            )
            .await
                && r.status == 200
            {
                return Ok(());
            }
            if !self.alive() {
                bail!(
                    "{} exited during start-up; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready within {within:?}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// CPU seconds and resident KiB of the drover process.
    pub(crate) fn usage(&self) -> (f64, u64) {
        let pid = self.pid.to_string();
        (
            proc_stat::cpu_seconds(&pid).unwrap_or(0.0),
            proc_stat::rss_kb_and_threads(&pid).0,
        )
    }

    pub(crate) async fn stop(&mut self) {
        self.group.stop(Duration::from_secs(30)).await;
    }

    /// Signs the bootstrap super_admin in (enrolling it on first use).
    pub(crate) async fn admin_session(&self) -> anyhow::Result<Session> {
        let email = self.admin_email.clone();
        let password = self.admin_password.clone();
        sign_in_first_time(self.http, &email, &password).await
    }

    /// `/metrics` of the node (Prometheus text).
    pub(crate) async fn metrics_text(&self) -> anyhow::Result<String> {
        let r = request_once(
            self.metrics,
            "GET",
            "/metrics",
            &[],
            None,
            Duration::from_secs(10),
        )
        .await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }
}

/// The last `n` lines of a file.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A signed-in user: the access token (never printed) and the user record.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) user: Value,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub(crate) async fn get(&self, api: SocketAddr, path: &str) -> anyhow::Result<Response> {
        let auth = self.bearer();
        request_once(
            api,
            "GET",
            path,
            &[("Authorization", &auth)],
            None,
            HTTP_TIMEOUT,
        )
        .await
    }

    pub(crate) async fn post(
        &self,
        api: SocketAddr,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Response> {
        let auth = self.bearer();
        request_once(
            api,
            "POST",
            path,
            &[("Authorization", &auth)],
            Some(body),
            HTTP_TIMEOUT,
        )
        .await
    }

    /// Creates a user of `tenant` with `role` and signs them in (enrolment included).
    pub(crate) async fn create_user(
        &self,
        api: SocketAddr,
        tenant: &str,
        role: &str,
    ) -> anyhow::Result<Session> {
        let email = format!("bench-{role}-{}@example.com", random_token(10));
        let password = format!("temporary-{}", random_token(20));
        let r = self
            .post(
                api,
                &format!("/api/tenants/{tenant}/users"),
                &json!({"email": email, "role": role, "password": password}),
            )
            .await?;
        if r.status != 200 && r.status != 201 {
            bail!("creating a {role}: HTTP {} {}", r.status, r.snippet());
        }
        sign_in_first_time(api, &email, &password).await
    }

    /// Creates a tenant; returns its id.
    pub(crate) async fn create_tenant(
        &self,
        api: SocketAddr,
        name: &str,
    ) -> anyhow::Result<String> {
        let r = self
            .post(api, "/api/tenants", &json!({"name": name}))
            .await?;
        if r.status != 200 && r.status != 201 {
            bail!("creating tenant {name}: HTTP {} {}", r.status, r.snippet());
        }
        r.json()?["id"]
            .as_str()
            .map(str::to_owned)
            .context("tenant without id")
    }
}

async fn post_json(api: SocketAddr, path: &str, body: &Value) -> anyhow::Result<Response> {
    request_once(api, "POST", path, &[], Some(body), HTTP_TIMEOUT).await
}

/// A user's first sign-in as the browser does it: the password step answers
/// `enrolment_required`, the client enrols a random SRP key (x, salt), then logs in with SRP.
pub(crate) async fn sign_in_first_time(
    api: SocketAddr,
    email: &str,
    password: &str,
) -> anyhow::Result<Session> {
    let r = post_json(
        api,
        "/api/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await?;
    if r.status != 200 {
        bail!("password step: HTTP {} {}", r.status, r.snippet());
    }
    let v = r.json()?;
    if v["status"] != "enrolment_required" {
        bail!(
            "password step: expected enrolment_required, got {}",
            v["status"]
        );
    }
    let ticket = v["enrolment_ticket"]
        .as_str()
        .context("no enrolment ticket")?
        .to_owned();
    let x: [u8; 32] = rand::random();
    let salt: [u8; 32] = rand::random();
    let r = post_json(
        api,
        "/api/auth/srp/enrol",
        &json!({
            "enrolment_ticket": ticket,
            "salt": hex(&salt),
            "verifier": hex(&verifier(&x)),
        }),
    )
    .await?;
    if r.status != 204 {
        bail!("SRP enrolment: HTTP {} {}", r.status, r.snippet());
    }
    srp_sign_in(api, email, &x).await
}

/// SRP-6a login with the private key `x`; checks the server's M2.
pub(crate) async fn srp_sign_in(api: SocketAddr, email: &str, x: &[u8]) -> anyhow::Result<Session> {
    let login = SrpClient::new(email, x).map_err(|e| anyhow::anyhow!("SRP client: {e}"))?;
    let r = post_json(
        api,
        "/api/auth/srp/init",
        &json!({"email": email, "a": hex(login.a_pub())}),
    )
    .await?;
    if r.status != 200 {
        bail!("SRP init: HTTP {} {}", r.status, r.snippet());
    }
    let init = r.json()?;
    let salt = unhex(init["salt"].as_str().context("no salt")?)?;
    let b = unhex(init["b"].as_str().context("no B")?)?;
    let proofs = login
        .respond(&salt, &b)
        .map_err(|e| anyhow::anyhow!("SRP: {e}"))?;
    let r = post_json(
        api,
        "/api/auth/srp/verify",
        &json!({"session_id": init["session_id"], "m1": hex(&proofs.m1)}),
    )
    .await?;
    if r.status != 200 {
        bail!("SRP verify: HTTP {} {}", r.status, r.snippet());
    }
    let v = r.json()?;
    let m2 = unhex(v["m2"].as_str().context("no M2")?)?;
    if !proofs.verify_m2(&m2) {
        bail!("the server's M2 does not verify");
    }
    Ok(Session {
        token: v["access_token"]
            .as_str()
            .context("no access token")?
            .to_owned(),
        user: v["user"].clone(),
    })
}

/// CPU seconds of every process whose command name is one of `names` (e.g. the PostgreSQL
/// backends, which are not our children).
pub(crate) fn cpu_of_commands(names: &[&str]) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            total += proc_stat::cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    total
}

/// CPU of a set of processes sampled at two instants: the cores they used in between.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    at: Instant,
    cpu_s: f64,
}

impl CpuMark {
    pub(crate) fn now(cpu_s: f64) -> Self {
        Self {
            at: Instant::now(),
            cpu_s,
        }
    }

    /// (CPU seconds, cores) from `self` to `later`.
    pub(crate) fn until(&self, later: &CpuMark) -> (f64, f64) {
        let cpu = later.cpu_s - self.cpu_s;
        let dt = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        (cpu, cpu / dt)
    }
}

/// A fresh directory under the system's temporary directory for this run's logs and files.
pub(crate) fn run_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("drover-bench-{tag}-{}", random_token(6)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xff; 32]).len(), 44);
    }

    #[test]
    fn random_tokens_are_lowercase_alphanumerics() {
        let t = random_token(40);
        assert_eq!(t.len(), 40);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(t, random_token(40));
    }
}
