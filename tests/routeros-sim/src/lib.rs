//! Simulated MikroTik RouterOS v7 devices speaking the real API (8729 TLS, optionally 8728
//! plain), for tests and load runs of drover.
//!
//! # Use from Rust tests
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use routeros_sim::{Fault, Fleet, SimConfig, Target};
//! let fleet = Fleet::start(SimConfig { devices: 3, ..SimConfig::for_tests() }).await?;
//! let tls = fleet.device_addr(0);            // 127.x.y.z:8729, cert signed by fleet.ca_cert_pem()
//! let plain = fleet.plain_addr(0);           // Some(127.x.y.z:8728) with for_tests()
//! let (user, password) = fleet.credentials(); // ("admin", "drover-sim")
//! let (user, password) = (user.to_owned(), password.to_owned());
//! fleet.set_fault(Target::Index(1), Fault::RefuseLogin);
//! let polls = fleet.stats(0).polls_served;   // one poll = one /system/resource/print
//! fleet.reboot(2);
//! fleet.shutdown().await;
//! # let _ = (tls, plain, user, password, polls); Ok(()) }
//! ```
//! [`SimConfig::for_tests`] picks a random base address in 127.64.0.0–127.250.255.255 (and
//! another one on `AddrInUse`), so tests in parallel processes do not collide. A process
//! may hold about as many devices as half its open-file limit (a listener and a connection
//! each; twice that with the plain port); raise `ulimit -n` for large in-process fleets.
//!
//! # Behaviour
//! - Login: `/login =name= =password=` (6.43+), and the legacy challenge (bare `/login` →
//!   `!done =ret=<32 hex>`, then `=response=00<md5>`); a device with `legacy_login` answers
//!   the modern sentence with a challenge too. Failures: `invalid user name or password (6)`,
//!   legacy `cannot log in`, each as `!trap` + `!done`; the 5th failure on one connection
//!   ends it with `!fatal`. Before login any other command gets `!trap =message=not logged in`
//!   + `!done`, and the third such command ends the session with `!fatal not logged in`.
//! - Commands run concurrently, each in its own task; every reply carries the command's
//!   `.tag` right after the reply word. `/cancel` answers `!trap .tag=X =category=2
//!   =message=interrupted`, then its own `!done`, then `!done .tag=X` (with `!empty` before it
//!   for a stream that sent no rows, on 7.18+). `/quit` → `!fatal session terminated on
//!   request` and close. Malformed framing → `!fatal` and close.
//! - Menus: see [`commands`] for the list; `print`/`getall` honour `.proplist`, queries and
//!   `count-only`; zero rows give `!empty` + `!done` when the version is ≥ 7.18.
//! - Counters ([`DeviceStats`]): a *poll* is one `/system/resource/print` (or `getall`)
//!   served after login; the unix-ms times of the last 64 polls are kept.
//!
//! # Layout
//! - [`config`]: [`SimConfig`], addressing (consecutive 127.x addresses skipping .0/.255),
//!   seeded per-device choices.
//! - [`fleet`]: [`Fleet`], the in-process API.
//! - `device`: one device's state and life cycle (reboot, flap, dropped connections).
//! - `listener`: accept loops, accept-time faults, TLS handshakes.
//! - `session`: one API session (framing, login, tagged concurrent commands, cancel).
//! - [`commands`]: dispatch of a command to replies or streams; `menus` (generated rows) and
//!   `tables` (the mutable configuration tree).
//! - [`fault`]: [`Fault`], [`Target`], the per-device [`fault::FaultSet`].
//! - [`stats`]: the per-device counters, [`DeviceStats`].
//! - [`tls`]: the CA and lazily made per-device leaf certificates (IP SAN).
//! - [`control`]: the HTTP/JSON control API (`/health`, `/devices`, `/stats`, `/faults`,
//!   `/reboot`, `/ca.pem`), over one local fleet or fanned out to worker processes.
//! - `http`: a tiny bounded HTTP/1.1 server and client.
//! - [`supervisor`]: the `drover-sim` multi-process mode (parent + workers by address range).

pub mod commands;
pub mod config;
pub mod control;
mod device;
pub mod fault;
pub mod fleet;
mod format;
mod http;
mod listener;
mod menus;
mod model;
mod session;
pub mod stats;
mod stop;
pub mod supervisor;
mod tables;
pub mod tls;

pub use config::{CaPem, SimConfig, device_address, in_share};
pub use fault::{Fault, GarbageKind, Latency, StallMode, Target};
pub use fleet::{DeviceInfo, Fleet};
pub use stats::DeviceStats;
