//! `drover-bench idle`: a real `drover run` with no devices (fresh database, the machine's
//! Redis and NATS, HTTP API and poller roles), its resident memory sampled every second once
//! it answers `/health/ready`, until the last samples agree; reports the settled RSS, the
//! peak, threads and idle CPU.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::api::median;
use crate::proc_stat::{self, parse_duration};
use crate::stack::{CpuMark, Database, DroverNode, NodeSettings, find_drover, run_dir};

/// Options of `drover-bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdleOpts {
    /// How long to sample after the node is ready.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Nodes started one after the other (the summary gives the median).
    #[arg(long, default_value_t = 1)]
    pub(crate) runs: usize,
    /// `DROVER_ROLES` of the node.
    #[arg(long, default_value = "both")]
    pub(crate) roles: String,
    #[arg(long)]
    pub(crate) drover_bin: Option<PathBuf>,
    /// Check that the harness works, not the target.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Append each run's JSON line to this file too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// One idle node.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct IdleRun {
    pub(crate) bench: &'static str,
    pub(crate) run: usize,
    pub(crate) roles: String,
    pub(crate) ready_s: f64,
    /// RSS at the end of the sampling.
    pub(crate) rss_kb: u64,
    pub(crate) rss_peak_kb: u64,
    /// Largest change over the last five samples (settled when small).
    pub(crate) rss_last_5s_change_kb: u64,
    pub(crate) threads: u64,
    pub(crate) cpu_cores: f64,
}

pub(crate) async fn run(opts: IdleOpts) -> anyhow::Result<()> {
    let drover = find_drover(opts.drover_bin.as_deref())?;
    let dir = run_dir("idle")?;
    eprintln!(
        "drover-bench idle: {} run(s) of {:?}, roles {}; load {}; logs in {}",
        opts.runs,
        opts.duration,
        opts.roles,
        proc_stat::load_average(),
        dir.display()
    );
    let mut runs = Vec::new();
    for run in 1..=opts.runs.max(1) {
        let mut db = Database::create(&drover, "idle").await?;
        let settings = NodeSettings {
            name: format!("bench-idle-{run}"),
            roles: opts.roles.clone(),
            env: Vec::new(),
            log: dir.join(format!("drover-{run}.log")),
        };
        let result = async {
            let t = Instant::now();
            let mut node =
                DroverNode::start(&drover, &db, &settings, Duration::from_secs(120)).await?;
            let ready_s = t.elapsed().as_secs_f64();
            let pid = node.pid.to_string();
            let cpu0 = CpuMark::now(node.usage().0);
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let until = Instant::now() + opts.duration;
            while Instant::now() < until {
                tick.tick().await;
                samples.push(proc_stat::rss_kb_and_threads(&pid));
            }
            let cpu1 = CpuMark::now(node.usage().0);
            node.stop().await;
            let last5: Vec<u64> = samples.iter().rev().take(5).map(|s| s.0).collect();
            let (rss_kb, threads) = samples.last().copied().unwrap_or_default();
            Ok::<_, anyhow::Error>(IdleRun {
                bench: "idle",
                run,
                roles: opts.roles.clone(),
                ready_s,
                rss_kb,
                rss_peak_kb: samples.iter().map(|s| s.0).max().unwrap_or(0),
                rss_last_5s_change_kb: last5.iter().max().unwrap_or(&0)
                    - last5.iter().min().unwrap_or(&0),
                threads,
                cpu_cores: cpu0.until(&cpu1).1,
            })
        }
        .await;
        db.drop_now().await;
        let r = result?;
        eprintln!(
            "== idle run {run}: ready after {:.1}s; RSS {:.1} MiB (peak {:.1} MiB, moved {} KiB over the last 5 s), {} threads, {:.3} cores",
            r.ready_s,
            r.rss_kb as f64 / 1024.0,
            r.rss_peak_kb as f64 / 1024.0,
            r.rss_last_5s_change_kb,
            r.threads,
            r.cpu_cores
        );
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
    let rss_mb = median(
        runs.iter()
            .map(|r| r.rss_kb as f64 * 1.024 / 1000.0)
            .collect(),
    )
    .unwrap_or(f64::INFINITY);
    if !opts.smoke {
        eprintln!(
            "== target: idle node <= 50 MB resident: {} (median {rss_mb:.1} MB over {} run(s))",
            if rss_mb <= 50.0 { "met" } else { "MISSED" },
            runs.len()
        );
    }
    if opts.smoke && runs.iter().any(|r| r.rss_kb == 0 || r.threads == 0) {
        bail!("the harness is not working: no memory reading of the node");
    }
    if opts.smoke {
        eprintln!("smoke: the idle harness works (the target is not checked in smoke mode)");
    }
    Ok(())
}
