//! The per-process actor tree: a node supervisor, one tenant supervisor per tenant, the
//! device actors under them, and the fan-out of device events to NATS JetStream and to the
//! in-process SSE hub.
//!
//! # Layout
//! - `publisher`: [`publisher::EventPublisher`], JetStream publishing with a bounded buffer.
//! - `hub`: [`hub::EventHub`], per-tenant in-process broadcast for SSE subscribers.
//! - `fanout`: [`fanout::Fanout`], one `emit` that feeds the hub, the publisher and the recorder.
//! - `supervisor`: node and tenant supervisors, restarts, quarantine, shards.

pub mod fanout;
pub mod hub;
pub mod publisher;
