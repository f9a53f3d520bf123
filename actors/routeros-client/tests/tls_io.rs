//! The client's TLS layer (rustls' unbuffered API, buffers owned by the client) against peers
//! that shape the byte stream: TLS 1.2 and 1.3 terminators that cut replies into many small
//! records, a proxy that closes in the middle of a record, a server that refuses the
//! handshake with an alert, and servers that do not speak TLS at all.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use routeros_client::{
    Command, ConnectOptions, Credentials, Error, Fingerprint, TlsPolicy, Transport, connect,
};
use routeros_sim::tls::CertAuthority;
use routeros_sim::{Fleet, SimConfig};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn fleet() -> Fleet {
    Fleet::start(SimConfig::for_tests())
        .await
        .expect("simulator starts")
}

fn options_for(fleet: &Fleet, addr: SocketAddr) -> ConnectOptions {
    let (user, password) = fleet.credentials();
    let mut o = ConnectOptions::new(addr.ip().to_string(), Credentials::new(user, password));
    o.port = Some(addr.port());
    o.connect_timeout = Duration::from_secs(3);
    o.login_timeout = Duration::from_secs(2);
    o.command_timeout = Duration::from_secs(5);
    o
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration speaking only `version`, with a certificate from a fresh CA.
fn server_config(version: &'static rustls::SupportedProtocolVersion) -> Arc<ServerConfig> {
    let ca = CertAuthority::generate().expect("CA");
    let any = ca
        .server_config_for(Ipv4Addr::LOCALHOST)
        .expect("server config");
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("version")
        .with_no_client_auth()
        .with_cert_resolver(any.cert_resolver.clone());
    Arc::new(config)
}

/// A TLS server in front of the simulator's plain API port that forwards the device's bytes
/// in pieces of at most `piece` bytes, each flushed on its own: one TLS record per piece.
async fn terminator(fleet: &Fleet, config: Arc<ServerConfig>, piece: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let device = fleet
        .plain_addr(0)
        .expect("the test fleet has a plain port");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(plain) = TcpStream::connect(device).await else {
                    return;
                };
                let (mut tls_in, mut tls_out) = tokio::io::split(tls);
                let (mut dev_in, mut dev_out) = plain.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut tls_in, &mut dev_out).await;
                });
                let mut buf = vec![0; piece];
                while let Ok(n) = dev_in.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    for chunk in buf[..n].chunks(piece) {
                        if tls_out.write_all(chunk).await.is_err() || tls_out.flush().await.is_err()
                        {
                            return;
                        }
                    }
                }
                let _ = tls_out.shutdown().await;
            });
        }
    });
    addr
}

async fn long_reply_round_trip(fleet: &Fleet, addr: SocketAddr) {
    let client = connect(&options_for(fleet, addr)).await.expect("connect");
    assert!(client.info().tls);
    let comment = "r".repeat(1500);
    for i in 0..24 {
        client
            .execute(
                Command::new("/ip/address/add")
                    .attr("address", format!("10.88.{i}.1/24"))
                    .attr("interface", "ether2")
                    .attr("comment", comment.clone()),
            )
            .await
            .expect("add");
    }
    // ≈ 40 KB of reply, pipelined with two short commands.
    let results = client
        .execute_pipelined(vec![
            Command::new("/ip/address/print"),
            Command::new("/system/identity/print"),
            Command::new("/ip/address/print").proplist(&["address"]),
        ])
        .await;
    let [long, identity, short] = results.try_into().expect("three results");
    let long = long.expect("long reply");
    let with_comment = long
        .rows
        .iter()
        .filter(|r| r.get("comment") == Some(comment.as_str()))
        .count();
    assert_eq!(with_comment, 24);
    assert!(
        identity
            .expect("identity")
            .first()
            .expect("row")
            .get("name")
            .is_some()
    );
    assert_eq!(short.expect("short").rows.len(), long.rows.len());
    client
        .ping(Duration::from_secs(2))
        .await
        .expect("still in step");
    client.close();
}

#[tokio::test]
async fn tls_1_2_and_1_3_carry_a_long_reply_cut_into_many_records() {
    let fleet = fleet().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        for piece in [37, 16 * 1024] {
            let addr = terminator(&fleet, server_config(version), piece).await;
            long_reply_round_trip(&fleet, addr).await;
            // Start from the same table each round.
            let client = connect(&options_for(&fleet, addr)).await.expect("connect");
            let all = client
                .execute(Command::new("/ip/address/print").proplist(&[".id", "comment"]))
                .await
                .expect("print");
            for row in all.rows.iter().filter(|r| r.get("comment").is_some()) {
                let id = row.get(".id").expect("id").to_owned();
                client
                    .execute(Command::new("/ip/address/remove").attr(".id", id))
                    .await
                    .expect("remove");
            }
        }
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_pin_is_checked_over_tls_1_2_too() {
    let fleet = fleet().await;
    let addr = terminator(&fleet, server_config(&rustls::version::TLS12), 1024).await;
    let client = connect(&options_for(&fleet, addr)).await.expect("connect");
    let fingerprint = client.info().fingerprint.expect("fingerprint");
    let mut pinned = options_for(&fleet, addr);
    pinned.transport = Transport::Tls(TlsPolicy::insecure().pinned(Fingerprint([9; 32])));
    match connect(&pinned).await {
        Err(Error::FingerprintMismatch { actual, .. }) => assert_eq!(actual, fingerprint),
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    pinned.transport = Transport::Tls(TlsPolicy::insecure().pinned(fingerprint));
    connect(&pinned).await.expect("the right pin");
    fleet.shutdown().await;
}

/// A TCP proxy to the device's TLS port; once `cut` is set, it forwards only the first
/// seven bytes (a record header and two bytes) of the device's next read and closes.
async fn cutting_proxy(fleet: &Fleet, cut: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let device = fleet.device_addr(0);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(dev) = TcpStream::connect(device).await else {
                    return;
                };
                let (mut client_in, mut client_out) = client.into_split();
                let (mut dev_in, mut dev_out) = dev.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_in, &mut dev_out).await;
                });
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = dev_in.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if cut.load(Ordering::SeqCst) {
                        let _ = client_out.write_all(&buf[..n.min(7)]).await;
                        break;
                    }
                    if client_out.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                upstream.abort();
                let _ = client_out.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_device_that_closes_in_the_middle_of_a_record_loses_the_connection() {
    let fleet = fleet().await;
    let cut = Arc::new(AtomicBool::new(false));
    let addr = cutting_proxy(&fleet, cut.clone()).await;
    let client = connect(&options_for(&fleet, addr)).await.expect("connect");
    client.ping(Duration::from_secs(2)).await.expect("ping");
    cut.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let r = client.execute(Command::new("/system/resource/print")).await;
    match r {
        Err(Error::ConnectionLost { reason }) => {
            assert!(reason.contains("middle of a TLS record"), "{reason}")
        }
        other => panic!("expected the connection lost, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");
    assert!(client.is_closed());
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_handshake_refused_with_an_alert_is_a_tls_error() {
    let fleet = fleet().await;
    // A TLS 1.2 server that requires a client certificate: the client has none, so the
    // server ends the handshake with a fatal alert.
    let ca = CertAuthority::generate().expect("CA");
    let any = ca
        .server_config_for(Ipv4Addr::LOCALHOST)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()) {
        roots.add(cert.expect("CA cert")).expect("root");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("version")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(any.cert_resolver.clone());
    let addr = terminator(&fleet, Arc::new(config), 1024).await;
    let started = Instant::now();
    match connect(&options_for(&fleet, addr)).await {
        Err(Error::Tls { reason, .. }) => assert!(reason.contains("alert"), "{reason}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");
    fleet.shutdown().await;
}

/// A server that answers every connection with `bytes`, then closes or keeps it open.
async fn non_tls_server(bytes: &'static [u8], then_close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tcp.write_all(bytes).await;
                if then_close {
                    return;
                }
                let mut sink = vec![0; 4096];
                while let Ok(n) = tcp.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_fails_the_handshake_at_once() {
    let fleet = fleet().await;
    let cases: [(&'static [u8], bool); 4] = [
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            b"\x17\x03\x03\xff\xff garbage that claims to be a record",
            true,
        ),
        (&[0xF8; 64], false),
        (b"", true),
    ];
    for (bytes, then_close) in cases {
        let addr = non_tls_server(bytes, then_close).await;
        let started = Instant::now();
        match connect(&options_for(&fleet, addr)).await {
            Err(Error::Tls { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{bytes:?}: expected a TLS error, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{bytes:?}: no hang"
        );
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_device_that_ends_tls_cleanly_ends_the_session() {
    let fleet = fleet().await;
    let addr = terminator(&fleet, server_config(&rustls::version::TLS13), 512).await;
    let client = connect(&options_for(&fleet, addr)).await.expect("connect");
    client.ping(Duration::from_secs(2)).await.expect("ping");
    // The device side of the terminator closes: close_notify, then the TCP close.
    fleet.drop_connections(0);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !client.is_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.is_closed());
    let after = client.execute(Command::new("/system/identity/print")).await;
    assert!(
        matches!(after, Err(Error::ConnectionLost { .. })),
        "{after:?}"
    );
    fleet.shutdown().await;
}
