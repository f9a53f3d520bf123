//! Fault injection: refused logins, drops, garbage, stalls, latency, flapping, shares.

use std::time::{Duration, Instant};

use routeros_proto::{Command, ReplyKind};
use routeros_sim::{Fault, GarbageKind, Latency, StallMode, Target};

use crate::client::{Client, eventually};
use crate::{fleet, logged_in};

#[tokio::test]
async fn refuse_login_fails_even_with_the_right_password() {
    let fleet = fleet(2).await;
    assert_eq!(fleet.set_fault(Target::Index(0), Fault::RefuseLogin), 1);
    let (u, p) = fleet.credentials();
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    let r = c.login(u, p).await.unwrap();
    assert_eq!(r[0].kind, ReplyKind::Trap);
    assert_eq!(r[0].message(), Some("invalid user name or password (6)"));
    let r = c.login_legacy(u, p).await.unwrap();
    assert_eq!(r[0].message(), Some("cannot log in"));
    assert_eq!(fleet.stats(0).logins_failed, 2);
    let _ok = logged_in(&fleet, 1).await;
    fleet.clear_faults(Target::All);
    let _ok = logged_in(&fleet, 0).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn drop_now_and_after_n_replies() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    fleet.set_fault(Target::Index(0), Fault::Drop { after_replies: 0 });
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // New connections are closed at once.
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await.unwrap();
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // After N replies: login !done (1) + resource !re (2), then the close.
    fleet.set_fault(Target::Index(0), Fault::Drop { after_replies: 2 });
    let mut c = Client::plain(fleet.plain_addr(0).unwrap()).await;
    assert!(c.is_ok());
    fleet.clear_faults(Target::Index(0));
    fleet.set_fault(Target::Index(0), Fault::Drop { after_replies: 2 });
    let c2 = c.as_mut().unwrap();
    let (u, p) = fleet.credentials();
    c2.login(u, p).await.unwrap();
    c2.send(&Command::new("/system/resource/print"))
        .await
        .unwrap();
    assert_eq!(c2.recv().await.unwrap().kind, ReplyKind::Re);
    assert!(c2.recv().await.is_err(), "closed before !done");
    fleet.shutdown().await;
}

#[tokio::test]
async fn garbage_breaks_the_stream() {
    let fleet = fleet(1).await;
    fleet.set_fault(
        Target::Index(0),
        Fault::Garbage {
            bytes: GarbageKind::ControlByte,
            after_replies: 1,
        },
    );
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    let (u, p) = fleet.credentials();
    c.login(u, p).await.unwrap();
    c.send(&Command::new("/system/identity/print"))
        .await
        .unwrap();
    let err = c.recv().await.unwrap_err();
    assert!(
        err.to_string().contains("control byte") || err.to_string().contains("closed"),
        "{err}"
    );
    fleet.set_fault(
        Target::Index(0),
        Fault::Garbage {
            bytes: GarbageKind::Random,
            after_replies: 0,
        },
    );
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    assert!(c.login(u, p).await.is_err());
    fleet.shutdown().await;
}

#[tokio::test]
async fn stalls_at_each_stage() {
    let fleet = fleet(1).await;
    let (u, p) = fleet.credentials();
    fleet.set_fault(
        Target::Index(0),
        Fault::Stall {
            mode: StallMode::Handshake,
        },
    );
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(fleet.device_addr(0))
        .await
        .unwrap();
    let tls = tokio::time::timeout(
        Duration::from_millis(300),
        tokio_rustls::TlsConnector::from(crate::client::insecure_config()).connect(
            rustls::pki_types::ServerName::IpAddress(fleet.ip(0).into()),
            tcp,
        ),
    )
    .await;
    assert!(tls.is_err(), "handshake never completes");
    assert!(started.elapsed() >= Duration::from_millis(300));

    fleet.set_fault(
        Target::Index(0),
        Fault::Stall {
            mode: StallMode::AfterTls,
        },
    );
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    c.send(&routeros_proto::login::plain_login(u, p))
        .await
        .unwrap();
    assert!(c.recv_within(Duration::from_millis(300)).await.is_err());

    fleet.clear_faults(Target::Index(0));
    fleet.set_fault(
        Target::Index(0),
        Fault::Stall {
            mode: StallMode::AfterLogin,
        },
    );
    let mut c = Client::tls(fleet.device_addr(0)).await.unwrap();
    assert_eq!(c.login(u, p).await.unwrap()[0].kind, ReplyKind::Done);
    c.send(&Command::new("/system/resource/print"))
        .await
        .unwrap();
    assert!(c.recv_within(Duration::from_millis(300)).await.is_err());
    fleet.shutdown().await;
}

#[tokio::test]
async fn slow_replies_follow_the_latency() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    fleet.set_fault(
        Target::Index(0),
        Fault::Slow {
            latency: Latency::Fixed { ms: 150 },
        },
    );
    let t = Instant::now();
    c.run(&Command::new("/system/identity/print"))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    fleet.set_fault(
        Target::Index(0),
        Fault::Slow {
            latency: Latency::Uniform {
                min_ms: 20,
                max_ms: 60,
            },
        },
    );
    let t = Instant::now();
    c.run(&Command::new("/system/identity/print"))
        .await
        .unwrap();
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(20) && e < Duration::from_secs(2),
        "{e:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn flapping_device_goes_down_and_up() {
    let fleet = fleet(1).await;
    let mut c = logged_in(&fleet, 0).await;
    fleet.set_fault(
        Target::Index(0),
        Fault::Flap {
            period_ms: 400,
            down_ms: Some(200),
        },
    );
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // It comes back within the cycle.
    let mut up_again = false;
    for _ in 0..100 {
        if let Ok(mut c) = Client::plain(fleet.plain_addr(0).unwrap()).await {
            let (u, p) = fleet.credentials();
            if c.login(u, p).await.is_ok() {
                up_again = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(up_again);
    fleet.clear_faults(Target::Index(0));
    fleet.shutdown().await;
}

#[tokio::test]
async fn shares_pick_the_same_devices_for_the_same_seed() {
    let config = || routeros_sim::SimConfig {
        devices: 40,
        seed: 42,
        ..routeros_sim::SimConfig::for_tests()
    };
    let a = routeros_sim::Fleet::start(config()).await.unwrap();
    let n = a.set_fault(
        Target::Share {
            share: 0.25,
            salt: 0,
        },
        Fault::RefuseLogin,
    );
    assert!(n > 0 && n < 40, "{n}");
    let picked: Vec<usize> = (0..40).filter(|&i| a.faults(i).refuse_login).collect();
    assert_eq!(picked.len(), n);
    a.shutdown().await;
    let b = routeros_sim::Fleet::start(config()).await.unwrap();
    b.set_fault(
        Target::Share {
            share: 0.25,
            salt: 0,
        },
        Fault::RefuseLogin,
    );
    let again: Vec<usize> = (0..40).filter(|&i| b.faults(i).refuse_login).collect();
    assert_eq!(picked, again);
    assert!(eventually(Duration::from_millis(10), || true).await);
    b.shutdown().await;
}
