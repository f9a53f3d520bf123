//! Read-only menus generated from the device's model, seed and uptime, with field names and
//! value formats as RouterOS 7 prints them on the API (see the shared RouterOS reference, §2).

use routeros_proto::Attributes;

use crate::config::version_at_least;
use crate::device::Device;
use crate::format::{date_time, duration, mac, now_unix_ms};

/// One interface of the emulated device.
#[derive(Debug, Clone)]
pub(crate) struct Interface {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) mtu: &'static str,
    pub(crate) actual_mtu: u32,
    pub l2mtu: Option<u32>,
    pub(crate) mac_offset: Option<u8>,
    pub(crate) running: bool,
    /// Index into the per-device traffic rates (`None`: no traffic).
    pub(crate) rate: Option<u64>,
}

/// `mtus` is (mtu as printed, actual-mtu, l2mtu).
fn iface(
    name: &str,
    kind: &'static str,
    (mtu, actual_mtu, l2mtu): (&'static str, u32, Option<u32>),
    mac_offset: Option<u8>,
    running: bool,
    rate: Option<u64>,
) -> Interface {
    Interface {
        name: name.to_owned(),
        kind,
        mtu,
        actual_mtu,
        l2mtu,
        mac_offset,
        running,
        rate,
    }
}

/// ether1..ether5 (ether5 unplugged), bridges, vlan10, wifi1 (radio models), wg0, lo.
pub(crate) fn interfaces(dev: &Device) -> Vec<Interface> {
    let mut out = Vec::with_capacity(12);
    for n in 1..=5u8 {
        let running = n != 5;
        out.push(iface(
            &format!("ether{n}"),
            "ether",
            ("1500", 1500, Some(1514)),
            Some(n - 1),
            running,
            running.then_some(u64::from(n)),
        ));
    }
    for (i, bridge) in dev.tree().bridge_names().into_iter().enumerate() {
        out.push(iface(
            &bridge,
            "bridge",
            ("auto", 1500, Some(1514)),
            Some(8 + i as u8),
            true,
            Some(10 + i as u64),
        ));
    }
    out.push(iface(
        "vlan10",
        "vlan",
        ("1500", 1500, Some(1510)),
        Some(0),
        true,
        Some(6),
    ));
    if dev.model.radios {
        out.push(iface(
            "wifi1",
            "wifi",
            ("1500", 1500, Some(1560)),
            Some(6),
            true,
            Some(7),
        ));
    }
    out.push(iface(
        "wg0",
        "wg",
        ("1420", 1420, None),
        None,
        true,
        Some(8),
    ));
    out.push(iface(
        "lo",
        "loopback",
        ("65536", 65536, None),
        None,
        true,
        Some(9),
    ));
    out
}

pub(crate) fn interface_names(dev: &Device) -> Vec<String> {
    interfaces(dev).into_iter().map(|i| i.name).collect()
}

fn mac_of(dev: &Device, offset: u8) -> String {
    let b = dev.hash(0x3AC).to_be_bytes();
    let last = b[7].wrapping_add(offset);
    mac([0x48, 0xA9, 0x8A, b[5], b[6], last])
}

/// Bytes per second in each direction for one interface of this device.
fn rates(dev: &Device, rate: u64) -> (f64, f64) {
    let rx = 2_000.0 + (dev.hash(0x7A7E ^ rate) % 4_000_000) as f64;
    let tx = 1_000.0 + (dev.hash(0x7A7F ^ rate) % 1_500_000) as f64;
    (rx, tx)
}

/// (rx-byte, tx-byte, rx-packet, tx-packet) since boot.
fn counters(dev: &Device, i: &Interface, uptime_secs: f64) -> (u64, u64, u64, u64) {
    let Some(rate) = i.rate else {
        return (0, 0, 0, 0);
    };
    let (rx, tx) = rates(dev, rate);
    let rx_b = (rx * uptime_secs) as u64;
    let tx_b = (tx * uptime_secs) as u64;
    (rx_b, tx_b, rx_b / 740, tx_b / 410)
}

pub(crate) fn interface_rows(dev: &Device) -> Vec<Attributes> {
    let uptime_ms = dev.uptime_ms();
    let uptime = uptime_ms as f64 / 1000.0;
    let boot_secs = dev.boot_unix_ms() / 1000;
    interfaces(dev)
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let (rx_b, tx_b, rx_p, tx_p) = counters(dev, i, uptime);
            let mut r = Attributes::with_capacity(28);
            r.push(".id", format!("*{:X}", n + 1));
            r.push("name", i.name.as_str());
            if i.kind == "ether" || i.kind == "wifi" {
                r.push("default-name", i.name.as_str());
            }
            r.push("type", i.kind);
            r.push("mtu", i.mtu);
            r.push("actual-mtu", i.actual_mtu.to_string());
            if let Some(l2) = i.l2mtu {
                r.push("l2mtu", l2.to_string());
                if i.kind == "ether" {
                    r.push("max-l2mtu", "9574");
                }
            }
            if let Some(off) = i.mac_offset {
                r.push("mac-address", mac_of(dev, off));
            } else if i.kind == "loopback" {
                r.push("mac-address", "00:00:00:00:00:00");
            }
            if i.running {
                r.push("last-link-up-time", date_time(boot_secs + 9));
                r.push("link-downs", "0");
            } else {
                r.push("last-link-down-time", date_time(boot_secs + 7));
                r.push("link-downs", "1");
            }
            r.push("rx-byte", rx_b.to_string());
            r.push("tx-byte", tx_b.to_string());
            r.push("rx-packet", rx_p.to_string());
            r.push("tx-packet", tx_p.to_string());
            r.push("rx-drop", "0");
            r.push("tx-drop", "0");
            r.push("tx-queue-drop", "0");
            r.push("rx-error", "0");
            r.push("tx-error", "0");
            let fp = i.kind == "ether" || i.kind == "bridge";
            r.push("fp-rx-byte", if fp { rx_b } else { 0 }.to_string());
            r.push("fp-tx-byte", "0");
            r.push("fp-rx-packet", if fp { rx_p } else { 0 }.to_string());
            r.push("fp-tx-packet", "0");
            r.push("running", i.running.to_string());
            if i.kind == "vlan" {
                r.push("comment", "mgmt");
            }
            r.push("disabled", "false");
            r
        })
        .collect()
}

/// One `monitor-traffic` row for `name`.
pub(crate) fn monitor_traffic_row(dev: &Device, i: &Interface, tick: u64) -> Attributes {
    let (rx, tx) = i.rate.map_or((0.0, 0.0), |r| rates(dev, r));
    let wobble = 0.9 + (crate::config::mix64(dev.hash(0x30B) ^ tick) % 200) as f64 / 1000.0;
    let (rx, tx) = (rx * wobble, tx * wobble);
    let mut r = Attributes::with_capacity(14);
    r.push("name", i.name.as_str());
    r.push("rx-packets-per-second", ((rx / 740.0) as u64).to_string());
    r.push("rx-bits-per-second", ((rx * 8.0) as u64).to_string());
    r.push(
        "fp-rx-packets-per-second",
        ((rx / 740.0) as u64).to_string(),
    );
    r.push("fp-rx-bits-per-second", ((rx * 8.0) as u64).to_string());
    r.push("rx-drops-per-second", "0");
    r.push("rx-errors-per-second", "0");
    r.push("tx-packets-per-second", ((tx / 410.0) as u64).to_string());
    r.push("tx-bits-per-second", ((tx * 8.0) as u64).to_string());
    r.push("fp-tx-packets-per-second", "0");
    r.push("fp-tx-bits-per-second", "0");
    r.push("tx-drops-per-second", "0");
    r.push("tx-queue-drops-per-second", "0");
    r.push("tx-errors-per-second", "0");
    r
}

/// The version number alone (`7.18.2` of `7.18.2 (stable)`).
fn version_number(dev: &Device) -> &str {
    dev.config()
        .version
        .split_whitespace()
        .next()
        .unwrap_or("7.18.2")
}

fn channel(dev: &Device) -> String {
    dev.config()
        .version
        .split_once('(')
        .map(|(_, c)| c.trim_end_matches(')').trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "stable".to_owned())
}

pub(crate) fn resource(dev: &Device) -> Attributes {
    let m = dev.model;
    let uptime_secs = dev.uptime_ms() / 1000;
    let now = now_unix_ms() / 1000;
    let jitter = crate::config::mix64(dev.hash(0xC9) ^ (now / 5));
    let used = m.total_memory / 5 + (jitter % (m.total_memory / 20));
    let mut r = Attributes::with_capacity(20);
    r.push("uptime", duration(uptime_secs));
    r.push("version", dev.config().version.as_str());
    r.push("build-time", "2025-02-24 12:48:36");
    r.push("factory-software", m.factory_software);
    r.push("free-memory", (m.total_memory - used).to_string());
    r.push("total-memory", m.total_memory.to_string());
    r.push("cpu", m.cpu);
    r.push("cpu-count", m.cpu_count.to_string());
    r.push("cpu-frequency", m.cpu_frequency.to_string());
    r.push("cpu-load", (jitter % 11).to_string());
    r.push("free-hdd-space", (m.total_hdd / 100 * 89).to_string());
    r.push("total-hdd-space", m.total_hdd.to_string());
    r.push("write-sect-since-reboot", (uptime_secs / 60).to_string());
    r.push("write-sect-total", (228_112 + uptime_secs / 60).to_string());
    if m.routerboard {
        r.push("bad-blocks", "0");
    }
    r.push("architecture-name", m.architecture);
    r.push("board-name", m.board_name);
    r.push("platform", "MikroTik");
    r
}

pub(crate) fn serial(dev: &Device) -> String {
    format!("HF{:010X}", dev.hash(0x5E41) & 0xFF_FFFF_FFFF)
}

pub(crate) fn routerboard(dev: &Device) -> Attributes {
    let m = dev.model;
    let mut r = Attributes::new();
    if !m.routerboard {
        r.push("routerboard", "false");
        return r;
    }
    let v = version_number(dev).to_owned();
    r.push("routerboard", "true");
    r.push("board-name", m.board_name);
    r.push("model", m.routerboard_model);
    r.push("serial-number", serial(dev));
    r.push("firmware-type", m.firmware_type);
    r.push("factory-firmware", m.factory_software);
    r.push("current-firmware", v.as_str());
    r.push("upgrade-firmware", v.as_str());
    r
}

pub(crate) fn health(dev: &Device) -> Vec<Attributes> {
    let tick = now_unix_ms() / 10_000;
    dev.model
        .health
        .iter()
        .enumerate()
        .map(|(i, (name, unit, base))| {
            let mut r = Attributes::new();
            r.push(".id", format!("*{:X}", 0xD + i));
            r.push("name", *name);
            let value = match *unit {
                "V" => format!("{base:.1}"),
                "C" => {
                    let j = (crate::config::mix64(dev.hash(i as u64) ^ tick) % 5) as f64;
                    format!("{}", (base + j - 2.0) as i64)
                }
                "RPM" => format!("{}", *base as i64),
                _ => "ok".to_owned(),
            };
            r.push("value", value);
            r.push("type", *unit);
            r
        })
        .collect()
}

pub(crate) fn identity(dev: &Device) -> Attributes {
    let mut r = Attributes::new();
    r.push("name", dev.identity());
    r
}

pub(crate) fn clock(_dev: &Device) -> Attributes {
    let now = now_unix_ms() / 1000;
    let dt = date_time(now);
    let (date, time) = dt.split_once(' ').unwrap_or((&dt, ""));
    let mut r = Attributes::new();
    r.push("time", time);
    r.push("date", date);
    r.push("time-zone-autodetect", "true");
    r.push("time-zone-name", "Etc/UTC");
    r.push("gmt-offset", "+00:00");
    r.push("dst-active", "false");
    r
}

/// (latest version, status) of the package update check.
fn update_state(dev: &Device) -> (String, &'static str) {
    let installed = version_number(dev).to_owned();
    if dev.hash(0x0DA7).is_multiple_of(3) {
        return (installed, "System is already up to date");
    }
    let mut parts: Vec<String> = installed.split('.').map(str::to_owned).collect();
    if let Some(last) = parts.last_mut() {
        let n: u32 = last
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        *last = (n + 1).to_string();
    }
    if parts.len() < 3 {
        parts.push("1".to_owned());
    }
    (parts.join("."), "New version is available")
}

pub(crate) fn package_update(dev: &Device) -> Attributes {
    let (latest, status) = update_state(dev);
    let mut r = Attributes::new();
    r.push("channel", channel(dev));
    r.push("installed-version", version_number(dev));
    r.push("latest-version", latest);
    r.push("status", status);
    r
}

pub(crate) fn package_update_checking(dev: &Device) -> Attributes {
    let mut r = Attributes::new();
    r.push("channel", channel(dev));
    r.push("installed-version", version_number(dev));
    r.push("status", "finding out latest version...");
    r
}

pub(crate) fn packages(dev: &Device) -> Vec<Attributes> {
    let v = version_number(dev).to_owned();
    let mut names = vec!["routeros"];
    if dev.model.radios {
        names.push("wifi-qcom");
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let mut r = Attributes::new();
            r.push(".id", format!("*{:X}", i + 1));
            r.push("name", name);
            r.push("version", v.as_str());
            r.push("build-time", "2025-02-24 12:48:36");
            r.push("scheduled", "");
            r.push("disabled", "false");
            r
        })
        .collect()
}

pub(crate) fn wifi_interfaces(dev: &Device) -> Vec<Attributes> {
    let mut r = Attributes::new();
    r.push(".id", "*1");
    r.push("name", "wifi1");
    r.push("default-name", "wifi1");
    r.push("mac-address", mac_of(dev, 6));
    r.push("configuration.mode", "ap");
    r.push("configuration.ssid", "Office");
    r.push("running", "true");
    r.push("disabled", "false");
    vec![r]
}

pub(crate) fn wifi_monitor(dev: &Device) -> Attributes {
    let peers = (dev.hash(0xC11E) % 4).to_string();
    let mut r = Attributes::new();
    r.push("state", "running-ap");
    r.push("channel", "5180/ax/Ceee");
    r.push("registered-peers", peers.as_str());
    r.push("authorized-peers", peers.as_str());
    r.push("tx-power", "23");
    r
}

/// Clients of `wifi1`, ordered by uptime, descending.
pub(crate) fn wifi_registrations(dev: &Device) -> Vec<Attributes> {
    let count = dev.hash(0xC11E) % 4;
    let up = dev.uptime_ms() / 1000;
    (0..count)
        .map(|i| {
            let h = dev.hash(0xC11E00 + i).to_be_bytes();
            let client_up = (up / (i + 2)).max(1);
            let mut r = Attributes::new();
            r.push(".id", format!("*{:X}", 0x2A + i));
            r.push("interface", "wifi1");
            r.push("ssid", "Office");
            r.push("mac-address", mac([0x3C, 0x22, 0xFB, h[0], h[1], h[2]]));
            r.push("uptime", duration(client_up));
            r.push("last-activity", "30ms");
            r.push("signal", format!("-{}", 45 + h[3] % 35));
            r.push("auth-type", "wpa2-psk");
            r.push("band", "5ghz-ax");
            r.push("tx-rate", "1200.9Mbps-80MHz/2S/MCS11");
            r.push("rx-rate", "864.8Mbps-80MHz/2S/MCS8");
            r.push("packets", format!("{},{}", client_up * 91, client_up * 49));
            r.push(
                "bytes",
                format!("{},{}", client_up * 105_123, client_up * 7_611),
            );
            r
        })
        .collect()
}

pub(crate) fn log(dev: &Device) -> Vec<Attributes> {
    let boot = dev.boot_unix_ms() / 1000;
    let entries: [(u64, &str, String); 4] = [
        (0, "system,info", "router rebooted".to_owned()),
        (
            5,
            "interface,info",
            "ether1 link up (speed 1G, full duplex)".to_owned(),
        ),
        (7, "interface,info", "ether5 link down".to_owned()),
        (
            30,
            "system,info,account",
            "user admin logged in from 10.0.0.5 via api".to_owned(),
        ),
    ];
    let with_date = version_at_least(&dev.config().version, 7, 10);
    entries
        .into_iter()
        .enumerate()
        .map(|(i, (offset, topics, message))| {
            let dt = date_time(boot + offset);
            let mut r = Attributes::new();
            r.push(".id", format!("*{:X}", 0xA0 + i));
            r.push(
                "time",
                if with_date {
                    dt
                } else {
                    dt.split_once(' ').map(|(_, t)| t.to_owned()).unwrap_or(dt)
                },
            );
            r.push("topics", topics);
            r.push("message", message);
            r
        })
        .collect()
}

pub(crate) fn neighbors(dev: &Device) -> Vec<Attributes> {
    let count = 1 + dev.hash(0x0E16) % 2;
    (0..count)
        .map(|i| {
            let h = dev.hash(0x0E1600 + i).to_be_bytes();
            let mut r = Attributes::new();
            r.push(".id", format!("*{:X}", i + 1));
            r.push("interface", format!("ether{}", i + 2));
            r.push("address", format!("10.0.{}.{}", h[0], 2 + h[1] % 250));
            r.push("mac-address", mac([0x48, 0xA9, 0x8A, h[2], h[3], h[4]]));
            r.push("identity", format!("core-sw{}", i + 1));
            r.push("platform", "MikroTik");
            r.push("version", dev.config().version.as_str());
            r.push("board", "CRS326-24G-2S+");
            r.push("age", format!("{}s", 5 + h[5] % 55));
            r.push("uptime", duration(86_400 * u64::from(1 + h[6] % 30)));
            r.push("discovered-by", "cdp,lldp,mndp");
            r
        })
        .collect()
}
