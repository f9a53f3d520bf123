//! The client-side two-secret key derivation (2SKD): password + Secret Key → SRP x.
//!
//! Browsers run this in WebCrypto; this Rust copy is for tests, vectors and `drover admin`
//! tooling. The server never runs it for a user and never sees the password, the Secret Key
//! or x — only the verifier v = g^x mod N.
//!
//! With `email` lowercased ([`crate::normalize_email`]) and `salt` the user's 32-byte SRP salt
//! (it doubles as the PBKDF2 salt input):
//!
//! 1. stretched_salt = HKDF-SHA256(ikm = salt, salt = email, info = "srp", 32 B)
//! 2. P = PBKDF2-HMAC-SHA256(password (UTF-8), stretched_salt, iterations, 32 B)
//! 3. SKd = HKDF-SHA256(ikm = Secret Key (16 B), salt = email, info = "auk", 32 B)
//! 4. x = HKDF-SHA256(ikm = P xor SKd, salt = empty, info = "srp-x", 32 B)

use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::rng::{RngError, random_bytes};

/// PBKDF2 iterations in production (the browser uses the same count).
pub const PBKDF2_ITERATIONS: u32 = 650_000;

/// The Secret Key alphabet: base 30, without 0 1 I L O S.
pub const ALPHABET: &[u8; 30] = b"ABCDEFGHJKMNPQRTUVWXYZ23456789";
/// Version prefix of the text form.
pub const PREFIX: &str = "A3";
/// Number of base-30 digits (27 digits hold 132 bits ≥ 128).
pub const DIGITS: usize = 27;

/// A user's 128-bit Secret Key. Shown once (Emergency Kit) as
/// `A3-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XXX`; never sent to the server.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 16]);

/// Why a Secret Key's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    #[error(
        "a Secret Key has 27 characters after the A3 prefix (found {found}); it looks like A3-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XXX"
    )]
    Length { found: usize },
    #[error(
        "character {ch:?} at position {position} is not used in Secret Keys (they use A-Z and 2-9 without I, L, O, S)"
    )]
    InvalidCharacter { ch: char, position: usize },
    #[error("unknown Secret Key version {0:?} (expected A3)")]
    Version(String),
    #[error("this is not a valid Secret Key (value out of range)")]
    OutOfRange,
}

impl SecretKey {
    /// 16 fresh bytes from the OS RNG.
    pub fn generate() -> Result<Self, RngError> {
        Ok(SecretKey(random_bytes::<16>()?))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SecretKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parse the text form. Case, spaces and dashes do not matter; the `A3` prefix is optional.
    pub fn parse(text: &str) -> Result<Self, SecretKeyError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-' && *c != '\u{2010}' && *c != '\u{2013}')
                .flat_map(char::to_uppercase)
                .collect(),
        );
        let count = cleaned.chars().count();
        let body: &str = if count == DIGITS + PREFIX.len() {
            let (prefix, rest) = cleaned.split_at(
                cleaned
                    .char_indices()
                    .nth(PREFIX.len())
                    .map(|(i, _)| i)
                    .unwrap_or(0),
            );
            if prefix != PREFIX {
                return Err(SecretKeyError::Version(prefix.to_owned()));
            }
            rest
        } else if count == DIGITS {
            &cleaned
        } else {
            return Err(SecretKeyError::Length {
                found: count.saturating_sub(if cleaned.starts_with(PREFIX) { 2 } else { 0 }),
            });
        };
        let mut value: u128 = 0;
        for (position, ch) in body.chars().enumerate() {
            let digit = ALPHABET
                .iter()
                .position(|&a| char::from(a) == ch)
                .ok_or(SecretKeyError::InvalidCharacter { ch, position })?;
            value = value
                .checked_mul(30)
                .and_then(|v| v.checked_add(digit as u128))
                .ok_or(SecretKeyError::OutOfRange)?;
        }
        Ok(SecretKey(value.to_be_bytes()))
    }
}

impl FromStr for SecretKey {
    type Err = SecretKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SecretKey {
    /// `A3-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XXX`: the 128-bit big-endian value in 27 base-30 digits,
    /// most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = u128::from_be_bytes(self.0);
        let mut digits = [0u8; DIGITS];
        for d in digits.iter_mut().rev() {
            *d = ALPHABET[(value % 30) as usize];
            value /= 30;
        }
        f.write_str(PREFIX)?;
        for (i, d) in digits.iter().enumerate() {
            if i % 6 == 0 {
                f.write_str("-")?;
            }
            write!(f, "{}", char::from(*d))?;
        }
        digits.zeroize();
        Ok(())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(A3-<redacted>)")
    }
}

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let salt = if salt.is_empty() { None } else { Some(salt) };
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(info, out.as_mut_slice());
    out
}

/// Every intermediate of the derivation (for the test vectors and docs).
#[derive(Clone)]
pub struct Derivation {
    pub stretched_salt: [u8; 32],
    pub p: Zeroizing<[u8; 32]>,
    pub skd: Zeroizing<[u8; 32]>,
    pub stretched: Zeroizing<[u8; 32]>,
    pub x: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Derivation(<redacted>)")
    }
}

/// The full derivation with a given PBKDF2 iteration count.
pub fn derive(
    password: &str,
    secret_key: &SecretKey,
    email: &str,
    salt: &[u8],
    iterations: u32,
) -> Derivation {
    let email = crate::normalize_email(email);
    let stretched_salt = *hkdf32(salt, email.as_bytes(), b"srp");
    let mut p = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        &stretched_salt,
        iterations.max(1),
        p.as_mut_slice(),
    );
    let skd = hkdf32(secret_key.as_bytes(), email.as_bytes(), b"auk");
    let mut stretched = Zeroizing::new([0u8; 32]);
    for (o, (a, b)) in stretched.iter_mut().zip(p.iter().zip(skd.iter())) {
        *o = a ^ b;
    }
    let x = hkdf32(stretched.as_slice(), &[], b"srp-x");
    Derivation {
        stretched_salt,
        p,
        skd,
        stretched,
        x,
    }
}

/// x with [`PBKDF2_ITERATIONS`].
pub fn srp_x(
    password: &str,
    secret_key: &SecretKey,
    email: &str,
    salt: &[u8],
) -> Zeroizing<[u8; 32]> {
    srp_x_with_iterations(password, secret_key, email, salt, PBKDF2_ITERATIONS)
}

/// x with a chosen iteration count (tests use fewer for speed).
pub fn srp_x_with_iterations(
    password: &str,
    secret_key: &SecretKey,
    email: &str,
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; 32]> {
    derive(password, secret_key, email, salt, iterations).x
}

/// What the client sends to enrol (or re-enrol) a user: the salt and the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub salt: [u8; crate::srp::SALT_LEN],
    pub verifier: Vec<u8>,
}

/// Enrol: a random salt, then v = g^x mod N.
pub fn enrol(
    password: &str,
    secret_key: &SecretKey,
    email: &str,
    iterations: u32,
) -> Result<Enrolment, RngError> {
    let salt = crate::srp::random_salt()?;
    let x = srp_x_with_iterations(password, secret_key, email, &salt, iterations);
    Ok(Enrolment {
        salt,
        verifier: crate::srp::verifier(x.as_slice()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_shape() {
        let k = SecretKey::from_bytes([0xff; 16]);
        let s = k.to_string();
        assert_eq!(s.len(), 2 + 5 + DIGITS);
        assert_eq!(s, "A3-BME5F6-VJY44N-CRCUY3-N3DXN2-JJT");
        assert_eq!(
            SecretKey::from_bytes([0; 16]).to_string(),
            "A3-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAA"
        );
    }

    #[test]
    fn parse_is_tolerant() {
        let k = SecretKey::generate().unwrap();
        let s = k.to_string();
        assert_eq!(SecretKey::parse(&s).unwrap(), k);
        assert_eq!(SecretKey::parse(&s.to_lowercase()).unwrap(), k);
        assert_eq!(SecretKey::parse(&s.replace('-', " ")).unwrap(), k);
        assert_eq!(SecretKey::parse(&s.replace('-', "")).unwrap(), k);
        assert_eq!(SecretKey::parse(&format!("  {s}\n")).unwrap(), k);
        assert_eq!(SecretKey::parse(&s[3..]).unwrap(), k);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(
            SecretKey::parse("A3-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAO"),
            Err(SecretKeyError::InvalidCharacter {
                ch: 'O',
                position: 26
            })
        ));
        assert!(matches!(
            SecretKey::parse("A3-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AA"),
            Err(SecretKeyError::Length { found: 26 })
        ));
        assert!(matches!(
            SecretKey::parse("B3-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAA"),
            Err(SecretKeyError::Version(_))
        ));
        assert!(matches!(
            SecretKey::parse("A3-999999-999999-999999-999999-999"),
            Err(SecretKeyError::OutOfRange)
        ));
        assert!(SecretKey::parse("").is_err());
        let msg = SecretKey::parse("A3-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AA1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("'1'"), "{msg}");
    }

    #[test]
    fn debug_is_redacted() {
        let k = SecretKey::from_bytes([0x42; 16]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.to_string()[3..9]));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn email_case_does_not_matter() {
        let k = SecretKey::from_bytes([7; 16]);
        let a = srp_x_with_iterations("pw", &k, "Alice@Example.com", &[1; 32], 10);
        let b = srp_x_with_iterations("pw", &k, "alice@example.com", &[1; 32], 10);
        assert_eq!(*a, *b);
        let c = srp_x_with_iterations("pw", &k, "alice@example.org", &[1; 32], 10);
        assert_ne!(*a, *c);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in any::<[u8; 16]>()) {
            let k = SecretKey::from_bytes(bytes);
            prop_assert_eq!(SecretKey::parse(&k.to_string()).unwrap(), k);
        }

        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = SecretKey::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(s in "[A-Za-z0-9 \\-]{25,40}") {
            let _ = SecretKey::parse(&s);
        }
    }
}
