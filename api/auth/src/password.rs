//! Legacy password hashes (argon2id, PHC string) for the bootstrap admin and admin-created
//! users until they enrol with SRP. A PHC string carries its own parameters, so hashes made
//! with older parameters keep verifying.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::rng::{RngError, random_bytes};

/// Hashing failed (bad parameters or no randomness); never a reason to store a weaker hash.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswordError {
    #[error(transparent)]
    Rng(#[from] RngError),
    #[error("argon2: {0}")]
    Hash(String),
}

fn hasher() -> Argon2<'static> {
    // argon2 0.5 defaults: argon2id v0x13, m = 19 MiB, t = 2, p = 1 (OWASP's minimum).
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password`.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt_bytes = random_bytes::<16>()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `phc`. A malformed stored hash is a mismatch (and costs no
/// hashing time, so callers should not store garbage).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spend the time of one [`verify`] on nothing, for unknown or inactive users, so the legacy
/// login's timing does not tell which emails exist. The first call also hashes once.
pub fn dummy_verify() {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("drover-dummy-password").ok());
    if let Some(phc) = phc {
        let _ = verify("not-the-password", phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"));
        assert!(h.len() <= 200, "fits users.legacy_password_hash");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct hors", &h));
        assert!(!verify("correct horse", "garbage"));
        assert!(!verify("correct horse", ""));
        assert_ne!(hash("correct horse").unwrap(), h, "salted");
        dummy_verify();
    }
}
