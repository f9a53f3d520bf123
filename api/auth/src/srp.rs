//! SRP-6a (RFC 5054 2048-bit group, g = 2, SHA-256) with the byte layout of Python `srptools` 2.0.
//!
//! Notation: `H` = SHA-256, `‖` = concatenation, `PAD(x)` = x as 256 big-endian bytes,
//! `bytes(x)` = x as unpadded big-endian bytes (srptools' `int_to_bytes`: at least one byte).
//!
//! - k = H(bytes(N) ‖ PAD(g))
//! - v = g^x mod N (x comes from [`crate::derive`], the server never sees it)
//! - B = (k·v + g^b) mod N, b = 256 random bits from the OS
//! - u = H(PAD(A) ‖ PAD(B)), refused when 0
//! - S = (A·v^u)^b mod N, K = H(bytes(S))
//! - M1 = H(bytes(H(N) xor H(g)) ‖ bytes(H(I)) ‖ s ‖ bytes(A) ‖ bytes(B) ‖ K), with H(g) the
//!   hash of the single byte 0x02, and H(N) xor H(g), H(I) as srptools treats them: as integers,
//!   so a leading zero byte of H(I) is dropped
//! - M2 = H(bytes(A) ‖ M1 ‖ K)
//!
//! The modular exponentiations use `num-bigint`, which is not constant-time; see docs/auth.md
//! for why that is acceptable here (b is used once) and what it would leak.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::hex::{self, serde_hex};
use crate::rng::{RngError, random_bytes};

/// Length of N (and of padded values) in bytes.
pub const N_LEN: usize = 256;
/// Length of the SRP salt drover generates (it is also the 2SKD salt input).
pub const SALT_LEN: usize = 32;
/// Length of the ephemeral secrets a and b.
pub const PRIVATE_LEN: usize = 32;
/// Length of K, M1 and M2.
pub const PROOF_LEN: usize = 32;
/// Longest hex accepted for A (or B on the client): 256 bytes, plus room for leading zeros.
pub const MAX_PUBLIC_HEX: usize = 2 * N_LEN + 8;

/// RFC 5054 Appendix A, 2048-bit group.
const N_HEX: &str = "AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050\
A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50\
E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B8\
55F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773B\
CA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748\
544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6\
AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB6\
94B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73";

struct Group {
    n: BigUint,
    g: BigUint,
    k: BigUint,
    /// bytes(H(N) xor H(g))
    hn_xor_hg: Vec<u8>,
}

fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        let n = BigUint::parse_bytes(N_HEX.as_bytes(), 16).unwrap_or_default();
        let g = BigUint::from(2u32);
        let k = BigUint::from_bytes_be(&h(&[&bytes(&n), &pad(&g)]));
        let hn = BigUint::from_bytes_be(&h(&[&bytes(&n)]));
        let hg = BigUint::from_bytes_be(&h(&[&bytes(&g)]));
        let hn_xor_hg = bytes(&(hn ^ hg));
        Group { n, g, k, hn_xor_hg }
    })
}

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

/// Unpadded big-endian bytes, at least one byte (srptools' `int_to_bytes`).
fn bytes(x: &BigUint) -> Vec<u8> {
    x.to_bytes_be()
}

fn pad(x: &BigUint) -> Vec<u8> {
    let b = x.to_bytes_be();
    let mut out = vec![0u8; N_LEN.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

/// A digest as srptools hashes it on after turning it into an integer: leading zeros dropped.
fn strip_leading_zeros(d: &[u8]) -> &[u8] {
    let first = d
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(d.len().saturating_sub(1));
    &d[first..]
}

/// Why an SRP step was refused. None of them says whether the account exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrpError {
    /// A (or, on the client, B) is 0 mod N, or too long.
    #[error("invalid public ephemeral")]
    InvalidPublic,
    /// u = H(PAD(A) ‖ PAD(B)) is zero.
    #[error("scrambling parameter is zero")]
    ZeroScrambler,
    /// M1 (or, on the client, M2) does not match: wrong password, Secret Key or tampering.
    #[error("proof does not match")]
    BadProof,
    /// A value on the wire is not what the protocol says (bad hex, wrong length).
    #[error("malformed SRP value: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Rng(#[from] RngError),
}

/// v = g^x mod N, unpadded big-endian (what `users.srp_verifier` stores). `x` is big-endian
/// bytes (the 32 bytes of [`crate::derive::srp_x`]).
pub fn verifier(x: &[u8]) -> Vec<u8> {
    let g = group();
    bytes(&g.g.modpow(&BigUint::from_bytes_be(x), &g.n))
}

/// k = H(N ‖ PAD(g)), unpadded.
pub fn multiplier() -> Vec<u8> {
    bytes(&group().k)
}

/// What `start_login` produces: the state to keep (in Redis, 60 s) and B to send.
#[derive(Debug)]
pub struct ServerChallenge {
    pub session: PendingLogin,
    /// B, unpadded big-endian; send as `hex::encode(&b_pub)`.
    pub b_pub: Vec<u8>,
}

/// The server's half of a login between `init` and `verify`. Serialisable (it is kept in
/// Redis); the private ephemeral b is wiped on drop and never printed.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// I: the lowercase email.
    identity: String,
    #[serde(with = "serde_hex")]
    salt: Vec<u8>,
    #[serde(with = "serde_hex")]
    verifier: Vec<u8>,
    #[serde(with = "serde_hex")]
    b: Vec<u8>,
    #[serde(with = "serde_hex")]
    b_pub: Vec<u8>,
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.b.zeroize();
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("identity", &self.identity)
            .field("salt", &hex::encode(&self.salt))
            .field("b", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The server's answer to a correct M1.
pub struct ServerProof {
    /// M2 = H(A ‖ M1 ‖ K), 32 bytes; send as hex.
    pub m2: [u8; PROOF_LEN],
    /// K = H(S), shared with the client; drover does not use it beyond the login.
    pub session_key: Zeroizing<[u8; PROOF_LEN]>,
}

impl fmt::Debug for ServerProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerProof")
            .field("m2", &hex::encode(&self.m2))
            .field("session_key", &"<redacted>")
            .finish()
    }
}

/// Begin a login for an enrolled user: pick b, compute B.
pub fn start_login(
    identity: &str,
    salt: &[u8],
    verifier: &[u8],
) -> Result<ServerChallenge, SrpError> {
    loop {
        let b = Zeroizing::new(random_bytes::<PRIVATE_LEN>()?);
        if let Some(ch) = start_login_with_private(identity, salt, verifier, b.as_slice()) {
            return Ok(ch);
        }
        // B ≡ 0 mod N: astronomically unlikely; pick another b.
    }
}

/// [`start_login`] with a given b: for the shared test vectors only. `None` if B ≡ 0 mod N.
#[doc(hidden)]
pub fn start_login_with_private(
    identity: &str,
    salt: &[u8],
    verifier: &[u8],
    b: &[u8],
) -> Option<ServerChallenge> {
    let g = group();
    let v = BigUint::from_bytes_be(verifier);
    let b_int = BigUint::from_bytes_be(b);
    let b_pub = (&g.k * &v + g.g.modpow(&b_int, &g.n)) % &g.n;
    if b_pub == BigUint::ZERO {
        return None;
    }
    let b_pub = bytes(&b_pub);
    Some(ServerChallenge {
        session: PendingLogin {
            identity: identity.to_owned(),
            salt: salt.to_vec(),
            verifier: verifier.to_vec(),
            b: b.to_vec(),
            b_pub: b_pub.clone(),
        },
        b_pub,
    })
}

fn parse_public(p: &[u8], n: &BigUint) -> Result<BigUint, SrpError> {
    if p.len() > N_LEN + 4 {
        return Err(SrpError::InvalidPublic);
    }
    let x = BigUint::from_bytes_be(p);
    if &x % n == BigUint::ZERO {
        return Err(SrpError::InvalidPublic);
    }
    Ok(x)
}

/// M1 must be 32 bytes; shorter input (a client that trimmed leading zeros) is left-padded.
fn proof_bytes(m: &[u8]) -> Result<[u8; PROOF_LEN], SrpError> {
    if m.len() > PROOF_LEN {
        return Err(SrpError::Malformed("proof longer than 32 bytes"));
    }
    let mut out = [0u8; PROOF_LEN];
    out[PROOF_LEN - m.len()..].copy_from_slice(m);
    Ok(out)
}

fn m1(identity: &str, salt: &[u8], a: &BigUint, b: &BigUint, k: &[u8]) -> [u8; PROOF_LEN] {
    let g = group();
    let hi = h(&[identity.as_bytes()]);
    h(&[
        &g.hn_xor_hg,
        strip_leading_zeros(&hi),
        salt,
        &bytes(a),
        &bytes(b),
        k,
    ])
}

fn m2(a: &BigUint, m1: &[u8], k: &[u8]) -> [u8; PROOF_LEN] {
    h(&[&bytes(a), m1, k])
}

fn scrambler(a: &BigUint, b: &BigUint) -> Result<BigUint, SrpError> {
    let u = BigUint::from_bytes_be(&h(&[&pad(a), &pad(b)]));
    if u == BigUint::ZERO {
        return Err(SrpError::ZeroScrambler);
    }
    Ok(u)
}

impl PendingLogin {
    /// I, the identity this login is for.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// B as sent to the client.
    pub fn b_pub(&self) -> &[u8] {
        &self.b_pub
    }

    /// Check the client's A and M1 (raw bytes; see [`Self::finish_hex`] for the wire form).
    /// On success the caller sends M2 back; on any error the login fails (answer 401).
    pub fn finish(&self, a_pub: &[u8], client_m1: &[u8]) -> Result<ServerProof, SrpError> {
        let g = group();
        let a = parse_public(a_pub, &g.n)?;
        let client_m1 = proof_bytes(client_m1)?;
        let b_pub = BigUint::from_bytes_be(&self.b_pub);
        let u = scrambler(&a, &b_pub)?;
        let v = BigUint::from_bytes_be(&self.verifier);
        let b = BigUint::from_bytes_be(&self.b);
        let s = (&a * v.modpow(&u, &g.n)).modpow(&b, &g.n);
        let key = Zeroizing::new(h(&[&bytes(&s)]));
        let expected = m1(&self.identity, &self.salt, &a, &b_pub, key.as_slice());
        if !bool::from(expected.ct_eq(&client_m1)) {
            return Err(SrpError::BadProof);
        }
        Ok(ServerProof {
            m2: m2(&a, &expected, key.as_slice()),
            session_key: key,
        })
    }

    /// [`Self::finish`] with A and M1 as hex strings (as the HTTP API receives them).
    pub fn finish_hex(&self, a_pub_hex: &str, m1_hex: &str) -> Result<ServerProof, SrpError> {
        let a = hex::decode_number(a_pub_hex, MAX_PUBLIC_HEX)
            .map_err(|_| SrpError::Malformed("A is not hex"))?;
        let m = hex::decode_number(m1_hex, 2 * PROOF_LEN)
            .map_err(|_| SrpError::Malformed("M1 is not 64 hex digits"))?;
        self.finish(&a, &m)
    }
}

/// A challenge for an email with no SRP account: salt and B derived from `server_secret` and
/// the email by HMAC-SHA256, so the answer is stable between calls and shaped like a real one
/// (32-byte salt, B uniform below N). No session is kept for it, so verification fails as for
/// a wrong password.
pub fn fake_challenge(server_secret: &[u8], email: &str) -> (Vec<u8>, Vec<u8>) {
    let email = crate::normalize_email(email);
    let prf = |label: &str, i: u8| -> [u8; 32] {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(server_secret) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        mac.update(b"drover-srp-fake/");
        mac.update(label.as_bytes());
        mac.update(&[0, i]);
        mac.update(email.as_bytes());
        mac.finalize().into_bytes().into()
    };
    let salt = prf("salt", 0).to_vec();
    let mut wide = Vec::with_capacity(N_LEN + 32);
    for i in 0..9u8 {
        wide.extend_from_slice(&prf("B", i));
    }
    let g = group();
    let mut b = BigUint::from_bytes_be(&wide) % &g.n;
    if b == BigUint::ZERO {
        b = BigUint::from(1u32);
    }
    (salt, bytes(&b))
}

/// A fresh random salt for enrolment.
pub fn random_salt() -> Result<[u8; SALT_LEN], RngError> {
    random_bytes::<SALT_LEN>()
}

/// The client side, for Rust tests and `drover admin` tooling (browsers do this in TypeScript).
pub struct SrpClient {
    identity: String,
    x: Zeroizing<Vec<u8>>,
    a: Zeroizing<Vec<u8>>,
    a_pub: Vec<u8>,
}

impl fmt::Debug for SrpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrpClient")
            .field("identity", &self.identity)
            .field("a_pub", &hex::encode(&self.a_pub))
            .finish_non_exhaustive()
    }
}

/// The client's M1 for one login, and what it expects back.
pub struct ClientProof {
    /// M1, 32 bytes; send as hex.
    pub m1: [u8; PROOF_LEN],
    expected_m2: [u8; PROOF_LEN],
    /// K = H(S).
    pub session_key: Zeroizing<[u8; PROOF_LEN]>,
}

impl fmt::Debug for ClientProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientProof")
            .field("m1", &hex::encode(&self.m1))
            .finish_non_exhaustive()
    }
}

impl ClientProof {
    /// Constant-time check of the server's M2.
    pub fn verify_m2(&self, m2: &[u8]) -> bool {
        match proof_bytes(m2) {
            Ok(m) => bool::from(self.expected_m2.ct_eq(&m)),
            Err(_) => false,
        }
    }
}

impl SrpClient {
    /// A client for `identity` (the lowercase email) with password key `x` and a random a.
    pub fn new(identity: &str, x: &[u8]) -> Result<Self, SrpError> {
        let a = Zeroizing::new(random_bytes::<PRIVATE_LEN>()?);
        Ok(Self::with_private(identity, x, a.as_slice()))
    }

    /// A client with a given a: for the shared test vectors only.
    #[doc(hidden)]
    pub fn with_private(identity: &str, x: &[u8], a: &[u8]) -> Self {
        let g = group();
        let a_pub = bytes(&g.g.modpow(&BigUint::from_bytes_be(a), &g.n));
        SrpClient {
            identity: identity.to_owned(),
            x: Zeroizing::new(x.to_vec()),
            a: Zeroizing::new(a.to_vec()),
            a_pub,
        }
    }

    /// A, unpadded.
    pub fn a_pub(&self) -> &[u8] {
        &self.a_pub
    }

    /// Compute M1 from the server's salt and B: S = (B − k·g^x)^(a + u·x) mod N.
    pub fn respond(&self, salt: &[u8], b_pub: &[u8]) -> Result<ClientProof, SrpError> {
        let g = group();
        let b = parse_public(b_pub, &g.n)?;
        let a_pub = BigUint::from_bytes_be(&self.a_pub);
        let u = scrambler(&a_pub, &b)?;
        let x = BigUint::from_bytes_be(&self.x);
        let a = BigUint::from_bytes_be(&self.a);
        let kgx = (&g.k * g.g.modpow(&x, &g.n)) % &g.n;
        let base = ((&b % &g.n) + &g.n - kgx) % &g.n;
        let s = base.modpow(&(a + u * x), &g.n);
        let key = Zeroizing::new(h(&[&bytes(&s)]));
        let m1 = m1(&self.identity, salt, &a_pub, &b, key.as_slice());
        Ok(ClientProof {
            m1,
            expected_m2: m2(&a_pub, &m1, key.as_slice()),
            session_key: key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x_for(seed: u8) -> Vec<u8> {
        h(&[b"test-x", &[seed]]).to_vec()
    }

    #[test]
    fn round_trip_with_rust_client() {
        let x = x_for(1);
        let salt = random_salt().unwrap();
        let v = verifier(&x);
        let ch = start_login("alice@example.com", &salt, &v).unwrap();
        let client = SrpClient::new("alice@example.com", &x).unwrap();
        let proof = client.respond(&salt, &ch.b_pub).unwrap();
        let server = ch.session.finish(client.a_pub(), &proof.m1).unwrap();
        assert!(proof.verify_m2(&server.m2));
        assert_eq!(*server.session_key, *proof.session_key);
    }

    #[test]
    fn hex_round_trip_through_serde() {
        let x = x_for(2);
        let salt = random_salt().unwrap();
        let ch = start_login("bob@example.com", &salt, &verifier(&x)).unwrap();
        let json = serde_json::to_string(&ch.session).unwrap();
        let restored: PendingLogin = serde_json::from_str(&json).unwrap();
        let client = SrpClient::new("bob@example.com", &x).unwrap();
        let proof = client.respond(&salt, restored.b_pub()).unwrap();
        let server = restored
            .finish_hex(&hex::encode(client.a_pub()), &hex::encode(&proof.m1))
            .unwrap();
        assert!(proof.verify_m2(&server.m2));
    }

    #[test]
    fn wrong_password_fails() {
        let salt = random_salt().unwrap();
        let ch = start_login("a@b.c", &salt, &verifier(&x_for(3))).unwrap();
        let client = SrpClient::new("a@b.c", &x_for(4)).unwrap();
        let proof = client.respond(&salt, &ch.b_pub).unwrap();
        assert_eq!(
            ch.session.finish(client.a_pub(), &proof.m1).unwrap_err(),
            SrpError::BadProof
        );
    }

    #[test]
    fn wrong_identity_fails() {
        let x = x_for(5);
        let salt = random_salt().unwrap();
        let ch = start_login("a@b.c", &salt, &verifier(&x)).unwrap();
        let client = SrpClient::new("other@b.c", &x).unwrap();
        let proof = client.respond(&salt, &ch.b_pub).unwrap();
        assert!(ch.session.finish(client.a_pub(), &proof.m1).is_err());
    }

    #[test]
    fn tampered_m1_rejected() {
        let x = x_for(6);
        let salt = random_salt().unwrap();
        let ch = start_login("a@b.c", &salt, &verifier(&x)).unwrap();
        let client = SrpClient::new("a@b.c", &x).unwrap();
        let proof = client.respond(&salt, &ch.b_pub).unwrap();
        for i in [0usize, 17, 31] {
            let mut m = proof.m1;
            m[i] ^= 0x01;
            assert_eq!(
                ch.session.finish(client.a_pub(), &m).unwrap_err(),
                SrpError::BadProof
            );
        }
        assert!(ch.session.finish(client.a_pub(), &[0u8; 33]).is_err());
        assert!(ch.session.finish(client.a_pub(), &[]).is_err());
        // the untampered proof still works (finish takes &self)
        assert!(ch.session.finish(client.a_pub(), &proof.m1).is_ok());
    }

    #[test]
    fn a_zero_or_multiple_of_n_rejected() {
        let salt = random_salt().unwrap();
        let ch = start_login("a@b.c", &salt, &verifier(&x_for(7))).unwrap();
        let n = bytes(&group().n);
        let two_n = bytes(&(&group().n * 2u32));
        for a in [vec![], vec![0u8], vec![0u8; 256], n, two_n] {
            assert_eq!(
                ch.session.finish(&a, &[0u8; 32]).unwrap_err(),
                SrpError::InvalidPublic
            );
        }
        assert_eq!(
            ch.session.finish(&[1u8; 300], &[0u8; 32]).unwrap_err(),
            SrpError::InvalidPublic
        );
        assert!(matches!(
            ch.session.finish_hex("zz", "00").unwrap_err(),
            SrpError::Malformed(_)
        ));
    }

    #[test]
    fn client_rejects_bad_b() {
        let client = SrpClient::new("a@b.c", &x_for(8)).unwrap();
        assert_eq!(
            client.respond(&[1; 32], &bytes(&group().n)).unwrap_err(),
            SrpError::InvalidPublic
        );
    }

    #[test]
    fn fake_challenge_is_deterministic_and_shaped_like_a_real_one() {
        let (s1, b1) = fake_challenge(b"server-secret", "Nobody@Example.com");
        let (s2, b2) = fake_challenge(b"server-secret", "nobody@example.com");
        assert_eq!((s1.clone(), b1.clone()), (s2, b2));
        let (s3, b3) = fake_challenge(b"server-secret", "other@example.com");
        assert_ne!(s1, s3);
        assert_ne!(b1, b3);
        let (s4, _) = fake_challenge(b"another-secret", "nobody@example.com");
        assert_ne!(s1, s4);
        assert_eq!(s1.len(), SALT_LEN);
        let b = BigUint::from_bytes_be(&b1);
        assert!(b < group().n && b > BigUint::ZERO);
        assert!(b1.len() >= N_LEN - 2 && b1.len() <= N_LEN);
        assert_ne!(b1[0], 0);
    }

    #[test]
    fn debug_redacts_b() {
        let ch = start_login("a@b.c", &[1; 32], &verifier(&x_for(9))).unwrap();
        let b_hex = hex::encode(&ch.session.b);
        let dbg = format!("{ch:?}");
        assert!(!dbg.contains(&b_hex));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn strip_keeps_one_byte() {
        assert_eq!(strip_leading_zeros(&[0, 0, 5]), &[5]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[0]);
        assert_eq!(strip_leading_zeros(&[7, 0]), &[7, 0]);
    }
}
