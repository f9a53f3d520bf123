//! Per-device transport policy: `verify`, `insecure` (fingerprint recorded, optionally pinned)
//! or `plain`. TLS configurations are built once and shared by every session that uses them.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses the [`Display`](std::fmt::Display) form (`sha256:` and 64 hex digits; the prefix
    /// and `:` separators are optional).
    pub fn parse(s: &str) -> Option<Self> {
        let hex: String = s
            .trim()
            .trim_start_matches("sha256:")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let bytes = routeros_proto::login::decode_hex(&hex)?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", routeros_proto::login::encode_hex(&self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// How to reach a device's API.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP (port 8728). Only ever used when explicitly configured; never a fallback.
    Plain,
    /// TLS (port 8729) with the given policy.
    Tls(TlsPolicy),
}

/// Two transports are equal when a session opened under one is valid under the other: same
/// kind, same check, same pin, and the same shared TLS configuration (policies are built once
/// and cloned, so a different configuration object means different trust roots).
impl PartialEq for Transport {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Plain, Self::Plain) => true,
            (Self::Tls(a), Self::Tls(b)) => {
                a.mode == b.mode && a.pinned == b.pinned && Arc::ptr_eq(&a.config, &b.config)
            }
            _ => false,
        }
    }
}

impl Eq for Transport {}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => write!(f, "Plain"),
            Self::Tls(p) => write!(f, "Tls({p:?})"),
        }
    }
}

impl Transport {
    /// TLS accepting any certificate (recording its fingerprint).
    pub fn insecure() -> Self {
        Self::Tls(TlsPolicy::insecure())
    }

    /// The conventional port for this transport.
    pub fn default_port(&self) -> u16 {
        match self {
            Self::Plain => crate::PLAIN_PORT,
            Self::Tls(_) => crate::TLS_PORT,
        }
    }
}

/// Which certificate check a [`TlsPolicy`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsCheck {
    /// Chain to a configured CA, and the certificate names the address dialled.
    Verify,
    /// Any certificate; its fingerprint is recorded so a change can be flagged.
    Insecure,
}

/// A shared TLS client configuration plus an optional pinned fingerprint.
#[derive(Clone)]
pub struct TlsPolicy {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) mode: TlsCheck,
    pub(crate) pinned: Option<Fingerprint>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("mode", &self.mode)
            .field("pinned", &self.pinned)
            .finish()
    }
}

impl TlsPolicy {
    /// Accept any certificate. All insecure sessions share one configuration.
    pub fn insecure() -> Self {
        static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = CONFIG
            .get_or_init(|| {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("aws-lc-rs supports the default protocol versions")
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
                    .with_no_client_auth();
                Arc::new(config)
            })
            .clone();
        Self {
            config,
            mode: TlsCheck::Insecure,
            pinned: None,
        }
    }

    /// Verify against the CA certificates in `pem` (one or more PEM blocks). Build this once
    /// per CA bundle and clone it: clones share the configuration.
    pub fn verify_with_ca_pem(pem: &[u8]) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        let mut reader = pem;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| Error::Tls {
                addr: "-".into(),
                reason: format!("unreadable CA bundle: {e}"),
            })?;
            roots.add(cert).map_err(|e| Error::Tls {
                addr: "-".into(),
                reason: format!("unusable CA certificate: {e}"),
            })?;
        }
        if roots.is_empty() {
            return Err(Error::Tls {
                addr: "-".into(),
                reason: "CA bundle holds no certificate".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            mode: TlsCheck::Verify,
            pinned: None,
        })
    }

    /// Refuse a certificate whose fingerprint differs from `fingerprint`.
    pub fn pinned(mut self, fingerprint: Fingerprint) -> Self {
        self.pinned = Some(fingerprint);
        self
    }

    pub fn check(&self) -> TlsCheck {
        self.mode
    }
}

/// Accepts any certificate chain but still checks the handshake signatures, so the peer
/// proves it holds the key of the certificate whose fingerprint is recorded.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_display_parses_back() {
        let fp = Fingerprint::of_der(b"certificate bytes");
        let shown = fp.to_string();
        assert!(shown.starts_with("sha256:"));
        assert_eq!(Fingerprint::parse(&shown), Some(fp));
        assert_eq!(Fingerprint::parse("sha256:00"), None);
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        assert!(TlsPolicy::verify_with_ca_pem(b"not a pem").is_err());
    }

    #[test]
    fn transports_compare_by_check_pin_and_configuration() {
        let ca_free = Transport::insecure();
        assert_eq!(ca_free, Transport::insecure());
        assert_ne!(ca_free, Transport::Plain);
        let pinned = Transport::Tls(TlsPolicy::insecure().pinned(Fingerprint([1; 32])));
        assert_ne!(ca_free, pinned);
        assert_eq!(pinned.clone(), pinned);
    }

    #[test]
    fn insecure_sessions_share_one_configuration() {
        let (a, b) = (TlsPolicy::insecure(), TlsPolicy::insecure());
        assert!(Arc::ptr_eq(&a.config, &b.config));
    }
}
