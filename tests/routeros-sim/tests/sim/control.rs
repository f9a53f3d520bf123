//! The HTTP control API in-process, CA-verified TLS, a given CA, and the multi-process binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use routeros_proto::{Command, ReplyKind};
use routeros_sim::control::ControlServer;
use routeros_sim::{CaPem, SimConfig};
use serde_json::Value;

use crate::client::{Client, verified_config};
use crate::{fleet, fleet_with, logged_in};

/// A blocking one-shot HTTP request (run on a blocking thread).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn call(addr: SocketAddr, method: &'static str, path: &str, body: &str) -> (u16, Value) {
    let (path, body) = (path.to_owned(), body.to_owned());
    let (status, text) = tokio::task::spawn_blocking(move || http(addr, method, &path, &body))
        .await
        .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn control_api_serves_devices_stats_faults_and_reboot() {
    let fleet = fleet(4).await;
    let control = ControlServer::start_local(&fleet, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = control.addr();
    let (s, health) = call(addr, "GET", "/health", "").await;
    assert_eq!((s, health["devices"].as_u64()), (200, Some(4)));
    let (_, devices) = call(addr, "GET", "/devices", "").await;
    assert_eq!(devices.as_array().unwrap().len(), 4);
    let ip1 = fleet.ip(1).to_string();
    assert_eq!(devices[1]["address"], ip1.as_str());
    assert_eq!(devices[1]["tls_port"], 8729);
    let _c = logged_in(&fleet, 1).await;
    let (s, one) = call(addr, "GET", &format!("/stats?device={ip1}"), "").await;
    assert_eq!(s, 200);
    assert_eq!(one["logins_ok"], 1);
    let (s, _) = call(addr, "GET", "/stats?device=127.0.0.99", "").await;
    assert_eq!(s, 404);
    let (_, all) = call(addr, "GET", "/stats", "").await;
    assert_eq!(all["devices"].as_array().unwrap().len(), 4);
    let body = format!(r#"{{"target":{{"device":"{ip1}"}},"fault":{{"kind":"refuse_login"}}}}"#);
    let (s, r) = call(addr, "POST", "/faults", &body).await;
    assert_eq!((s, r["affected"].as_u64()), (200, Some(1)));
    assert!(fleet.faults(1).refuse_login);
    let (s, r) = call(addr, "POST", "/faults", r#"{"clear":"all"}"#).await;
    assert_eq!((s, r["affected"].as_u64()), (200, Some(4)));
    assert!(!fleet.faults(1).refuse_login);
    let (s, _) = call(
        addr,
        "POST",
        "/faults",
        r#"{"target":"all","fault":{"kind":"nope"}}"#,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(addr, "POST", "/faults", "not json").await;
    assert_eq!(s, 400);
    let (s, _) = call(addr, "POST", "/reboot", &format!(r#"{{"device":"{ip1}"}}"#)).await;
    assert_eq!(s, 200);
    assert_eq!(fleet.stats(1).reboots, 1);
    let (s, pem) = call(addr, "GET", "/ca.pem", "").await;
    assert_eq!(s, 200);
    assert_eq!(pem.as_str(), Some(fleet.ca_cert_pem()));
    let (s, _) = call(addr, "GET", "/nowhere", "").await;
    assert_eq!(s, 404);
    // Oversized headers are refused, not buffered.
    let big = "x".repeat(64 * 1024);
    let (s, _) = call(addr, "GET", &format!("/health?{big}"), "").await;
    assert_eq!(s, 431);
    control.stop().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn verified_tls_checks_chain_and_ip() {
    let fleet = fleet(2).await;
    let config = verified_config(fleet.ca_cert_pem()).unwrap();
    let mut c = Client::tls_with(fleet.device_addr(0), config.clone())
        .await
        .unwrap();
    let (u, p) = fleet.credentials();
    assert_eq!(c.login(u, p).await.unwrap()[0].kind, ReplyKind::Done);
    // Device 1's certificate does not name device 0's address.
    let tcp = tokio::net::TcpStream::connect(fleet.device_addr(1))
        .await
        .unwrap();
    let wrong_name = rustls::pki_types::ServerName::IpAddress(fleet.ip(0).into());
    let r = tokio_rustls::TlsConnector::from(config)
        .connect(wrong_name, tcp)
        .await;
    assert!(r.is_err());
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_given_ca_signs_device_certificates() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Tenant CA 7");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Org");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    let fleet = fleet_with(SimConfig {
        devices: 1,
        ca: Some(CaPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }),
        ..SimConfig::for_tests()
    })
    .await;
    assert_eq!(fleet.ca_cert_pem(), cert.pem());
    let mut c = Client::tls_with(fleet.device_addr(0), verified_config(&cert.pem()).unwrap())
        .await
        .unwrap();
    let (u, p) = fleet.credentials();
    assert_eq!(c.login(u, p).await.unwrap()[0].kind, ReplyKind::Done);
    fleet.shutdown().await;
}

/// Kills the child process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_splits_the_fleet_across_worker_processes() {
    let base = format!(
        "127.{}.{}.1",
        64 + rand::random::<u8>() % 180,
        rand::random::<u8>()
    );
    let ca = std::env::temp_dir().join(format!("drover-sim-ca-{}.pem", std::process::id()));
    let mut child = KillOnDrop(
        Process::new(env!("CARGO_BIN_EXE_drover-sim"))
            .args([
                "--devices",
                "30",
                "--devices-per-process",
                "12",
                "--base",
                &base,
            ])
            .args([
                "--tls-port",
                "8729",
                "--plain",
                "--seed",
                "5",
                "--reboot-delay",
                "200ms",
            ])
            .arg("--ca-out")
            .arg(&ca)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["devices"], 30);
    assert_eq!(ready["first"], base.as_str());
    let addr: SocketAddr = ready["control"].as_str().unwrap().parse().unwrap();
    let (s, health) = call(addr, "GET", "/health", "").await;
    assert_eq!(
        (s, health["devices"].as_u64(), health["workers"].as_u64()),
        (200, Some(30), Some(3))
    );
    let (_, devices) = call(addr, "GET", "/devices", "").await;
    let devices = devices.as_array().unwrap().clone();
    assert_eq!(devices.len(), 30);
    // A device served by the last worker: connect with the CA, log in, poll.
    let last = devices[29]["address"].as_str().unwrap().to_owned();
    let pem = std::fs::read_to_string(&ca).unwrap();
    let target: SocketAddr = format!("{last}:8729").parse().unwrap();
    let mut c = Client::tls_with(target, verified_config(&pem).unwrap())
        .await
        .unwrap();
    assert_eq!(
        c.login("admin", "drover-sim").await.unwrap()[0].kind,
        ReplyKind::Done
    );
    c.run(&Command::new("/system/resource/print"))
        .await
        .unwrap();
    let (s, st) = call(addr, "GET", &format!("/stats?device={last}"), "").await;
    assert_eq!((s, st["polls_served"].as_u64()), (200, Some(1)));
    let (_, all) = call(addr, "GET", "/stats", "").await;
    assert_eq!(all["devices"].as_array().unwrap().len(), 30);
    let (s, r) = call(
        addr,
        "POST",
        "/faults",
        r#"{"target":{"share":0.5},"fault":{"kind":"refuse_login"}}"#,
    )
    .await;
    assert_eq!(s, 200);
    let affected = r["affected"].as_u64().unwrap();
    assert!(affected > 0 && affected < 30);
    let (s, _) = call(
        addr,
        "POST",
        "/reboot",
        &format!(r#"{{"device":"{last}"}}"#),
    )
    .await;
    assert_eq!(s, 200);
    // Stopping the parent stops the workers: the devices go away.
    drop(c);
    let pid = child.0.id();
    let _ = Process::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let waited = tokio::task::spawn_blocking(move || child.0.wait().map(|_| ()).is_ok()).await;
    assert!(waited.unwrap_or(false));
    let mut gone = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(target).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "workers stopped with the parent");
    let _ = std::fs::remove_file(ca);
}
