//! One timer task per node for every device actor's poll slots and reconnect back-offs,
//! instead of one sleeping Tokio task per device.
//!
//! A sleeping task costs about 1.5 KB (its cell, a `Sleep` and the actor reference it holds);
//! an entry here costs a B-tree slot of a few dozen bytes. The task sleeps until the
//! earliest deadline, takes every entry that is due and sends each its message. Entries can
//! be cancelled exactly ([`DeviceTimers::cancel`]): a stopped actor leaves nothing behind.
//!
//! A message may still arrive after its entry was cancelled or replaced (the task took it
//! just before): [`DeviceMsg::PollDue`] carries its timer's sequence number so the actor can
//! tell, and a reconnect carries its session generation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ractor::ActorRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::messages::DeviceMsg;

/// What a timer sends when it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// [`DeviceMsg::PollDue`] with the entry's sequence number.
    Poll,
    /// [`DeviceMsg::Connect`] for this session generation.
    Connect { generation: u64 },
}

/// Identifies one scheduled entry, for [`DeviceTimers::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    at: Instant,
    seq: u64,
}

impl TimerKey {
    /// The entry's sequence number, unique within its [`DeviceTimers`].
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the entry comes due.
    pub fn at(&self) -> Instant {
        self.at
    }
}

struct Entry {
    target: ActorRef<DeviceMsg>,
    wake: Wake,
}

#[derive(Default)]
struct Queue {
    entries: BTreeMap<TimerKey, Entry>,
    next_seq: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the task when an entry earlier than all others arrives, or on close.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes the queue when the last [`DeviceTimers`] clone goes away, so the task ends and
/// releases the actor references it still holds.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.closed = true;
        q.entries.clear();
        drop(q);
        self.0.wake.notify_one();
    }
}

/// The node's device timers. Cheap to clone; the task ends when the last clone is dropped.
#[derive(Clone)]
pub struct DeviceTimers {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for DeviceTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTimers")
            .field("pending", &self.pending())
            .finish()
    }
}

impl DeviceTimers {
    /// Starts the timer task on the current Tokio runtime.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        tokio::spawn(run(shared.clone()));
        Self {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// Sends `target` the message for `wake` at `at` (at once if `at` has passed).
    pub fn schedule(&self, target: &ActorRef<DeviceMsg>, at: Instant, wake: Wake) -> TimerKey {
        let (key, earliest) = {
            let mut q = self.shared.lock();
            q.next_seq += 1;
            let key = TimerKey {
                at,
                seq: q.next_seq,
            };
            q.entries.insert(
                key,
                Entry {
                    target: target.clone(),
                    wake,
                },
            );
            let earliest = q.entries.first_key_value().is_some_and(|(k, _)| *k == key);
            (key, earliest)
        };
        if earliest {
            self.shared.wake.notify_one();
        }
        key
    }

    /// Removes an entry that has not come due yet; a no-op for one that has.
    pub fn cancel(&self, key: TimerKey) {
        self.shared.lock().entries.remove(&key);
    }

    /// Entries waiting to come due.
    pub fn pending(&self) -> usize {
        self.shared.lock().entries.len()
    }
}

impl Default for DeviceTimers {
    fn default() -> Self {
        Self::new()
    }
}

async fn run(shared: Arc<Shared>) {
    let mut due = Vec::new();
    loop {
        let next = {
            let mut q = shared.lock();
            if q.closed {
                return;
            }
            let now = Instant::now();
            while let Some(entry) = q.entries.first_entry() {
                if entry.key().at > now {
                    break;
                }
                let (key, entry) = entry.remove_entry();
                due.push((key.seq, entry));
            }
            q.entries.first_key_value().map(|(k, _)| k.at)
        };
        // Sent outside the lock: actors scheduling their next slot are never held up.
        for (seq, Entry { target, wake }) in due.drain(..) {
            let msg = match wake {
                Wake::Poll => DeviceMsg::PollDue { timer: seq },
                Wake::Connect { generation } => DeviceMsg::Connect { generation },
            };
            // An actor that has stopped no longer wants it.
            let _ = target.send_message(msg);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ractor::{Actor, ActorProcessingErr};
    use tokio::sync::mpsc;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Forwards what it receives, with the time it arrived.
    struct Recorder;

    impl Actor for Recorder {
        type Msg = DeviceMsg;
        type State = mpsc::UnboundedSender<(String, Instant)>;
        type Arguments = mpsc::UnboundedSender<(String, Instant)>;

        async fn pre_start(
            &self,
            _myself: ActorRef<DeviceMsg>,
            out: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(out)
        }

        async fn handle(
            &self,
            _myself: ActorRef<DeviceMsg>,
            msg: DeviceMsg,
            out: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let text = match msg {
                DeviceMsg::PollDue { timer } => format!("poll {timer}"),
                DeviceMsg::Connect { generation } => format!("connect {generation}"),
                other => format!("{other:?}"),
            };
            let _ = out.send((text, Instant::now()));
            Ok(())
        }
    }

    async fn recorder() -> (
        ActorRef<DeviceMsg>,
        mpsc::UnboundedReceiver<(String, Instant)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Recorder, tx).await.expect("spawns");
        (actor, rx)
    }

    #[tokio::test]
    async fn entries_fire_in_deadline_order_and_not_before_it() {
        let timers = DeviceTimers::new();
        let (actor, mut rx) = recorder().await;
        let start = Instant::now();
        let late = timers.schedule(&actor, start + ms(300), Wake::Poll);
        let early = timers.schedule(&actor, start + ms(100), Wake::Connect { generation: 7 });
        let middle = timers.schedule(&actor, start + ms(200), Wake::Poll);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.expect("fires"));
        }
        assert_eq!(
            got.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            vec![
                "connect 7".to_owned(),
                format!("poll {}", middle.seq()),
                format!("poll {}", late.seq()),
            ]
        );
        for ((_, arrived), key) in got.iter().zip([early, middle, late]) {
            assert!(*arrived >= key.at(), "fired before its deadline");
            // Generous: the machine may be busy; a tick of the old design was 1 ms.
            assert!(
                *arrived - key.at() < ms(80),
                "fired late: {:?}",
                *arrived - key.at()
            );
        }
        assert_eq!(timers.pending(), 0);
        actor.stop(None);
    }

    #[tokio::test]
    async fn an_earlier_entry_wakes_a_task_sleeping_on_a_later_one() {
        let timers = DeviceTimers::new();
        let (actor, mut rx) = recorder().await;
        let start = Instant::now();
        timers.schedule(&actor, start + Duration::from_secs(60), Wake::Poll);
        // Let the task go to sleep until the 60 s entry.
        tokio::time::sleep(ms(20)).await;
        let soon = timers.schedule(&actor, start + ms(100), Wake::Poll);
        let (msg, arrived) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the earlier entry fired without waiting for the later one")
            .expect("fires");
        assert_eq!(msg, format!("poll {}", soon.seq()));
        assert!(arrived >= soon.at());
        assert_eq!(timers.pending(), 1, "the 60 s entry still waits");
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_cancelled_entry_never_fires_and_is_not_kept() {
        let timers = DeviceTimers::new();
        let (actor, mut rx) = recorder().await;
        let start = Instant::now();
        let cancelled = timers.schedule(&actor, start + ms(100), Wake::Poll);
        let kept = timers.schedule(&actor, start + ms(200), Wake::Poll);
        timers.cancel(cancelled);
        assert_eq!(timers.pending(), 1);
        let (msg, _) = rx.recv().await.expect("fires");
        assert_eq!(msg, format!("poll {}", kept.seq()));
        tokio::time::sleep(ms(200)).await;
        assert!(rx.try_recv().is_err(), "the cancelled entry fired");
        // Cancelling one that already fired changes nothing.
        timers.cancel(kept);
        assert_eq!(timers.pending(), 0);
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_fires_at_once() {
        let timers = DeviceTimers::new();
        let (actor, mut rx) = recorder().await;
        tokio::time::sleep(ms(600)).await;
        let start = Instant::now();
        let key = timers.schedule(&actor, start - ms(500), Wake::Poll);
        let (msg, arrived) = rx.recv().await.expect("fires");
        assert_eq!(msg, format!("poll {}", key.seq()));
        assert!(arrived - start < ms(80), "{:?}", arrived - start);
        actor.stop(None);
    }

    #[tokio::test]
    async fn the_task_ends_and_lets_go_of_its_actors_when_the_last_clone_drops() {
        let timers = DeviceTimers::new();
        let (actor, _rx) = recorder().await;
        let weak = Arc::downgrade(&timers.shared);
        timers.schedule(
            &actor,
            Instant::now() + Duration::from_secs(3600),
            Wake::Poll,
        );
        let clone = timers.clone();
        drop(timers);
        assert_eq!(clone.pending(), 1, "a clone keeps the queue alive");
        drop(clone);
        // The task holds the last strong reference until it sees the queue closed.
        tokio::time::timeout(Duration::from_secs(5), async {
            while weak.strong_count() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the timer task ended");
        actor.stop(None);
    }
}
