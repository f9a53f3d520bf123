//! Who should own a shard: rendezvous (highest-random-weight) hashing over the live poller
//! nodes, and the per-tick plan (take, give up) with a rate limit on moves.
//!
//! The weight is a fixed function of the node name and the shard (FNV-1a then the splitmix64
//! finaliser), so every node — whatever its Rust version — computes the same owner from the
//! same member list. Adding or removing a node changes the owner only of the shards that node
//! wins or held: about 1/N of them.

use std::collections::{BTreeSet, HashMap};

/// The weight of `node` for `shard`; the live node with the highest weight owns the shard.
pub fn weight(node: &str, shard: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes().iter().chain(shard.to_be_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The preferred owner of `shard` among `nodes` (ties, which need equal 64-bit weights,
/// go to the smaller name).
pub fn owner<'a, I>(nodes: I, shard: u32) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a String>,
{
    nodes
        .into_iter()
        .map(|n| (weight(n, shard), std::cmp::Reverse(n.as_str())))
        .max()
        .map(|(_, std::cmp::Reverse(n))| n)
}

/// Owners of every shard `0..shards` among `nodes`.
pub fn assignment(nodes: &BTreeSet<String>, shards: u32) -> HashMap<u32, String> {
    (0..shards)
        .filter_map(|s| owner(nodes, s).map(|o| (s, o.to_owned())))
        .collect()
}

/// What this node should do with its shards now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Shards this node should own and does not hold: try to take their leases.
    pub acquire: Vec<u32>,
    /// Shards this node holds but another live node should own: hand them over.
    pub release: Vec<u32>,
    /// Releases held back by the rate limit (done in later ticks).
    pub deferred: usize,
}

/// Plans one tick. `ring` is the set of live poller nodes (this node included when it polls
/// and is not draining); `held` the shards whose leases this node holds. At most
/// `max_releases` shards are given up per tick, so a membership change moves shards in
/// bounded steps; when this node is not in the ring at all (draining, api-only) everything
/// is released at once. Shards in `pinned` (taken too recently) are not handed over while
/// this node is in the ring: no shard moves twice within the minimum ownership time.
pub fn plan(
    me: &str,
    ring: &BTreeSet<String>,
    held: &BTreeSet<u32>,
    pinned: &BTreeSet<u32>,
    shards: u32,
    max_releases: usize,
) -> Plan {
    let mut p = Plan::default();
    let in_ring = ring.contains(me);
    for s in 0..shards {
        let preferred = owner(ring, s);
        let mine = preferred == Some(me);
        let holds = held.contains(&s);
        if mine && !holds {
            p.acquire.push(s);
        } else if holds && !mine && (!in_ring || (preferred.is_some() && !pinned.contains(&s))) {
            p.release.push(s);
        }
    }
    if in_ring && p.release.len() > max_releases {
        p.deferred = p.release.len() - max_releases;
        p.release.truncate(max_releases);
    }
    p
}

/// Hysteresis for members entering the ring: a node counts only after it has been seen
/// alive continuously for `hold`. A node that flaps keeps restarting its hold and so never
/// moves shards; a node that dies leaves the ring at once (its shards need an owner).
#[derive(Debug, Clone)]
pub struct Hysteresis {
    hold: std::time::Duration,
    alive_since: HashMap<String, std::time::Instant>,
    /// Admitted without a hold (found already there when this node started).
    admitted: BTreeSet<String>,
}

impl Hysteresis {
    pub fn new(hold: std::time::Duration) -> Self {
        Self {
            hold,
            alive_since: HashMap::new(),
            admitted: BTreeSet::new(),
        }
    }

    /// Admits `alive` at once: members that were there before this node joined.
    pub fn admit(&mut self, alive: &BTreeSet<String>) {
        self.admitted.retain(|n| alive.contains(n));
        self.admitted.extend(alive.iter().cloned());
    }

    /// Feeds the set of nodes alive now; returns the ones that have been alive for `hold`.
    pub fn update(
        &mut self,
        alive: &BTreeSet<String>,
        now: std::time::Instant,
    ) -> BTreeSet<String> {
        self.alive_since.retain(|n, _| alive.contains(n));
        self.admitted.retain(|n| alive.contains(n));
        for n in alive {
            self.alive_since.entry(n.clone()).or_insert(now);
        }
        self.alive_since
            .iter()
            .filter(|(n, since)| {
                self.admitted.contains(*n) || now.saturating_duration_since(**since) >= self.hold
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shards_spread_evenly() {
        let ring = set(&["a", "b", "c"]);
        let a = assignment(&ring, 4096);
        for n in &ring {
            let c = a.values().filter(|o| *o == n).count();
            assert!((1200..=1540).contains(&c), "{n}: {c}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_shards_to_it() {
        let before = assignment(&set(&["a", "b", "c"]), 4096);
        let after = assignment(&set(&["a", "b", "c", "d"]), 4096);
        let moved: Vec<u32> = (0..4096).filter(|s| before[s] != after[s]).collect();
        assert!(moved.iter().all(|s| after[s] == "d"));
        assert!((800..=1250).contains(&moved.len()), "{}", moved.len());
    }

    #[test]
    fn removing_a_node_moves_only_its_shards() {
        let before = assignment(&set(&["a", "b", "c"]), 4096);
        let after = assignment(&set(&["a", "c"]), 4096);
        for s in 0..4096 {
            if before[&s] != "b" {
                assert_eq!(before[&s], after[&s], "shard {s} moved needlessly");
            } else {
                assert_ne!(after[&s], "b");
            }
        }
    }

    #[test]
    fn plan_takes_preferred_and_releases_rate_limited() {
        let ring = set(&["a", "b"]);
        let all: BTreeSet<u32> = (0..4096).collect();
        let p = plan("a", &ring, &all, &BTreeSet::new(), 4096, 100);
        assert!(p.acquire.is_empty());
        assert_eq!(p.release.len(), 100);
        let owned_by_b = assignment(&ring, 4096)
            .values()
            .filter(|o| *o == "b")
            .count();
        assert_eq!(p.deferred, owned_by_b - 100);
        assert!(p.release.iter().all(|s| owner(&ring, *s) == Some("b")));

        let none = BTreeSet::new();
        let p = plan("a", &ring, &none, &BTreeSet::new(), 4096, 100);
        assert_eq!(p.acquire.len(), 4096 - owned_by_b);
        assert!(p.release.is_empty());
    }

    #[test]
    fn recently_taken_shards_are_not_handed_over() {
        let ring = set(&["a", "b"]);
        let held: BTreeSet<u32> = (0..64).collect();
        let pinned: BTreeSet<u32> = (0..32).collect();
        let p = plan("a", &ring, &held, &pinned, 4096, 1000);
        assert!(!p.release.is_empty());
        assert!(p.release.iter().all(|s| *s >= 32));
    }

    #[test]
    fn draining_node_releases_everything_at_once() {
        let ring = set(&["b"]);
        let held: BTreeSet<u32> = (0..10).collect();
        let p = plan("a", &ring, &held, &held, 4096, 1);
        assert_eq!(p.release.len(), 10);
        assert_eq!(p.deferred, 0);
        // Alone and not a poller: nothing to acquire, everything to give up.
        let p = plan("a", &BTreeSet::new(), &held, &held, 4096, 1);
        assert_eq!(p.release.len(), 10);
        assert!(p.acquire.is_empty());
    }

    #[test]
    fn hysteresis_admits_only_stable_members() {
        let mut h = Hysteresis::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(h.update(&set(&["a"]), t0).is_empty());
        assert_eq!(
            h.update(&set(&["a"]), t0 + Duration::from_secs(5)),
            set(&["a"])
        );
        // b flaps: up, down, up again — its hold restarts each time.
        h.update(&set(&["a", "b"]), t0 + Duration::from_secs(6));
        h.update(&set(&["a"]), t0 + Duration::from_secs(9));
        let r = h.update(&set(&["a", "b"]), t0 + Duration::from_secs(10));
        assert_eq!(r, set(&["a"]));
        let r = h.update(&set(&["a", "b"]), t0 + Duration::from_secs(14));
        assert_eq!(r, set(&["a"]));
        let r = h.update(&set(&["a", "b"]), t0 + Duration::from_secs(15));
        assert_eq!(r, set(&["a", "b"]));
        // A dead member leaves at once.
        assert_eq!(
            h.update(&set(&["b"]), t0 + Duration::from_secs(16)),
            set(&["b"])
        );
    }
}
