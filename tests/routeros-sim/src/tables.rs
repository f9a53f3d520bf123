//! The mutable configuration tree: `/ip/address`, `/ip/firewall/filter`, `/system/scheduler`,
//! `/interface/bridge` (add/set/remove/print/listen) and `/system/identity`.

use std::net::Ipv4Addr;

use routeros_proto::{Attributes, Reply, TrapCategory};
use tokio::sync::broadcast;

use crate::device::Device;
use crate::format::mac;

/// A menu whose rows clients can add, set and remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TableMenu {
    IpAddress,
    FirewallFilter,
    Scheduler,
    Bridge,
}

/// One field of a table: name, default (printed when not set), settable by clients.
struct Field {
    name: &'static str,
    default: Option<&'static str>,
    settable: bool,
}

const fn f(name: &'static str, default: Option<&'static str>, settable: bool) -> Field {
    Field {
        name,
        default,
        settable,
    }
}

const IP_ADDRESS: &[Field] = &[
    f("address", None, true),
    f("network", None, true),
    f("interface", None, true),
    f("actual-interface", None, false),
    f("invalid", Some("false"), false),
    f("dynamic", Some("false"), false),
    f("disabled", Some("false"), true),
    f("comment", None, true),
];

const FIREWALL_FILTER: &[Field] = &[
    f("chain", None, true),
    f("action", Some("accept"), true),
    f("protocol", None, true),
    f("src-address", None, true),
    f("dst-address", None, true),
    f("src-port", None, true),
    f("dst-port", None, true),
    f("in-interface", None, true),
    f("out-interface", None, true),
    f("in-interface-list", None, true),
    f("out-interface-list", None, true),
    f("connection-state", None, true),
    f("src-address-list", None, true),
    f("dst-address-list", None, true),
    f("jump-target", None, true),
    f("reject-with", None, true),
    f("log", Some("false"), true),
    f("log-prefix", Some(""), true),
    f("bytes", Some("0"), false),
    f("packets", Some("0"), false),
    f("invalid", Some("false"), false),
    f("dynamic", Some("false"), false),
    f("disabled", Some("false"), true),
    f("comment", None, true),
];

const SCHEDULER: &[Field] = &[
    f("name", None, true),
    f("start-date", Some("2024-01-01"), true),
    f("start-time", Some("startup"), true),
    f("interval", Some("0s"), true),
    f("on-event", Some(""), true),
    f("owner", Some("admin"), false),
    f(
        "policy",
        Some("ftp,reboot,read,write,policy,test,password,sniff,sensitive,romon"),
        true,
    ),
    f("run-count", Some("0"), false),
    f("disabled", Some("false"), true),
    f("comment", None, true),
];

const BRIDGE: &[Field] = &[
    f("name", None, true),
    f("mtu", Some("auto"), true),
    f("actual-mtu", Some("1500"), false),
    f("l2mtu", Some("1514"), false),
    f("arp", Some("enabled"), true),
    f("arp-timeout", Some("auto"), true),
    f("mac-address", None, false),
    f("protocol-mode", Some("rstp"), true),
    f("fast-forward", Some("true"), true),
    f("igmp-snooping", Some("false"), true),
    f("auto-mac", Some("true"), true),
    f("admin-mac", None, true),
    f("ageing-time", Some("5m"), true),
    f("priority", Some("0x8000"), true),
    f("max-message-age", Some("20s"), true),
    f("forward-delay", Some("15s"), true),
    f("transmit-hold-count", Some("6"), true),
    f("vlan-filtering", Some("false"), true),
    f("dhcp-snooping", Some("false"), true),
    f("running", Some("true"), false),
    f("disabled", Some("false"), true),
    f("comment", None, true),
];

const BOOLEAN_FIELDS: &[&str] = &[
    "disabled",
    "log",
    "fast-forward",
    "igmp-snooping",
    "auto-mac",
    "vlan-filtering",
    "dhcp-snooping",
];

const FILTER_ACTIONS: &[&str] = &[
    "accept",
    "drop",
    "reject",
    "jump",
    "return",
    "log",
    "passthrough",
    "fasttrack-connection",
    "tarpit",
    "add-src-to-address-list",
    "add-dst-to-address-list",
];

impl TableMenu {
    pub(crate) const ALL: [TableMenu; 4] = [
        Self::IpAddress,
        Self::FirewallFilter,
        Self::Scheduler,
        Self::Bridge,
    ];

    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::IpAddress => "/ip/address",
            Self::FirewallFilter => "/ip/firewall/filter",
            Self::Scheduler => "/system/scheduler",
            Self::Bridge => "/interface/bridge",
        }
    }

    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.path() == path)
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Self::IpAddress => IP_ADDRESS,
            Self::FirewallFilter => FIREWALL_FILTER,
            Self::Scheduler => SCHEDULER,
            Self::Bridge => BRIDGE,
        }
    }

    fn required(self) -> &'static [&'static str] {
        match self {
            Self::IpAddress => &["address", "interface"],
            Self::FirewallFilter => &["chain"],
            Self::Scheduler | Self::Bridge => &["name"],
        }
    }

    fn named(self) -> bool {
        matches!(self, Self::Scheduler | Self::Bridge)
    }
}

/// A table's rows and id counter.
#[derive(Debug, Default)]
pub(crate) struct Table {
    next_id: u32,
    pub(crate) rows: Vec<Attributes>,
}

/// A change seen by `listen`: the menu and the new row (or `.id` + `.dead=true`).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) menu: &'static str,
    pub(crate) row: Attributes,
}

/// The device's mutable configuration.
#[derive(Debug)]
pub(crate) struct ConfigTree {
    pub(crate) identity: String,
    tables: [Table; 4],
    changes: broadcast::Sender<Change>,
    mac_seed: u64,
}

/// Rows a new device starts with, as (name, value) pairs.
type DefaultRows = &'static [&'static [(&'static str, &'static str)]];

/// Why a table operation failed: the trap to send.
pub(crate) type Trap = Reply;

fn trap(category: Option<TrapCategory>, message: impl Into<String>) -> Trap {
    Reply::trap(category, message.into())
}

impl ConfigTree {
    pub(crate) fn default_identity(global_index: usize) -> String {
        format!("sim-{global_index}")
    }

    pub(crate) fn new(device: &Device) -> Self {
        let mut tree = Self {
            identity: Self::default_identity(device.global_index),
            tables: Default::default(),
            changes: broadcast::channel(64).0,
            mac_seed: device.hash(0x3AC),
        };
        let defaults: [(TableMenu, DefaultRows); 3] = [
            (
                TableMenu::Bridge,
                &[&[("name", "bridge"), ("comment", "defconf")]],
            ),
            (
                TableMenu::IpAddress,
                &[&[
                    ("address", "192.168.88.1/24"),
                    ("interface", "bridge"),
                    ("comment", "defconf"),
                ]],
            ),
            (
                TableMenu::FirewallFilter,
                &[
                    &[
                        ("chain", "input"),
                        ("action", "accept"),
                        ("connection-state", "established,related,untracked"),
                        ("comment", "defconf: accept established,related,untracked"),
                    ],
                    &[
                        ("chain", "input"),
                        ("action", "drop"),
                        ("connection-state", "invalid"),
                        ("comment", "defconf: drop invalid"),
                    ],
                    &[
                        ("chain", "input"),
                        ("action", "accept"),
                        ("protocol", "icmp"),
                        ("comment", "defconf: accept ICMP"),
                    ],
                ],
            ),
        ];
        for (menu, rows) in defaults {
            for row in rows {
                let args: Attributes = row.iter().map(|(n, v)| (*n, *v)).collect();
                // Defaults are valid by construction; a failure would only drop the row.
                let _ = tree.add(menu, &args, &[]);
            }
        }
        tree
    }

    pub(crate) fn table(&self, menu: TableMenu) -> &Table {
        &self.tables[menu as usize]
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub(crate) fn set_identity(&mut self, name: &str) {
        self.identity = name.to_owned();
        let mut row = Attributes::new();
        row.push("name", name);
        let _ = self.changes.send(Change {
            menu: "/system/identity",
            row,
        });
    }

    /// Names of the bridges (they are interfaces too).
    pub(crate) fn bridge_names(&self) -> Vec<String> {
        self.table(TableMenu::Bridge)
            .rows
            .iter()
            .filter_map(|r| r.get("name").map(str::to_owned))
            .collect()
    }

    fn check_args(
        &self,
        menu: TableMenu,
        args: &Attributes,
        interfaces: &[String],
    ) -> Result<Attributes, Trap> {
        let mut clean = Attributes::new();
        for (name, value) in args.iter() {
            if matches!(name, ".id" | "numbers") {
                continue;
            }
            let Some(field) = menu.fields().iter().find(|f| f.name == name && f.settable) else {
                return Err(trap(None, "unknown parameter"));
            };
            let value = String::from_utf8_lossy(value).into_owned();
            let value = if BOOLEAN_FIELDS.contains(&field.name) {
                match value.as_str() {
                    "yes" | "true" => "true".to_owned(),
                    "no" | "false" => "false".to_owned(),
                    _ => {
                        return Err(trap(
                            Some(TrapCategory::ArgumentValue),
                            format!("input does not match any value of {}", field.name),
                        ));
                    }
                }
            } else {
                value
            };
            match (menu, field.name) {
                (TableMenu::IpAddress, "address") if parse_cidr(&value).is_none() => {
                    return Err(trap(
                        Some(TrapCategory::ArgumentValue),
                        "invalid value for argument address",
                    ));
                }
                (TableMenu::IpAddress, "interface") if !interfaces.contains(&value) => {
                    return Err(trap(
                        Some(TrapCategory::ArgumentValue),
                        "input does not match any value of interface",
                    ));
                }
                (TableMenu::FirewallFilter, "action")
                    if !FILTER_ACTIONS.contains(&value.as_str()) =>
                {
                    return Err(trap(
                        Some(TrapCategory::ArgumentValue),
                        "input does not match any value of action",
                    ));
                }
                (TableMenu::FirewallFilter, "chain") if value.is_empty() => {
                    return Err(trap(
                        Some(TrapCategory::ArgumentValue),
                        "invalid value for argument chain",
                    ));
                }
                _ => {}
            }
            clean.set(field.name, value);
        }
        Ok(clean)
    }

    fn derive(&self, menu: TableMenu, row: &mut Attributes, id: u32) {
        match menu {
            TableMenu::IpAddress => {
                if let Some((ip, len)) = row.get("address").and_then(parse_cidr) {
                    let mask = if len == 0 {
                        0
                    } else {
                        u32::MAX << (32 - u32::from(len))
                    };
                    let network = Ipv4Addr::from(u32::from(ip) & mask).to_string();
                    row.set("network", network);
                }
                if let Some(i) = row.get("interface").map(str::to_owned) {
                    row.set("actual-interface", i);
                }
            }
            TableMenu::Bridge => {
                if !row.contains("mac-address") {
                    let h = self.mac_seed.wrapping_add(u64::from(id));
                    let b = h.to_be_bytes();
                    row.set("mac-address", mac([0x48, 0xA9, 0x8A, b[5], b[6], b[7]]));
                }
            }
            TableMenu::FirewallFilter | TableMenu::Scheduler => {}
        }
    }

    fn ordered(menu: TableMenu, id: u32, values: &Attributes) -> Attributes {
        let mut row = Attributes::with_capacity(menu.fields().len() + 1);
        row.push(".id", format!("*{id:X}"));
        for field in menu.fields() {
            if let Some(v) = values.get_bytes(field.name) {
                row.push(field.name, v.to_vec());
            } else if let Some(d) = field.default {
                row.push(field.name, d);
            }
        }
        row
    }

    /// `add`: returns the new id (`*N`).
    pub(crate) fn add(
        &mut self,
        menu: TableMenu,
        args: &Attributes,
        interfaces: &[String],
    ) -> Result<String, Trap> {
        let mut interfaces = interfaces.to_vec();
        interfaces.extend(self.bridge_names());
        let clean = self.check_args(menu, args, &interfaces)?;
        let missing: Vec<&str> = menu
            .required()
            .iter()
            .copied()
            .filter(|r| clean.get(r).is_none_or(str::is_empty))
            .collect();
        if !missing.is_empty() {
            return Err(trap(
                Some(TrapCategory::ArgumentValue),
                format!(
                    "failure: missing value(s) of argument(s) {}",
                    missing.join(", ")
                ),
            ));
        }
        if menu.named() {
            let name = clean.get("name").unwrap_or_default();
            if self
                .table(menu)
                .rows
                .iter()
                .any(|r| r.get("name") == Some(name))
            {
                return Err(trap(
                    Some(TrapCategory::General),
                    "failure: item with such name already exists",
                ));
            }
        }
        let table = &mut self.tables[menu as usize];
        table.next_id += 1;
        let id = table.next_id;
        let mut values = clean;
        self.derive(menu, &mut values, id);
        let row = Self::ordered(menu, id, &values);
        let id_text = format!("*{id:X}");
        let _ = self.changes.send(Change {
            menu: menu.path(),
            row: row.clone(),
        });
        self.tables[menu as usize].rows.push(row);
        Ok(id_text)
    }

    /// Row positions named by `=.id=` or `=numbers=` (ids `*N` or names, comma-separated).
    fn find(&self, menu: TableMenu, args: &Attributes) -> Result<Vec<usize>, Trap> {
        let spec = args
            .get(".id")
            .or_else(|| args.get("numbers"))
            .ok_or_else(|| trap(Some(TrapCategory::ArgumentValue), "no such item"))?;
        let rows = &self.table(menu).rows;
        let mut found = Vec::new();
        for key in spec.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let pos = rows.iter().position(|r| {
                r.get(".id").is_some_and(|id| id.eq_ignore_ascii_case(key))
                    || (menu.named() && r.get("name") == Some(key))
            });
            match pos {
                Some(p) if !found.contains(&p) => found.push(p),
                Some(_) => {}
                None => return Err(trap(None, "no such item")),
            }
        }
        if found.is_empty() {
            return Err(trap(None, "no such item"));
        }
        Ok(found)
    }

    pub(crate) fn set(
        &mut self,
        menu: TableMenu,
        args: &Attributes,
        interfaces: &[String],
    ) -> Result<(), Trap> {
        let mut interfaces = interfaces.to_vec();
        interfaces.extend(self.bridge_names());
        let positions = self.find(menu, args)?;
        let clean = self.check_args(menu, args, &interfaces)?;
        for p in positions {
            let mut values = self.tables[menu as usize].rows[p].clone();
            let id = values
                .get(".id")
                .and_then(|i| u32::from_str_radix(i.trim_start_matches('*'), 16).ok())
                .unwrap_or(0);
            values.remove(".id");
            for (n, v) in clean.iter() {
                values.set(n, v.to_vec());
            }
            self.derive(menu, &mut values, id);
            let row = Self::ordered(menu, id, &values);
            let _ = self.changes.send(Change {
                menu: menu.path(),
                row: row.clone(),
            });
            self.tables[menu as usize].rows[p] = row;
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, menu: TableMenu, args: &Attributes) -> Result<(), Trap> {
        if let Some((name, _)) = args.iter().find(|(n, _)| !matches!(*n, ".id" | "numbers")) {
            let _ = name;
            return Err(trap(None, "unknown parameter"));
        }
        let mut positions = self.find(menu, args)?;
        positions.sort_unstable();
        for p in positions.into_iter().rev() {
            let row = self.tables[menu as usize].rows.remove(p);
            let mut dead = Attributes::new();
            dead.push(".id", row.get_bytes(".id").unwrap_or_default().to_vec());
            dead.push(".dead", "true");
            let _ = self.changes.send(Change {
                menu: menu.path(),
                row: dead,
            });
        }
        Ok(())
    }
}

/// `a.b.c.d/len` (a bare address means /32).
pub(crate) fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().ok()?),
        None => (text, 32),
    };
    if len > 32 {
        return None;
    }
    Some((ip.parse().ok()?, len))
}
