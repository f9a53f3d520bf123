//! Shard leases against the real Redis on 127.0.0.1:6379: fencing epochs only grow, a stale
//! owner cannot renew or release, expiry is Redis's alone (a node whose clock or timers
//! run far off still cannot make two owners), and batches cover many shards.

#![allow(clippy::unwrap_used)] // test helpers

use std::time::{Duration, Instant};

use drover_cluster::lease::{LeaseConfig, Leases};

const REDIS: &str = "redis://127.0.0.1:6379";

async fn leases(prefix: &str, owner: &str, ttl_ms: u64) -> Leases {
    Leases::connect(
        REDIS,
        LeaseConfig {
            prefix: prefix.to_owned(),
            owner: owner.to_owned(),
            ttl: Duration::from_millis(ttl_ms),
            margin: Duration::from_millis(ttl_ms / 4),
        },
    )
    .await
    .unwrap()
}

fn with_stop(held: &[(u32, u64)]) -> Vec<(u32, u64, u64)> {
    held.iter().map(|(s, e)| (*s, *e, 0)).collect()
}

fn prefix() -> String {
    format!("drover-test:{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

#[tokio::test]
async fn epochs_increase_and_a_stale_owner_cannot_renew_or_release() {
    let p = prefix();
    let a = leases(&p, "node-a", 600).await;
    let b = leases(&p, "node-b", 600).await;

    let ga = a.acquire(&[7]).await.unwrap();
    assert_eq!(ga.len(), 1);
    let epoch_a = ga[0].epoch;
    // Held: nobody else gets it, not even again by its owner.
    assert!(b.acquire(&[7]).await.unwrap().is_empty());
    assert!(a.acquire(&[7]).await.unwrap().is_empty());
    assert_eq!(a.renew(&[(7, epoch_a)]).await.unwrap().len(), 1);

    // a stops renewing; Redis expires the lease; b takes it under a larger epoch.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gb = b.acquire(&[7]).await.unwrap();
    assert_eq!(gb.len(), 1);
    assert!(gb[0].epoch > epoch_a, "{} > {epoch_a}", gb[0].epoch);
    // a wakes up: its renewal and its release both fail, b's lease is untouched.
    assert!(a.renew(&[(7, epoch_a)]).await.unwrap().is_empty());
    assert_eq!(a.release(&[(7, epoch_a, 0)]).await.unwrap(), 0);
    let h = a.holder(7).await.unwrap().unwrap();
    assert_eq!((h.owner.as_str(), h.epoch), ("node-b", gb[0].epoch));
    // b releases; a takes it again with a yet larger epoch.
    assert_eq!(b.release(&[(7, gb[0].epoch, 0)]).await.unwrap(), 1);
    let ga2 = a.acquire(&[7]).await.unwrap();
    assert!(ga2[0].epoch > gb[0].epoch);
}

#[tokio::test]
async fn clock_skew_cannot_make_two_owners() {
    // Node clocks are not an input: the only time that decides expiry is Redis's. Model a
    // node whose clock (or timer) is far behind: it believes its lease is valid long after
    // Redis expired it. Its renewal fails, so it can never hold the shard beside the new
    // owner; and the local deadline it computes is always earlier than Redis's expiry.
    let p = prefix();
    let slow = leases(&p, "slow-clock", 400).await;
    let fast = leases(&p, "fast", 400).await;
    let sent = Instant::now();
    let g = slow.acquire(&[1, 2, 3]).await.unwrap();
    assert_eq!(g.len(), 3);
    assert!(
        g.iter()
            .all(|g| g.valid_until <= sent + Duration::from_millis(400))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = fast.acquire(&[1, 2, 3]).await.unwrap();
    assert_eq!(taken.len(), 3);
    let held: Vec<(u32, u64)> = g.iter().map(|g| (g.shard, g.epoch)).collect();
    assert!(slow.renew(&held).await.unwrap().is_empty());
    for s in [1, 2, 3] {
        assert_eq!(slow.holder(s).await.unwrap().unwrap().owner, "fast");
    }
}

#[tokio::test]
async fn all_shards_in_batches() {
    let p = prefix();
    let a = leases(&p, "a", 5_000).await;
    let b = leases(&p, "b", 5_000).await;
    let all: Vec<u32> = (0..4096).collect();
    let started = Instant::now();
    let got = a.acquire(&all).await.unwrap();
    let took = started.elapsed();
    assert_eq!(got.len(), 4096);
    let held: Vec<(u32, u64)> = got.iter().map(|g| (g.shard, g.epoch)).collect();
    let started = Instant::now();
    assert_eq!(a.renew(&held).await.unwrap().len(), 4096);
    let renew = started.elapsed();
    println!("acquire 4096 shards: {took:?}; renew 4096: {renew:?}");
    assert!(b.acquire(&all).await.unwrap().is_empty());
    assert_eq!(a.release(&with_stop(&held)).await.unwrap(), 4096);
    assert_eq!(b.acquire(&all).await.unwrap().len(), 4096);
}

#[tokio::test]
async fn a_hand_over_tells_the_next_owner_when_polling_stopped() {
    use drover_cluster::lease::unix_ms_now;
    let p = prefix();
    let a = leases(&p, "a", 5_000).await;
    let b = leases(&p, "b", 5_000).await;
    let g = a.acquire(&[3, 4]).await.unwrap();
    // Fresh shards: no marker; idle counts from the grant itself.
    let before = Instant::now();
    let fresh = b.acquire(&[9]).await.unwrap();
    assert_eq!(fresh[0].handed_over_at_ms, None);
    assert!(fresh[0].idle_since >= before);

    // a stopped polling shard 3 at `stopped` and released it later: b learns the stop time.
    let stopped = unix_ms_now() - 300;
    assert_eq!(a.release(&[(3, g[0].epoch, stopped)]).await.unwrap(), 1);
    let got = b.acquire(&[3]).await.unwrap();
    assert_eq!(got[0].handed_over_at_ms, Some(stopped));
    // Read once: the marker went with that acquire. b hands it back; a reads b's marker.
    let b_stop = unix_ms_now();
    assert_eq!(b.release(&[(3, got[0].epoch, b_stop)]).await.unwrap(), 1);
    let again = a.acquire(&[3]).await.unwrap();
    assert_eq!(again[0].handed_over_at_ms, Some(b_stop));
    // A stale owner's release leaves no marker (and does not free the shard).
    assert_eq!(b.release(&[(3, got[0].epoch, stopped)]).await.unwrap(), 0);
    // A lease that expires instead of being released leaves none either.
    let short = leases(&p, "short", 200).await;
    let s = short.acquire(&[11]).await.unwrap();
    assert_eq!(s.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.acquire(&[11]).await.unwrap()[0].handed_over_at_ms, None);
}
