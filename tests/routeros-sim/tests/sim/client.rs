//! A minimal RouterOS API client for these tests, on routeros-proto + tokio-rustls (with an
//! accept-anything certificate verifier, or a real one against the simulator CA).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use routeros_proto::login::challenge_response;
use routeros_proto::{Command, Limits, Reply, ReplyKind, SentenceDecoder};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const TIMEOUT: Duration = Duration::from_secs(5);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn insecure_config() -> Arc<ClientConfig> {
    let p = provider();
    Arc::new(
        ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(p)))
            .with_no_client_auth(),
    )
}

pub fn verified_config(ca_pem: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// One API connection.
pub struct Client {
    io: Box<dyn Io>,
    decoder: SentenceDecoder,
    buf: Vec<u8>,
}

impl Client {
    pub async fn plain(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await??;
        Ok(Self::over(Box::new(tcp)))
    }

    pub async fn tls(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::tls_with(addr, insecure_config()).await
    }

    pub async fn tls_with(addr: SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<Self> {
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await??;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio::time::timeout(TIMEOUT, TlsConnector::from(config).connect(name, tcp))
            .await
            .context("TLS handshake timed out")??;
        Ok(Self::over(Box::new(tls)))
    }

    pub fn over(io: Box<dyn Io>) -> Self {
        Self {
            io,
            decoder: SentenceDecoder::new(Limits::CLIENT),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, cmd: &Command) -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        self.send_raw(&bytes).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The next reply sentence (errors on EOF, garbage or a 5 s silence).
    pub async fn recv(&mut self) -> anyhow::Result<Reply> {
        self.recv_within(TIMEOUT).await
    }

    pub async fn recv_within(&mut self, limit: Duration) -> anyhow::Result<Reply> {
        tokio::time::timeout(limit, self.recv_inner())
            .await
            .map_err(|_| anyhow!("no reply within {limit:?}"))?
    }

    async fn recv_inner(&mut self) -> anyhow::Result<Reply> {
        loop {
            if let Some((sentence, used)) = self.decoder.decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Reply::parse(&sentence)?);
            }
            let mut chunk = [0u8; 8192];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `cmd` and collects replies up to and including `!done` (or `!fatal`).
    pub async fn run(&mut self, cmd: &Command) -> anyhow::Result<Vec<Reply>> {
        self.send(cmd).await?;
        let mut out = Vec::new();
        loop {
            let r = self.recv().await?;
            let end = matches!(r.kind, ReplyKind::Done | ReplyKind::Fatal);
            out.push(r);
            if end {
                return Ok(out);
            }
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<Vec<Reply>> {
        self.run(&routeros_proto::login::plain_login(user, password))
            .await
    }

    /// The legacy flow: bare `/login`, then the MD5 response.
    pub async fn login_legacy(&mut self, user: &str, password: &str) -> anyhow::Result<Vec<Reply>> {
        let first = self.run(&Command::new("/login")).await?;
        let challenge = first
            .last()
            .and_then(|r| r.ret())
            .context("no challenge")?
            .to_owned();
        let response =
            challenge_response(password.as_bytes(), &challenge).context("bad challenge")?;
        self.run(&routeros_proto::login::legacy_login(user, &response))
            .await
    }

    /// Waits until the server closes the connection (or sends garbage); true if it did
    /// within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.recv_inner()).await {
                Err(_) => return false,
                Ok(Err(_)) => return true,
                Ok(Ok(r)) if r.kind == ReplyKind::Fatal => {}
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Attribute names of a reply, in order.
pub fn names(r: &Reply) -> Vec<String> {
    r.attributes.iter().map(|(n, _)| n.to_owned()).collect()
}
