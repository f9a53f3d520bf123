//! Load check: opens one persistent, logged-in API-SSL connection to each of `--count`
//! devices from `--first` (global index, from `--base`), polls each once, holds them for
//! `--hold-secs`, polls each again on the same connection, and prints a JSON summary.
//! Run several of these (one process holds at most ~19k connections) against
//! `drover-sim --devices 100000`.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use routeros_proto::{Command, Limits, Reply, ReplyKind, SentenceDecoder};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Conn {
    io: TlsStream<TcpStream>,
    decoder: SentenceDecoder,
    buf: Vec<u8>,
}

impl Conn {
    async fn run(&mut self, cmd: &Command) -> anyhow::Result<Vec<Reply>> {
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        self.io.write_all(&bytes).await?;
        self.io.flush().await?;
        let mut out = Vec::new();
        loop {
            if let Some((s, used)) = self.decoder.decode(&self.buf)? {
                self.buf.drain(..used);
                let r = Reply::parse(&s)?;
                let end = matches!(r.kind, ReplyKind::Done | ReplyKind::Fatal);
                out.push(r);
                if end {
                    return Ok(out);
                }
                continue;
            }
            let mut chunk = [0u8; 2048];
            let n = self.io.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let base: Ipv4Addr = arg("--base", Ipv4Addr::new(127, 10, 0, 1));
    let first: usize = arg("--first", 0);
    let count: usize = arg("--count", 1000);
    let port: u16 = arg("--port", 8729);
    let password: String = arg("--password", "drover-sim".to_owned());
    let hold = Duration::from_secs(arg("--hold-secs", 5));
    let parallel: usize = arg("--parallel", 256);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth(),
    );
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(parallel));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(count);
    for i in first..first + count {
        let ip = routeros_sim::device_address(base, i);
        let (config, gate, failures, password) = (
            config.clone(),
            gate.clone(),
            failures.clone(),
            password.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            let result: anyhow::Result<Conn> = async {
                let tcp = TcpStream::connect(SocketAddr::from((ip, port))).await?;
                let io = TlsConnector::from(config)
                    .connect(ServerName::IpAddress(ip.into()), tcp)
                    .await?;
                let mut c = Conn {
                    io,
                    decoder: SentenceDecoder::new(Limits::CLIENT),
                    buf: Vec::new(),
                };
                let login = c
                    .run(&routeros_proto::login::plain_login("admin", &password))
                    .await?;
                anyhow::ensure!(login[0].kind == ReplyKind::Done, "login failed");
                c.run(&Command::new("/system/resource/print")).await?;
                Ok(c)
            }
            .await;
            match result {
                Ok(c) => Some(c),
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        }));
    }
    let mut conns = Vec::with_capacity(count);
    for t in tasks {
        if let Ok(Some(c)) = t.await {
            conns.push(c);
        }
    }
    let connected_in = started.elapsed();
    tokio::time::sleep(hold).await;
    let mut repolled = 0u64;
    for c in &mut conns {
        if let Ok(r) = c
            .run(&Command::new("/system/resource/print").proplist(&["uptime"]))
            .await
            && r[0].kind == ReplyKind::Re
        {
            repolled += 1;
        }
    }
    println!(
        "{{\"first\":{first},\"count\":{count},\"connected\":{},\"failed\":{},\"connect_secs\":{:.1},\"repolled_after_hold\":{repolled}}}",
        conns.len(),
        failures.load(Ordering::Relaxed),
        connected_in.as_secs_f64()
    );
    Ok(())
}
