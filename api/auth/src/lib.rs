//! drover-auth: the authentication core behind the HTTP API — SRP-6a login, tokens, API keys
//! and the short-lived login state kept in Redis. No HTTP here.
//!
//! - [`srp`]: the SRP-6a server (RFC 5054 2048-bit group, SHA-256, Python `srptools` 2.0 byte
//!   layout) and a client for tests and tooling.
//! - [`derive`]: the client-side two-secret key derivation (password + Secret Key → SRP x).
//! - [`tokens`]: biscuit access/refresh/SSE tokens and API keys, roles.
//! - [`password`]: argon2id hashes for legacy (bootstrap / admin-created) accounts.
//! - [`state`]: Redis-backed login sessions, refresh families, deny list, user validity,
//!   rate limits and single-use tickets.
//!
//! docs/auth.md is the contract (formulas, token contents, Redis keys).

pub mod derive;
pub mod hex;
pub mod password;
mod rng;
pub mod srp;
pub mod state;
pub mod tokens;

pub use rng::RngError;

/// The form of an email address that enters the key derivation and the SRP identity `I`:
/// Unicode lowercase (`str::to_lowercase`, like Python's `str.lower` and JavaScript's
/// `toLowerCase`), nothing else (no trimming).
pub fn normalize_email(email: &str) -> String {
    email.to_lowercase()
}
