//! The messages nodes exchange, and how they cross ractor_cluster.
//!
//! Every node runs one remotable actor, the *peer actor*, registered in the process group
//! [`PEERS_GROUP`]. Its message type, [`PeerMsg`], implements ractor's `Message` by hand:
//! on the wire a message is ractor's `Call { variant, args }` where `variant` is
//! [`VARIANT`] and `args` is a JSON [`Request`] carrying an explicit version; the reply is a
//! JSON [`Reply`]. Decoding happens in the actor's handler, not in ractor, so a malformed or
//! unknown message is seen, counted (`drover_cluster_messages_dropped_total{reason}`) and
//! dropped — it never reaches a panic, and it never crashes the node. A message from a
//! newer version is answered with `Reply::Rejected` so the caller does not wait for its
//! timeout.

use drover_model::{DeviceId, TenantId};
use ractor::RpcReplyPort;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use serde::{Deserialize, Serialize};

/// The process group every peer actor joins (synced across connected nodes).
pub const PEERS_GROUP: &str = "drover.cluster.v1.peers";
/// Peer actors are named `PEER_PREFIX + node name`.
pub const PEER_PREFIX: &str = "drover.peer:";
/// The ractor variant name of every drover cluster message.
pub const VARIANT: &str = "drover.cluster";
/// The version of [`Request`] and [`Reply`] this build speaks.
pub const WIRE_VERSION: u16 = 1;
/// Version of [`RemoteDeviceCall`].
pub const DEVICE_CALL_VERSION: u16 = 1;
/// Largest accepted request body.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// A node's role set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum Roles {
    /// Serves the API; supervises no devices.
    Api,
    /// Supervises devices; serves no API.
    Poller,
    /// Both (default).
    #[default]
    Both,
}

impl Roles {
    pub fn polls(self) -> bool {
        matches!(self, Self::Poller | Self::Both)
    }

    pub fn serves_api(self) -> bool {
        matches!(self, Self::Api | Self::Both)
    }
}

/// What a node says about itself (in heartbeats and their replies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAd {
    pub name: String,
    pub roles: Roles,
    /// Address other nodes dial to reach it (`host:port`), if it listens.
    pub addr: Option<String>,
    /// Shutting down: hand its shards to others, do not give it new ones.
    pub draining: bool,
}

/// A request between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`WIRE_VERSION`] of the sender.
    pub v: u16,
    /// Sender node name.
    pub from: String,
    pub body: RequestBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Failure detector probe; carries the sender's advertisement and the members it knows,
    /// so nodes learn about each other through any one member.
    Heartbeat { me: NodeAd, known: Vec<NodeAd> },
    /// Run a command on a device this node owns.
    DeviceCall(RemoteDeviceCall),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Heartbeat {
        me: NodeAd,
        known: Vec<NodeAd>,
    },
    Device(Result<RemoteDeviceReply, GatewayError>),
    /// Not understood (version, shape); `reason` says why.
    Rejected {
        reason: String,
    },
}

/// A RouterOS command for one device, routed to the node that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteDeviceCall {
    /// [`DEVICE_CALL_VERSION`].
    pub version: u16,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    /// One RouterOS command sentence, e.g. `["/system/identity/print"]` or
    /// `["/interface/set", "=.id=*1", "=disabled=yes"]`.
    pub words: Vec<String>,
    /// How long the caller waits, end to end.
    pub timeout_ms: u64,
}

/// The device's answer: its reply sentences (`!re` rows, then `!done`), each a list of words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteDeviceReply {
    pub version: u16,
    pub sentences: Vec<Vec<String>>,
}

/// Why the owner could not run a device call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GatewayError {
    /// No such device on the owner (deleted, or not started yet).
    #[error("device not found on its owner")]
    NotFound,
    /// The node asked does not hold the device's shard (any more).
    #[error("node does not own the device's shard")]
    NotOwner,
    /// The device has no session now.
    #[error("device is {status}: no session")]
    NotConnected { status: String },
    /// The device answered `!trap` / `!fatal`.
    #[error("device error: {message}")]
    Device { message: String },
    /// The command did not finish in time on the owner.
    #[error("device command timed out")]
    Timeout,
    /// The command is not a valid RouterOS sentence, or the version is not understood.
    #[error("invalid request: {reason}")]
    Invalid { reason: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// The peer actor's message. Built locally only by this crate.
pub enum PeerMsg {
    /// A message as received: ractor variant name, raw arguments, reply port for calls.
    Wire {
        variant: String,
        args: Vec<u8>,
        reply: Option<RpcReplyPort<Vec<u8>>>,
    },
}

impl std::fmt::Debug for PeerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wire { variant, args, .. } => f
                .debug_struct("Wire")
                .field("variant", variant)
                .field("len", &args.len())
                .finish_non_exhaustive(),
        }
    }
}

impl ractor::Message for PeerMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            Self::Wire {
                variant,
                args,
                reply: Some(reply),
            } => Ok(SerializedMessage::Call {
                variant,
                args,
                reply,
                metadata: None,
            }),
            Self::Wire {
                variant,
                args,
                reply: None,
            } => Ok(SerializedMessage::Cast {
                variant,
                args,
                metadata: None,
            }),
        }
    }

    /// Never fails for a call or cast: the handler decodes and counts.
    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } => Ok(Self::Wire {
                variant,
                args,
                reply: Some(reply),
            }),
            SerializedMessage::Cast { variant, args, .. } => Ok(Self::Wire {
                variant,
                args,
                reply: None,
            }),
            SerializedMessage::CallReply(..) => Err(BoxedDowncastErr),
        }
    }
}

/// Why an incoming message was dropped (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    UnknownVariant,
    NotACall,
    TooLarge,
    Malformed,
    Version,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownVariant => "unknown_variant",
            Self::NotACall => "not_a_call",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Version => "version",
        }
    }
}

/// Decodes a received message; never panics.
pub fn decode_request(variant: &str, args: &[u8], is_call: bool) -> Result<Request, DropReason> {
    if variant != VARIANT {
        return Err(DropReason::UnknownVariant);
    }
    if !is_call {
        return Err(DropReason::NotACall);
    }
    if args.len() > MAX_REQUEST_BYTES {
        return Err(DropReason::TooLarge);
    }
    let req: Request = serde_json::from_slice(args).map_err(|_| DropReason::Malformed)?;
    if req.v != WIRE_VERSION {
        return Err(DropReason::Version);
    }
    Ok(req)
}

/// Encodes a value as JSON bytes (`Vec<u8>` on failure is empty, which peers reject).
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_rejected_not_panicking() {
        assert_eq!(
            decode_request("other", b"{}", true).unwrap_err(),
            DropReason::UnknownVariant
        );
        assert_eq!(
            decode_request(VARIANT, b"\xff\x00garbage", true).unwrap_err(),
            DropReason::Malformed
        );
        assert_eq!(
            decode_request(VARIANT, b"{}", false).unwrap_err(),
            DropReason::NotACall
        );
        let future = br#"{"v":99,"from":"x","body":{"type":"warp"}}"#;
        assert_eq!(
            decode_request(VARIANT, future, true).unwrap_err(),
            DropReason::Malformed
        );
        let newer = br#"{"v":2,"from":"x","body":{"type":"heartbeat","me":{"name":"x","roles":"both","addr":null,"draining":false},"known":[]}}"#;
        assert_eq!(
            decode_request(VARIANT, newer, true).unwrap_err(),
            DropReason::Version
        );
    }

    #[test]
    fn requests_round_trip() {
        let req = Request {
            v: WIRE_VERSION,
            from: "a".into(),
            body: RequestBody::DeviceCall(RemoteDeviceCall {
                version: DEVICE_CALL_VERSION,
                tenant_id: TenantId(uuid_nil()),
                device_id: DeviceId(uuid_nil()),
                words: vec!["/system/identity/print".into()],
                timeout_ms: 1000,
            }),
        };
        let back = decode_request(VARIANT, &encode(&req), true).unwrap();
        assert!(matches!(back.body, RequestBody::DeviceCall(c) if c.words.len() == 1));
    }

    fn uuid_nil() -> uuid::Uuid {
        uuid::Uuid::nil()
    }
}
