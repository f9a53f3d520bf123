//! `drover-sim`: runs a simulated RouterOS fleet (see `drover-sim --help`), or, as
//! `drover-sim worker`, one worker process of a multi-process fleet.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use routeros_sim::SimConfig;
use routeros_sim::config::{DEFAULT_PASSWORD, DEFAULT_USER, DEFAULT_VERSION, parse_duration};
use routeros_sim::supervisor::{RunOptions, run, run_worker};

#[derive(Debug, Parser)]
#[command(
    name = "drover-sim",
    about = "Simulated MikroTik RouterOS v7 devices on 127.x addresses (API-SSL 8729, optional plain 8728)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Internal: one worker process of a multi-process fleet (reads its spec on stdin).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Number of devices.
    #[arg(long, default_value_t = 1, env = "DROVER_SIM_DEVICES")]
    devices: usize,
    /// Address of the first device; the others follow, skipping .0 and .255.
    #[arg(long, default_value = "127.10.0.1")]
    base: Ipv4Addr,
    /// Most devices per process; larger fleets are split across worker processes.
    #[arg(long, default_value_t = 9000)]
    devices_per_process: usize,
    /// API-SSL port on every device address.
    #[arg(long, default_value_t = 8729)]
    tls_port: u16,
    /// Also serve the plain API.
    #[arg(long)]
    plain: bool,
    /// Plain API port (with --plain).
    #[arg(long, default_value_t = 8728)]
    plain_port: u16,
    /// Control API address (port 0: ephemeral; the ready line tells the port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Seed of every per-device choice (models, rates, fault shares).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Emulated RouterOS version (`!empty` is sent from 7.18 on).
    #[arg(long, default_value = DEFAULT_VERSION)]
    version: String,
    /// API user name.
    #[arg(long, default_value = DEFAULT_USER)]
    user: String,
    /// API password.
    #[arg(long, default_value = DEFAULT_PASSWORD, env = "DROVER_SIM_PASSWORD")]
    password: String,
    /// Share (0..=1) of devices, chosen from the seed, that use the legacy login flow.
    #[arg(long, default_value_t = 0.0)]
    legacy_login_share: f64,
    /// How long a rebooting device refuses connections (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    reboot_delay: Duration,
    /// Comma-separated board names given to devices in turn (default: chosen from the seed).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// CA certificate PEM that signs device certificates (with --ca-key; default: generated).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// CA private key PEM (PKCS#8).
    #[arg(long)]
    ca_key: Option<PathBuf>,
    /// Write the CA certificate PEM here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Also write the ready line to this file.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Listen backlog per device listener.
    #[arg(long, default_value_t = 128)]
    backlog: u32,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("bad duration {text:?} (e.g. 5s, 500ms)"))
}

/// Raises the soft open-file limit to the hard one by re-running this program through
/// `sh -c 'ulimit -n $(ulimit -Hn); exec ...'` (no `unsafe` needed). Children inherit it.
fn raise_nofile_limit() {
    const MARK: &str = "DROVER_SIM_NOFILE_RAISED";
    if std::env::var_os(MARK).is_some() {
        return;
    }
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return;
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (Some(soft), Some(hard)) = (fields.get(3), fields.get(4)) else {
        return;
    };
    if soft == hard {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#)
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .exec();
    eprintln!("drover-sim: could not re-run with a raised open-file limit: {err}");
}

fn main() -> anyhow::Result<()> {
    raise_nofile_limit();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    match cli.mode {
        Some(Mode::Worker) => runtime.block_on(run_worker()),
        None => {
            let a = cli.run;
            let config = SimConfig {
                devices: a.devices,
                base: a.base,
                first_index: 0,
                tls_port: a.tls_port,
                plain_port: a.plain.then_some(a.plain_port),
                seed: a.seed,
                version: a.version,
                username: a.user,
                password: a.password,
                legacy_login_share: a.legacy_login_share,
                reboot_delay: a.reboot_delay,
                ca: None,
                random_base: false,
                backlog: a.backlog,
                models: a.models,
            };
            runtime.block_on(run(RunOptions {
                config,
                devices_per_process: a.devices_per_process,
                control: a.control,
                ca_cert: a.ca_cert,
                ca_key: a.ca_key,
                ca_out: a.ca_out,
                ready_file: a.ready_file,
            }))
        }
    }
}
