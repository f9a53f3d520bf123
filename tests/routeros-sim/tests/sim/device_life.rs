//! Reboot (refusal, uptime and counter reset) and the per-device counters.

use std::time::Duration;

use routeros_proto::{Command, QueryWord, ReplyKind};

use crate::client::{Client, eventually};
use crate::{fleet, logged_in};

async fn uptime_and_rx(c: &mut Client) -> (String, u64) {
    let r = c
        .run(&Command::new("/system/resource/print").proplist(&["uptime"]))
        .await
        .unwrap();
    let uptime = r[0].attributes.get("uptime").unwrap().to_owned();
    let i = c
        .run(
            &Command::new("/interface/print")
                .proplist(&["rx-byte"])
                .query(QueryWord::Eq("name".into(), "ether1".into())),
        )
        .await
        .unwrap();
    (
        uptime,
        i[0].attributes.get("rx-byte").unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn reboot_drops_refuses_and_resets_uptime_and_counters() {
    let fleet = fleet(2).await;
    let mut c = logged_in(&fleet, 0).await;
    let (uptime_before, rx_before) = uptime_and_rx(&mut c).await;
    assert!(
        uptime_before.contains('h') || uptime_before.contains('d'),
        "{uptime_before}"
    );
    let r = c
        .run(&Command::new("/system/reboot").tag("r"))
        .await
        .unwrap();
    assert_eq!(r[0].kind, ReplyKind::Done);
    assert!(
        c.closed_within(Duration::from_secs(2)).await,
        "connection dropped"
    );
    // While down, connects are refused.
    assert!(eventually(Duration::from_secs(1), || fleet.stats(0).reboots == 1).await);
    assert!(Client::plain(fleet.plain_addr(0).unwrap()).await.is_err());
    // The neighbour is unaffected.
    let mut other = logged_in(&fleet, 1).await;
    assert_eq!(
        other
            .run(&Command::new("/system/identity/print"))
            .await
            .unwrap()
            .len(),
        2
    );
    // Back up after the delay, with uptime and counters from zero.
    let mut back = None;
    for _ in 0..200 {
        if let Ok(mut c) = Client::tls(fleet.device_addr(0)).await {
            let (u, p) = fleet.credentials();
            if c.login(u, p).await.is_ok() {
                back = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = back.expect("device came back");
    let (uptime_after, rx_after) = uptime_and_rx(&mut c).await;
    assert!(
        uptime_after.ends_with('s') && !uptime_after.contains('h'),
        "{uptime_after}"
    );
    assert!(rx_after < rx_before, "{rx_after} < {rx_before}");
    assert!(fleet.stats(0).uptime_ms < 5_000);
    fleet.shutdown().await;
}

#[tokio::test]
async fn counters_track_connections_logins_commands_and_polls() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    for _ in 0..3 {
        c.run(&Command::new("/system/resource/print"))
            .await
            .unwrap();
    }
    c.run(&Command::new("/interface/print")).await.unwrap();
    c.run(&Command::new("/bogus/print")).await.unwrap();
    let s = fleet.stats(0);
    assert_eq!(s.connections_accepted, 1);
    assert_eq!(s.active_connections, 1);
    assert_eq!(s.logins_ok, 1);
    assert_eq!(s.polls_served, 3);
    assert_eq!(s.commands_served.get("/system/resource/print"), Some(&3));
    assert_eq!(s.commands_served.get("/interface/print"), Some(&1));
    assert_eq!(s.commands_served.get("/login"), Some(&1));
    assert_eq!(s.commands_served.get("(unknown)"), Some(&1));
    let times = &s.recent_polls_unix_ms;
    assert_eq!(times.len(), 3);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    drop(c);
    assert!(
        eventually(Duration::from_secs(2), || fleet.stats(0).active_connections
            == 0)
        .await
    );
    fleet.shutdown().await;
}
