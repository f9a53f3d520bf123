//! What a device actor is told: the device's connection settings ([`DeviceSpec`]) and the
//! timing policy it runs under ([`DevicePolicy`]).

use std::time::Duration;

use drover_model::{DeviceId, TenantId};
use routeros_client::{ConnectOptions, Credentials, Transport};

/// One device as the store describes it. A change to any connection field makes the actor
/// drop its session and reconnect at once.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub host: String,
    /// API port; `None` means the transport's default (8729 TLS, 8728 plain).
    pub port: Option<u16>,
    pub transport: Transport,
    pub credentials: Credentials,
    pub poll_interval: Duration,
}

impl DeviceSpec {
    /// Whether `other` needs a new session (address, port, TLS mode or credentials differ).
    pub fn connection_differs(&self, other: &DeviceSpec) -> bool {
        self.host != other.host
            || self.port != other.port
            || self.transport != other.transport
            || self.credentials.username != other.credentials.username
            || self.credentials.password() != other.credentials.password()
    }

    /// Whether `other` changes nothing this device's actor acts on.
    pub fn same_settings(&self, other: &DeviceSpec) -> bool {
        self.tenant_id == other.tenant_id
            && !self.connection_differs(other)
            && self.poll_interval == other.poll_interval
    }

    pub(crate) fn connect_options(&self, policy: &DevicePolicy) -> ConnectOptions {
        let mut o = ConnectOptions::new(self.host.clone(), self.credentials.clone());
        o.port = self.port;
        o.transport = self.transport.clone();
        o.connect_timeout = policy.connect_timeout;
        o.login_timeout = policy.login_timeout;
        o.command_timeout = policy.command_timeout;
        o.drain_timeout = policy.command_timeout;
        o.max_rows = policy.max_rows;
        o
    }
}

/// Timing and tolerance settings, per tenant or node. Defaults suit a production fleet;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct DevicePolicy {
    pub connect_timeout: Duration,
    pub login_timeout: Duration,
    pub command_timeout: Duration,
    /// First retry after a healthy session is lost.
    pub reconnect_first: Duration,
    /// Back-off after repeated connect failures: `base`, doubling up to `max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Retry period while the device rejects the credentials.
    pub auth_retry: Duration,
    /// Consecutive missed polls after which the device is offline.
    pub offline_after_misses: u32,
    /// First polls are spread over the smaller of the poll interval and this.
    pub first_poll_spread: Duration,
    /// How often the firmware update check runs.
    pub firmware_check_every: Duration,
    /// Most rows accepted in one reply (interfaces, registrations).
    pub max_rows: usize,
    /// Most interfaces carried in one metrics sample.
    pub max_interfaces_per_sample: usize,
    /// Cluster fencing, asked before every poll: `None` skips the poll (this node does not
    /// hold the lease of the device's shard at this instant), `Some(lease)` gives the
    /// shard's epoch the poll's events carry and from when no node had polled the device
    /// (slots after that may be caught up). No fence: always poll, under
    /// `DeviceArgs::epoch`.
    ///
    /// A fenced device also skips a poll that starts later than [`SLOT_WINDOW`] of its
    /// interval (never two slots in a row): the slot may be served by the next owner
    /// soon after, and two polls of one device must stay most of an interval apart.
    pub fence: Option<Fence>,
    /// Put first polls on a wall-clock grid (slot = stable offset within the interval), so
    /// that a device handed from one node to another keeps its phase: the new owner's
    /// first poll comes one interval after the old owner's last, never twice in one
    /// interval. (Without it, first polls are spread over `first_poll_spread`.)
    pub wall_clock_grid: bool,
}

/// How late, as a share of the poll interval, a poll may start and still count for its
/// slot: later fenced polls are skipped; a new session that catches up a slot nobody served
/// later than this skips the next slot; and an actor never sends a poll sooner than
/// `1 − SLOT_WINDOW` of an interval after its previous one went out (a late poll makes the
/// next slot skip). Two polls of one device are then at least `1 − SLOT_WINDOW` of an
/// interval apart, whichever node sends them.
pub const SLOT_WINDOW: f64 = 0.3;

/// What the fence says about a lease this node holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedLease {
    /// The shard's epoch; the poll's events and writes carry it.
    pub epoch: u64,
    /// When this node took the lease. Without a hand-over marker (the old lease expired),
    /// no node polled the device from here on.
    pub idle_since: std::time::Instant,
    /// The old owner's hand-over marker: its wall-clock unix ms when it stopped polling.
    /// A grid slot whose nominal time is at or after it was served by nobody.
    pub handed_over_at_ms: Option<u64>,
    /// This node is handing the lease over: it polls no slot whose nominal time (unix ms)
    /// is at or after this (the next owner may serve those).
    pub leaving_at_ms: Option<u64>,
}

/// See [`DevicePolicy::fence`].
#[derive(Clone)]
pub struct Fence(pub std::sync::Arc<dyn Fn(DeviceId) -> Option<FencedLease> + Send + Sync>);

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fence")
    }
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            reconnect_first: Duration::from_secs(1),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(15 * 60),
            auth_retry: Duration::from_secs(15 * 60),
            offline_after_misses: 3,
            first_poll_spread: Duration::from_secs(30),
            firmware_check_every: Duration::from_secs(24 * 3600),
            max_rows: 10_000,
            max_interfaces_per_sample: 512,
            fence: None,
            wall_clock_grid: false,
        }
    }
}
