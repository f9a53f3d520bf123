//! Polls a (simulated) fleet over persistent TLS sessions with the bare client: one task per
//! device, the poll's commands pipelined in one round trip, first polls spread over the
//! interval. It is the quick-start's main job until the drover node exists, and the minimal
//! baseline that drover's per-poll cost is compared with.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use routeros_client::{Command, ConnectOptions, Credentials, Transport, connect};

#[derive(Parser, Debug)]
#[command(about = "Poll a RouterOS fleet with persistent sessions")]
struct Args {
    /// Address of the first device; the others follow (last octets .0 and .255 are skipped).
    #[arg(long, default_value = "127.10.0.1")]
    first: Ipv4Addr,
    /// Number of devices.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, env = "ROUTEROS_PASSWORD", default_value = "drover-sim")]
    password: String,
    /// Poll interval in seconds.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Stop after this many seconds (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Verify device certificates against this CA bundle instead of accepting any.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Totals {
    online: AtomicU64,
    polls: AtomicU64,
    failures: AtomicU64,
    poll_micros: AtomicU64,
}

/// The commands of one poll, sent together.
fn poll_commands() -> Vec<Command> {
    vec![
        Command::new("/system/resource/print"),
        Command::new("/system/routerboard/print"),
        Command::new("/system/health/print"),
        Command::new("/system/identity/print"),
        Command::new("/interface/print")
            .proplist(&["name", "type", "running", "rx-byte", "tx-byte"]),
    ]
}

/// The `n`-th address after `first`, skipping last octets 0 and 255.
fn device_address(first: Ipv4Addr, n: usize) -> Ipv4Addr {
    let mut addr = u32::from(first);
    let mut left = n;
    while left > 0 {
        addr = addr.wrapping_add(1);
        if !matches!(addr & 0xFF, 0 | 255) {
            left -= 1;
        }
    }
    Ipv4Addr::from(addr)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let transport = match &args.ca {
        Some(path) => Transport::Tls(routeros_client::TlsPolicy::verify_with_ca_pem(
            &std::fs::read(path)?,
        )?),
        None => Transport::insecure(),
    };
    let interval = Duration::from_secs(args.interval.max(1));
    let totals = Arc::new(Totals::default());
    let handshakes = Arc::new(tokio::sync::Semaphore::new(64));
    let started = Instant::now();
    for n in 0..args.devices {
        let mut options = ConnectOptions::new(
            device_address(args.first, n).to_string(),
            Credentials::new(args.user.clone(), args.password.clone()),
        );
        options.transport = transport.clone();
        let totals = totals.clone();
        let handshakes = handshakes.clone();
        // Spread first polls evenly over the interval.
        let offset = interval.mul_f64(n as f64 / args.devices.max(1) as f64);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let client = {
                    let _permit = handshakes.acquire().await;
                    connect(&options).await
                };
                let client = match client {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{}: {e}", options.host);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        continue;
                    }
                };
                backoff = Duration::from_secs(1);
                totals.online.fetch_add(1, Ordering::Relaxed);
                let mut ticker =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
                loop {
                    ticker.tick().await;
                    let t = Instant::now();
                    let results = client.execute_pipelined(poll_commands()).await;
                    if results
                        .iter()
                        .any(|r| r.as_ref().is_err_and(|e| e.is_session_fatal()))
                    {
                        totals.failures.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    totals.polls.fetch_add(1, Ordering::Relaxed);
                    totals
                        .poll_micros
                        .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                totals.online.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    loop {
        tokio::select! {
            _ = report.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let polls = totals.polls.load(Ordering::Relaxed);
        let mean_ms =
            totals.poll_micros.load(Ordering::Relaxed) as f64 / polls.max(1) as f64 / 1000.0;
        println!(
            "t={:>4}s online={}/{} polls={} failures={} mean_poll={mean_ms:.2}ms",
            started.elapsed().as_secs(),
            totals.online.load(Ordering::Relaxed),
            args.devices,
            polls,
            totals.failures.load(Ordering::Relaxed),
        );
        if args.duration > 0 && started.elapsed() >= Duration::from_secs(args.duration) {
            break;
        }
    }
    Ok(())
}
