//! Child processes of the fleet harness, each in its own process group that is killed on
//! every exit path (explicit stop, error, panic, drop), plus the simulator's start-up and a
//! tiny HTTP GET for its control API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A child process leading its own process group. Dropping it kills the whole group.
#[derive(Debug)]
pub(crate) struct ChildGroup {
    name: String,
    pgid: u32,
    child: Child,
    /// Held open: the children end themselves when it closes (also if the harness dies).
    stdin: Option<ChildStdin>,
    stopped: bool,
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl ChildGroup {
    /// Spawns `cmd` as the leader of a new process group, stdin and stdout piped.
    pub(crate) fn spawn(
        name: &str,
        mut cmd: Command,
    ) -> anyhow::Result<(Self, Lines<BufReader<ChildStdout>>)> {
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let pgid = child.id().context("child has no pid")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = child.stdin.take();
        Ok((
            Self {
                name: name.to_owned(),
                pgid,
                child,
                stdin,
                stopped: false,
            },
            BufReader::new(stdout).lines(),
        ))
    }

    pub(crate) fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Stops the group: closes stdin, SIGTERM, then SIGKILL after `grace`; waits for the leader.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        signal_group(self.pgid, "TERM");
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "drover-bench: {} did not stop within {grace:?}; killing it",
                self.name
            );
        }
        // Whatever is left in the group (workers, a stuck leader) goes now.
        signal_group(self.pgid, "KILL");
        let _ = self.child.wait().await;
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if !self.stopped {
            signal_group(self.pgid, "KILL");
        }
    }
}

/// The simulator's ready line.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimReady {
    pub(crate) ready: bool,
    pub(crate) control: String,
    pub(crate) devices: usize,
    pub(crate) first: String,
    pub(crate) tls_port: u16,
}

/// Finds the `drover-sim` binary: `--sim-bin`, `$DROVER_SIM_BIN`, next to this executable,
/// or `$CARGO_TARGET_DIR/release` (default `target/release`).
pub(crate) fn find_sim(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    find_binary("drover-sim", explicit, "DROVER_SIM_BIN", "routeros-sim")
}

/// Finds binary `name`: `explicit`, `$<env_var>`, next to this executable, or
/// `$CARGO_TARGET_DIR/release` (default `target/release`). `package` names the cargo
/// package that builds it, for the error message.
pub(crate) fn find_binary(
    name: &str,
    explicit: Option<&Path>,
    env_var: &str,
    package: &str,
) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_owned());
    }
    if let Some(p) = std::env::var_os(env_var) {
        candidates.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join(name));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    candidates.push(target.join("release").join(name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "{name} not found (tried {candidates:?}); build it with `cargo build --release -p {package}`"
            )
        })
}

/// Starts `drover-sim` with `devices` devices from `base` in its own process group. A shell
/// wrapper ends the simulator when the harness's pipe closes, even if the harness was killed.
pub(crate) async fn start_sim(
    bin: &Path,
    devices: usize,
    base: &str,
    devices_per_process: usize,
    password: &str,
) -> anyhow::Result<(ChildGroup, SimReady)> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#""$0" "$@" & p=$!; cat >/dev/null; kill -TERM "$p" 2>/dev/null; wait "$p""#)
        .arg(bin)
        .args(["--devices", &devices.to_string(), "--base", base])
        .args(["--devices-per-process", &devices_per_process.to_string()])
        .args(["--password", password]);
    let (group, mut lines) = ChildGroup::spawn("drover-sim", cmd)?;
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(r) = serde_json::from_str::<SimReady>(&line)
                && r.ready
            {
                return Ok(r);
            }
        }
        bail!("drover-sim exited before it was ready")
    })
    .await
    .context("drover-sim not ready within 300 s")??;
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((group, ready))
}

/// `GET path` on a plain HTTP/1.1 server that closes the connection after the response.
pub(crate) async fn http_get(addr: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut buf))
        .await
        .context("control API answer timed out")??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(buf.split_off(split + 4))
}
