//! `drover-bench fleet`: starts `drover-sim` with N devices, then runs the same poll workload
//! through one drover node and/or the bare-client baseline (each a child process of this
//! binary), reads their report lines, checks the simulator's own poll counters, and prints
//! the figures (human table on stderr, one JSON line per phase on stdout).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::children::{ChildGroup, SimReady, find_sim, http_get, start_sim};
use crate::histogram::Counts;
use crate::proc_stat::{self, parse_duration};
use crate::report::{Report, unix_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    Drover,
    Baseline,
    Both,
}

/// Options of `drover-bench fleet`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FleetOpts {
    /// Number of simulated devices (one node holds about 18,000: 20,000 open files per process).
    #[arg(long, default_value_t = 1000)]
    pub(crate) devices: usize,
    /// Poll interval (e.g. 11s).
    #[arg(long, default_value = "11s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// How long each phase runs after the devices are handed over (e.g. 3m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub(crate) mode: Mode,
    /// Also publish drover's events to NATS JetStream (e.g. nats://127.0.0.1:4222).
    #[arg(long)]
    pub(crate) nats: Option<String>,
    /// First simulated device address.
    #[arg(long, default_value = "127.40.0.1")]
    pub(crate) base: String,
    /// drover-sim binary (default: next to this binary, or $CARGO_TARGET_DIR/release).
    #[arg(long)]
    pub(crate) sim_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 9000)]
    pub(crate) devices_per_process: usize,
    /// Most TLS handshakes in progress at once (drover and baseline alike).
    #[arg(long, default_value_t = 64)]
    pub(crate) handshakes: usize,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) report_every: Duration,
    /// Check that the harness works (reports, polls, simulator counters), not the targets:
    /// exit non-zero only when the harness itself is broken.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Append each phase's JSON result line to this file too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

const PASSWORD: &str = "drover-bench";

/// One device's counters in the simulator's `GET /stats`.
#[derive(Debug, Deserialize)]
pub(crate) struct SimDevice {
    #[serde(default)]
    pub(crate) recent_polls_unix_ms: Vec<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SimStats {
    pub(crate) devices: Vec<SimDevice>,
}

/// "Polled exactly once per interval", from the simulator's counters.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ScheduleCheck {
    /// Devices polled twice less than half an interval apart within the window.
    pub(crate) polled_twice: usize,
    /// Devices with a gap of more than two intervals (or no poll) within the window.
    pub(crate) not_polled: usize,
    /// Polls the simulator served within the window, and how many the schedule plans.
    pub(crate) polls_served: u64,
    pub(crate) polls_expected: f64,
}

fn check_schedule(stats: &SimStats, from_ms: u64, to_ms: u64, interval: Duration) -> ScheduleCheck {
    let iv = interval.as_millis() as u64;
    let mut c = ScheduleCheck {
        polls_expected: stats.devices.len() as f64 * (to_ms - from_ms) as f64 / iv as f64,
        ..ScheduleCheck::default()
    };
    for d in &stats.devices {
        let times: Vec<u64> = d
            .recent_polls_unix_ms
            .iter()
            .copied()
            .filter(|t| (from_ms..=to_ms).contains(t))
            .collect();
        c.polls_served += times.len() as u64;
        if times.windows(2).any(|w| w[1].saturating_sub(w[0]) < iv / 2) {
            c.polled_twice += 1;
        }
        let mut edges = vec![from_ms];
        edges.extend(&times);
        edges.push(to_ms);
        if edges.windows(2).any(|w| w[1].saturating_sub(w[0]) > 2 * iv) {
            c.not_polled += 1;
        }
    }
    c
}

/// The figures of one phase (drover or baseline).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PhaseResult {
    pub(crate) mode: String,
    pub(crate) devices: usize,
    pub(crate) interval_s: f64,
    pub(crate) duration_s: f64,
    pub(crate) nats: bool,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    /// Seconds from hand-over until every device answered a poll.
    pub(crate) all_up_s: Option<f64>,
    pub(crate) up_at_end: u64,
    /// The steady-state window the rates below cover.
    pub(crate) window_from_s: f64,
    pub(crate) window_s: f64,
    pub(crate) polls: u64,
    pub(crate) polls_per_s: f64,
    pub(crate) polls_missed: u64,
    pub(crate) polls_failed: u64,
    pub(crate) polls_overrun: u64,
    pub(crate) cpu_s: f64,
    pub(crate) cpu_cores: f64,
    pub(crate) cpu_us_per_poll: f64,
    pub(crate) cpu_ms_per_device_minute: f64,
    pub(crate) rss_idle_kb: u64,
    pub(crate) rss_end_kb: u64,
    pub(crate) rss_max_kb: u64,
    pub(crate) rss_kb_per_device: f64,
    pub(crate) threads: u64,
    pub(crate) lateness_p50_ms: Option<f64>,
    pub(crate) lateness_p99_ms: Option<f64>,
    pub(crate) lateness_max_ms: f64,
    /// Over the whole phase, ramp-up included.
    pub(crate) lateness_p99_all_ms: Option<f64>,
    pub(crate) events_per_s: f64,
    pub(crate) nats_acked_per_s: Option<f64>,
    pub(crate) nats_dropped: Option<u64>,
    pub(crate) nats_buffered_end: Option<u64>,
    /// The simulator on the same cores: its CPU in the window.
    pub(crate) sim_cpu_cores: f64,
    pub(crate) sim_cpu_us_per_poll: f64,
    pub(crate) sim_rss_kb: u64,
    pub(crate) schedule: ScheduleCheck,
}

/// A report line plus the simulator's CPU when it arrived.
struct Sample {
    r: Report,
    sim_cpu: f64,
    sim_rss: u64,
}

async fn run_phase(
    mode: Mode,
    opts: &FleetOpts,
    sim_group: &ChildGroup,
    sim: &SimReady,
) -> anyhow::Result<PhaseResult> {
    let name = match mode {
        Mode::Drover => "drover",
        _ => "baseline",
    };
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg(if mode == Mode::Drover {
        "node"
    } else {
        "baseline"
    })
    .args([
        "--devices",
        &opts.devices.to_string(),
        "--first",
        &sim.first,
    ])
    .args(["--port", &sim.tls_port.to_string(), "--password", PASSWORD])
    .args(["--interval", &format!("{}ms", opts.interval.as_millis())])
    .args(["--handshakes", &opts.handshakes.to_string()])
    .args([
        "--report-every",
        &format!("{}ms", opts.report_every.as_millis()),
    ]);
    if mode == Mode::Drover
        && let Some(url) = &opts.nats
    {
        cmd.args(["--nats", url]);
    }
    let load_before = proc_stat::load_average();
    let (mut child, mut lines) = ChildGroup::spawn(name, cmd)?;
    let mut idle: Option<Report> = None;
    let mut samples: Vec<Sample> = Vec::new();
    let wall = Instant::now();
    let limit = opts.duration + Duration::from_secs(120);
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .with_context(|| format!("{name}: no report for 60 s"))??;
        let Some(line) = line else {
            bail!("{name} exited early");
        };
        let Ok(r) = serde_json::from_str::<Report>(&line) else {
            eprintln!("{name}: {line}");
            continue;
        };
        if r.kind == "idle" {
            eprintln!("  {name}: idle RSS {:.1} MiB", r.rss_kb as f64 / 1024.0);
            idle = Some(r);
            continue;
        }
        let (sim_cpu, sim_rss) = proc_stat::group_usage(sim_group.pgid());
        eprintln!(
            "  {name} t={:>5.1}s up={}/{} polls={} cpu={:.1}s rss={:.1}MiB late_max={:.0}ms",
            r.t,
            r.up,
            r.devices,
            r.polls,
            r.cpu_s,
            r.rss_kb as f64 / 1024.0,
            r.lateness_max_us as f64 / 1000.0
        );
        let done = r.t >= opts.duration.as_secs_f64();
        samples.push(Sample {
            r,
            sim_cpu,
            sim_rss,
        });
        if done {
            break;
        }
        if wall.elapsed() > limit {
            bail!("{name}: phase ran past its time limit");
        }
    }
    let end_unix_ms = unix_ms();
    let result = summarise(name, opts, idle, &samples, load_before);
    // The simulator's own counters, before the child stops (its polls end then).
    let stats_json = http_get(&sim.control, "/stats").await;
    child.stop(Duration::from_secs(20)).await;
    let mut result = result?;
    match stats_json.and_then(|b| serde_json::from_slice::<SimStats>(&b).context("parsing /stats"))
    {
        Ok(stats) => {
            let from_ms = end_unix_ms - (result.window_s * 1000.0) as u64;
            result.schedule = check_schedule(&stats, from_ms, end_unix_ms, opts.interval);
        }
        Err(e) => {
            if opts.smoke {
                return Err(e.context("reading the simulator's counters"));
            }
            eprintln!("drover-bench: simulator counters unavailable: {e:#}");
        }
    }
    result.load_after = proc_stat::load_average();
    Ok(result)
}

fn summarise(
    name: &str,
    opts: &FleetOpts,
    idle: Option<Report>,
    samples: &[Sample],
    load_before: String,
) -> anyhow::Result<PhaseResult> {
    let idle = idle.context("no idle report")?;
    let last = samples.last().context("no report")?;
    let n = opts.devices;
    let interval = opts.interval.as_secs_f64();
    let all_up_s = samples.iter().find(|s| s.r.up as usize >= n).map(|s| s.r.t);
    // Steady state: one interval after every device answered (or the second half).
    let from_t = all_up_s.map_or(last.r.t / 2.0, |t| t + interval);
    let first = samples
        .iter()
        .find(|s| s.r.t >= from_t)
        .filter(|s| s.r.t < last.r.t)
        .or_else(|| samples.get(samples.len().saturating_sub(2)))
        .context("too few reports")?;
    let (a, b) = (&first.r, &last.r);
    let dt = (b.t - a.t).max(1e-9);
    let polls = b.polls.saturating_sub(a.polls);
    let cpu = b.cpu_s - a.cpu_s;
    let late = Counts::from_sparse(&b.lateness).since(&Counts::from_sparse(&a.lateness));
    let late_all = Counts::from_sparse(&b.lateness);
    let ms = |us: Option<f64>| us.map(|v| v / 1000.0);
    let lateness_max_us = samples
        .iter()
        .filter(|s| s.r.t > a.t)
        .map(|s| s.r.lateness_max_us)
        .max()
        .unwrap_or(0);
    let sim_cpu = last.sim_cpu - first.sim_cpu;
    Ok(PhaseResult {
        mode: name.to_owned(),
        devices: n,
        interval_s: interval,
        duration_s: opts.duration.as_secs_f64(),
        nats: name == "drover" && opts.nats.is_some(),
        load_before,
        load_after: String::new(),
        all_up_s,
        up_at_end: b.up,
        window_from_s: a.t,
        window_s: dt,
        polls,
        polls_per_s: polls as f64 / dt,
        polls_missed: b.polls_missed.saturating_sub(a.polls_missed),
        polls_failed: b.polls_failed.saturating_sub(a.polls_failed),
        polls_overrun: b.polls_overrun.saturating_sub(a.polls_overrun),
        cpu_s: cpu,
        cpu_cores: cpu / dt,
        cpu_us_per_poll: if polls > 0 {
            cpu * 1e6 / polls as f64
        } else {
            0.0
        },
        cpu_ms_per_device_minute: cpu * 1e3 / n.max(1) as f64 / (dt / 60.0),
        rss_idle_kb: idle.rss_kb,
        rss_end_kb: b.rss_kb,
        rss_max_kb: samples.iter().map(|s| s.r.rss_kb).max().unwrap_or(0),
        rss_kb_per_device: b.rss_kb.saturating_sub(idle.rss_kb) as f64 / n.max(1) as f64,
        threads: b.threads,
        lateness_p50_ms: ms(late.quantile_us(0.5)),
        lateness_p99_ms: ms(late.quantile_us(0.99)),
        lateness_max_ms: lateness_max_us as f64 / 1000.0,
        lateness_p99_all_ms: ms(late_all.quantile_us(0.99)),
        events_per_s: b.events.saturating_sub(a.events) as f64 / dt,
        nats_acked_per_s: b
            .nats_acked
            .zip(a.nats_acked)
            .map(|(x, y)| x.saturating_sub(y) as f64 / dt),
        nats_dropped: b.nats_dropped,
        nats_buffered_end: b.nats_buffered,
        sim_cpu_cores: sim_cpu / dt,
        sim_cpu_us_per_poll: if polls > 0 {
            sim_cpu * 1e6 / polls as f64
        } else {
            0.0
        },
        sim_rss_kb: last.sim_rss,
        schedule: ScheduleCheck::default(),
    })
}

fn print_result(r: &PhaseResult) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    eprintln!(
        "== {} ({} devices, interval {}s, window {:.0}s from t={:.0}s, load {} -> {})",
        r.mode, r.devices, r.interval_s, r.window_s, r.window_from_s, r.load_before, r.load_after
    );
    eprintln!(
        "   all answering after   {} s (at end {}/{})",
        opt(r.all_up_s),
        r.up_at_end,
        r.devices
    );
    eprintln!(
        "   polls                 {:.0}/s ({} missed, {} failed, {} overrun)",
        r.polls_per_s, r.polls_missed, r.polls_failed, r.polls_overrun
    );
    eprintln!(
        "   CPU                   {:.2} cores, {:.1} us/poll, {:.2} ms per device-minute",
        r.cpu_cores, r.cpu_us_per_poll, r.cpu_ms_per_device_minute
    );
    eprintln!(
        "   RSS                   idle {:.1} MiB, end {:.1} MiB, {:.1} KiB/device",
        r.rss_idle_kb as f64 / 1024.0,
        r.rss_end_kb as f64 / 1024.0,
        r.rss_kb_per_device
    );
    eprintln!(
        "   lateness              p50 {} ms, p99 {} ms, max {:.1} ms (p99 incl. ramp {} ms)",
        opt(r.lateness_p50_ms),
        opt(r.lateness_p99_ms),
        r.lateness_max_ms,
        opt(r.lateness_p99_all_ms)
    );
    eprintln!(
        "   events                {:.0}/s (NATS acked {}/s, dropped {:?})",
        r.events_per_s,
        opt(r.nats_acked_per_s),
        r.nats_dropped
    );
    eprintln!(
        "   simulator             {:.2} cores, {:.1} us/poll, RSS {:.0} MiB",
        r.sim_cpu_cores,
        r.sim_cpu_us_per_poll,
        r.sim_rss_kb as f64 / 1024.0
    );
    eprintln!(
        "   schedule (sim)        {} polled twice < 0.5 interval, {} not polled > 2 intervals; {} polls served / {:.0} planned",
        r.schedule.polled_twice,
        r.schedule.not_polled,
        r.schedule.polls_served,
        r.schedule.polls_expected
    );
}

/// Problems that mean the harness itself is broken (for `--smoke`).
fn harness_problems(r: &PhaseResult) -> Vec<String> {
    let mut p = Vec::new();
    if r.polls == 0 {
        p.push(format!("{}: no polls in the window", r.mode));
    }
    if (r.up_at_end as f64) < 0.5 * r.devices as f64 {
        p.push(format!(
            "{}: only {}/{} devices answering",
            r.mode, r.up_at_end, r.devices
        ));
    }
    if r.schedule.polls_served == 0 {
        p.push(format!(
            "{}: the simulator counted no polls in the window",
            r.mode
        ));
    }
    if r.rss_end_kb == 0 || r.cpu_s <= 0.0 {
        p.push(format!("{}: no CPU or memory readings", r.mode));
    }
    if r.lateness_p50_ms.is_none() {
        p.push(format!("{}: no lateness samples", r.mode));
    }
    p
}

fn targets(d: &PhaseResult, base: Option<&PhaseResult>) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    eprintln!("== targets (one node, this machine)");
    let up = d.all_up_s.unwrap_or(f64::INFINITY);
    eprintln!(
        "   all online within 30 s:      {} ({:.1} s)",
        verdict(up <= 30.0),
        up
    );
    let p99 = d.lateness_p99_ms.unwrap_or(f64::INFINITY);
    eprintln!(
        "   lateness p99 <= 1 s:         {} ({p99:.1} ms)",
        verdict(p99 <= 1000.0)
    );
    let kb = d.rss_kb_per_device * 1.024;
    eprintln!(
        "   RSS <= 24 KB/device:         {} ({kb:.1} KB)",
        verdict(kb <= 24.0)
    );
    let idle = d.rss_idle_kb as f64 * 1.024 / 1000.0;
    eprintln!(
        "   idle node <= 50 MB:          {} ({idle:.1} MB)",
        verdict(idle <= 50.0)
    );
    if let Some(b) = base {
        let ratio = d.cpu_us_per_poll / b.cpu_us_per_poll.max(1e-9);
        eprintln!(
            "   CPU/poll <= 1.5x baseline:   {} ({ratio:.2}x: {:.1} vs {:.1} us)",
            verdict(ratio <= 1.5),
            d.cpu_us_per_poll,
            b.cpu_us_per_poll
        );
    }
}

pub(crate) async fn run(opts: FleetOpts) -> anyhow::Result<()> {
    if opts.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let sim_bin = find_sim(opts.sim_bin.as_deref())?;
    eprintln!(
        "drover-bench fleet: {} devices, interval {:?}, {:?} per phase, mode {:?}; {} cores, load {}",
        opts.devices,
        opts.interval,
        opts.duration,
        opts.mode,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_stat::load_average()
    );
    let t = Instant::now();
    let (mut sim_group, sim) = start_sim(
        &sim_bin,
        opts.devices,
        &opts.base,
        opts.devices_per_process,
        PASSWORD,
    )
    .await?;
    eprintln!(
        "  drover-sim ready in {:.1}s: {} devices from {}, control {}",
        t.elapsed().as_secs_f64(),
        sim.devices,
        sim.first,
        sim.control
    );

    let phases: &[Mode] = match opts.mode {
        Mode::Drover => &[Mode::Drover],
        Mode::Baseline => &[Mode::Baseline],
        Mode::Both => &[Mode::Drover, Mode::Baseline],
    };
    let mut results = Vec::new();
    let mut problems = Vec::new();
    let outcome: anyhow::Result<()> = async {
        for (i, &mode) in phases.iter().enumerate() {
            if i > 0 {
                // Let the previous phase's sessions close on the simulator side.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let r = run_phase(mode, &opts, &sim_group, &sim).await?;
            print_result(&r);
            problems.extend(harness_problems(&r));
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
            results.push(r);
        }
        Ok(())
    }
    .await;
    sim_group.stop(Duration::from_secs(20)).await;
    outcome?;

    let drover = results.iter().find(|r| r.mode == "drover");
    let base = results.iter().find(|r| r.mode == "baseline");
    if let Some(d) = drover {
        targets(d, base);
    }
    if opts.smoke {
        if !problems.is_empty() {
            bail!("the harness is not working: {}", problems.join("; "));
        }
        eprintln!("smoke: the harness works (targets are not checked in smoke mode)");
    }
    Ok(())
}
