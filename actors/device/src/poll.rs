//! One poll: which commands to send (all pipelined in one round trip) and how to turn the
//! replies into derived values. Pure: the caller does the IO and supplies the clock.

use std::collections::HashMap;

use drover_model::events::{InterfaceSample, WirelessSummary};
use routeros_client::{Attributes, Command, Error, Response};

use crate::values::{parse_bool, parse_duration_secs, parse_f64, parse_signal_dbm, parse_u64};

/// Which radio menu the device answers, learned on the first poll of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Radios {
    /// Not probed yet: try the v7 `wifi` menu.
    Unknown,
    /// v7 wifi package (`/interface/wifi`).
    Wifi,
    /// Legacy wireless package (`/interface/wireless`); probed after `wifi` traps.
    WirelessProbe,
    Wireless,
    /// Neither menu exists: no radios; not asked again this session.
    None,
}

/// What to ask in one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPlan {
    /// Ask `/system/routerboard/print` (first poll of a session, then daily).
    pub routerboard: bool,
    /// Run the firmware update check (at most daily).
    pub firmware: bool,
    pub radios: Radios,
}

/// Slots of each command in the pipelined batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    resource: usize,
    health: usize,
    identity: usize,
    interfaces: usize,
    routerboard: Option<usize>,
    registrations: Option<usize>,
    firmware: Option<usize>,
}

/// The interface properties a poll needs (never the slow full print).
pub const INTERFACE_PROPS: &[&str] = &["name", "type", "running", "disabled", "rx-byte", "tx-byte"];

/// The commands of one poll and where each reply will be.
pub fn commands(plan: &PollPlan) -> (Vec<Command>, Layout) {
    let mut cmds = vec![
        Command::new("/system/resource/print"),
        Command::new("/system/health/print"),
        Command::new("/system/identity/print"),
        Command::new("/interface/print").proplist(INTERFACE_PROPS),
    ];
    let mut layout = Layout {
        resource: 0,
        health: 1,
        identity: 2,
        interfaces: 3,
        ..Layout::default()
    };
    let mut push = |c: Command| {
        cmds.push(c);
        Some(cmds.len() - 1)
    };
    if plan.routerboard {
        layout.routerboard = push(Command::new("/system/routerboard/print"));
    }
    layout.registrations = match plan.radios {
        Radios::Unknown | Radios::Wifi => push(
            Command::new("/interface/wifi/registration-table/print").proplist(&[
                "interface",
                "mac-address",
                "signal",
            ]),
        ),
        Radios::WirelessProbe | Radios::Wireless => push(
            Command::new("/interface/wireless/registration-table/print").proplist(&[
                "interface",
                "mac-address",
                "signal-strength",
            ]),
        ),
        Radios::None => None,
    };
    if plan.firmware {
        layout.firmware = push(Command::new("/system/package/update/check-for-updates"));
    }
    (cmds, layout)
}

/// Facts about the device that change rarely.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub routeros_version: Option<String>,
    pub board_name: Option<String>,
    pub identity: Option<String>,
    pub serial_number: Option<String>,
    pub architecture: Option<String>,
}

/// Result of the firmware update check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareInfo {
    pub installed_version: Option<String>,
    pub latest_version: Option<String>,
    pub channel: Option<String>,
    pub status: String,
}

/// Everything learned from one successful poll.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    pub facts: Facts,
    pub uptime: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    pub temperature_c: Option<f64>,
    pub interfaces: Vec<InterfaceSample>,
    pub wireless: Option<WirelessSummary>,
    /// Radio menu to use from now on.
    pub radios: Radios,
    pub firmware: Option<FirmwareInfo>,
    /// Data that was present but unusable; they make the device `degraded`.
    pub warnings: Vec<String>,
    /// Uptime went down since the previous poll.
    pub rebooted: bool,
}

/// Why a poll produced no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollFailure {
    pub reason: String,
    pub session_fatal: bool,
}

/// Counters from the previous poll, for rates and reboot detection.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    at_secs: Option<f64>,
    uptime: Option<u64>,
    counters: HashMap<String, (u64, u64)>,
}

impl Baseline {
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Turns the replies into a report. `now_secs` is a monotonic clock reading in seconds.
pub fn interpret(
    plan: &PollPlan,
    layout: &Layout,
    results: Vec<Result<Response, Error>>,
    baseline: &mut Baseline,
    now_secs: f64,
    max_interfaces: usize,
) -> Result<PollReport, PollFailure> {
    if let Some(e) = results
        .iter()
        .find_map(|r| r.as_ref().err().filter(|e| e.is_session_fatal()))
    {
        return Err(PollFailure {
            reason: e.to_string(),
            session_fatal: true,
        });
    }
    let get = |i: Option<usize>| results.get(i?);
    let resource = match get(Some(layout.resource)) {
        Some(Ok(r)) => r.first().cloned().unwrap_or_default(),
        Some(Err(e)) => {
            return Err(PollFailure {
                reason: format!("resource: {e}"),
                session_fatal: false,
            });
        }
        None => Attributes::new(),
    };
    let mut warnings = Vec::new();
    let mut report = PollReport {
        facts: Facts::default(),
        uptime: None,
        cpu_percent: None,
        memory_percent: None,
        disk_percent: None,
        temperature_c: None,
        interfaces: Vec::new(),
        wireless: None,
        radios: plan.radios,
        firmware: None,
        warnings: Vec::new(),
        rebooted: false,
    };

    // Resource: version, board, uptime, CPU, memory, disk.
    let text = |a: &Attributes, k: &str| a.get(k).map(clamp_text).filter(|v| !v.is_empty());
    report.facts.routeros_version = text(&resource, "version");
    report.facts.board_name = text(&resource, "board-name");
    report.facts.architecture = text(&resource, "architecture-name");
    report.uptime = resource.get("uptime").and_then(|u| {
        let parsed = parse_duration_secs(u);
        if parsed.is_none() {
            warnings.push(format!("unreadable uptime {:?}", clamp_text(u)));
        }
        parsed
    });
    report.cpu_percent = resource.get("cpu-load").and_then(|v| match parse_f64(v) {
        Some(p) if (0.0..=100.0).contains(&p) => Some(p),
        _ => {
            warnings.push(format!("cpu-load out of range: {:?}", clamp_text(v)));
            None
        }
    });
    report.memory_percent = used_percent(&resource, "free-memory", "total-memory", &mut warnings);
    report.disk_percent = used_percent(
        &resource,
        "free-hdd-space",
        "total-hdd-space",
        &mut warnings,
    );
    if report.facts.routeros_version.is_none() {
        warnings.push("resource reply lacks a version".to_owned());
    }

    // Reboot: uptime went down. Rates restart from scratch so a counter reset is no spike.
    if let (Some(prev), Some(now)) = (baseline.uptime, report.uptime)
        && now < prev
    {
        report.rebooted = true;
        baseline.counters.clear();
        baseline.at_secs = None;
    }

    // Health: highest temperature sensor (v7 rows name/value/type, or v6 flat keys).
    if let Some(Ok(health)) = get(Some(layout.health)) {
        report.temperature_c = health
            .rows
            .iter()
            .flat_map(|row| {
                let v7 = (row.get("type") == Some("C"))
                    .then(|| row.get("value").and_then(parse_f64))
                    .flatten();
                let v6 = row
                    .iter()
                    .filter(|(k, _)| k.contains("temperature"))
                    .filter_map(|(_, v)| std::str::from_utf8(v).ok().and_then(parse_f64))
                    .collect::<Vec<_>>();
                v7.into_iter().chain(v6)
            })
            .filter(|t| (-60.0..=200.0).contains(t))
            .fold(None, |acc: Option<f64>, t| {
                Some(acc.map_or(t, |a| a.max(t)))
            });
    }

    if let Some(Ok(identity)) = get(Some(layout.identity)) {
        report.facts.identity = identity.first().and_then(|r| text(r, "name"));
    }
    if let Some(Ok(rb)) = get(layout.routerboard) {
        report.facts.serial_number = rb.first().and_then(|r| text(r, "serial-number"));
    }

    // Interfaces: counters and rates.
    match get(Some(layout.interfaces)) {
        Some(Ok(ifaces)) => {
            let dt = baseline.at_secs.map(|t| now_secs - t).filter(|d| *d > 0.0);
            let mut next = HashMap::with_capacity(ifaces.rows.len());
            if ifaces.rows.len() > max_interfaces {
                warnings.push(format!(
                    "{} interfaces; only the first {max_interfaces} are sampled",
                    ifaces.rows.len()
                ));
            }
            for row in ifaces.rows.iter().take(max_interfaces) {
                let Some(name) = row.get("name").map(clamp_text) else {
                    continue;
                };
                let (Some(rx), Some(tx)) = (
                    row.get("rx-byte").and_then(parse_u64),
                    row.get("tx-byte").and_then(parse_u64),
                ) else {
                    warnings.push(format!("interface {name} has unreadable counters"));
                    continue;
                };
                let rate = |now: u64, prev: u64| -> Option<f64> {
                    let dt = dt?;
                    // A counter that went down was reset (reboot) or wrapped: no rate.
                    (now >= prev).then(|| (now - prev) as f64 * 8.0 / dt)
                };
                let prev = baseline.counters.get(&name).copied();
                report.interfaces.push(InterfaceSample {
                    running: row.get("running").and_then(parse_bool).unwrap_or(false),
                    rx_bytes: rx,
                    tx_bytes: tx,
                    rx_bps: prev.and_then(|(p, _)| rate(rx, p)),
                    tx_bps: prev.and_then(|(_, p)| rate(tx, p)),
                    name: name.clone(),
                });
                next.insert(name, (rx, tx));
            }
            baseline.counters = next;
            baseline.at_secs = Some(now_secs);
        }
        Some(Err(e)) => warnings.push(format!("interfaces: {e}")),
        None => {}
    }
    baseline.uptime = report.uptime;

    // Radios: learn which menu exists; summarise clients.
    if let Some(slot) = layout.registrations {
        match (results.get(slot), plan.radios) {
            (Some(Ok(reg)), radios) => {
                report.radios = match radios {
                    Radios::Unknown | Radios::Wifi => Radios::Wifi,
                    _ => Radios::Wireless,
                };
                report.wireless = Some(summarise_registrations(&reg.rows));
            }
            (Some(Err(Error::Trap { .. })), Radios::Unknown) => {
                report.radios = Radios::WirelessProbe
            }
            (Some(Err(Error::Trap { .. })), Radios::WirelessProbe) => report.radios = Radios::None,
            (Some(Err(e)), _) => warnings.push(format!("registrations: {e}")),
            (None, _) => {}
        }
    }

    if let Some(slot) = layout.firmware {
        report.firmware = match results.get(slot) {
            Some(Ok(r)) => r.rows.last().map(|row| FirmwareInfo {
                installed_version: text(row, "installed-version"),
                latest_version: text(row, "latest-version"),
                channel: text(row, "channel"),
                status: text(row, "status").unwrap_or_default(),
            }),
            Some(Err(e)) => Some(FirmwareInfo {
                installed_version: report.facts.routeros_version.clone(),
                latest_version: None,
                channel: None,
                status: format!("check-failed: {e}"),
            }),
            None => None,
        };
    }

    report.warnings = warnings;
    Ok(report)
}

fn used_percent(
    a: &Attributes,
    free: &str,
    total: &str,
    warnings: &mut Vec<String>,
) -> Option<f64> {
    let (f, t) = (a.get(free)?, a.get(total)?);
    match (parse_u64(f), parse_u64(t)) {
        (Some(f), Some(t)) if t > 0 && f <= t => Some((t - f) as f64 * 100.0 / t as f64),
        _ => {
            warnings.push(format!(
                "{free}/{total} unusable: {:?}/{:?}",
                clamp_text(f),
                clamp_text(t)
            ));
            None
        }
    }
}

fn summarise_registrations(rows: &[Attributes]) -> WirelessSummary {
    let signals: Vec<i32> = rows
        .iter()
        .filter_map(|r| r.get("signal").or_else(|| r.get("signal-strength")))
        .filter_map(parse_signal_dbm)
        .collect();
    WirelessSummary {
        clients: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        mean_signal_dbm: (!signals.is_empty())
            .then(|| signals.iter().map(|&s| f64::from(s)).sum::<f64>() / signals.len() as f64),
        min_signal_dbm: signals.iter().copied().min(),
    }
}

/// Device-supplied text is cut to a sane length before it goes into events.
fn clamp_text(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
            .collect()
    }

    fn resp(rows: Vec<Attributes>) -> Result<Response, Error> {
        Ok(Response {
            rows,
            done: Attributes::new(),
        })
    }

    fn trap() -> Result<Response, Error> {
        Err(Error::Trap {
            command: "x".into(),
            category: None,
            message: "no such command prefix".into(),
        })
    }

    const PLAN: PollPlan = PollPlan {
        routerboard: true,
        firmware: false,
        radios: Radios::Unknown,
    };

    fn replies(
        uptime: &str,
        rx: &str,
        reg: Result<Response, Error>,
    ) -> Vec<Result<Response, Error>> {
        vec![
            resp(vec![row(&[
                ("uptime", uptime),
                ("version", "7.16.1 (stable)"),
                ("board-name", "RB5009UG+S+"),
                ("cpu-load", "4"),
                ("free-memory", "750"),
                ("total-memory", "1000"),
                ("free-hdd-space", "900"),
                ("total-hdd-space", "1000"),
            ])]),
            resp(vec![
                row(&[("name", "temperature"), ("value", "41"), ("type", "C")]),
                row(&[("name", "cpu-temperature"), ("value", "52"), ("type", "C")]),
                row(&[("name", "voltage"), ("value", "24.1"), ("type", "V")]),
            ]),
            resp(vec![row(&[("name", "core-rtr")])]),
            resp(vec![
                row(&[
                    ("name", "ether1"),
                    ("running", "true"),
                    ("rx-byte", rx),
                    ("tx-byte", "500"),
                ]),
                row(&[
                    ("name", "wg0"),
                    ("running", "true"),
                    ("rx-byte", "-5"),
                    ("tx-byte", "1"),
                ]),
            ]),
            resp(vec![row(&[("serial-number", "HF20A1B2C3D4")])]),
            reg,
        ]
    }

    #[test]
    fn derives_percentages_facts_and_temperature() {
        let (_, layout) = commands(&PLAN);
        let mut base = Baseline::default();
        let r = interpret(
            &PLAN,
            &layout,
            replies("1h", "1000", trap()),
            &mut base,
            0.0,
            512,
        )
        .unwrap();
        assert_eq!(r.cpu_percent, Some(4.0));
        assert_eq!(r.memory_percent, Some(25.0));
        assert_eq!(r.disk_percent, Some(10.0));
        assert_eq!(r.temperature_c, Some(52.0));
        assert_eq!(r.uptime, Some(3600));
        assert_eq!(r.facts.identity.as_deref(), Some("core-rtr"));
        assert_eq!(r.facts.serial_number.as_deref(), Some("HF20A1B2C3D4"));
        assert_eq!(
            r.radios,
            Radios::WirelessProbe,
            "wifi trapped: try wireless next"
        );
        assert_eq!(
            r.interfaces.len(),
            1,
            "wg0 with a negative counter is skipped"
        );
        assert!(
            r.warnings.iter().any(|w| w.contains("wg0")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn rates_come_from_counter_deltas_and_resets_do_not_spike() {
        let (_, layout) = commands(&PLAN);
        let mut base = Baseline::default();
        let first = interpret(
            &PLAN,
            &layout,
            replies("1h", "1000", trap()),
            &mut base,
            0.0,
            512,
        )
        .unwrap();
        assert_eq!(
            first.interfaces[0].rx_bps, None,
            "no rate on the first sample"
        );
        let second = interpret(
            &PLAN,
            &layout,
            replies("1h10s", "2250", trap()),
            &mut base,
            10.0,
            512,
        )
        .unwrap();
        assert_eq!(
            second.interfaces[0].rx_bps,
            Some(1000.0),
            "1250 bytes in 10 s = 1000 bit/s"
        );
        // Reboot: uptime went down and the counter restarted.
        let third = interpret(
            &PLAN,
            &layout,
            replies("5s", "10", trap()),
            &mut base,
            20.0,
            512,
        )
        .unwrap();
        assert!(third.rebooted);
        assert_eq!(third.interfaces[0].rx_bps, None);
        // Counter went down without a reboot (wrap): no rate either.
        let fourth = interpret(
            &PLAN,
            &layout,
            replies("15s", "5", trap()),
            &mut base,
            30.0,
            512,
        )
        .unwrap();
        assert!(!fourth.rebooted);
        assert_eq!(fourth.interfaces[0].rx_bps, None);
    }

    #[test]
    fn absurd_values_degrade_with_a_reason_instead_of_failing() {
        let (_, layout) = commands(&PLAN);
        let mut base = Baseline::default();
        let mut r = replies("1h", "1", trap());
        r[0] = resp(vec![row(&[
            ("uptime", "forever"),
            ("cpu-load", "900"),
            ("free-memory", "2000"),
            ("total-memory", "1000"),
        ])]);
        let report = interpret(&PLAN, &layout, r, &mut base, 0.0, 512).unwrap();
        assert_eq!(report.cpu_percent, None);
        assert_eq!(report.memory_percent, None);
        assert!(report.warnings.len() >= 3, "{:?}", report.warnings);
    }

    #[test]
    fn wireless_clients_are_summarised_in_both_formats() {
        let (_, layout) = commands(&PLAN);
        let mut base = Baseline::default();
        let reg = resp(vec![
            row(&[("interface", "wifi1"), ("signal", "-58")]),
            row(&[("interface", "wifi1"), ("signal-strength", "-64@HT20-7")]),
        ]);
        let r = interpret(&PLAN, &layout, replies("1h", "1", reg), &mut base, 0.0, 512).unwrap();
        assert_eq!(r.radios, Radios::Wifi);
        let w = r.wireless.unwrap();
        assert_eq!(w.clients, 2);
        assert_eq!(w.mean_signal_dbm, Some(-61.0));
        assert_eq!(w.min_signal_dbm, Some(-64));
    }

    #[test]
    fn a_lost_session_fails_the_poll_fatally() {
        let (_, layout) = commands(&PLAN);
        let mut base = Baseline::default();
        let mut r = replies("1h", "1", trap());
        r[2] = Err(Error::ConnectionLost {
            reason: "reset".into(),
        });
        let e = interpret(&PLAN, &layout, r, &mut base, 0.0, 512).unwrap_err();
        assert!(e.session_fatal);
    }
}
