//! Device actors against simulated routers over real TLS: persistent sessions, reconnects
//! after reboots and faults, auth back-off, offline detection, live spec changes, spread
//! first polls, commands beside polling, and slot catch-up and spacing on the wall-clock grid.

#![allow(clippy::unwrap_used)] // test helpers: a poisoned lock is a test bug

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_testkit::eventually;

use drover_device::{
    DeviceActor, DeviceArgs, DeviceMsg, DevicePolicy, DeviceSnapshot, DeviceSpec, DeviceTimers,
    Progress,
};
use drover_model::{DeviceId, DeviceStatus, Event, TenantId};
use ractor::{Actor, ActorRef};
use routeros_client::{Command, Credentials, Transport};
use routeros_sim::{Fault, Fleet, GarbageKind, SimConfig, StallMode, Target};

fn policy() -> DevicePolicy {
    DevicePolicy {
        connect_timeout: Duration::from_millis(500),
        login_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(800),
        reconnect_first: Duration::from_millis(50),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        auth_retry: Duration::from_secs(1),
        offline_after_misses: 3,
        first_poll_spread: Duration::from_millis(200),
        ..DevicePolicy::default()
    }
}

struct Harness {
    fleet: Fleet,
    events: Arc<Mutex<Vec<Event>>>,
    tenant: TenantId,
}

impl Harness {
    async fn new(devices: usize) -> Self {
        let fleet = Fleet::start(SimConfig {
            devices,
            ..SimConfig::for_tests()
        })
        .await
        .expect("simulator starts");
        Self {
            fleet,
            events: Arc::new(Mutex::new(Vec::new())),
            tenant: TenantId::new_random(),
        }
    }

    fn spec(&self, i: usize, interval: Duration) -> DeviceSpec {
        let (user, password) = self.fleet.credentials();
        DeviceSpec {
            id: DeviceId::new_random(),
            tenant_id: self.tenant,
            host: self.fleet.ip(i).to_string(),
            port: Some(self.fleet.device_addr(i).port()),
            transport: Transport::insecure(),
            credentials: Credentials::new(user, password),
            poll_interval: interval,
        }
    }

    async fn spawn(&self, spec: DeviceSpec, policy: DevicePolicy) -> ActorRef<DeviceMsg> {
        let events = self.events.clone();
        let args = DeviceArgs {
            spec: Arc::new(spec),
            policy: Arc::new(policy),
            events: Arc::new(move |e| events.lock().unwrap().push(e)),
            handshakes: Arc::new(tokio::sync::Semaphore::new(16)),
            timers: DeviceTimers::new(),
            progress: Arc::new(Progress::default()),
            epoch: 0,
        };
        let (actor, _) = Actor::spawn(None, DeviceActor, args).await.expect("spawns");
        actor
    }

    fn statuses(&self, device: DeviceId) -> Vec<DeviceStatus> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::DeviceStatus(s)
                    if s.device_id == device && s.previous_status != Some(s.status) =>
                {
                    Some(s.status)
                }
                _ => None,
            })
            .collect()
    }

    fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| pred(e))
            .count()
    }
}

async fn snapshot(actor: &ActorRef<DeviceMsg>) -> DeviceSnapshot {
    ractor::call_t!(actor, DeviceMsg::Snapshot, 2_000).expect("snapshot")
}

#[tokio::test]
async fn one_session_serves_many_polls_and_metrics_flow() {
    let h = Harness::new(1).await;
    let spec = h.spec(0, Duration::from_millis(150));
    let id = spec.id;
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(5),
        h.fleet.stats(0).polls_served >= 6
    ));
    assert_eq!(
        h.fleet.stats(0).logins_ok,
        1,
        "the session persists across polls"
    );
    assert_eq!(
        h.statuses(id),
        vec![DeviceStatus::Online],
        "online announced once"
    );
    let snap = snapshot(&actor).await;
    assert_eq!(snap.status, DeviceStatus::Online);
    assert!(snap.facts.routeros_version.is_some());
    assert!(snap.certificate_fingerprint.is_some());
    // Metrics carry derived values, and rates appear from the second sample on.
    assert!(eventually!(
        Duration::from_secs(3),
        h.count(|e| matches!(e, Event::Metrics(m) if m.device_id == id
            && m.cpu_percent.is_some() && m.memory_percent.is_some()
            && m.interfaces.iter().any(|i| i.rx_bps.is_some())))
            > 0
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_a_reboot_and_reports_it() {
    let h = Harness::new(1).await;
    let spec = h.spec(0, Duration::from_millis(150));
    let id = spec.id;
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(5),
        h.fleet.stats(0).polls_served >= 3
    ));
    h.fleet.reboot(0);
    assert!(eventually!(
        Duration::from_secs(8),
        h.fleet.stats(0).logins_ok >= 2
    ));
    assert!(eventually!(
        Duration::from_secs(5),
        h.count(|e| matches!(e, Event::DeviceStatus(s) if s.device_id == id
            && s.reason.as_deref().is_some_and(|r| r.starts_with("rebooted"))))
            == 1
    ));
    assert!(eventually!(
        Duration::from_secs(3),
        snapshot(&actor).await.status == DeviceStatus::Online
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_drops_stalls_and_garbage() {
    let h = Harness::new(1).await;
    let spec = h.spec(0, Duration::from_millis(150));
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(5),
        h.fleet.stats(0).polls_served >= 2
    ));
    let faults = [
        Fault::Drop { after_replies: 0 },
        Fault::Stall {
            mode: StallMode::AfterLogin,
        },
        Fault::Garbage {
            bytes: GarbageKind::ControlByte,
            after_replies: 0,
        },
    ];
    for fault in faults {
        // Start each round from a healthy, polled session.
        assert!(eventually!(Duration::from_secs(5), {
            let s = snapshot(&actor).await;
            s.connected && s.missed_polls == 0
        }));
        let logins = h.fleet.stats(0).logins_ok;
        h.fleet.set_fault(Target::Index(0), fault.clone());
        // The session dies: the device stops being polled successfully.
        assert!(
            eventually!(
                Duration::from_secs(6),
                !snapshot(&actor).await.connected || snapshot(&actor).await.missed_polls > 0
            ),
            "{fault:?} was not noticed"
        );
        h.fleet.clear_faults(Target::Index(0));
        let polls = h.fleet.stats(0).polls_served;
        assert!(
            eventually!(
                Duration::from_secs(8),
                h.fleet.stats(0).logins_ok > logins && h.fleet.stats(0).polls_served > polls + 1
            ),
            "no recovery after {fault:?}: {:?} {:?}",
            snapshot(&actor).await,
            h.fleet.stats(0)
        );
    }
    assert!(eventually!(
        Duration::from_secs(3),
        snapshot(&actor).await.status == DeviceStatus::Online
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn rejected_credentials_are_not_hammered() {
    let h = Harness::new(1).await;
    h.fleet.set_fault(Target::Index(0), Fault::RefuseLogin);
    let spec = h.spec(0, Duration::from_millis(100));
    let id = spec.id;
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(3),
        h.statuses(id) == vec![DeviceStatus::AuthFailed]
    ));
    let failed_then = h.fleet.stats(0).logins_failed;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let retries = h.fleet.stats(0).logins_failed - failed_then;
    // auth_retry is 1 s ±25 %: at most 3 attempts in 2.6 s, where polling-rate retries
    // would have made about 26.
    assert!(retries <= 3, "{retries} login attempts in 2.6 s");
    assert_eq!(
        snapshot(&actor).await.status,
        DeviceStatus::AuthFailed,
        "not offline"
    );
    // Fixing the credentials on the device side: the next retry logs in.
    h.fleet.clear_faults(Target::Index(0));
    assert!(eventually!(
        Duration::from_secs(4),
        snapshot(&actor).await.status == DeviceStatus::Online
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn offline_after_the_configured_misses_then_back_online() {
    let h = Harness::new(1).await;
    h.fleet
        .set_fault(Target::Index(0), Fault::Drop { after_replies: 0 });
    let spec = h.spec(0, Duration::from_millis(100));
    let id = spec.id;
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(3),
        h.statuses(id) == vec![DeviceStatus::Offline]
    ));
    let snap = snapshot(&actor).await;
    assert!(snap.missed_polls >= 3);
    assert!(snap.reason.unwrap_or_default().contains("polls missed"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        h.statuses(id),
        vec![DeviceStatus::Offline],
        "offline announced once"
    );
    h.fleet.clear_faults(Target::Index(0));
    assert!(eventually!(
        Duration::from_secs(5),
        h.statuses(id) == vec![DeviceStatus::Offline, DeviceStatus::Online]
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn an_address_change_reaches_the_running_actor() {
    let h = Harness::new(2).await;
    let spec = h.spec(0, Duration::from_millis(100));
    let actor = h.spawn(spec.clone(), policy()).await;
    assert!(eventually!(
        Duration::from_secs(5),
        h.fleet.stats(0).polls_served >= 2
    ));
    let moved = DeviceSpec {
        host: h.fleet.ip(1).to_string(),
        port: Some(h.fleet.device_addr(1).port()),
        ..spec
    };
    actor
        .send_message(DeviceMsg::UpdateSpec(Arc::new(moved)))
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        h.fleet.stats(1).polls_served >= 2
    ));
    let polls_on_old = h.fleet.stats(0).polls_served;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        h.fleet.stats(0).polls_served,
        polls_on_old,
        "old address no longer polled"
    );
    assert_eq!(h.fleet.stats(0).active_connections, 0, "old session closed");
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn first_polls_are_spread_over_the_interval() {
    const N: usize = 40;
    let h = Harness::new(N).await;
    let interval = Duration::from_secs(2);
    let mut actors = Vec::new();
    let policy = DevicePolicy {
        first_poll_spread: interval,
        ..policy()
    };
    for i in 0..N {
        actors.push(h.spawn(h.spec(i, interval), policy.clone()).await);
    }
    assert!(eventually!(
        Duration::from_secs(6),
        (0..N).all(|i| h.fleet.stats(i).polls_served >= 1)
    ));
    let mut firsts: Vec<u64> = (0..N)
        .map(|i| h.fleet.stats(i).recent_polls_unix_ms[0])
        .collect();
    firsts.sort_unstable();
    let span = firsts[N - 1] - firsts[0];
    assert!(
        span >= 1000,
        "first polls within {span} ms of each other: a burst"
    );
    // No 200 ms window holds more than a third of the fleet.
    let worst = firsts
        .iter()
        .map(|&t| firsts.iter().filter(|&&u| u >= t && u < t + 200).count())
        .max()
        .unwrap();
    assert!(worst <= N / 3, "{worst} first polls within 200 ms");
    for a in actors {
        a.stop(None);
    }
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn commands_run_beside_polling_and_changes_are_announced() {
    let h = Harness::new(1).await;
    let spec = h.spec(0, Duration::from_millis(100));
    let id = spec.id;
    let actor = h.spawn(spec, policy()).await;
    assert!(eventually!(
        Duration::from_secs(5),
        snapshot(&actor).await.connected
    ));
    let add = Command::new("/ip/address/add")
        .attr("address", "10.77.0.1/24")
        .attr("interface", "ether3");
    let result = ractor::call_t!(
        actor,
        |reply| DeviceMsg::Execute {
            command: Box::new(add),
            timeout: Duration::from_secs(2),
            reply
        },
        3_000
    )
    .expect("actor answers");
    let new_id = result.expect("add succeeds").ret().map(str::to_owned);
    assert!(new_id.is_some());
    assert!(eventually!(
        Duration::from_secs(2),
        h.count(|e| matches!(e, Event::ConfigChange(c) if c.device_id == id
            && c.menu == "/ip/address" && c.action == "add" && c.item_id == new_id))
            == 1
    ));
    let bad = ractor::call_t!(
        actor,
        |reply| DeviceMsg::Execute {
            command: Box::new(Command::new("/no/such/menu/print")),
            timeout: Duration::from_secs(2),
            reply
        },
        3_000
    )
    .expect("actor answers");
    assert!(bad.is_err());
    let polls = h.fleet.stats(0).polls_served;
    assert!(eventually!(
        Duration::from_secs(2),
        h.fleet.stats(0).polls_served > polls + 2
    ));
    actor.stop(None);
    h.fleet.shutdown().await;
}

/// Unix ms now.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A spec whose wall-clock slot passed `since_ms` ago (its slot offset is the id's stable
/// hash modulo the interval).
fn spec_past_its_slot(
    h: &Harness,
    interval: Duration,
    since_ms: std::ops::Range<u64>,
) -> DeviceSpec {
    let interval_ms = interval.as_millis() as u64;
    loop {
        let spec = h.spec(0, interval);
        let offset = spec.id.stable_hash() % interval_ms;
        let since_slot = (unix_ms() + interval_ms - offset) % interval_ms;
        if since_ms.contains(&since_slot) {
            return spec;
        }
    }
}

/// A new owner starting now is just past the device's slot.
fn spec_just_past_its_slot(h: &Harness, interval: Duration) -> DeviceSpec {
    spec_past_its_slot(h, interval, 100..250)
}

/// A fenced policy on the wall-clock grid: the lease was taken at `idle_since`, handed over
/// by an old owner that stopped polling at `handed_over_at_ms` (its wall clock), if any.
fn fenced(idle_since: std::time::Instant, handed_over_at_ms: Option<u64>) -> DevicePolicy {
    DevicePolicy {
        wall_clock_grid: true,
        fence: Some(drover_device::Fence(Arc::new(move |_| {
            Some(drover_device::FencedLease {
                epoch: 7,
                idle_since,
                handed_over_at_ms,
                leaving_at_ms: None,
            })
        }))),
        ..policy()
    }
}

#[tokio::test]
async fn a_new_owner_catches_up_a_slot_nobody_served_but_never_one_the_old_owner_served() {
    let h = Harness::new(1).await;
    let interval = Duration::from_secs(4);

    // Handed over by an owner that stopped 5 s ago (nobody polled since): the slot that
    // just passed is caught up as soon as the session is up, and the next poll keeps the grid.
    let spec = spec_just_past_its_slot(&h, interval);
    let start = unix_ms();
    let actor = h
        .spawn(spec, fenced(std::time::Instant::now(), Some(start - 5000)))
        .await;
    assert!(eventually!(
        Duration::from_secs(8),
        h.fleet.stats(0).polls_served >= 2
    ));
    let polls = h.fleet.stats(0).recent_polls_unix_ms;
    let first_after = polls[0] - start;
    assert!(
        first_after < 1200,
        "the missed slot was caught up after {first_after} ms (window 1.2 s)"
    );
    let spacing = polls[1] - polls[0];
    assert!(
        spacing >= 2800,
        "two polls {spacing} ms apart: twice in one interval"
    );
    actor.stop(None);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Handed over by an owner that stopped just now, after the slot that just passed (it
    // served that slot): no catch-up, the first poll waits for the next slot.
    let before = h.fleet.stats(0).polls_served;
    let spec = spec_just_past_its_slot(&h, interval);
    let start = unix_ms();
    let actor = h
        .spawn(spec, fenced(std::time::Instant::now(), Some(start)))
        .await;
    assert!(eventually!(
        Duration::from_secs(8),
        h.fleet.stats(0).polls_served > before
    ));
    let first = *h.fleet.stats(0).recent_polls_unix_ms.last().unwrap();
    assert!(
        first - start >= 3500,
        "polled {} ms after start: a slot the old owner may have served",
        first - start
    );
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn a_late_catch_up_skips_the_next_slot_instead_of_polling_twice() {
    let h = Harness::new(1).await;
    let interval = Duration::from_secs(4);
    // The slot passed 2 s ago (half an interval, past the 30 % window) and nobody served it.
    let spec = spec_past_its_slot(&h, interval, 2000..2200);
    let start = unix_ms();
    let actor = h
        .spawn(
            spec,
            // Taken 10 s ago after an expiry (no marker): nobody polled since.
            fenced(std::time::Instant::now() - Duration::from_secs(10), None),
        )
        .await;
    assert!(eventually!(
        Duration::from_secs(10),
        h.fleet.stats(0).polls_served >= 2
    ));
    let polls = h.fleet.stats(0).recent_polls_unix_ms;
    assert!(
        polls[0] - start < 600,
        "caught up after {} ms",
        polls[0] - start
    );
    // The next slot was ≈2 s away: skipped; the one after it ≈6 s away is polled.
    let spacing = polls[1] - polls[0];
    assert!(
        (5000..7000).contains(&spacing),
        "second poll {spacing} ms after the catch-up"
    );
    actor.stop(None);
    h.fleet.shutdown().await;
}

#[tokio::test] // one thread: blocking it stalls the actor, as an overloaded node would
async fn a_poll_sent_late_makes_the_next_slot_skip_instead_of_polling_twice() {
    let h = Harness::new(1).await;
    let interval = Duration::from_secs(4);
    // The first slot comes ≈1.6 s after the start.
    let spec = spec_past_its_slot(&h, interval, 2300..2500);
    let actor = h
        .spawn(
            spec,
            DevicePolicy {
                wall_clock_grid: true,
                ..policy()
            },
        )
        .await;
    assert!(eventually!(
        Duration::from_secs(6),
        h.fleet.stats(0).polls_served >= 1
    ));
    let first = h.fleet.stats(0).recent_polls_unix_ms[0];
    // Stall the whole runtime from just before the second slot to 60 % of an interval after
    // it: that slot's poll goes out 2.4 s late, 1.6 s before the third slot.
    let second_slot = first + 4000;
    tokio::time::sleep(Duration::from_millis(second_slot - 300 - unix_ms())).await;
    std::thread::sleep(Duration::from_millis(300 + 2400));
    assert!(eventually!(
        Duration::from_secs(10),
        h.fleet.stats(0).polls_served >= 3
    ));
    let polls = h.fleet.stats(0).recent_polls_unix_ms;
    let late = polls[1] - second_slot;
    assert!(
        (2000..3500).contains(&late),
        "the stalled poll went out {late} ms after its slot"
    );
    // The third slot (1.6 s after the late poll) is skipped; the fourth is polled.
    let spacing = polls[2] - polls[1];
    assert!(
        (2800..6500).contains(&spacing),
        "the poll after the late one came {spacing} ms later (at least 2.8 s: 70 % of the interval)"
    );
    let on_grid = (polls[2] - first) % 4000;
    assert!(
        !(300..3700).contains(&on_grid),
        "the grid moved: the next poll is {on_grid} ms off it"
    );
    actor.stop(None);
    h.fleet.shutdown().await;
}
