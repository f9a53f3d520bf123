//! Async RouterOS API client: TCP or TLS, login, pipelined tagged commands, timeouts that
//! cancel cleanly, and a liveness check.
//!
//! # Layout
//! - [`tls`]: the per-device transport policy ([`Transport`]): `verify` (CA bundle plus a
//!   hostname/IP check), `insecure` (any certificate, with its SHA-256 fingerprint recorded and
//!   optionally pinned) and `plain` (port 8728, only when asked for).
//! - [`session`]: [`connect`]: TCP connect, TLS handshake and login, each under its own timeout.
//! - `tls_stream`: TLS on rustls' unbuffered API, with buffers that exist only while bytes are
//!   in flight (an idle session holds no TLS read or write buffer).
//! - [`client`]: [`Client`]: one task per connection reads, routes and writes; commands are
//!   tagged and matched to replies by `.tag`, so many can be in flight at once.
//! - [`error`]: [`Error`], the typed failures.
//!
//! # Invariants
//! - Every command sent by [`Client`] carries a tag that is never reused on that connection, so a
//!   late reply to a timed-out command can never be delivered to another command.
//! - A timed-out command is cancelled with `/cancel` and its trailing replies are drained; if
//!   they do not arrive within the drain deadline the connection is closed.
//! - Nothing here knows about fleets, actors or storage, and the password is never logged or
//!   kept after login.

pub mod client;
pub mod error;
pub mod session;
pub mod tls;
mod tls_stream;

pub use client::{Client, ClientStats, Response, RowStream};
pub use error::Error;
pub use routeros_proto::{Attributes, Command, QueryWord, TrapCategory};
pub use session::{ConnectOptions, Credentials, SessionInfo, connect};
pub use tls::{Fingerprint, TlsPolicy, Transport};

/// The TCP port of the plain API.
pub const PLAIN_PORT: u16 = 8728;
/// The TCP port of the API over TLS.
pub const TLS_PORT: u16 = 8729;
