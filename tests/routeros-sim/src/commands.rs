//! Command dispatch for a logged-in session: maps a parsed [`Command`] to its replies, a
//! stream (`listen`, `monitor`, `monitor-traffic`), or a reboot.

use std::time::Duration;

use routeros_proto::query::matches;
use routeros_proto::{Attributes, Command, QueryWord, Reply, TrapCategory};

use crate::device::Device;
use crate::format::{now_unix_ms, parse_duration};
use crate::menus::{self, Interface};
use crate::tables::TableMenu;

/// What a command does.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// These replies (untagged; the session adds the tag), ending with `!done`.
    Replies(Vec<Reply>),
    /// A stream of rows until `/cancel` (or until it ends by itself for `once`).
    Stream(Stream),
    /// `!done`, then the device reboots.
    Reboot,
}

#[derive(Debug)]
pub(crate) enum Stream {
    /// `listen` on a menu: one `!re` per change.
    Listen {
        menu: &'static str,
        queries: Vec<QueryWord>,
        proplist: Option<Vec<String>>,
    },
    /// `monitor-traffic` / `monitor`: rows every `interval` with `=.section=N`.
    Monitor {
        target: MonitorTarget,
        interval: Duration,
        proplist: Option<Vec<String>>,
    },
}

#[derive(Debug)]
pub(crate) enum MonitorTarget {
    Traffic(Vec<Interface>),
    Wifi,
}

/// Menus that can be printed (and listened to).
const PRINTABLE: &[&str] = &[
    "/system/resource",
    "/system/routerboard",
    "/system/health",
    "/system/identity",
    "/system/clock",
    "/system/package",
    "/system/package/update",
    "/interface",
    "/interface/wifi",
    "/interface/wifi/registration-table",
    "/log",
    "/ip/neighbor",
    "/ip/address",
    "/ip/firewall/filter",
    "/system/scheduler",
    "/interface/bridge",
];

/// Menus that exist but have no `print` (for "no such command" vs "no such command prefix").
const OTHER_MENUS: &[&str] = &["/system", "/ip", "/ip/firewall"];

/// Every command path the counters know by name; others count as `"(unknown)"`.
pub(crate) fn counter_key(path: &str) -> &'static str {
    const EXTRA: &[&str] = &[
        "/login",
        "/cancel",
        "/quit",
        "/system/reboot",
        "/system/identity/set",
        "/interface/monitor-traffic",
        "/interface/wifi/monitor",
        "/system/package/update/check-for-updates",
        "/interface/wireless/registration-table/print",
    ];
    static KNOWN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut v: Vec<&'static str> = EXTRA.to_vec();
        for m in PRINTABLE {
            for verb in ["print", "getall", "listen", "add", "set", "remove"] {
                v.push(Box::leak(format!("{m}/{verb}").into_boxed_str()));
            }
        }
        v
    });
    known
        .iter()
        .find(|k| **k == path)
        .copied()
        .unwrap_or("(unknown)")
}

pub(crate) fn trap(category: Option<TrapCategory>, message: &str) -> Outcome {
    Outcome::Replies(vec![Reply::trap(category, message), Reply::done()])
}

fn unknown_parameter() -> Outcome {
    trap(None, "unknown parameter")
}

/// Whether `path` is a print of `/system/resource` (a *poll*).
pub(crate) fn is_poll(path: &str) -> bool {
    matches!(path, "/system/resource/print" | "/system/resource/getall")
}

pub(crate) fn execute(dev: &Device, cmd: &Command) -> Outcome {
    let Some((menu, verb)) = cmd.path.rsplit_once('/') else {
        return trap(
            Some(TrapCategory::MissingItemOrCommand),
            "no such command prefix",
        );
    };
    if menu.starts_with("/interface/wireless") {
        return trap(
            Some(TrapCategory::MissingItemOrCommand),
            "no such command prefix",
        );
    }
    if (menu == "/interface/wifi" || menu.starts_with("/interface/wifi/")) && !dev.model.radios {
        return trap(None, "no such command or directory (wifi)");
    }
    if is_poll(&cmd.path) {
        dev.counters.poll(now_unix_ms());
    }
    let table = TableMenu::from_path(menu);
    match (menu, verb) {
        (m, "print" | "getall") if PRINTABLE.contains(&m) => print(dev, cmd, m),
        (m, "listen") if PRINTABLE.contains(&m) => listen(cmd, m),
        ("/system/identity", "set") => {
            if let Some((n, _)) = cmd.attributes.iter().find(|(n, _)| *n != "name") {
                let _ = n;
                return unknown_parameter();
            }
            if let Some(name) = cmd.attributes.get("name") {
                dev.tree().set_identity(name);
            }
            Outcome::Replies(vec![Reply::done()])
        }
        (_, "add") if table.is_some() => table_op(dev, cmd, table, verb),
        (_, "set" | "remove") if table.is_some() => table_op(dev, cmd, table, verb),
        ("/interface", "monitor-traffic") => monitor_traffic(dev, cmd),
        ("/interface/wifi", "monitor") => monitor_wifi(cmd),
        ("/system", "reboot") => Outcome::Reboot,
        ("/system/package/update", "check-for-updates") => Outcome::Replies(vec![
            Reply::re(menus::package_update_checking(dev)),
            Reply::re(menus::package_update(dev)),
            Reply::done(),
        ]),
        (m, _) if PRINTABLE.contains(&m) || OTHER_MENUS.contains(&m) => {
            trap(Some(TrapCategory::MissingItemOrCommand), "no such command")
        }
        _ => trap(
            Some(TrapCategory::MissingItemOrCommand),
            "no such command prefix",
        ),
    }
}

fn rows_of(dev: &Device, menu: &str) -> Vec<Attributes> {
    if let Some(t) = TableMenu::from_path(menu) {
        return dev.tree().table(t).rows.clone();
    }
    match menu {
        "/system/resource" => vec![menus::resource(dev)],
        "/system/routerboard" => vec![menus::routerboard(dev)],
        "/system/health" => menus::health(dev),
        "/system/identity" => vec![menus::identity(dev)],
        "/system/clock" => vec![menus::clock(dev)],
        "/system/package" => menus::packages(dev),
        "/system/package/update" => vec![menus::package_update(dev)],
        "/interface" => menus::interface_rows(dev),
        "/interface/wifi" => menus::wifi_interfaces(dev),
        "/interface/wifi/registration-table" => menus::wifi_registrations(dev),
        "/log" => menus::log(dev),
        "/ip/neighbor" => menus::neighbors(dev),
        _ => Vec::new(),
    }
}

const PRINT_ARGS: &[&str] = &[
    ".proplist",
    "count-only",
    "detail",
    "stats",
    "without-paging",
    "terse",
    "brief",
    "value-list",
    "as-value",
    "show-ids",
];

fn proplist_of(cmd: &Command) -> Option<Vec<String>> {
    cmd.proplist_names()
        .map(|l| l.into_iter().map(str::to_owned).collect())
}

/// Keeps only the listed properties (`.id` only if listed).
pub(crate) fn project(mut row: Attributes, proplist: Option<&[String]>) -> Attributes {
    if let Some(list) = proplist {
        row.retain(|n| list.iter().any(|p| p == n));
    }
    row
}

pub(crate) fn row_matches(row: &Attributes, queries: &[QueryWord]) -> bool {
    queries.is_empty() || matches(queries, |n| row.get(n))
}

/// The replies for a finished command that produced no rows.
pub(crate) fn empty_replies(dev: &Device) -> Vec<Reply> {
    if dev.fleet.sends_empty {
        vec![Reply::empty(), Reply::done()]
    } else {
        vec![Reply::done()]
    }
}

fn print(dev: &Device, cmd: &Command, menu: &str) -> Outcome {
    if cmd.attributes.iter().any(|(n, _)| !PRINT_ARGS.contains(&n)) {
        return unknown_parameter();
    }
    let rows: Vec<Attributes> = rows_of(dev, menu)
        .into_iter()
        .filter(|r| row_matches(r, &cmd.queries))
        .collect();
    if cmd.attributes.contains("count-only") {
        return Outcome::Replies(vec![Reply::done_ret(rows.len().to_string())]);
    }
    if rows.is_empty() {
        return Outcome::Replies(empty_replies(dev));
    }
    let proplist = proplist_of(cmd);
    let mut replies: Vec<Reply> = rows
        .into_iter()
        .map(|r| Reply::re(project(r, proplist.as_deref())))
        .collect();
    replies.push(Reply::done());
    Outcome::Replies(replies)
}

fn listen(cmd: &Command, menu: &str) -> Outcome {
    if cmd.attributes.iter().any(|(n, _)| n != ".proplist") {
        return unknown_parameter();
    }
    let menu = PRINTABLE
        .iter()
        .copied()
        .find(|m| *m == menu)
        .unwrap_or("/");
    Outcome::Stream(Stream::Listen {
        menu,
        queries: cmd.queries.clone(),
        proplist: proplist_of(cmd),
    })
}

fn table_op(dev: &Device, cmd: &Command, table: Option<TableMenu>, verb: &str) -> Outcome {
    let Some(table) = table else {
        return trap(Some(TrapCategory::MissingItemOrCommand), "no such command");
    };
    let interfaces = menus::interface_names(dev);
    let mut tree = dev.tree();
    let result = match verb {
        "add" => tree
            .add(table, &cmd.attributes, &interfaces)
            .map(Reply::done_ret),
        "set" => tree
            .set(table, &cmd.attributes, &interfaces)
            .map(|()| Reply::done()),
        _ => tree.remove(table, &cmd.attributes).map(|()| Reply::done()),
    };
    match result {
        Ok(done) => Outcome::Replies(vec![done]),
        Err(t) => Outcome::Replies(vec![t, Reply::done()]),
    }
}

fn interval_of(cmd: &Command) -> Result<Duration, Outcome> {
    match cmd.attributes.get("interval") {
        None => Ok(Duration::from_secs(1)),
        Some(text) => parse_duration(text)
            .map(|d| d.max(Duration::from_millis(20)))
            .ok_or_else(|| {
                trap(
                    Some(TrapCategory::ArgumentValue),
                    "invalid value for argument interval",
                )
            }),
    }
}

fn monitor_traffic(dev: &Device, cmd: &Command) -> Outcome {
    const ARGS: &[&str] = &[
        "interface",
        "numbers",
        "once",
        "interval",
        ".proplist",
        "duration",
    ];
    if cmd.attributes.iter().any(|(n, _)| !ARGS.contains(&n)) {
        return unknown_parameter();
    }
    let Some(wanted) = cmd
        .attributes
        .get("interface")
        .or_else(|| cmd.attributes.get("numbers"))
    else {
        return trap(
            Some(TrapCategory::ArgumentValue),
            "failure: missing value(s) of argument(s) interface",
        );
    };
    let all = menus::interfaces(dev);
    let mut chosen = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match all.iter().find(|i| i.name == name) {
            Some(i) => chosen.push(i.clone()),
            None => {
                return trap(
                    Some(TrapCategory::ArgumentValue),
                    "input does not match any value of interface",
                );
            }
        }
    }
    let proplist = proplist_of(cmd);
    if cmd.attributes.contains("once") {
        let mut replies: Vec<Reply> = chosen
            .iter()
            .map(|i| {
                Reply::re(project(
                    menus::monitor_traffic_row(dev, i, 0),
                    proplist.as_deref(),
                ))
            })
            .collect();
        replies.push(Reply::done());
        return Outcome::Replies(replies);
    }
    match interval_of(cmd) {
        Ok(interval) => Outcome::Stream(Stream::Monitor {
            target: MonitorTarget::Traffic(chosen),
            interval,
            proplist,
        }),
        Err(t) => t,
    }
}

fn monitor_wifi(cmd: &Command) -> Outcome {
    const ARGS: &[&str] = &[
        "numbers",
        ".id",
        "once",
        "interval",
        ".proplist",
        "duration",
    ];
    if cmd.attributes.iter().any(|(n, _)| !ARGS.contains(&n)) {
        return unknown_parameter();
    }
    let which = cmd
        .attributes
        .get("numbers")
        .or_else(|| cmd.attributes.get(".id"));
    if !matches!(which, Some("wifi1" | "*1" | "0")) {
        return trap(
            Some(TrapCategory::ArgumentValue),
            "input does not match any value of interface",
        );
    }
    let proplist = proplist_of(cmd);
    if cmd.attributes.contains("once") {
        return Outcome::Stream(Stream::Monitor {
            target: MonitorTarget::Wifi,
            interval: Duration::ZERO,
            proplist,
        });
    }
    match interval_of(cmd) {
        Ok(interval) => Outcome::Stream(Stream::Monitor {
            target: MonitorTarget::Wifi,
            interval,
            proplist,
        }),
        Err(t) => t,
    }
}
