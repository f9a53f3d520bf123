//! drover's shared vocabulary: typed ids, device status, and the public event contract —
//! NATS subjects and JSON payloads — that every other crate and every integrator relies on.
//!
//! # Layout
//! - [`ids`]: `TenantId`, `DeviceId` newtypes.
//! - [`status`]: [`DeviceStatus`], the externally visible state of a device.
//! - [`events`]: the event payloads ([`Event`]) with their `version` field.
//! - [`subjects`]: the only place subject strings are built.
//!
//! # Invariants
//! - No IO and no async: plain data with serde.
//! - Payload changes are additive within a version; a breaking change bumps
//!   [`events::EVENT_VERSION`] and is documented in docs/events.md.

pub mod events;
pub mod ids;
pub mod status;
pub mod subjects;

pub use events::Event;
pub use ids::{DeviceId, SHARD_COUNT, ShardId, TenantId};
pub use status::DeviceStatus;
