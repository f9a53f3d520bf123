//! Integration tests of the simulator through its real sockets: login flows, printing,
//! the configuration tree, tags and cancel, reboot, faults, counters, control API, and the
//! multi-process binary.
#![allow(clippy::unwrap_used, unreachable_pub, missing_debug_implementations)]

mod client;
mod control;
mod device_life;
mod faults;
mod protocol;

use routeros_sim::{Fleet, SimConfig};

/// A started fleet of `devices` devices with test defaults.
pub async fn fleet(devices: usize) -> Fleet {
    fleet_with(SimConfig {
        devices,
        ..SimConfig::for_tests()
    })
    .await
}

pub async fn fleet_with(config: SimConfig) -> Fleet {
    Fleet::start(config).await.expect("fleet starts")
}

/// A TLS client to device `i`, logged in.
pub async fn logged_in(fleet: &Fleet, i: usize) -> client::Client {
    let mut c = client::Client::tls(fleet.device_addr(i))
        .await
        .expect("connect");
    let (u, p) = fleet.credentials();
    let replies = c.login(u, p).await.expect("login");
    assert_eq!(
        replies.last().map(|r| r.kind),
        Some(routeros_proto::ReplyKind::Done)
    );
    assert!(
        replies
            .iter()
            .all(|r| r.kind == routeros_proto::ReplyKind::Done)
    );
    c
}
