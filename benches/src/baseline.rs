//! `drover-bench baseline`: the minimal baseline. The same poll workload as a drover node —
//! persistent TLS sessions, the commands of `drover_device::poll::commands` pipelined in one
//! round trip on the same fixed grid — driven by the bare client: one Tokio task per
//! device, no actors, no events, no fan-out. Prints the same [`Report`] lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drover_device::poll::{self, PollPlan, Radios};
use routeros_client::{ConnectOptions, Credentials, Error, Transport, connect};
use tokio::sync::Semaphore;

use crate::histogram::AtomicHistogram;
use crate::node::device_id;
use crate::report::{FleetArgs, Report, device_addresses, exit_when_stdin_closes};

#[derive(Debug, Default)]
struct Totals {
    up: AtomicU64,
    polls: AtomicU64,
    missed: AtomicU64,
    failed: AtomicU64,
    lateness: AtomicHistogram,
}

pub(crate) fn run(fleet: FleetArgs) -> anyhow::Result<()> {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(fleet))
}

/// drover's first-poll offset (`drover_device::actor::first_poll_delay`): a stable per-device
/// phase spread over the smaller of the interval and 30 s.
fn first_offset(n: usize, interval: Duration) -> Duration {
    let spread = interval.min(Duration::from_secs(30)).as_millis().max(1) as u64;
    let salt = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 3600)
        .unwrap_or(0);
    Duration::from_millis((device_id(n).stable_hash() ^ salt) % spread)
}

async fn serve(f: FleetArgs) -> anyhow::Result<()> {
    let totals = Arc::new(Totals::default());
    tokio::time::sleep(Duration::from_secs(1)).await;
    Report::measure("idle", 0.0, 0, &totals.lateness).emit();

    let handshakes = Arc::new(Semaphore::new(f.handshakes.max(1)));
    let transport = Transport::insecure();
    let start = tokio::time::Instant::now();
    let process_start = Instant::now();
    for (n, addr) in device_addresses(f.first, f.devices).into_iter().enumerate() {
        let mut options = ConnectOptions::new(
            addr.to_string(),
            Credentials::new(f.user.clone(), f.password.clone()),
        );
        options.port = Some(f.port);
        options.transport = transport.clone();
        let first = start + first_offset(n, f.interval);
        tokio::spawn(device_loop(
            options,
            f.interval,
            first,
            Arc::clone(&handshakes),
            Arc::clone(&totals),
        ));
    }

    let mut tick = tokio::time::interval(f.report_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut r = Report::measure(
            "tick",
            process_start.elapsed().as_secs_f64(),
            f.devices,
            &totals.lateness,
        );
        r.up = totals.up.load(Ordering::Relaxed);
        r.online = r.up;
        r.polls = totals.polls.load(Ordering::Relaxed);
        r.polls_missed = totals.missed.load(Ordering::Relaxed);
        r.polls_failed = totals.failed.load(Ordering::Relaxed);
        r.emit();
    }
}

/// One device: connect, then poll on the grid `first + k * interval` until the session dies.
async fn device_loop(
    options: ConnectOptions,
    interval: Duration,
    first: tokio::time::Instant,
    handshakes: Arc<Semaphore>,
    totals: Arc<Totals>,
) {
    let command_timeout = Duration::from_secs(30).min(interval.mul_f64(0.9));
    let mut planned = first;
    let mut backoff = Duration::from_secs(1);
    // The firmware check runs on the first poll, as in drover (then daily).
    let mut firmware_due = true;
    loop {
        let client = {
            let _permit = handshakes.acquire().await;
            connect(&options).await
        };
        let client = match client {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        // Slots that passed while connecting are missed, not late (drover counts them the
        // same way: its timer fires on the grid whether or not a session is open).
        let now = tokio::time::Instant::now();
        while planned < now {
            planned += interval;
            totals.missed.fetch_add(1, Ordering::Relaxed);
        }
        let mut radios = Radios::Unknown;
        let mut routerboard = true;
        let mut answered = false;
        loop {
            tokio::time::sleep_until(planned).await;
            let now = tokio::time::Instant::now();
            totals
                .lateness
                .record_us(now.saturating_duration_since(planned).as_micros() as u64);
            let mut next = planned + interval;
            while next <= now {
                next += interval;
            }
            planned = next;

            let plan = PollPlan {
                routerboard,
                firmware: firmware_due,
                radios,
            };
            let (commands, _) = poll::commands(&plan);
            let results = client
                .execute_pipelined_with_timeout(commands, command_timeout)
                .await;
            if results
                .iter()
                .any(|r| r.as_ref().is_err_and(Error::is_session_fatal))
            {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if matches!(results.first(), Some(Ok(_))) {
                totals.polls.fetch_add(1, Ordering::Relaxed);
                if !answered {
                    answered = true;
                    totals.up.fetch_add(1, Ordering::Relaxed);
                }
                routerboard = false;
                firmware_due = false;
            } else {
                totals.failed.fetch_add(1, Ordering::Relaxed);
            }
            // Learn the radio menu the way drover does (the registrations slot follows the
            // four fixed commands and the optional routerboard read).
            let slot = 4 + usize::from(plan.routerboard);
            radios = match (results.get(slot), plan.radios) {
                (Some(Ok(_)), Radios::Unknown | Radios::Wifi) => Radios::Wifi,
                (Some(Ok(_)), _) => Radios::Wireless,
                (Some(Err(Error::Trap { .. })), Radios::Unknown) => Radios::WirelessProbe,
                (Some(Err(Error::Trap { .. })), Radios::WirelessProbe) => Radios::None,
                (_, r) => r,
            };
        }
        if answered {
            totals.up.fetch_sub(1, Ordering::Relaxed);
        }
        client.close();
        totals.missed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
