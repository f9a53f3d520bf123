//! `drover-bench`: the fleet-scale benchmark harness (`fleet`), the measured child processes
//! it starts (`node`: one drover node; `baseline`: the bare client), and the benchmarks of a
//! real `drover run` (`api`, `sse`, `idle`, `cluster`).

mod api;
mod baseline;
mod children;
mod cluster;
mod fleet;
mod hexcodec;
mod histogram;
mod http1;
mod idle;
mod node;
mod proc_stat;
mod recorder;
mod report;
mod sse;
mod stack;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "drover-bench",
    about = "drover's fleet-scale benchmark harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start drover-sim and measure drover and/or the baseline against it.
    Fleet(fleet::FleetOpts),
    /// Internal: one drover node polling the simulated fleet (prints report lines).
    #[command(hide = true)]
    Node(node::NodeOpts),
    /// Internal: the bare-client baseline polling the simulated fleet (prints report lines).
    #[command(hide = true)]
    Baseline(report::FleetArgs),
    /// A real `drover run` with N devices in the store: the fleet list under concurrent load.
    Api(api::ApiOpts),
    /// A real `drover run` with N SSE clients: delay from a device change to the last client.
    Sse(sse::SseOpts),
    /// Internal: a process holding SSE streams for `sse` (prints event lines).
    #[command(hide = true)]
    SseClients(sse::SseClientOpts),
    /// A real `drover run` with no devices: resident memory once settled.
    Idle(idle::IdleOpts),
    /// K `drover run` nodes as a cluster polling N simulated devices.
    Cluster(cluster::ClusterOpts),
}

/// Raises the soft open-file limit to the hard one by re-running this program through
/// `sh -c 'ulimit -n $(ulimit -Hn); exec ...'` (no `unsafe`). Children inherit the limit.
fn raise_nofile_limit() {
    const MARK: &str = "DROVER_BENCH_NOFILE_RAISED";
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
    if fields.get(3) == fields.get(4) {
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
    eprintln!("drover-bench: could not re-run with a raised open-file limit: {err}");
}

/// The runtime of the harness processes that mostly wait on children.
fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
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
    match cli.command {
        Cmd::Fleet(opts) => current_thread()?.block_on(fleet::run(opts)),
        Cmd::Node(opts) => node::run(opts),
        Cmd::Baseline(args) => baseline::run(args),
        Cmd::Api(opts) => api::run(opts),
        Cmd::Sse(opts) => current_thread()?.block_on(sse::run(opts)),
        Cmd::SseClients(opts) => sse::run_clients(opts),
        Cmd::Idle(opts) => current_thread()?.block_on(idle::run(opts)),
        Cmd::Cluster(opts) => current_thread()?.block_on(cluster::run(opts)),
    }
}
