//! Per-device counters that tests read: connections, logins, commands by path, polls.
//!
//! A *poll* is one `/system/resource/print` (or `getall`) served to a logged-in session; the
//! unix-ms times of the last [`RECENT_POLLS`] polls are kept so a test can prove that no device
//! was polled twice within one interval.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How many poll timestamps each device keeps.
pub const RECENT_POLLS: usize = 64;

/// A snapshot of one device's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStats {
    pub index: usize,
    pub address: String,
    pub connections_accepted: u64,
    pub active_connections: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Commands served after login, by command path as sent (unknown paths count under
    /// `"(unknown)"`); `/login` attempts are counted here too.
    pub commands_served: BTreeMap<String, u64>,
    pub commands_total: u64,
    pub polls_served: u64,
    /// Unix ms of the last [`RECENT_POLLS`] polls, oldest first.
    pub recent_polls_unix_ms: Vec<u64>,
    pub reboots: u64,
    pub uptime_ms: u64,
}

/// The live counters of one device.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) active_connections: AtomicU64,
    pub(crate) logins_ok: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
    pub(crate) commands_total: AtomicU64,
    pub(crate) polls_served: AtomicU64,
    pub(crate) reboots: AtomicU64,
    detail: Mutex<Detail>,
}

#[derive(Debug, Default)]
struct Detail {
    by_path: BTreeMap<&'static str, u64>,
    recent_polls: VecDeque<u64>,
}

impl Counters {
    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        match self.detail.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a served command. `path` must be a known path (interned) or `"(unknown)"`.
    pub(crate) fn command(&self, path: &'static str) {
        Self::bump(&self.commands_total);
        *self.detail().by_path.entry(path).or_insert(0) += 1;
    }

    pub(crate) fn poll(&self, now_unix_ms: u64) {
        // The counter moves under the same lock as the timestamps, so a snapshot's count and
        // its recent times always agree.
        let mut d = self.detail();
        Self::bump(&self.polls_served);
        if d.recent_polls.len() == RECENT_POLLS {
            d.recent_polls.pop_front();
        }
        d.recent_polls.push_back(now_unix_ms);
    }

    pub(crate) fn snapshot(&self, index: usize, address: String, uptime_ms: u64) -> DeviceStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let d = self.detail();
        DeviceStats {
            index,
            address,
            connections_accepted: load(&self.connections_accepted),
            active_connections: load(&self.active_connections),
            logins_ok: load(&self.logins_ok),
            logins_failed: load(&self.logins_failed),
            commands_served: d
                .by_path
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            commands_total: load(&self.commands_total),
            polls_served: load(&self.polls_served),
            recent_polls_unix_ms: d.recent_polls.iter().copied().collect(),
            reboots: load(&self.reboots),
            uptime_ms,
        }
    }
}
