//! The RouterOS client against simulated devices over real TLS sockets: transports and
//! certificate checks, both login flows, pipelining, tags under concurrency, timeouts that
//! cancel cleanly, traps, hostile bytes, stalls and reboots.

use std::time::Duration;

use routeros_client::{
    Command, ConnectOptions, Credentials, Error, Fingerprint, QueryWord, TlsPolicy, Transport,
    connect,
};
use routeros_sim::{Fault, Fleet, GarbageKind, Latency, SimConfig, StallMode, Target};

async fn fleet(devices: usize) -> Fleet {
    Fleet::start(SimConfig {
        devices,
        ..SimConfig::for_tests()
    })
    .await
    .expect("simulator starts")
}

fn options(fleet: &Fleet, i: usize) -> ConnectOptions {
    let (user, password) = fleet.credentials();
    let mut o = ConnectOptions::new(fleet.ip(i).to_string(), Credentials::new(user, password));
    o.port = Some(fleet.device_addr(i).port());
    o.connect_timeout = Duration::from_secs(3);
    o.login_timeout = Duration::from_secs(2);
    o.command_timeout = Duration::from_secs(5);
    o.drain_timeout = Duration::from_secs(3);
    o
}

/// Polls `check` until it holds or `within` passes.
async fn eventually<F: FnMut() -> bool>(within: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

#[tokio::test]
async fn insecure_tls_records_the_fingerprint_and_a_pin_mismatch_is_refused() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let fp = client
        .info()
        .fingerprint
        .expect("TLS session has a fingerprint");
    assert!(client.info().tls);
    // The same device presents the same certificate again.
    let again = connect(&options(&fleet, 0)).await.unwrap();
    assert_eq!(again.info().fingerprint, Some(fp));

    let mut pinned = options(&fleet, 0);
    pinned.transport = Transport::Tls(TlsPolicy::insecure().pinned(Fingerprint([7; 32])));
    match connect(&pinned).await {
        Err(Error::FingerprintMismatch { actual, .. }) => assert_eq!(actual, fp),
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    let mut right_pin = options(&fleet, 0);
    right_pin.transport = Transport::Tls(TlsPolicy::insecure().pinned(fp));
    connect(&right_pin).await.unwrap();
    fleet.shutdown().await;
}

#[tokio::test]
async fn verify_mode_checks_the_chain() {
    let fleet = fleet(2).await;
    let other = fleet_with_other_ca().await;
    let policy = TlsPolicy::verify_with_ca_pem(fleet.ca_cert_pem().as_bytes()).unwrap();
    let mut o = options(&fleet, 0);
    o.transport = Transport::Tls(policy.clone());
    let client = connect(&o)
        .await
        .expect("certificate chains to the CA and names the IP");
    client.ping(Duration::from_secs(2)).await.unwrap();

    let wrong_ca = TlsPolicy::verify_with_ca_pem(other.ca_cert_pem().as_bytes()).unwrap();
    let mut o = options(&fleet, 0);
    o.transport = Transport::Tls(wrong_ca);
    assert!(matches!(connect(&o).await, Err(Error::Tls { .. })));

    // Dialling device 1's certificate under device 0's address fails the IP check: connect
    // to device 1's socket while claiming device 0's address as the name.
    let mut o = options(&fleet, 1);
    o.transport = Transport::Tls(policy);
    o.host = fleet.ip(1).to_string();
    connect(&o)
        .await
        .expect("device 1 verifies under its own address");
    fleet.shutdown().await;
    other.shutdown().await;
}

async fn fleet_with_other_ca() -> Fleet {
    fleet(1).await
}

#[tokio::test]
async fn plain_transport_is_used_only_when_configured() {
    let fleet = fleet(1).await;
    let mut o = options(&fleet, 0);
    o.transport = Transport::Plain;
    o.port = fleet.plain_addr(0).map(|a| a.port());
    let client = connect(&o).await.unwrap();
    assert!(!client.info().tls);
    assert!(client.info().fingerprint.is_none());
    // TLS to the plain port does not silently fall back.
    let mut o = options(&fleet, 0);
    o.port = fleet.plain_addr(0).map(|a| a.port());
    assert!(connect(&o).await.is_err());
    fleet.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_refused_login_are_login_rejected() {
    let fleet = fleet(2).await;
    let mut o = options(&fleet, 0);
    o.credentials = Credentials::new("admin", "wrong");
    match connect(&o).await {
        Err(e @ Error::LoginRejected { .. }) => {
            assert!(e.is_auth_failure());
            assert!(
                e.to_string().contains("invalid user name or password"),
                "{e}"
            );
        }
        other => panic!("expected login rejected, got {other:?}"),
    }
    fleet.set_fault(Target::Index(1), Fault::RefuseLogin);
    assert!(matches!(
        connect(&options(&fleet, 1)).await,
        Err(Error::LoginRejected { .. })
    ));
    // The password never shows in debug output.
    assert!(!format!("{o:?}").contains("wrong"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn legacy_challenge_login_is_followed_when_the_device_asks() {
    let fleet = fleet(1).await;
    fleet.set_legacy_login(0, true);
    let client = connect(&options(&fleet, 0)).await.unwrap();
    assert!(client.info().legacy_login);
    client.ping(Duration::from_secs(2)).await.unwrap();
    let mut o = options(&fleet, 0);
    o.credentials = Credentials::new("admin", "wrong");
    assert!(matches!(
        connect(&o).await,
        Err(Error::LoginRejected { .. })
    ));
    fleet.shutdown().await;
}

#[tokio::test]
async fn pipelined_commands_come_back_to_their_own_callers() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let results = client
        .execute_pipelined(vec![
            Command::new("/system/resource/print"),
            Command::new("/system/identity/print"),
            Command::new("/interface/print").proplist(&["name", "type"]),
            Command::new("/interface/print")
                .proplist(&["name", "type"])
                .query(QueryWord::Eq("type".into(), "ether".into())),
        ])
        .await;
    let [resource, identity, all, ethers] = results.try_into().expect("four results");
    let resource = resource.unwrap();
    assert!(resource.first().unwrap().get("version").is_some());
    assert!(identity.unwrap().first().unwrap().get("name").is_some());
    let all = all.unwrap();
    let ethers = ethers.unwrap();
    assert!(ethers.rows.len() < all.rows.len());
    assert!(ethers.rows.iter().all(|r| r.get("type") == Some("ether")));

    // Many concurrent callers on one session, each checking it got its own answer.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let r = client
                    .execute(Command::new("/system/identity/print"))
                    .await
                    .unwrap();
                r.first().unwrap().get("name").is_some()
                    && r.first().unwrap().get("version").is_none()
            } else {
                let r = client
                    .execute(Command::new("/system/resource/print"))
                    .await
                    .unwrap();
                r.first().unwrap().get("version").is_some()
            }
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "a reply reached the wrong caller");
    }
    assert_eq!(client.stats().sentences_dropped, 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_command_is_cancelled_and_its_late_reply_reaches_nobody() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    fleet.set_fault(
        Target::Index(0),
        Fault::Slow {
            latency: Latency::Fixed { ms: 600 },
        },
    );
    let slow = client
        .execute_with_timeout(
            Command::new("/system/resource/print"),
            Duration::from_millis(100),
        )
        .await;
    assert!(matches!(slow, Err(Error::Timeout { .. })), "{slow:?}");
    fleet.clear_faults(Target::Index(0));
    // The next command gets its own reply, even while the late one drains.
    let identity = client
        .execute(Command::new("/system/identity/print"))
        .await
        .unwrap();
    let row = identity.first().unwrap();
    assert!(row.get("name").is_some());
    assert!(
        row.get("version").is_none(),
        "got the resource reply of the cancelled command"
    );
    assert!(!client.is_closed(), "a drained cancel keeps the session");
    assert_eq!(client.stats().timeouts, 1);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_command_that_never_drains_closes_the_session() {
    let fleet = fleet(1).await;
    let mut o = options(&fleet, 0);
    o.drain_timeout = Duration::from_millis(500);
    let client = connect(&o).await.unwrap();
    fleet.set_fault(
        Target::Index(0),
        Fault::Stall {
            mode: StallMode::AfterLogin,
        },
    );
    let r = client
        .execute_with_timeout(
            Command::new("/system/resource/print"),
            Duration::from_millis(100),
        )
        .await;
    assert!(matches!(r, Err(Error::Timeout { .. })));
    assert!(eventually(Duration::from_secs(5), || client.is_closed()).await);
    let after = client.execute(Command::new("/system/identity/print")).await;
    assert!(
        matches!(after, Err(Error::ConnectionLost { .. })),
        "{after:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn traps_are_typed_and_leave_the_session_usable() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let e = client
        .execute(Command::new("/nonexistent/print"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Trap { .. }), "{e:?}");
    assert!(!e.is_session_fatal());
    let e = client
        .execute(Command::new("/ip/address/remove").attr(".id", "*FFFF"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such item"), "{e}");
    // add/set/remove round trip with the new id from `=ret=`.
    let added = client
        .execute(
            Command::new("/ip/address/add")
                .attr("address", "10.9.9.1/24")
                .attr("interface", "ether2"),
        )
        .await
        .unwrap();
    let id = added.ret().expect("add returns the new id").to_owned();
    assert!(id.starts_with('*'));
    client
        .execute(
            Command::new("/ip/address/set")
                .attr(".id", id.clone())
                .attr("comment", "drover"),
        )
        .await
        .unwrap();
    let found = client
        .execute(
            Command::new("/ip/address/print")
                .query(QueryWord::Eq("comment".into(), "drover".into())),
        )
        .await
        .unwrap();
    assert_eq!(found.rows.len(), 1);
    client
        .execute(Command::new("/ip/address/remove").attr(".id", id))
        .await
        .unwrap();
    client.ping(Duration::from_secs(2)).await.unwrap();
    fleet.shutdown().await;
}

#[tokio::test]
async fn garbage_from_the_device_fails_in_flight_commands_and_closes() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    for kind in [GarbageKind::ControlByte, GarbageKind::Random] {
        fleet.set_fault(
            Target::Index(0),
            Fault::Garbage {
                bytes: kind,
                after_replies: 0,
            },
        );
        let client = if client.is_closed() {
            fleet.clear_faults(Target::Index(0));
            let c = connect(&options(&fleet, 0)).await.unwrap();
            fleet.set_fault(
                Target::Index(0),
                Fault::Garbage {
                    bytes: kind,
                    after_replies: 0,
                },
            );
            c
        } else {
            client.clone()
        };
        let r = client.execute(Command::new("/system/resource/print")).await;
        assert!(
            matches!(
                r,
                Err(Error::Protocol { .. } | Error::ConnectionLost { .. })
            ),
            "{kind:?}: {r:?}"
        );
        assert!(eventually(Duration::from_secs(2), || client.is_closed()).await);
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn stalls_are_bounded_by_the_connect_and_login_timeouts() {
    let fleet = fleet(2).await;
    fleet.set_fault(
        Target::Index(0),
        Fault::Stall {
            mode: StallMode::Handshake,
        },
    );
    fleet.set_fault(
        Target::Index(1),
        Fault::Stall {
            mode: StallMode::AfterTls,
        },
    );
    let mut o = options(&fleet, 0);
    o.connect_timeout = Duration::from_millis(300);
    assert!(matches!(
        connect(&o).await,
        Err(Error::ConnectTimeout { .. })
    ));
    let mut o = options(&fleet, 1);
    o.login_timeout = Duration::from_millis(300);
    assert!(matches!(connect(&o).await, Err(Error::LoginTimeout { .. })));
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_reboot_ends_the_session_and_the_device_comes_back_with_uptime_reset() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let before = client
        .execute(Command::new("/system/resource/print"))
        .await
        .unwrap();
    let uptime_before = before.first().unwrap().get("uptime").unwrap().to_owned();
    client
        .execute(Command::new("/system/reboot"))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(3), || client.is_closed()).await);
    let mut back = None;
    for _ in 0..50 {
        if let Ok(c) = connect(&options(&fleet, 0)).await {
            back = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = back.expect("device comes back after its reboot delay");
    let after = back
        .execute(Command::new("/system/resource/print"))
        .await
        .unwrap();
    let uptime_after = after.first().unwrap().get("uptime").unwrap().to_owned();
    assert_eq!(fleet.stats(0).reboots, 1);
    assert_ne!(uptime_before, uptime_after);
    fleet.shutdown().await;
}

#[tokio::test]
async fn dropping_a_stream_cancels_it_on_the_device() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let mut stream = client
        .stream(Command::new("/interface/monitor-traffic").attr("interface", "ether1"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("a row within 3 s")
        .expect("stream open")
        .unwrap();
    assert!(
        first.get("name").is_some() || first.get(".section").is_some(),
        "{first:?}"
    );
    drop(stream);
    // The session stays healthy and in sync after the cancel drains.
    for _ in 0..3 {
        let r = client
            .execute(Command::new("/system/identity/print"))
            .await
            .unwrap();
        assert!(r.first().unwrap().get("name").is_some());
    }
    assert!(!client.is_closed());
    fleet.shutdown().await;
}

#[tokio::test]
async fn commands_complete_while_a_stream_keeps_the_session_busy() {
    let fleet = fleet(1).await;
    let client = connect(&options(&fleet, 0)).await.unwrap();
    let mut stream = client
        .stream(Command::new("/interface/monitor-traffic").attr("interface", "ether1"))
        .await
        .unwrap();
    // Rows keep arriving on the one connection while other commands go out and come back.
    for _ in 0..5 {
        let row = tokio::time::timeout(Duration::from_secs(3), stream.next())
            .await
            .expect("a stream row within 3 s")
            .expect("stream open");
        assert!(row.is_ok(), "{row:?}");
        let identity = tokio::time::timeout(
            Duration::from_secs(3),
            client.execute(Command::new("/system/identity/print")),
        )
        .await
        .expect("a command answered beside the stream")
        .unwrap();
        assert!(identity.first().unwrap().get("name").is_some());
    }
    drop(stream);
    fleet.shutdown().await;
}

#[tokio::test]
async fn close_and_dropping_the_last_clone_both_end_the_connection_on_the_device() {
    let fleet = fleet(1).await;
    let first = connect(&options(&fleet, 0)).await.unwrap();
    let second = connect(&options(&fleet, 0)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(3), || fleet.stats(0).active_connections
            == 2)
        .await,
        "{:?}",
        fleet.stats(0)
    );

    // close(): commands fail at once and the device sees the connection end, though a
    // clone of the client is still alive.
    let clone = first.clone();
    first.close();
    assert!(clone.is_closed());
    assert!(matches!(
        clone.execute(Command::new("/system/identity/print")).await,
        Err(Error::Closed)
    ));
    assert!(
        eventually(Duration::from_secs(3), || fleet.stats(0).active_connections
            == 1)
        .await,
        "{:?}",
        fleet.stats(0)
    );

    // Dropping every clone of a session ends it too.
    second.ping(Duration::from_secs(3)).await.unwrap();
    drop(second);
    assert!(
        eventually(Duration::from_secs(3), || fleet.stats(0).active_connections
            == 0)
        .await,
        "{:?}",
        fleet.stats(0)
    );
    drop(clone);
    fleet.shutdown().await;
}
