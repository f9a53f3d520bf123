//! Mutual TLS between nodes: the cluster CA (`drover cluster init-ca`), node certificates
//! it signs (`drover cluster issue-node-cert`), and the rustls configurations that make a
//! node accept and dial only peers whose certificate chains to that CA.
//!
//! Every node certificate carries the DNS name [`PEER_SERVER_NAME`] besides the node's own
//! names, and nodes dial each other with that server name: what a peer must prove is
//! membership of the cluster (a certificate from its CA), for any address it is reached at.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The server name nodes present and expect from each other.
pub const PEER_SERVER_NAME: &str = "drover-cluster-peer";
/// Subject of every cluster CA (so a CA loaded from its files can sign again).
const CA_COMMON_NAME: &str = "drover cluster CA";

/// A TLS setup problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Rcgen(#[from] rcgen::Error),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// A CA certificate and key, both PEM.
#[derive(Clone)]
pub struct CaPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").finish_non_exhaustive()
    }
}

/// A node certificate (PEM, the leaf) and its key (PKCS#8 PEM).
#[derive(Clone)]
pub struct NodeCertPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCertPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCertPem").finish_non_exhaustive()
    }
}

fn ca_params(cluster: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, cluster);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A new cluster CA (ECDSA P-256, ten years). `cluster` is written into the subject.
pub fn generate_ca(cluster: &str) -> Result<CaPem, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(cluster)?;
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.self_signed(&key)?;
    Ok(CaPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A node certificate signed by `ca`, for the node's names and IP addresses (both client
/// and server use). `cluster` must be the name the CA was made with.
pub fn issue_node_cert(
    ca: &CaPem,
    cluster: &str,
    node_name: &str,
    names: &[String],
) -> Result<NodeCertPem, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::new(ca_params(cluster)?, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    let mut sans = vec![SanType::DnsName(
        PEER_SERVER_NAME
            .try_into()
            .map_err(|_| TlsError::Invalid("server name".into()))?,
    )];
    for n in names {
        if let Ok(ip) = n.parse::<std::net::IpAddr>() {
            sans.push(SanType::IpAddress(ip));
        } else {
            sans.push(SanType::DnsName(n.as_str().try_into().map_err(|_| {
                TlsError::Invalid(format!("{n:?} is neither an IP address nor a DNS name"))
            })?));
        }
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    let out = NodeCertPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    // Check the result chains to the CA: a CA made for another cluster name (another
    // subject) would produce a certificate no peer accepts.
    let tls = NodeTls::from_pem(&ca.cert_pem, &out.cert_pem, &out.key_pem)?;
    tls.verify_peer_chain(&out.cert_pem)?;
    Ok(out)
}

/// Loaded TLS material of one node: acceptor and connector configurations.
#[derive(Clone)]
pub struct NodeTls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_bytes()).collect();
    let certs = certs.map_err(|e| TlsError::Invalid(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid("no CERTIFICATE in PEM".into()));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl NodeTls {
    /// From files: the cluster CA certificate, this node's certificate and key.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in certs(ca_pem)? {
            roots.add(c)?;
        }
        let roots = Arc::new(roots);
        let chain = certs(cert_pem)?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| TlsError::Invalid(format!("key PEM: {e}")))?
            .ok_or_else(|| TlsError::Invalid("no PRIVATE KEY in PEM".into()))?;
        let key: PrivateKeyDer<'static> = key;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| TlsError::Invalid(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            roots,
        })
    }

    /// The server name to dial peers with.
    pub fn peer_server_name() -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(PEER_SERVER_NAME)
            .map_err(|e| TlsError::Invalid(format!("server name: {e}")))
    }

    /// Checks that `cert_pem` chains to this node's CA (used after issuing).
    fn verify_peer_chain(&self, cert_pem: &str) -> Result<(), TlsError> {
        let chain = certs(cert_pem)?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .build()
        .map_err(|e| TlsError::Invalid(format!("server verifier: {e}")))?;
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| TlsError::Invalid("empty chain".into()))?;
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            leaf,
            rest,
            &Self::peer_server_name()?,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map_err(|e| TlsError::Invalid(format!("issued certificate does not verify: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_their_ca_only() {
        let ca = generate_ca("test").unwrap();
        let node =
            issue_node_cert(&ca, "test", "n1", &["127.0.0.1".into(), "n1.local".into()]).unwrap();
        let tls = NodeTls::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
        tls.verify_peer_chain(&node.cert_pem).unwrap();

        let other = generate_ca("test").unwrap();
        let stranger = issue_node_cert(&other, "test", "n2", &[]).unwrap();
        assert!(tls.verify_peer_chain(&stranger.cert_pem).is_err());
        // A CA made for another cluster name cannot sign for this one.
        assert!(issue_node_cert(&ca, "other", "n3", &[]).is_err());
    }
}
