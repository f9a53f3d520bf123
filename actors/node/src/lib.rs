//! The per-process actor tree: a node supervisor, one tenant supervisor per tenant, the
//! device actors under them, and the fan-out of device events to NATS JetStream and to the
//! in-process SSE hub.
//!
//! # Layout
//! - `publisher`: [`publisher::EventPublisher`], JetStream publishing with a bounded buffer.
//! - `hub`: [`hub::EventHub`], per-tenant in-process broadcast for SSE subscribers.
//! - `fanout`: [`fanout::Fanout`], one `emit` that feeds the hub, the publisher and the recorder.
//! - `supervisor`: [`NodeSupervisor`], the root: one tenant supervisor per tenant, and
//!   [`NodeMsg::Reconcile`], the boundary where the cluster layer says which devices run here.
//! - `tenant`: [`TenantSupervisor`]: one-for-one restarts with back-off, quarantine after too
//!   many restarts in a window, killing actors stuck in a handler.
//! - `restart`: the pure restart bookkeeping ([`RestartPolicy`]).

pub mod fanout;
pub mod hub;
pub mod publisher;
pub mod restart;
pub mod supervisor;
pub mod tenant;

pub use restart::RestartPolicy;
pub use supervisor::{NodeArgs, NodeMsg, NodeSummary, NodeSupervisor, device_ref};
pub use tenant::{TenantMsg, TenantReport, TenantSupervisor};
