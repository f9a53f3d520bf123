//! The `drover-sim` process modes: a single process for small fleets, or a parent that
//! splits the fleet by address range across worker processes (`drover-sim worker`, spec on
//! stdin), fans its control API out to them, and stops them with itself. Workers exit when
//! their stdin closes, so they die with the parent even when it is killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::config::{CaPem, SimConfig};
use crate::control::{ControlServer, WorkerLink};
use crate::fleet::Fleet;
use crate::tls::{CertAuthority, load_ca};

/// How the binary runs a fleet.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: SimConfig,
    /// Most devices one process holds; more devices are split across worker processes.
    pub devices_per_process: usize,
    /// Address of the control API (port 0: ephemeral).
    pub control: SocketAddr,
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    /// Where to write the CA certificate PEM.
    pub ca_out: Option<PathBuf>,
    /// Where to write the ready line too.
    pub ready_file: Option<PathBuf>,
}

/// What a worker reads from its stdin (one JSON line).
#[derive(Debug, Serialize, Deserialize)]
struct WorkerSpec {
    config: SimConfig,
}

/// The one line the binary prints when every device listens (fields in this order).
#[derive(Debug, Serialize)]
struct ReadyLine {
    ready: bool,
    control: String,
    devices: usize,
    first: String,
    tls_port: u16,
    plain_port: Option<u16>,
    ca: Option<String>,
}

/// The ready line a worker prints.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReady {
    ready: bool,
    control: SocketAddr,
    devices: usize,
}

fn write_atomically(path: &PathBuf, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp-drover-sim");
    std::fs::write(&tmp, contents).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Prints the one ready line on stdout (and to the ready file).
fn announce(opts: &RunOptions, control: SocketAddr, first: Ipv4Addr) -> anyhow::Result<()> {
    let line = serde_json::to_string(&ReadyLine {
        ready: true,
        control: control.to_string(),
        devices: opts.config.devices,
        first: first.to_string(),
        tls_port: opts.config.tls_port,
        plain_port: opts.config.plain_port,
        ca: opts.ca_out.as_ref().map(|p| p.display().to_string()),
    })?;
    if let Some(path) = &opts.ready_file {
        write_atomically(path, &format!("{line}\n"))?;
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Runs the fleet until SIGINT/SIGTERM (or a worker dies).
pub async fn run(mut opts: RunOptions) -> anyhow::Result<()> {
    let ca = match (&opts.ca_cert, &opts.ca_key) {
        (Some(c), Some(k)) => load_ca(c, k)?,
        (None, None) => CertAuthority::generate()?,
        _ => bail!("--ca-cert and --ca-key go together"),
    };
    if let Some(path) = &opts.ca_out {
        write_atomically(path, ca.cert_pem())?;
    }
    opts.config.ca = Some(CaPem {
        cert_pem: ca.cert_pem().to_owned(),
        key_pem: ca.key_pem().to_owned(),
    });
    let first = opts.config.address_of(0);
    let per = opts.devices_per_process.max(1);
    if opts.config.devices <= per {
        let fleet = Fleet::start(opts.config.clone()).await?;
        let control = ControlServer::start_local(&fleet, opts.control).await?;
        announce(&opts, control.addr(), first)?;
        shutdown_signal().await;
        control.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), fleet.shutdown()).await;
        return Ok(());
    }
    run_parent(opts, ca.cert_pem().to_owned(), first, per).await
}

struct Worker {
    child: Child,
    _stdin: ChildStdin,
}

async fn spawn_worker(config: SimConfig) -> anyhow::Result<(Worker, WorkerLink)> {
    let exe = std::env::current_exe().context("find own executable")?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" worker"#)
        .arg(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn worker")?;
    let mut stdin = child.stdin.take().context("worker stdin")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let first_index = config.first_index;
    let mut spec = serde_json::to_string(&WorkerSpec { config })?;
    spec.push('\n');
    stdin.write_all(spec.as_bytes()).await?;
    stdin.flush().await?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let n = tokio::time::timeout(Duration::from_secs(600), lines.read_line(&mut line))
        .await
        .context("worker did not get ready in time")??;
    if n == 0 {
        bail!("worker for devices from {first_index} exited before it was ready");
    }
    let ready: WorkerReady =
        serde_json::from_str(line.trim()).with_context(|| format!("worker said {line:?}"))?;
    // Keep draining the worker's stdout so it can never block on a full pipe.
    tokio::spawn(async move {
        let mut sink = vec![0u8; 1024];
        while let Ok(n) = lines.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    Ok((
        Worker {
            child,
            _stdin: stdin,
        },
        WorkerLink {
            control: ready.control,
            first_index,
            devices: ready.devices,
        },
    ))
}

async fn run_parent(
    opts: RunOptions,
    ca_pem: String,
    first: Ipv4Addr,
    per: usize,
) -> anyhow::Result<()> {
    let total = opts.config.devices;
    let mut starts = Vec::new();
    let mut start = 0;
    while start < total {
        let mut config = opts.config.clone();
        config.first_index = opts.config.first_index + start;
        config.devices = per.min(total - start);
        starts.push(tokio::spawn(spawn_worker(config)));
        start += per;
    }
    let mut workers = Vec::new();
    let mut links = Vec::new();
    let mut failure = None;
    for s in starts {
        match s.await {
            Ok(Ok((w, l))) => {
                workers.push(w);
                links.push(l);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(anyhow::anyhow!("worker start task: {e}")),
        }
    }
    if let Some(e) = failure {
        for w in &mut workers {
            let _ = w.child.start_kill();
        }
        return Err(e);
    }
    let control = ControlServer::start_workers(links, ca_pem, opts.control).await?;
    announce(&opts, control.addr(), first)?;
    let (died_tx, mut died_rx) = mpsc::channel::<String>(workers.len().max(1));
    let mut children = Vec::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let tx = died_tx.clone();
        children.push(tokio::spawn(async move {
            let status = w.child.wait().await;
            let _ = tx.send(format!("worker {i} exited: {status:?}")).await;
            drop(w);
        }));
    }
    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(why) = died_rx.recv() => Err(anyhow::anyhow!(why)),
    };
    control.stop().await;
    for c in children {
        c.abort();
    }
    // Aborting the tasks drops the children: their stdin closes and kill_on_drop kills them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    outcome
}

/// The worker side: reads its [`WorkerSpec`] from stdin, serves, prints its ready line, and
/// exits when stdin closes.
pub async fn run_worker() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin.read_line(&mut line).await?;
    let spec: WorkerSpec = serde_json::from_str(line.trim()).context("worker spec")?;
    let fleet = Fleet::start(spec.config).await?;
    let control = ControlServer::start_local(&fleet, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    {
        use std::io::Write;
        let ready = WorkerReady {
            ready: true,
            control: control.addr(),
            devices: fleet.len(),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&ready)?)?;
        out.flush()?;
    }
    let mut sink = vec![0u8; 256];
    loop {
        tokio::select! {
            r = stdin.read(&mut sink) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = shutdown_signal() => break,
        }
    }
    control.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(3), fleet.shutdown()).await;
    Ok(())
}
