//! The device actor: one supervised actor per router, owning one persistent RouterOS API
//! session and the device's poll schedule.
//!
//! # Layout
//! - [`config`]: [`DeviceSpec`] (the device as the store describes it) and [`DevicePolicy`]
//!   (timeouts, back-off, thresholds).
//! - [`state`]: the pure connection/health state machine ([`Machine`]); unit-tested without
//!   sockets.
//! - [`poll`]: which commands one poll pipelines and how replies become derived values.
//! - [`values`]: parsers for RouterOS value formats (durations, signals, counters).
//! - [`messages`]: [`DeviceMsg`] and the reply types.
//! - [`actor`]: [`DeviceActor`] itself.
//! - [`timers`]: [`DeviceTimers`], the node's one timer task for every actor's poll slots
//!   and reconnect back-offs.
//!
//! # Invariants
//! - No database, NATS or HTTP here: events leave through the [`EventSink`] the tenant
//!   supervisor provides.
//! - Handlers never await the network; IO runs in tasks whose results return as messages
//!   tagged with the session generation, so stale results are ignored.
//! - `pre_start` does no IO. A device that is offline is a state, not an actor failure.
//! - Status events are emitted once per transition, never on every poll.

pub mod actor;
pub mod config;
pub mod messages;
pub mod poll;
pub mod state;
pub mod timers;
pub mod values;

pub use actor::{DeviceActor, DeviceArgs, EventSink, Progress, device_actor_name};
pub use config::{DevicePolicy, DeviceSpec, Fence, FencedLease, SLOT_WINDOW};
pub use messages::{CommandError, DeviceMsg, DeviceSnapshot};
pub use state::{Effect, Input, Machine};
pub use timers::{DeviceTimers, TimerKey, Wake};
