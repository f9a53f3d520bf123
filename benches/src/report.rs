//! The JSON lines a measured child process (drover node or baseline) prints on stdout, and
//! the fleet parameters both kinds of child take.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::histogram::AtomicHistogram;
use crate::proc_stat;

/// One line on a child's stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    /// `"idle"` (once, before any device is configured) or `"tick"`.
    pub(crate) kind: String,
    /// Seconds since the devices were handed over (0 for `idle`).
    pub(crate) t: f64,
    pub(crate) unix_ms: u64,
    pub(crate) devices: usize,
    /// Devices answering polls (online or degraded).
    pub(crate) up: u64,
    /// Devices online.
    pub(crate) online: u64,
    /// Successful polls so far.
    pub(crate) polls: u64,
    pub(crate) polls_missed: u64,
    pub(crate) polls_failed: u64,
    pub(crate) polls_overrun: u64,
    /// Events emitted so far (drover only).
    pub(crate) events: u64,
    /// Events acknowledged by JetStream, dropped, still buffered (drover with NATS only).
    pub(crate) nats_acked: Option<u64>,
    pub(crate) nats_dropped: Option<u64>,
    pub(crate) nats_buffered: Option<u64>,
    /// user + system CPU seconds of the process so far.
    pub(crate) cpu_s: f64,
    pub(crate) rss_kb: u64,
    pub(crate) threads: u64,
    /// Cumulative poll lateness histogram (sparse `(bucket, count)`, microseconds).
    pub(crate) lateness: Vec<(u16, u64)>,
    /// Largest lateness since the previous line, microseconds.
    pub(crate) lateness_max_us: u64,
}

impl Report {
    /// A line with this process's CPU, memory and the lateness histogram filled in.
    pub(crate) fn measure(kind: &str, t: f64, devices: usize, lateness: &AtomicHistogram) -> Self {
        let (rss_kb, threads) = proc_stat::rss_kb_and_threads("self");
        Self {
            kind: kind.to_owned(),
            t,
            unix_ms: unix_ms(),
            devices,
            cpu_s: proc_stat::self_cpu_seconds(),
            rss_kb,
            threads,
            lateness: lateness.snapshot(),
            lateness_max_us: lateness.take_max(),
            ..Self::default()
        }
    }

    /// Writes the line to stdout (flushed: the parent reads it through a pipe).
    pub(crate) fn emit(&self) {
        use std::io::Write;
        if let Ok(line) = serde_json::to_string(self) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a measured child polls: the simulated fleet's addresses, credentials and schedule.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FleetArgs {
    /// Number of devices.
    #[arg(long)]
    pub(crate) devices: usize,
    /// Address of the first device; the others follow, skipping .0 and .255.
    #[arg(long)]
    pub(crate) first: Ipv4Addr,
    /// API-SSL port of every device.
    #[arg(long, default_value_t = 8729)]
    pub(crate) port: u16,
    #[arg(long, default_value = "admin")]
    pub(crate) user: String,
    #[arg(long, default_value = "drover-sim", env = "DROVER_SIM_PASSWORD")]
    pub(crate) password: String,
    /// Poll interval (e.g. 11s, 500ms).
    #[arg(long, value_parser = proc_stat::parse_duration)]
    pub(crate) interval: Duration,
    /// Most TLS handshakes in progress at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) handshakes: usize,
    /// How often to print a report line.
    #[arg(long, default_value = "2s", value_parser = proc_stat::parse_duration)]
    pub(crate) report_every: Duration,
}

/// Consecutive device addresses, computed in one pass.
pub(crate) fn device_addresses(first: Ipv4Addr, n: usize) -> Vec<Ipv4Addr> {
    let mut out = Vec::with_capacity(n);
    let mut addr = u32::from(first);
    while out.len() < n {
        if !matches!(addr & 0xFF, 0 | 255) {
            out.push(Ipv4Addr::from(addr));
        }
        addr = addr.wrapping_add(1);
    }
    out
}

/// Ends the process when the parent closes our stdin (also when the parent was killed), so a
/// measured child never outlives the harness.
pub(crate) fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        use std::io::Read;
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while let Ok(n) = stdin.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_broadcast_octets() {
        let first: Ipv4Addr = "127.40.0.253".parse().unwrap();
        let all = device_addresses(first, 4);
        assert_eq!(
            all,
            ["127.40.0.253", "127.40.0.254", "127.40.1.1", "127.40.1.2"]
                .map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
    }
}
