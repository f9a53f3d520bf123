//! The OpenBao / Vault Transit key-encryption key: each tenant's data keys are wrapped by the
//! Transit key `tenant_{uuid}` (created idempotently), over a minimal HTTP/1.1 client
//! (`http://` or `https://` with the system's root certificates).
//!
//! Endpoints used: `POST /v1/{mount}/keys/{name}` (create), `POST /v1/{mount}/encrypt/{name}`,
//! `POST /v1/{mount}/decrypt/{name}`, header `X-Vault-Token`. Rotating the Transit key and
//! then calling [`super::Envelope::rewrap_all`] re-wraps data keys with its newest version.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::{DataKey, KeyEncryptionKey, Secret};
use crate::{Error, Result, TenantId};

/// Where the Transit engine is and how to authenticate.
#[derive(Clone)]
pub struct TransitConfig {
    /// e.g. `https://openbao:8200`
    pub addr: String,
    pub token: Secret,
    /// Transit mount path, default `transit`.
    pub mount: String,
    pub timeout: Duration,
}

impl fmt::Debug for TransitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitConfig")
            .field("addr", &self.addr)
            .field("mount", &self.mount)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl TransitConfig {
    /// From `OPENBAO_ADDR`, `OPENBAO_TOKEN` and optional `OPENBAO_TRANSIT_MOUNT`.
    pub fn from_env() -> Option<Self> {
        let addr = std::env::var("OPENBAO_ADDR")
            .ok()
            .filter(|a| !a.is_empty())?;
        let token = std::env::var("OPENBAO_TOKEN").unwrap_or_default();
        Some(Self {
            addr,
            token: Secret::new(token.into_bytes()),
            mount: std::env::var("OPENBAO_TRANSIT_MOUNT").unwrap_or_else(|_| "transit".into()),
            timeout: Duration::from_secs(5),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    base_path: String,
}

fn parse_addr(addr: &str) -> Result<Target> {
    let (tls, rest) = if let Some(r) = addr.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = addr.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(Error::Kek(format!(
            "OPENBAO_ADDR must start with http:// or https://: {addr}"
        )));
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse()
                .map_err(|_| Error::Kek(format!("bad port in {addr}")))?,
        ),
        _ => (hostport.to_owned(), if tls { 443 } else { 80 }),
    };
    Ok(Target {
        tls,
        host,
        port,
        base_path: path.to_owned(),
    })
}

/// The Transit-backed key-encryption key.
pub struct TransitKek {
    cfg: TransitConfig,
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl fmt::Debug for TransitKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitKek")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

fn key_name(tenant: TenantId) -> String {
    format!("tenant_{}", tenant.0)
}

impl TransitKek {
    pub fn new(cfg: TransitConfig) -> Result<Self> {
        let target = parse_addr(&cfg.addr)?;
        let tls = if target.tls {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Kek(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self { cfg, target, tls })
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Response> {
        let fut = self.post_inner(path, body);
        tokio::time::timeout(self.cfg.timeout, fut)
            .await
            .map_err(|_| {
                Error::Kek(format!(
                    "Transit request timed out after {:?}",
                    self.cfg.timeout
                ))
            })?
    }

    async fn post_inner(&self, path: &str, body: &serde_json::Value) -> Result<Response> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port)).await?;
        let body = Zeroizing::new(serde_json::to_vec(body).map_err(|e| Error::Kek(e.to_string()))?);
        let token = String::from_utf8_lossy(self.cfg.token.expose()).into_owned();
        let token = Zeroizing::new(token);
        let head = Zeroizing::new(format!(
            "POST {}{} HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.target.base_path,
            path,
            self.target.host,
            token.as_str(),
            body.len()
        ));
        match &self.tls {
            Some(conn) => {
                let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                    .map_err(|e| Error::Kek(e.to_string()))?;
                let s = conn.connect(name, tcp).await?;
                exchange(s, head.as_bytes(), &body).await
            }
            None => exchange(tcp, head.as_bytes(), &body).await,
        }
    }

    async fn ensure_key(&self, tenant: TenantId) -> Result<()> {
        let r = self
            .post(
                &format!("/v1/{}/keys/{}", self.cfg.mount, key_name(tenant)),
                &serde_json::json!({ "type": "aes256-gcm96" }),
            )
            .await?;
        // 200/204 created or already present (Transit's create is idempotent)
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(Error::Kek(format!(
                "creating Transit key: HTTP {}",
                r.status
            )))
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
) -> Result<Response> {
    s.write_all(head).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut raw = Vec::new();
    // Responses are small JSON documents; cap what we accept.
    let mut limited = (&mut s).take(1 << 20);
    limited.read_to_end(&mut raw).await?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let bad = || Error::Kek("malformed HTTP response from Transit".into());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut out = Vec::new();
        let mut p = rest;
        loop {
            let nl = p.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size_str = std::str::from_utf8(&p[..nl]).map_err(|_| bad())?;
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad())?;
            p = &p[nl + 2..];
            if size == 0 {
                break;
            }
            if p.len() < size + 2 {
                return Err(bad());
            }
            out.extend_from_slice(&p[..size]);
            p = &p[size + 2..];
        }
        out
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

#[async_trait]
impl KeyEncryptionKey for TransitKek {
    fn kek_id(&self) -> String {
        // Transit versions its keys itself (`vault:vN:` in the ciphertext); a rotation is
        // followed by `rewrap_all`, which compares against this id.
        format!("transit:{}", self.cfg.mount)
    }

    async fn wrap(&self, tenant: TenantId, key: &DataKey) -> Result<String> {
        self.ensure_key(tenant).await?;
        let plaintext = Zeroizing::new(B64.encode(key.expose()));
        let r = self
            .post(
                &format!("/v1/{}/encrypt/{}", self.cfg.mount, key_name(tenant)),
                &serde_json::json!({ "plaintext": plaintext.as_str() }),
            )
            .await?;
        if r.status != 200 {
            return Err(Error::Kek(format!("Transit encrypt: HTTP {}", r.status)));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| Error::Kek(e.to_string()))?;
        let ct = v["data"]["ciphertext"]
            .as_str()
            .ok_or_else(|| Error::Kek("Transit encrypt: no ciphertext".into()))?;
        Ok(format!("transit:{ct}"))
    }

    async fn unwrap(&self, tenant: TenantId, wrapped: &str) -> Result<DataKey> {
        let ct = wrapped
            .strip_prefix("transit:")
            .ok_or_else(|| Error::Kek("not a Transit-wrapped key".into()))?;
        let r = self
            .post(
                &format!("/v1/{}/decrypt/{}", self.cfg.mount, key_name(tenant)),
                &serde_json::json!({ "ciphertext": ct }),
            )
            .await?;
        if r.status != 200 {
            return Err(Error::Kek(format!("Transit decrypt: HTTP {}", r.status)));
        }
        let body = Zeroizing::new(r.body);
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| Error::Kek(e.to_string()))?;
        let b = v["data"]["plaintext"]
            .as_str()
            .ok_or_else(|| Error::Kek("Transit decrypt: no plaintext".into()))?;
        let raw = Zeroizing::new(B64.decode(b).map_err(|_| Error::Decrypt)?);
        DataKey::from_bytes(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_addr("https://bao.example:8200").unwrap(),
            Target {
                tls: true,
                host: "bao.example".into(),
                port: 8200,
                base_path: String::new()
            }
        );
        assert_eq!(
            parse_addr("http://127.0.0.1/prefix/").unwrap(),
            Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 80,
                base_path: "/prefix".into()
            }
        );
        assert!(parse_addr("bao:8200").is_err());
    }

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (204, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}

/// The HTTP exchange against an in-test stub that answers like Transit's documented
/// encrypt/decrypt/keys endpoints. This checks our request framing and response handling
/// only; it is **not** a test against OpenBao or Vault (none is available here).
#[cfg(test)]
mod stub_tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::net::TcpListener;

    async fn stub(seen: Arc<Mutex<Vec<String>>>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    // read head + body (Content-Length)
                    loop {
                        let n = s.read(&mut tmp).await.unwrap();
                        buf.extend_from_slice(&tmp[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                let body: serde_json::Value =
                                    serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                                let path = head.split_whitespace().nth(1).unwrap().to_owned();
                                let authed = head.contains("X-Vault-Token: s.test-token");
                                seen.lock().unwrap().push(path.clone());
                                let reply = if !authed {
                                    (403, serde_json::json!({"errors": ["permission denied"]}))
                                } else if path.contains("/encrypt/") {
                                    let p = body["plaintext"].as_str().unwrap();
                                    (
                                        200,
                                        serde_json::json!({"data": {"ciphertext": format!("vault:v1:{p}")}}),
                                    )
                                } else if path.contains("/decrypt/") {
                                    let c = body["ciphertext"].as_str().unwrap();
                                    let p = c.strip_prefix("vault:v1:").unwrap();
                                    (200, serde_json::json!({"data": {"plaintext": p}}))
                                } else {
                                    (204, serde_json::json!(null))
                                };
                                let body = if reply.0 == 204 {
                                    String::new()
                                } else {
                                    reply.1.to_string()
                                };
                                let resp = format!(
                                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n{}",
                                    reply.0,
                                    body.len(),
                                    body
                                );
                                let _ = s.write_all(resp.as_bytes()).await;
                                return;
                            }
                        }
                        if n == 0 {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn wraps_and_unwraps_through_the_transit_endpoints() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = stub(seen.clone()).await;
        let kek = TransitKek::new(TransitConfig {
            addr: addr.clone(),
            token: Secret::new(b"s.test-token".to_vec()),
            mount: "transit".into(),
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let t = TenantId::new_random();
        let dek = DataKey::generate().unwrap();
        let w = kek.wrap(t, &dek).await.unwrap();
        assert!(w.starts_with("transit:vault:v1:"));
        assert_eq!(kek.unwrap(t, &w).await.unwrap().expose(), dek.expose());
        let paths = seen.lock().unwrap().clone();
        let name = format!("tenant_{}", t.0);
        assert_eq!(
            paths,
            vec![
                format!("/v1/transit/keys/{name}"),
                format!("/v1/transit/encrypt/{name}"),
                format!("/v1/transit/decrypt/{name}"),
            ]
        );
        let bad = TransitKek::new(TransitConfig {
            addr,
            token: Secret::new(b"wrong".to_vec()),
            mount: "transit".into(),
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        assert!(bad.wrap(t, &dek).await.is_err());
        assert!(!format!("{bad:?}").contains("wrong"));
    }
}
