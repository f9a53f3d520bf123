//! Typed failures of the RouterOS client.

use std::time::Duration;

use routeros_proto::TrapCategory;

use crate::tls::Fingerprint;

/// What went wrong talking to a device. Variants name the failure in domain terms so callers
/// (the device actor) can decide: retry soon, back off, or stop trying (login rejected).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("failed to connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("timed out connecting to {addr} after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("certificate of {addr} changed: pinned {expected}, presented {actual}")]
    FingerprintMismatch {
        addr: String,
        expected: Fingerprint,
        actual: Fingerprint,
    },
    #[error("login rejected: {message}")]
    LoginRejected { message: String },
    #[error("timed out logging in after {after:?}")]
    LoginTimeout { after: Duration },
    #[error("device trapped {command}: {message}")]
    Trap {
        command: String,
        category: Option<TrapCategory>,
        message: String,
    },
    #[error("device ended the session: {reason}")]
    Fatal { reason: String },
    #[error("{command} timed out after {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("connection lost: {reason}")]
    ConnectionLost { reason: String },
    #[error("{command} returned more than {max_rows} rows")]
    ReplyTooLarge { command: String, max_rows: usize },
    #[error("protocol violation by device: {reason}")]
    Protocol { reason: String },
    #[error("client is closed")]
    Closed,
}

impl Error {
    /// True when the session is unusable and a new connection is needed.
    pub fn is_session_fatal(&self) -> bool {
        !matches!(
            self,
            Self::Trap { .. } | Self::Timeout { .. } | Self::ReplyTooLarge { .. }
        )
    }

    /// True when retrying with the same credentials cannot help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::LoginRejected { .. })
    }

    /// The trap category, when the device trapped.
    pub fn trap_category(&self) -> Option<TrapCategory> {
        match self {
            Self::Trap { category, .. } => *category,
            _ => None,
        }
    }
}
