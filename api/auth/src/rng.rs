//! Random bytes straight from the operating system's generator.

use rand::TryRngCore;
use rand::rngs::OsRng;

/// The operating system's random generator failed (it practically never does; callers treat
/// it as an internal error, never as a reason to go on with weaker randomness).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct RngError(String);

/// `N` random bytes from the OS RNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RngError> {
    let mut out = [0u8; N];
    OsRng
        .try_fill_bytes(&mut out)
        .map_err(|e| RngError(e.to_string()))?;
    Ok(out)
}
