//! TLS for API-SSL: the simulator CA (generated, or loaded from PEM) and per-device leaf
//! certificates with the device IP as an IP SAN, made lazily on first connection.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA that signs every device certificate.
pub struct CertAuthority {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// A fresh ECDSA P-256 CA named `drover-sim CA`.
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generate CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "drover-sim CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "drover routeros-sim");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).context("self-sign CA")?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            provider: provider(),
        })
    }

    /// Loads a CA from its certificate PEM and its PKCS#8 private key PEM. The subject name is
    /// read from the certificate so device certificates chain to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem).context("CA key must be a PKCS#8 PEM private key")?;
        let cert_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or_else(|| anyhow!("no CERTIFICATE in the CA PEM"))?
            .context("read CA certificate PEM")?;
        let facts =
            der::ca_facts(&cert_der).ok_or_else(|| anyhow!("cannot parse CA certificate"))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = facts.subject;
        if let Some(ski) = facts.subject_key_id {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
            issuer: Issuer::new(params, key),
            provider: provider(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key (PKCS#8 PEM); handed to worker processes so they share the CA.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server configuration whose leaf certificate names `ip` (IP SAN and CN).
    pub fn server_config_for(&self, ip: Ipv4Addr) -> anyhow::Result<Arc<ServerConfig>> {
        let key = KeyPair::generate().context("generate device key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(ip))];
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, ip.to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("sign device certificate")?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .context("TLS server config")?;
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Just enough DER reading to take a CA certificate's subject name and key identifier.
mod der {
    use super::*;

    pub(super) struct CaFacts {
        pub subject: DistinguishedName,
        pub subject_key_id: Option<Vec<u8>>,
    }

    /// Reads one TLV; returns (tag, content, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    fn oid_components(bytes: &[u8]) -> Option<Vec<u64>> {
        let (&first, rest) = bytes.split_first()?;
        let mut out = vec![u64::from(first / 40), u64::from(first % 40)];
        let mut acc = 0u64;
        for &b in rest {
            acc = acc.checked_mul(128)? | u64::from(b & 0x7F);
            if b & 0x80 == 0 {
                out.push(acc);
                acc = 0;
            }
        }
        Some(out)
    }

    fn name(content: &[u8]) -> Option<DistinguishedName> {
        let mut dn = DistinguishedName::new();
        let mut sets = content;
        while !sets.is_empty() {
            let (tag, set, rest) = tlv(sets)?;
            sets = rest;
            if tag != 0x31 {
                return None;
            }
            let (_, atv, _) = tlv(set)?;
            let (_, oid, value_tlv) = tlv(atv)?;
            let (vtag, value, _) = tlv(value_tlv)?;
            let text = std::str::from_utf8(value).ok()?.to_owned();
            let value = match vtag {
                0x0C => DnValue::Utf8String(text),
                0x13 => DnValue::PrintableString(text.try_into().ok()?),
                0x16 => DnValue::Ia5String(text.try_into().ok()?),
                _ => return None,
            };
            dn.push(DnType::from_oid(&oid_components(oid)?), value);
        }
        Some(dn)
    }

    pub(super) fn ca_facts(cert: &[u8]) -> Option<CaFacts> {
        let (_, certificate, _) = tlv(cert)?;
        let (_, tbs, _) = tlv(certificate)?;
        let mut rest = tbs;
        let (tag, _, r) = tlv(rest)?;
        if tag == 0xA0 {
            rest = r; // explicit version
        }
        let (_, _, r) = tlv(rest)?; // serial
        let (_, _, r) = tlv(r)?; // signature algorithm
        let (_, _, r) = tlv(r)?; // issuer
        let (_, _, r) = tlv(r)?; // validity
        let (_, subject, mut r) = tlv(r)?;
        let subject = name(subject)?;
        let mut subject_key_id = None;
        while !r.is_empty() {
            let (tag, content, next) = tlv(r)?;
            r = next;
            if tag != 0xA3 {
                continue;
            }
            let (_, mut exts, _) = tlv(content)?;
            while !exts.is_empty() {
                let (_, ext, next) = tlv(exts)?;
                exts = next;
                let (_, oid, mut fields) = tlv(ext)?;
                if oid != [0x55, 0x1D, 0x0E] {
                    continue;
                }
                let (tag, _, after) = tlv(fields)?;
                if tag == 0x01 {
                    fields = after; // critical flag
                }
                let (_, octets, _) = tlv(fields)?;
                let (_, key_id, _) = tlv(octets)?;
                subject_key_id = Some(key_id.to_vec());
            }
        }
        Some(CaFacts {
            subject,
            subject_key_id,
        })
    }
}

/// Checks a PEM CA pair before use (for the CLI).
pub fn load_ca(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> anyhow::Result<CertAuthority> {
    let cert = std::fs::read_to_string(cert_path)
        .with_context(|| format!("read {}", cert_path.display()))?;
    let key = std::fs::read_to_string(key_path)
        .with_context(|| format!("read {}", key_path.display()))?;
    if cert.trim().is_empty() || key.trim().is_empty() {
        bail!("empty CA file");
    }
    CertAuthority::from_pem(&cert, &key)
}
