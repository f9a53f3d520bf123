//! What a device actor receives ([`DeviceMsg`]) and the reply types it hands back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_model::{DeviceId, DeviceStatus};
use ractor::RpcReplyPort;
use routeros_client::{Client, Command, Error as ClientError, Response};

use crate::config::DeviceSpec;
use crate::poll::{Facts, Layout, PollPlan};

/// Messages of [`crate::DeviceActor`]. The `*Finished` variants carry results of IO done
/// in tasks, tagged with the session generation they belong to so stale results are ignored.
pub enum DeviceMsg {
    /// Open a session (sent by the back-off timer).
    Connect {
        generation: u64,
    },
    ConnectFinished {
        generation: u64,
        result: Box<Result<Client, ClientError>>,
    },
    /// A poll slot is due; `timer` is the sequence number of the [`crate::DeviceTimers`]
    /// entry that fired, so a slot that was rescheduled meanwhile is recognised as stale.
    PollDue {
        timer: u64,
    },
    PollFinished(Box<PollFinished>),
    /// Run a command for an operator or integration, beside polling, on the same session.
    Execute {
        command: Box<Command>,
        timeout: Duration,
        reply: RpcReplyPort<Result<Response, CommandError>>,
    },
    /// The device's settings changed in the store (shared with the supervisors' copy).
    UpdateSpec(Arc<DeviceSpec>),
    /// Report the current state.
    Snapshot(RpcReplyPort<DeviceSnapshot>),
}

/// The result of one poll, returned by the task that ran it. Boxed in [`DeviceMsg`]: every
/// slot of an actor's mailbox is as large as its message type, and there is one mailbox per
/// device, so the message stays a few words wide.
#[derive(Debug)]
pub struct PollFinished {
    pub generation: u64,
    pub plan: PollPlan,
    pub layout: Layout,
    pub results: Vec<Result<Response, ClientError>>,
    pub started: Instant,
}

// The workspace builds ractor with its `cluster` feature, which turns off the blanket
// `Message` impl: local-only messages declare themselves.
impl ractor::Message for DeviceMsg {}

impl std::fmt::Debug for DeviceMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Connect { .. } => "Connect",
            Self::ConnectFinished { .. } => "ConnectFinished",
            Self::PollDue { .. } => "PollDue",
            Self::PollFinished(_) => "PollFinished",
            Self::Execute { .. } => "Execute",
            Self::UpdateSpec(_) => "UpdateSpec",
            Self::Snapshot(_) => "Snapshot",
        };
        f.write_str(name)
    }
}

/// Why a command sent through the actor failed.
#[cfg(test)]
mod tests {
    #[test]
    fn device_messages_stay_small() {
        // A mailbox block holds 32 messages per device; keep each slot a few words.
        assert!(
            std::mem::size_of::<super::DeviceMsg>() <= 48,
            "{}",
            std::mem::size_of::<super::DeviceMsg>()
        );
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error("device is {status}: no session to run the command on")]
    NotConnected { status: DeviceStatus },
    #[error(transparent)]
    Device(#[from] ClientError),
}

/// The state of one device actor, for the API and for tests.
#[derive(Debug, Clone)]
pub struct DeviceSnapshot {
    pub id: DeviceId,
    pub status: DeviceStatus,
    pub reason: Option<String>,
    pub connected: bool,
    pub facts: Facts,
    pub uptime: Option<u64>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub missed_polls: u32,
    pub poll_interval: Duration,
    /// Fingerprint of the certificate the device presented on the current session.
    pub certificate_fingerprint: Option<String>,
}
