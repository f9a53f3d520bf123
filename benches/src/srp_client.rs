//! The client half of drover's SRP-6a login (docs/auth.md: RFC 5054 2048-bit group, SHA-256,
//! srptools' byte layout), so the benchmarks can enrol and sign in over HTTP as any user of
//! the API would. Written from the formulas in docs/auth.md and checked against the shared
//! vectors in `api/auth/testdata/srp_vectors.json`; the server checks M1 and this client
//! checks the server's M2, so a mistake here fails the login rather than passing silently.

use anyhow::bail;
use num_bigint::BigUint;
use sha2::{Digest, Sha256};

/// RFC 5054 Appendix A, 2048-bit group.
const N_HEX: &str = "AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B855F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773BCA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB694B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73";
/// Bytes of PAD(x): the size of N.
const PAD_LEN: usize = 256;

fn modulus() -> BigUint {
    BigUint::parse_bytes(N_HEX.as_bytes(), 16).unwrap_or_default()
}

fn generator() -> BigUint {
    BigUint::from(2u32)
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// Unpadded big-endian bytes (at least one byte).
fn bytes(n: &BigUint) -> Vec<u8> {
    n.to_bytes_be()
}

/// Left-padded to the size of N.
fn pad(n: &BigUint) -> Vec<u8> {
    let b = n.to_bytes_be();
    let mut out = vec![0u8; PAD_LEN.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

/// A digest passed through an integer, as srptools does: leading zero bytes dropped.
fn trimmed(digest: &[u8]) -> Vec<u8> {
    bytes(&BigUint::from_bytes_be(digest))
}

/// k = H(bytes(N) ‖ PAD(g)).
fn multiplier() -> BigUint {
    BigUint::from_bytes_be(&sha256(&[&bytes(&modulus()), &pad(&generator())]))
}

/// v = g^x mod N, unpadded: what enrolment sends for `x` (32 bytes, big-endian).
pub(crate) fn verifier(x: &[u8]) -> Vec<u8> {
    bytes(&generator().modpow(&BigUint::from_bytes_be(x), &modulus()))
}

/// The proofs of one login: M1 for the server, and the M2 the server must answer.
#[derive(Debug, Clone)]
pub(crate) struct Proofs {
    pub(crate) m1: Vec<u8>,
    pub(crate) expected_m2: Vec<u8>,
}

/// One login attempt: the identity (lowercased email), x, and the ephemeral a.
pub(crate) struct SrpLogin {
    identity: String,
    x: BigUint,
    a: BigUint,
    a_pub: BigUint,
}

impl std::fmt::Debug for SrpLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrpLogin")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl SrpLogin {
    /// A login for `email` with the private key `x`, with a fresh random ephemeral.
    pub(crate) fn new(email: &str, x: &[u8]) -> Self {
        let a: [u8; 32] = rand::random();
        Self::with_ephemeral(email, x, &a)
    }

    fn with_ephemeral(email: &str, x: &[u8], a: &[u8]) -> Self {
        let a = BigUint::from_bytes_be(a);
        let a_pub = generator().modpow(&a, &modulus());
        Self {
            identity: email.to_lowercase(),
            x: BigUint::from_bytes_be(x),
            a,
            a_pub,
        }
    }

    /// A = g^a mod N, unpadded.
    pub(crate) fn a_pub(&self) -> Vec<u8> {
        bytes(&self.a_pub)
    }

    /// The proofs for the server's `salt` and `b_pub` (B); refuses B ≡ 0 (mod N).
    pub(crate) fn respond(&self, salt: &[u8], b_pub: &[u8]) -> anyhow::Result<Proofs> {
        let n = modulus();
        let g = generator();
        let b = BigUint::from_bytes_be(b_pub);
        if (&b % &n) == BigUint::ZERO {
            bail!("the server's B is 0 mod N");
        }
        let u = BigUint::from_bytes_be(&sha256(&[&pad(&self.a_pub), &pad(&b)]));
        if u == BigUint::ZERO {
            bail!("u = 0");
        }
        let k = multiplier();
        let kv = (&k * g.modpow(&self.x, &n)) % &n;
        let base = ((&b % &n) + &n - kv) % &n;
        let s = base.modpow(&(&self.a + &u * &self.x), &n);
        let key = sha256(&[&bytes(&s)]);
        let hn = sha256(&[&bytes(&n)]);
        let hg = sha256(&[&bytes(&g)]);
        let xor: Vec<u8> = hn.iter().zip(&hg).map(|(a, b)| a ^ b).collect();
        let hi = sha256(&[self.identity.as_bytes()]);
        let a_bytes = bytes(&self.a_pub);
        let m1 = sha256(&[
            &trimmed(&xor),
            &trimmed(&hi),
            salt,
            &a_bytes,
            &bytes(&b),
            &key,
        ]);
        let expected_m2 = sha256(&[&a_bytes, &m1, &key]);
        Ok(Proofs { m1, expected_m2 })
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses hex (either case, even length).
pub(crate) fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) {
        bail!("odd-length hex");
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&t[i..i + 2], 16).map_err(|_| anyhow::anyhow!("bad hex at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../api/auth/testdata/srp_vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn field(case: &serde_json::Value, name: &str) -> Vec<u8> {
        unhex(case[name].as_str().unwrap()).unwrap()
    }

    #[test]
    fn group_constants_match_the_vectors() {
        let v = vectors();
        assert_eq!(
            bytes(&modulus()),
            unhex(v["group"]["N"].as_str().unwrap()).unwrap()
        );
        assert_eq!(
            bytes(&multiplier()),
            unhex(v["group"]["k"].as_str().unwrap()).unwrap()
        );
    }

    #[test]
    fn every_srp_vector_gives_the_same_a_m1_and_m2() {
        let v = vectors();
        let cases = v["srp"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let x = field(case, "x");
            assert_eq!(verifier(&x), field(case, "v"), "{name}: v");
            let login =
                SrpLogin::with_ephemeral(case["identity"].as_str().unwrap(), &x, &field(case, "a"));
            assert_eq!(login.a_pub(), field(case, "A"), "{name}: A");
            let proofs = login
                .respond(&field(case, "salt"), &field(case, "B"))
                .unwrap();
            assert_eq!(proofs.m1, field(case, "M1"), "{name}: M1");
            assert_eq!(proofs.expected_m2, field(case, "M2"), "{name}: M2");
        }
    }

    #[test]
    fn a_zero_b_is_refused() {
        let login = SrpLogin::new("a@example.com", &[7u8; 32]);
        assert!(login.respond(&[1u8; 32], &[0u8]).is_err());
        assert!(login.respond(&[1u8; 32], &bytes(&modulus())).is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(unhex("0001ABff").unwrap(), vec![0, 1, 0xab, 0xff]);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }
}
