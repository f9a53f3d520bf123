//! Login flows, print with proplist/queries/count-only, `!empty`, traps, the mutable tree,
//! tags interleaving, cancel ordering, listen, quit and hostile input.

use std::time::Duration;

use routeros_proto::{Command, QueryWord, Reply, ReplyKind, TrapCategory};
use routeros_sim::SimConfig;

use crate::client::{Client, names};
use crate::{fleet, fleet_with, logged_in};

fn kinds(replies: &[Reply]) -> Vec<ReplyKind> {
    replies.iter().map(|r| r.kind).collect()
}

#[tokio::test]
async fn plain_login_succeeds_and_wrong_password_traps() {
    let fleet = fleet(1).await;
    let (user, password) = fleet.credentials();
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    let bad = c.login(user, "wrong").await.unwrap();
    assert_eq!(kinds(&bad), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(bad[0].message(), Some("invalid user name or password (6)"));
    let good = c.login(user, password).await.unwrap();
    assert_eq!(kinds(&good), [ReplyKind::Done]);
    assert!(good[0].ret().is_none());
    let stats = fleet.stats(0);
    assert_eq!((stats.logins_ok, stats.logins_failed), (1, 1));
    // The plain port works too.
    let mut p = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    assert_eq!(
        kinds(&p.login(user, password).await.unwrap()),
        [ReplyKind::Done]
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn legacy_challenge_login_succeeds_and_bad_response_fails() {
    let fleet = fleet(1).await;
    let (user, password) = fleet.credentials();
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    let first = c.run(&Command::new("/login")).await.unwrap();
    let challenge = first[0].ret().unwrap();
    assert_eq!(challenge.len(), 32);
    assert!(challenge.chars().all(|ch| ch.is_ascii_hexdigit()));
    let bad = c
        .run(&routeros_proto::login::legacy_login(user, "00deadbeef"))
        .await
        .unwrap();
    assert_eq!(kinds(&bad), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(bad[0].message(), Some("cannot log in"));
    let ok = c.login_legacy(user, password).await.unwrap();
    assert_eq!(kinds(&ok), [ReplyKind::Done]);
    // A legacy device answers the modern sentence with a challenge (go-routeros style).
    fleet.set_legacy_login(0, true);
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    let first = c.login(user, password).await.unwrap();
    let challenge = first[0].ret().unwrap().to_owned();
    let response =
        routeros_proto::login::challenge_response(password.as_bytes(), &challenge).unwrap();
    let ok = c
        .run(&routeros_proto::login::legacy_login(user, &response))
        .await
        .unwrap();
    assert_eq!(kinds(&ok), [ReplyKind::Done]);
    fleet.shutdown().await;
}

#[tokio::test]
async fn commands_before_login_are_refused_then_the_session_ends() {
    let fleet = fleet(1).await;
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    for _ in 0..2 {
        let r = c
            .run(&Command::new("/system/resource/print").tag("t"))
            .await
            .unwrap();
        assert_eq!(kinds(&r), [ReplyKind::Trap, ReplyKind::Done]);
        assert_eq!(r[0].message(), Some("not logged in"));
        assert_eq!(r[0].tag.as_deref(), Some("t"));
    }
    let r = c.run(&Command::new("/interface/print")).await.unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Trap, ReplyKind::Done]);
    let fatal = c.recv().await.unwrap();
    assert_eq!(fatal.kind, ReplyKind::Fatal);
    assert!(c.closed_within(Duration::from_secs(2)).await);
    assert_eq!(fleet.stats(0).polls_served, 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn resource_print_has_routeros_fields_and_honours_proplist() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    let r = c
        .run(&Command::new("/system/resource/print"))
        .await
        .unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Re, ReplyKind::Done]);
    let row = &r[0].attributes;
    for field in [
        "uptime",
        "version",
        "build-time",
        "free-memory",
        "total-memory",
        "cpu",
        "cpu-count",
        "cpu-frequency",
        "cpu-load",
        "free-hdd-space",
        "total-hdd-space",
        "architecture-name",
        "board-name",
        "platform",
    ] {
        assert!(row.contains(field), "missing {field}");
    }
    assert_eq!(row.get("version"), Some("7.18.2 (stable)"));
    assert_eq!(row.get("board-name"), Some(fleet.model(0)));
    let r = c
        .run(
            &Command::new("/system/resource/print")
                .proplist(&["free-hdd-space", "total-hdd-space"]),
        )
        .await
        .unwrap();
    assert_eq!(names(&r[0]), ["free-hdd-space", "total-hdd-space"]);
    // A proplist naming nothing the row has gives a bare !re.
    let r = c
        .run(&Command::new("/system/resource/print").proplist(&["nonexistent"]))
        .await
        .unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Re, ReplyKind::Done]);
    assert!(r[0].attributes.is_empty());
    // getall is print; .id only when listed.
    let r = c
        .run(&Command::new("/interface/getall").proplist(&["name"]))
        .await
        .unwrap();
    assert!(
        r.iter()
            .filter(|r| r.kind == ReplyKind::Re)
            .all(|r| names(r) == ["name"])
    );
    let r = c
        .run(&Command::new("/interface/print").proplist(&[".id", "name"]))
        .await
        .unwrap();
    assert_eq!(names(&r[0]), [".id", "name"]);
    let stats = fleet.stats(0);
    assert_eq!(stats.polls_served, 3);
    assert_eq!(stats.recent_polls_unix_ms.len(), 3);
    assert_eq!(
        stats.commands_served.get("/system/resource/print"),
        Some(&3)
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn interface_print_filters_with_queries_and_counts() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    let ether = Command::new("/interface/print")
        .proplist(&["name", "rx-byte", "tx-byte", "running", "type"])
        .query(QueryWord::Eq("type".into(), "ether".into()));
    let r = c.run(&ether).await.unwrap();
    let rows: Vec<_> = r.iter().filter(|r| r.kind == ReplyKind::Re).collect();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r.attributes.get("type") == Some("ether"))
    );
    let not_running: Vec<_> = rows
        .iter()
        .filter(|r| r.attributes.get("running") == Some("false"))
        .collect();
    assert_eq!(not_running.len(), 1);
    // ?type=vlan ?type=wg ?#| → either.
    let r = c
        .run(
            &Command::new("/interface/print")
                .proplist(&["name", "mac-address"])
                .query(QueryWord::parse("?type=vlan").unwrap())
                .query(QueryWord::parse("?type=wg").unwrap())
                .query(QueryWord::parse("?#|").unwrap()),
        )
        .await
        .unwrap();
    let got: Vec<_> = r
        .iter()
        .filter_map(|r| r.attributes.get("name").map(str::to_owned))
        .collect();
    assert_eq!(got, ["vlan10", "wg0"]);
    let wg = r
        .iter()
        .find(|r| r.attributes.get("name") == Some("wg0"))
        .unwrap();
    assert!(!wg.attributes.contains("mac-address"), "wg0 has no MAC");
    let count = c
        .run(
            &Command::new("/interface/print")
                .attr("count-only", "")
                .query(QueryWord::Eq("type".into(), "ether".into())),
        )
        .await
        .unwrap();
    assert_eq!(kinds(&count), [ReplyKind::Done]);
    assert_eq!(count[0].ret(), Some("5"));
    // Counters grow.
    let rx = |r: &[Reply]| -> u64 { r[0].attributes.get("rx-byte").unwrap().parse().unwrap() };
    let q = Command::new("/interface/print")
        .proplist(&["rx-byte"])
        .query(QueryWord::Eq("name".into(), "ether1".into()));
    let a = rx(&c.run(&q).await.unwrap());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let b = rx(&c.run(&q).await.unwrap());
    assert!(b > a, "{b} > {a}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn empty_results_follow_the_emulated_version() {
    let fleet = fleet_with(SimConfig {
        devices: 1,
        models: vec!["CHR".into()],
        ..SimConfig::for_tests()
    })
    .await;
    let mut c = logged_in(&fleet, 0).await;
    let r = c
        .run(&Command::new("/system/health/print").tag("h"))
        .await
        .unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Empty, ReplyKind::Done]);
    assert!(r.iter().all(|r| r.tag.as_deref() == Some("h")));
    let rb = c
        .run(&Command::new("/system/routerboard/print"))
        .await
        .unwrap();
    assert_eq!(rb[0].attributes.get("routerboard"), Some("false"));
    let wifi = c
        .run(&Command::new("/interface/wifi/registration-table/print"))
        .await
        .unwrap();
    assert_eq!(kinds(&wifi), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(
        wifi[0].message(),
        Some("no such command or directory (wifi)")
    );
    fleet.shutdown().await;

    let old = fleet_with(SimConfig {
        devices: 1,
        models: vec!["CHR".into()],
        version: "7.16.1 (stable)".into(),
        ..SimConfig::for_tests()
    })
    .await;
    let mut c = logged_in(&old, 0).await;
    let r = c.run(&Command::new("/system/health/print")).await.unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Done]);
    old.shutdown().await;
}

#[tokio::test]
async fn radio_models_have_wifi_tables_and_no_wireless_menu() {
    let fleet = fleet_with(SimConfig {
        devices: 1,
        models: vec!["hAP ax^3".into()],
        ..SimConfig::for_tests()
    })
    .await;
    let mut c = logged_in(&fleet, 0).await;
    let r = c
        .run(&Command::new("/interface/wifi/registration-table/print"))
        .await
        .unwrap();
    assert_eq!(r.last().map(|r| r.kind), Some(ReplyKind::Done));
    for row in r.iter().filter(|r| r.kind == ReplyKind::Re) {
        assert!(row.attributes.get("signal").is_some());
        assert!(row.attributes.get("tx-ccq").is_none());
    }
    let w = c
        .run(&Command::new(
            "/interface/wireless/registration-table/print",
        ))
        .await
        .unwrap();
    assert_eq!(kinds(&w), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(w[0].message(), Some("no such command prefix"));
    let names: Vec<_> = c
        .run(&Command::new("/interface/print").proplist(&["name"]))
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.attributes.get("name").map(str::to_owned))
        .collect();
    assert!(names.contains(&"wifi1".to_owned()));
    let once = c
        .run(
            &Command::new("/interface/wifi/monitor")
                .attr("numbers", "wifi1")
                .attr("once", ""),
        )
        .await
        .unwrap();
    assert_eq!(kinds(&once), [ReplyKind::Re, ReplyKind::Done]);
    assert!(once[0].attributes.contains("registered-peers"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn other_menus_print_realistic_rows() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    for (path, field) in [
        ("/system/identity/print", "name"),
        ("/system/routerboard/print", "routerboard"),
        ("/system/package/update/print", "installed-version"),
        ("/log/print", "topics"),
        ("/ip/address/print", "address"),
        ("/ip/neighbor/print", "identity"),
        ("/system/clock/print", "time"),
    ] {
        let r = c.run(&Command::new(path)).await.unwrap();
        assert_eq!(r.last().map(|r| r.kind), Some(ReplyKind::Done), "{path}");
        assert!(r[0].attributes.contains(field), "{path} lacks {field}");
    }
    let check = c
        .run(&Command::new("/system/package/update/check-for-updates"))
        .await
        .unwrap();
    assert_eq!(
        kinds(&check),
        [ReplyKind::Re, ReplyKind::Re, ReplyKind::Done]
    );
    assert_eq!(
        check[0].attributes.get("status"),
        Some("finding out latest version...")
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn configuration_tree_add_set_remove_round_trip() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    let add = c
        .run(
            &Command::new("/ip/address/add")
                .attr("address", "10.9.8.7/24")
                .attr("interface", "ether2")
                .attr("comment", "test")
                .tag("a"),
        )
        .await
        .unwrap();
    assert_eq!(kinds(&add), [ReplyKind::Done]);
    let id = add[0].ret().unwrap().to_owned();
    assert!(id.starts_with('*'));
    let row = c
        .run(&Command::new("/ip/address/print").query(QueryWord::Eq(".id".into(), id.clone())))
        .await
        .unwrap();
    assert_eq!(row[0].attributes.get("network"), Some("10.9.8.0"));
    assert_eq!(row[0].attributes.get("actual-interface"), Some("ether2"));
    assert_eq!(
        names(&row[0])[..4],
        [".id", "address", "network", "interface"]
    );
    let set = c
        .run(
            &Command::new("/ip/address/set")
                .attr(".id", id.as_str())
                .attr("comment", "changed"),
        )
        .await
        .unwrap();
    assert_eq!(kinds(&set), [ReplyKind::Done]);
    let row = c
        .run(&Command::new("/ip/address/print").query(QueryWord::Eq(".id".into(), id.clone())))
        .await
        .unwrap();
    assert_eq!(row[0].attributes.get("comment"), Some("changed"));
    let rm = c
        .run(&Command::new("/ip/address/remove").attr("numbers", id.as_str()))
        .await
        .unwrap();
    assert_eq!(kinds(&rm), [ReplyKind::Done]);
    let again = c
        .run(&Command::new("/ip/address/remove").attr(".id", id.as_str()))
        .await
        .unwrap();
    assert_eq!(kinds(&again), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(again[0].message(), Some("no such item"));
    // Required arguments, unknown parameters, bad values.
    let missing = c
        .run(&Command::new("/ip/address/add").attr("interface", "ether1"))
        .await
        .unwrap();
    assert_eq!(kinds(&missing), [ReplyKind::Trap, ReplyKind::Done]);
    assert!(missing[0].message().unwrap().contains("address"));
    let unknown = c
        .run(
            &Command::new("/ip/firewall/filter/add")
                .attr("chain", "input")
                .attr("bogus", "1"),
        )
        .await
        .unwrap();
    assert_eq!(unknown[0].message(), Some("unknown parameter"));
    let bad_iface = c
        .run(
            &Command::new("/ip/address/add")
                .attr("address", "1.2.3.4/32")
                .attr("interface", "nope"),
        )
        .await
        .unwrap();
    assert_eq!(bad_iface[0].category(), Some(TrapCategory::ArgumentValue));
    // Other menus, identity.
    let f = c
        .run(
            &Command::new("/ip/firewall/filter/add")
                .attr("chain", "forward")
                .attr("action", "drop"),
        )
        .await
        .unwrap();
    assert!(f[0].ret().is_some());
    let s = c
        .run(
            &Command::new("/system/scheduler/add")
                .attr("name", "job")
                .attr("interval", "1h"),
        )
        .await
        .unwrap();
    assert!(s[0].ret().is_some());
    let dup = c
        .run(&Command::new("/system/scheduler/add").attr("name", "job"))
        .await
        .unwrap();
    assert_eq!(kinds(&dup), [ReplyKind::Trap, ReplyKind::Done]);
    let b = c
        .run(&Command::new("/interface/bridge/add").attr("name", "br-test"))
        .await
        .unwrap();
    assert!(b[0].ret().is_some());
    let bset = c
        .run(
            &Command::new("/interface/bridge/set")
                .attr("numbers", "br-test")
                .attr("vlan-filtering", "yes"),
        )
        .await
        .unwrap();
    assert_eq!(kinds(&bset), [ReplyKind::Done]);
    let ident = c
        .run(&Command::new("/system/identity/set").attr("name", "core-1"))
        .await
        .unwrap();
    assert_eq!(kinds(&ident), [ReplyKind::Done]);
    let ident = c
        .run(&Command::new("/system/identity/print"))
        .await
        .unwrap();
    assert_eq!(ident[0].attributes.get("name"), Some("core-1"));
    assert_eq!(fleet.info(0).identity, "core-1");
    fleet.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_trap_then_done() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    let prefix = c
        .run(&Command::new("/no/such/thing/print").tag("x"))
        .await
        .unwrap();
    assert_eq!(kinds(&prefix), [ReplyKind::Trap, ReplyKind::Done]);
    assert_eq!(prefix[0].message(), Some("no such command prefix"));
    assert_eq!(
        prefix[0].category(),
        Some(TrapCategory::MissingItemOrCommand)
    );
    assert!(prefix.iter().all(|r| r.tag.as_deref() == Some("x")));
    let verb = c.run(&Command::new("/interface/frobnicate")).await.unwrap();
    assert_eq!(verb[0].message(), Some("no such command"));
    assert!(
        verb.iter().all(|r| r.tag.is_none()),
        "no tag that was not asked for"
    );
    let bad_arg = c
        .run(&Command::new("/system/resource/print").attr("bogus", "1"))
        .await
        .unwrap();
    assert_eq!(bad_arg[0].message(), Some("unknown parameter"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn tagged_commands_interleave() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    c.send(
        &Command::new("/interface/monitor-traffic")
            .attr("interface", "ether1,ether2")
            .attr("interval", "50ms")
            .tag("s"),
    )
    .await
    .unwrap();
    let first = c.recv().await.unwrap();
    assert_eq!(
        (first.kind, first.tag.as_deref()),
        (ReplyKind::Re, Some("s"))
    );
    assert_eq!(first.attributes.get(".section"), Some("0"));
    c.send(&Command::new("/system/identity/print").tag("p"))
        .await
        .unwrap();
    let mut p_done = false;
    let mut s_rows_after_p = 0;
    for _ in 0..40 {
        let r = c.recv().await.unwrap();
        match r.tag.as_deref() {
            Some("p") if r.kind == ReplyKind::Done => p_done = true,
            Some("p") => {}
            Some("s") if p_done => s_rows_after_p += 1,
            Some("s") => {}
            other => panic!("unexpected tag {other:?}"),
        }
        if s_rows_after_p >= 2 {
            break;
        }
    }
    assert!(p_done && s_rows_after_p >= 2);
    // once → one row for o, while s keeps streaming.
    c.send(
        &Command::new("/interface/monitor-traffic")
            .attr("interface", "ether1")
            .attr("once", "")
            .tag("o"),
    )
    .await
    .unwrap();
    let mut o_rows = 0;
    loop {
        let r = c.recv().await.unwrap();
        if r.tag.as_deref() != Some("o") {
            continue;
        }
        match r.kind {
            ReplyKind::Re => o_rows += 1,
            ReplyKind::Done => break,
            k => panic!("unexpected {k:?}"),
        }
    }
    assert_eq!(o_rows, 1);
    fleet.shutdown().await;
}

#[tokio::test]
async fn cancel_replies_in_the_observed_order() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    c.send(
        &Command::new("/interface/monitor-traffic")
            .attr("interface", "ether1")
            .attr("interval", "30ms")
            .tag("m"),
    )
    .await
    .unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(r.tag.as_deref(), Some("m"));
    c.send(&Command::new("/cancel").attr("tag", "m").tag("c"))
        .await
        .unwrap();
    // Skip rows of m already on their way, then: trap(m), done(c), done(m).
    let mut seq = Vec::new();
    loop {
        let r = c.recv().await.unwrap();
        if r.kind == ReplyKind::Re {
            assert!(seq.is_empty(), "no rows after the interrupt");
            continue;
        }
        seq.push((r.kind, r.tag.clone(), r.category()));
        if seq.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seq,
        [
            (
                ReplyKind::Trap,
                Some("m".into()),
                Some(TrapCategory::Interrupted)
            ),
            (ReplyKind::Done, Some("c".into()), None),
            (ReplyKind::Done, Some("m".into()), None),
        ]
    );
    // A cancelled empty listen: trap, cancel done, !empty, done.
    c.send(&Command::new("/system/resource/listen").tag("l"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(&Command::new("/cancel").tag("c2")).await.unwrap();
    let mut seq = Vec::new();
    for _ in 0..4 {
        let r = c.recv().await.unwrap();
        seq.push((r.kind, r.tag.clone()));
    }
    assert_eq!(
        seq,
        [
            (ReplyKind::Trap, Some("l".into())),
            (ReplyKind::Done, Some("c2".into())),
            (ReplyKind::Empty, Some("l".into())),
            (ReplyKind::Done, Some("l".into())),
        ]
    );
    // The session still works.
    let r = c
        .run(&Command::new("/system/identity/print"))
        .await
        .unwrap();
    assert_eq!(kinds(&r), [ReplyKind::Re, ReplyKind::Done]);
    fleet.shutdown().await;
}

#[tokio::test]
async fn listen_reports_changes() {
    let fleet = fleet(1).await;
    let mut watcher = logged_in(&fleet, 0).await;
    let mut writer = logged_in(&fleet, 0).await;
    watcher
        .send(&Command::new("/ip/address/listen").tag("w"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let add = writer
        .run(
            &Command::new("/ip/address/add")
                .attr("address", "10.0.0.1/8")
                .attr("interface", "ether3"),
        )
        .await
        .unwrap();
    let id = add[0].ret().unwrap().to_owned();
    let change = watcher.recv().await.unwrap();
    assert_eq!(change.kind, ReplyKind::Re);
    assert_eq!(change.tag.as_deref(), Some("w"));
    assert_eq!(change.attributes.get("address"), Some("10.0.0.1/8"));
    writer
        .run(&Command::new("/ip/address/remove").attr(".id", id.as_str()))
        .await
        .unwrap();
    let dead = watcher.recv().await.unwrap();
    assert_eq!(dead.attributes.get(".id"), Some(id.as_str()));
    assert_eq!(dead.attributes.get(".dead"), Some("true"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn quit_is_fatal_with_a_bare_reason() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    let r = c.run(&Command::new("/quit")).await.unwrap();
    assert_eq!(r[0].kind, ReplyKind::Fatal);
    assert_eq!(
        r[0].fatal_reason.as_deref(),
        Some("session terminated on request")
    );
    assert!(c.closed_within(Duration::from_secs(2)).await);
    fleet.shutdown().await;
}

#[tokio::test]
async fn hostile_input_closes_only_that_connection() {
    let fleet = fleet(2).await;
    let mut healthy = logged_in(&fleet, 1).await;
    // A reserved control byte.
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    c.send_raw(&[0x03, b'a', b'b', b'c', 0xF8, 0x00])
        .await
        .unwrap();
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // A length prefix claiming 256 MiB before login.
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    c.send_raw(&[0xF0, 0x10, 0x00, 0x00, 0x00]).await.unwrap();
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // A flood of empty sentences.
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    let zeros = vec![0u8; 64 * 1024];
    let _ = c.send_raw(&zeros).await;
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // Not a command.
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    c.send_raw(&routeros_proto::Sentence::from_strs(&["!re", "=x=y"]).to_bytes())
        .await
        .unwrap();
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // Random bytes.
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = c.send_raw(&junk).await;
    let _ = c.closed_within(Duration::from_secs(2)).await;
    // The device and its neighbour still serve.
    let mut again = logged_in(&fleet, 0).await;
    assert_eq!(
        again
            .run(&Command::new("/system/identity/print"))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        healthy
            .run(&Command::new("/system/identity/print"))
            .await
            .unwrap()
            .len(),
        2
    );
    fleet.shutdown().await;
}
