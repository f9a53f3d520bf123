//! drover-cluster: nodes, membership, failure detection, fenced shard ownership and remote
//! device calls.
//!
//! A node [`Cluster::start`]s with a [`ClusterConfig`] and a [`DeviceGateway`] (how this
//! process runs a command on a device it supervises) and gets a [`ClusterHandle`]:
//!
//! - [`ClusterHandle::owned_shards`]: a watch channel of the shards whose leases this node
//!   holds, with their fencing epochs. The binary runs exactly the devices of those shards.
//! - [`ClusterHandle::lease_epoch`]: a synchronous fence check (is the lease of this
//!   device's shard held *and* inside its local deadline now?).
//! - [`ClusterHandle::call_device`]: runs a RouterOS command on a device wherever it is.
//! - [`ClusterHandle::members`], [`ClusterHandle::shutdown`] (hands shards over).
//!
//! Membership runs over ractor_cluster with mutual TLS (module `transport`, `tls`), a
//! heartbeat failure detector and seed nodes (`runtime`); ownership is rendezvous hashing
//! with hysteresis and a rate limit (`ring`) decided by Redis leases with fencing epochs
//! (`lease`). The crate knows nothing of the store or the actor tree.

mod config;
pub mod lease;
pub mod ring;
mod runtime;
pub mod tls;
mod transport;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_model::{DeviceId, ShardId};
use tokio::sync::watch;

pub use config::ClusterConfig;
pub use wire::{
    DEVICE_CALL_VERSION, GatewayError, NodeAd, RemoteDeviceCall, RemoteDeviceReply, Roles,
};

/// Runs device calls on this process's own device actors.
#[async_trait::async_trait]
pub trait DeviceGateway: Send + Sync + 'static {
    /// Runs `call` on the local actor of `call.device_id`, within `call.timeout_ms`.
    async fn execute(&self, call: RemoteDeviceCall) -> Result<RemoteDeviceReply, GatewayError>;
}

/// The shards this node holds, with their fencing epochs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedShards {
    pub epochs: BTreeMap<u32, u64>,
}

impl OwnedShards {
    /// Whether this node holds `device`'s shard, and under which epoch.
    pub fn epoch_of(&self, device: DeviceId) -> Option<u64> {
        self.epochs.get(&device.shard().0).copied()
    }

    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

/// A lease this node holds now, as the fence sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    /// The shard's fencing epoch.
    pub epoch: u64,
    /// When this node took the lease; after an expiry (no hand-over marker), no node
    /// polled the shard's devices from here on.
    pub idle_since: std::time::Instant,
    /// The old owner's hand-over marker: its wall-clock unix ms when it stopped polling;
    /// grid slots whose nominal time is at or after it were served by nobody.
    pub handed_over_at_ms: Option<u64>,
    /// This node is handing the shard over: poll no slot whose nominal time (unix ms) is at
    /// or after this; earlier slots may still be polled until the lease is released.
    pub leaving_at_ms: Option<u64>,
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub name: String,
    pub roles: Roles,
    pub addr: Option<String>,
    /// This node itself.
    pub local: bool,
    /// Answered a heartbeat within the failure deadline.
    pub alive: bool,
    pub draining: bool,
    /// Counted in the ownership ring now (alive long enough, polls, not draining).
    pub in_ring: bool,
}

/// Why a routed device call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The device's shard is between owners (lease free, owner unreachable or handing
    /// over): retry after the hint. The API answers 503 with `Retry-After`.
    #[error("device's shard has no reachable owner now; retry in {retry_after:?}")]
    NoOwner { retry_after: Duration },
    /// The owner did not answer in time.
    #[error("device call timed out")]
    Timeout,
    /// The owner answered with an error.
    #[error(transparent)]
    Remote(GatewayError),
    /// Lease store unreachable: ownership cannot be looked up.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Start(String),
}

/// Starts cluster membership and shard ownership.
#[derive(Debug)]
pub struct Cluster;

impl Cluster {
    /// Validates `cfg`, connects to Redis, starts the node link listener (when configured),
    /// the failure detector and the ownership loop.
    pub async fn start(
        cfg: ClusterConfig,
        gateway: Arc<dyn DeviceGateway>,
    ) -> Result<ClusterHandle, ClusterError> {
        runtime::start(cfg, gateway).await
    }
}

/// The running cluster layer of this node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterHandle {
    inner: Arc<runtime::Shared>,
    owned: watch::Receiver<Arc<OwnedShards>>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("node", &self.inner.me)
            .finish_non_exhaustive()
    }
}

impl ClusterHandle {
    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.me
    }

    pub fn roles(&self) -> Roles {
        self.inner.roles
    }

    /// The shards held now and every later change.
    pub fn owned_shards(&self) -> watch::Receiver<Arc<OwnedShards>> {
        self.owned.clone()
    }

    /// The fencing epoch of `device`'s shard when this node holds its lease and the lease
    /// is inside its local deadline at this instant; `None` otherwise (do not poll, do not
    /// write).
    pub fn lease_epoch(&self, device: DeviceId) -> Option<u64> {
        self.inner.lease_epoch(device.shard())
    }

    /// Like [`Self::lease_epoch`], with the instant from which no node had polled the
    /// shard's devices when this node took it (see [`HeldLease`]).
    pub fn lease(&self, device: DeviceId) -> Option<HeldLease> {
        self.inner.lease(device.shard())
    }

    /// This node and the peers it is linked to.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.members()
    }

    /// Runs a RouterOS command on `call.device_id` on whichever node owns it (this one
    /// directly when it holds the shard).
    pub async fn call_device(
        &self,
        call: RemoteDeviceCall,
    ) -> Result<RemoteDeviceReply, RouteError> {
        runtime::call_device(&self.inner, call).await
    }

    /// Hands every shard over and leaves: stops giving this node shards, releases all
    /// leases (after the devices had `handover_grace` to stop) and closes the node links.
    pub async fn shutdown(&self) {
        runtime::shutdown(&self.inner).await;
    }

    /// Test support: sends raw bytes to a peer's cluster actor as ractor variant `variant`
    /// and returns the raw reply, if any. Not for production use.
    #[doc(hidden)]
    pub async fn send_raw(
        &self,
        peer: &str,
        variant: &str,
        args: Vec<u8>,
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        runtime::send_raw(peer, variant, args, timeout).await
    }

    /// The shard of a device (re-exported for callers that only see this crate).
    pub fn shard_of(device: DeviceId) -> ShardId {
        device.shard()
    }
}
