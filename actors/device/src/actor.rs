//! [`DeviceActor`]: owns one persistent session to one device and its poll schedule. The
//! handlers never wait on the network: connects, polls and commands run in tasks whose
//! results come back as messages, so a slow device never blocks its own mailbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use drover_model::events::{
    ConfigChanged, DeviceStatusChanged, EVENT_VERSION, FirmwareProgress, MetricsSample,
};
use drover_model::{DeviceStatus, Event};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use routeros_client::{Client, Error as ClientError};
use tokio::sync::Semaphore;

use crate::config::{DevicePolicy, DeviceSpec, FencedLease, SLOT_WINDOW};
use crate::messages::{CommandError, DeviceMsg, DeviceSnapshot, PollFinished};
use crate::poll::{self, Baseline, Facts, PollPlan, Radios};
use crate::state::{Effect, Input, Machine};
use crate::timers::{DeviceTimers, TimerKey, Wake};

/// Where a device's events go. The tenant supervisor provides it; it must not block.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Lets a supervisor see whether an actor is stuck inside a handler.
#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    /// Milliseconds since `origin` when the current handler started; 0 when idle.
    busy_since_ms: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            busy_since_ms: AtomicU64::new(0),
        }
    }
}

impl Progress {
    fn enter(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.busy_since_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn exit(&self) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
    }

    /// How long the current handler has been running, if one is.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = self.busy_since_ms.load(Ordering::Relaxed);
        (since != 0).then(|| {
            self.origin
                .elapsed()
                .saturating_sub(Duration::from_millis(since))
        })
    }
}

/// Everything a device actor starts from. Restarting an actor means spawning it again
/// from the same arguments: it holds no state a restart must keep.
#[derive(Clone)]
pub struct DeviceArgs {
    /// Shared with the node's and the tenant supervisor's record of the device: one copy
    /// per device, however many hold it.
    pub spec: Arc<DeviceSpec>,
    pub policy: Arc<DevicePolicy>,
    pub events: EventSink,
    /// Bounds concurrent TLS handshakes across the node.
    pub handshakes: Arc<Semaphore>,
    /// The node's timer task: poll slots and reconnect back-offs come from it.
    pub timers: DeviceTimers,
    pub progress: Arc<Progress>,
    /// Fencing epoch of the shard lease (0 when unsharded).
    pub epoch: u64,
}

impl std::fmt::Debug for DeviceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceArgs")
            .field("device", &self.spec.id)
            .finish_non_exhaustive()
    }
}

/// The name a device actor is registered under.
pub fn device_actor_name(id: drover_model::DeviceId) -> String {
    format!("device:{id}")
}

/// The actor; all its data lives in [`DeviceState`].
#[derive(Debug, Default)]
pub struct DeviceActor;

/// The actor's state.
pub struct DeviceState {
    args: DeviceArgs,
    machine: Machine,
    client: Option<Client>,
    /// Incremented for every connect attempt; results of older attempts are ignored.
    generation: u64,
    connect_timer: Option<TimerKey>,
    connecting: bool,
    /// The pending entry of the next poll slot; a `PollDue` from any other is stale.
    poll_timer: Option<TimerKey>,
    next_poll: tokio::time::Instant,
    /// The slot (planned start) of the last poll this actor sent.
    last_polled_slot: Option<tokio::time::Instant>,
    /// When this actor's last poll actually went out (its task started): no poll follows
    /// sooner than `1 − SLOT_WINDOW` of an interval after it, however late it was.
    last_poll_sent: Option<tokio::time::Instant>,
    /// The poll in flight left later than [`LATE_SEND`] of an interval after its slot (a
    /// catch-up, or a busy node): the device may see it as late as its reply, so the
    /// spacing to the next poll counts from the reply.
    in_flight_late: bool,
    /// The last fenced slot was skipped for lateness (the next one is polled regardless).
    skipped_late: bool,
    /// A slot to skip because a late catch-up served the one before it.
    skip_slot: Option<tokio::time::Instant>,
    /// When this actor started: an unfenced actor catches up only slots after it.
    started: tokio::time::Instant,
    poll_in_flight: bool,
    baseline: Baseline,
    radios: Radios,
    facts: Facts,
    uptime: Option<u64>,
    routerboard_due: Instant,
    firmware_due: Instant,
    last_poll_at: Option<chrono::DateTime<Utc>>,
    polls_ok: u64,
    polls_failed: u64,
    /// Origin of the monotonic clock used for counter rates.
    origin: Instant,
}

impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("device", &self.args.spec.id)
            .field("status", &self.machine.status())
            .finish_non_exhaustive()
    }
}

impl Actor for DeviceActor {
    type Msg = DeviceMsg;
    type State = DeviceState;
    type Arguments = DeviceArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<DeviceMsg>,
        args: DeviceArgs,
    ) -> Result<DeviceState, ActorProcessingErr> {
        // No IO here: a failure in pre_start would go to the spawner, not the supervisor.
        let now = Instant::now();
        Ok(DeviceState {
            machine: Machine::new(&args.policy),
            client: None,
            generation: 0,
            connect_timer: None,
            connecting: false,
            poll_timer: None,
            next_poll: tokio::time::Instant::now(),
            last_polled_slot: None,
            last_poll_sent: None,
            in_flight_late: false,
            skipped_late: false,
            skip_slot: None,
            started: tokio::time::Instant::now(),
            poll_in_flight: false,
            baseline: Baseline::default(),
            radios: Radios::Unknown,
            facts: Facts::default(),
            uptime: None,
            routerboard_due: now,
            firmware_due: now,
            last_poll_at: None,
            polls_ok: 0,
            polls_failed: 0,
            origin: now,
            args,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<DeviceMsg>,
        state: &mut DeviceState,
    ) -> Result<(), ActorProcessingErr> {
        metrics::gauge!("drover_devices", "status" => DeviceStatus::Connecting.as_str())
            .increment(1.0);
        state.start_connect(&myself);
        let first = first_poll_delay(&state.args.spec, &state.args.policy);
        state.schedule_poll(&myself, tokio::time::Instant::now() + first);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<DeviceMsg>,
        state: &mut DeviceState,
    ) -> Result<(), ActorProcessingErr> {
        metrics::gauge!("drover_devices", "status" => state.machine.status().as_str())
            .decrement(1.0);
        if let Some(t) = state.connect_timer.take() {
            state.args.timers.cancel(t);
        }
        if let Some(t) = state.poll_timer.take() {
            state.args.timers.cancel(t);
        }
        if let Some(c) = state.client.take() {
            c.close();
            metrics::gauge!("drover_device_sessions_open").decrement(1.0);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DeviceMsg>,
        msg: DeviceMsg,
        state: &mut DeviceState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.progress.enter();
        match msg {
            DeviceMsg::Connect { generation } => {
                if generation == state.generation {
                    state.connect_timer = None; // it fired: nothing left to cancel
                }
                if generation == state.generation && !state.connecting && state.client.is_none() {
                    state.start_connect(&myself);
                }
            }
            DeviceMsg::ConnectFinished { generation, result } => {
                state.on_connected(&myself, generation, *result);
            }
            DeviceMsg::PollDue { timer } => {
                if state.poll_timer.is_some_and(|t| t.seq() == timer) {
                    state.poll_timer = None;
                    state.on_poll_due(&myself);
                }
            }
            DeviceMsg::PollFinished(done) => {
                let PollFinished {
                    generation,
                    plan,
                    layout,
                    results,
                    started,
                } = *done;
                state.on_poll_finished(&myself, generation, plan, layout, results, started);
            }
            DeviceMsg::Execute {
                command,
                timeout,
                reply,
            } => state.execute(*command, timeout, reply),
            DeviceMsg::UpdateSpec(spec) => state.update_spec(&myself, spec),
            DeviceMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
        }
        state.args.progress.exit();
        Ok(())
    }
}

/// A poll that leaves later than this share of the interval after its slot counts, for
/// the spacing to the next poll, from its reply rather than from when it left.
const LATE_SEND: f64 = 0.1;

/// This node's wall clock, unix ms.
fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The device's wall-clock grid: (interval, offset) in ms; its slots are k·interval + offset
/// since the Unix epoch, the same on every node.
fn grid(spec: &DeviceSpec) -> (u64, u64) {
    let interval_ms = spec.poll_interval.as_millis().max(1) as u64;
    (interval_ms, spec.id.stable_hash() % interval_ms)
}

/// First poll: a stable per-device offset, spread over the interval (at most 30 s), so a
/// fleet that starts together never polls in one burst.
fn first_poll_delay(spec: &DeviceSpec, policy: &DevicePolicy) -> Duration {
    if policy.wall_clock_grid {
        let (interval_ms, offset) = grid(spec);
        let now_ms = unix_ms_now();
        return Duration::from_millis((offset + interval_ms - now_ms % interval_ms) % interval_ms);
    }
    let spread = spec
        .poll_interval
        .min(policy.first_poll_spread)
        .as_millis()
        .max(1) as u64;
    let salt = unix_ms_now() / 3_600_000;
    Duration::from_millis((spec.id.stable_hash() ^ salt) % spread)
}

/// The nominal wall-clock time (unix ms) of the grid slot that passed `ago`: the grid point
/// nearest to now − `ago`.
fn slot_unix_ms(spec: &DeviceSpec, ago: Duration) -> u64 {
    let (interval_ms, offset) = grid(spec);
    let approx = unix_ms_now().saturating_sub(ago.as_millis() as u64);
    let k = (approx.saturating_sub(offset) + interval_ms / 2) / interval_ms;
    k * interval_ms + offset
}

impl DeviceState {
    fn apply(&mut self, myself: &ActorRef<DeviceMsg>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Status { from, to, reason } => self.emit_status(from, to, reason),
                Effect::Connect { after } => self.schedule_connect(myself, after),
                Effect::Disconnect => self.drop_session(),
            }
        }
    }

    fn step(&mut self, myself: &ActorRef<DeviceMsg>, input: Input) {
        let effects = self.machine.step(input);
        self.apply(myself, effects);
    }

    fn emit_status(&self, from: DeviceStatus, to: DeviceStatus, reason: Option<String>) {
        metrics::gauge!("drover_devices", "status" => from.as_str()).decrement(1.0);
        metrics::gauge!("drover_devices", "status" => to.as_str()).increment(1.0);
        metrics::counter!("drover_device_status_changes_total", "to" => to.as_str()).increment(1);
        // Coming online is routine (thousands at start); losing a device is news.
        let reason_text = reason.as_deref().unwrap_or("");
        match to {
            DeviceStatus::Online | DeviceStatus::Connecting => {
                tracing::debug!(device = %self.args.spec.id, %from, %to, "device status changed");
            }
            _ => {
                tracing::info!(device = %self.args.spec.id, %from, %to, reason = reason_text, "device status changed");
            }
        }
        self.emit_status_event(Some(from), to, reason);
    }

    fn emit_status_event(
        &self,
        previous: Option<DeviceStatus>,
        status: DeviceStatus,
        reason: Option<String>,
    ) {
        (self.args.events)(Event::DeviceStatus(DeviceStatusChanged {
            version: EVENT_VERSION,
            device_id: self.args.spec.id,
            tenant_id: self.args.spec.tenant_id,
            status,
            previous_status: previous,
            reason,
            routeros_version: self.facts.routeros_version.clone(),
            board_name: self.facts.board_name.clone(),
            uptime: self.uptime,
            // The shard's current epoch when fenced (it may be newer than the last poll's).
            epoch: self
                .args
                .policy
                .fence
                .as_ref()
                .and_then(|f| (f.0)(self.args.spec.id))
                .map_or(self.args.epoch, |lease| lease.epoch),
            at: Utc::now(),
        }));
    }

    fn schedule_connect(&mut self, myself: &ActorRef<DeviceMsg>, after: Duration) {
        if let Some(t) = self.connect_timer.take() {
            self.args.timers.cancel(t);
        }
        // A connect still in flight belongs to the old generation: its result is ignored.
        self.generation += 1;
        self.connecting = false;
        let generation = self.generation;
        if after.is_zero() {
            self.start_connect(myself);
            return;
        }
        // Jitter of ±25% so devices that failed together do not retry together.
        let jittered = after.mul_f64(0.75 + rand::random::<f64>() * 0.5);
        self.connect_timer = Some(self.args.timers.schedule(
            myself,
            tokio::time::Instant::now() + jittered,
            Wake::Connect { generation },
        ));
    }

    fn start_connect(&mut self, myself: &ActorRef<DeviceMsg>) {
        self.connecting = true;
        let generation = self.generation;
        let options = self.args.spec.connect_options(&self.args.policy);
        let handshakes = self.args.handshakes.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = {
                let _permit = handshakes.acquire_owned().await;
                routeros_client::connect(&options).await
            };
            let _ = me.send_message(DeviceMsg::ConnectFinished {
                generation,
                result: Box::new(result),
            });
        });
    }

    fn on_connected(
        &mut self,
        myself: &ActorRef<DeviceMsg>,
        generation: u64,
        result: Result<Client, ClientError>,
    ) {
        if generation != self.generation {
            if let Ok(stale) = result {
                stale.close();
            }
            return;
        }
        self.connecting = false;
        let effects = match result {
            Ok(client) => {
                metrics::gauge!("drover_device_sessions_open").increment(1.0);
                metrics::counter!("drover_device_connects_total", "outcome" => "ok").increment(1);
                self.client = Some(client);
                // A new session re-learns radios and reads the routerboard again.
                self.radios = Radios::Unknown;
                self.routerboard_due = Instant::now();
                let effects = self.machine.step(Input::Connected);
                self.apply(myself, effects);
                self.catch_up(myself);
                return;
            }
            Err(e) if e.is_auth_failure() => {
                metrics::counter!("drover_device_connects_total", "outcome" => "auth_failed")
                    .increment(1);
                self.machine.step(Input::LoginRejected {
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                metrics::counter!("drover_device_connects_total", "outcome" => "failed")
                    .increment(1);
                tracing::debug!(device = %self.args.spec.id, error = %e, "connect failed");
                self.machine.step(Input::ConnectFailed {
                    reason: e.to_string(),
                })
            }
        };
        self.apply(myself, effects);
    }

    fn drop_session(&mut self) {
        if let Some(c) = self.client.take() {
            c.close();
            metrics::gauge!("drover_device_sessions_open").decrement(1.0);
            metrics::counter!("drover_device_reconnects_total").increment(1);
        }
        self.poll_in_flight = false;
    }

    fn schedule_poll(&mut self, myself: &ActorRef<DeviceMsg>, at: tokio::time::Instant) {
        if let Some(t) = self.poll_timer.take() {
            self.args.timers.cancel(t);
        }
        self.next_poll = at;
        self.poll_timer = Some(self.args.timers.schedule(myself, at, Wake::Poll));
    }

    fn on_poll_due(&mut self, myself: &ActorRef<DeviceMsg>) {
        let planned = self.next_poll;
        let lateness = tokio::time::Instant::now().saturating_duration_since(planned);
        metrics::histogram!("drover_device_poll_lateness_seconds").record(lateness.as_secs_f64());
        // Next slot on the fixed grid: lateness never accumulates.
        let interval = self.poll_interval();
        let mut next = planned + interval;
        let now = tokio::time::Instant::now();
        while next <= now {
            next += interval;
        }
        self.schedule_poll(myself, next);
        if let Some(skip) = self.skip_slot.take()
            && planned.max(skip).duration_since(planned.min(skip)) < interval / 2
        {
            // A late catch-up served the previous slot: this one would come too soon.
            metrics::counter!("drover_device_polls_total", "outcome" => "skipped_after_catch_up")
                .increment(1);
            return;
        }
        if self.too_soon(now) {
            // The previous poll went out late, close to this slot: polling now would poll
            // the device twice within one interval. The grid is kept; the next slot polls.
            self.skipped_late = true;
            tracing::debug!(device = %self.args.spec.id, ?lateness, "poll skipped: the previous one went out too recently");
            metrics::counter!("drover_device_polls_total", "outcome" => "skipped_too_soon")
                .increment(1);
            return;
        }
        if self.args.policy.fence.is_some()
            && lateness > interval.mul_f64(SLOT_WINDOW)
            && !self.skipped_late
        {
            // Served this late, the slot's poll could land close to the next owner's first
            // one; skip it (not the device's fault: no missed poll is counted).
            self.skipped_late = true;
            tracing::debug!(device = %self.args.spec.id, ?lateness, "poll skipped: too late for its slot");
            metrics::counter!("drover_device_polls_total", "outcome" => "skipped_late")
                .increment(1);
            return;
        }
        self.skipped_late = false;
        self.poll_slot(myself, planned);
    }

    fn poll_interval(&self) -> Duration {
        self.args.spec.poll_interval.max(Duration::from_millis(100))
    }

    /// Whether a poll sent at `now` would follow this actor's previous one by less than
    /// `1 − SLOT_WINDOW` of the interval (it went out late, or a catch-up served the slot).
    fn too_soon(&self, now: tokio::time::Instant) -> bool {
        let min_spacing = self.poll_interval().mul_f64(1.0 - SLOT_WINDOW);
        self.last_poll_sent
            .is_some_and(|sent| now.saturating_duration_since(sent) < min_spacing)
    }

    /// After a new session: polls the current slot (the last grid point) now when this
    /// actor has not polled it and no node can have (it lies after the lease's idle point, or
    /// after this actor's start when unfenced). A catch-up later than [`SLOT_WINDOW`] of
    /// the interval makes the next slot skip, so polls stay most of an interval apart while
    /// no device waits two whole intervals because its hand-over straddled a slot.
    fn catch_up(&mut self, myself: &ActorRef<DeviceMsg>) {
        if self.poll_in_flight {
            return;
        }
        let interval = self.poll_interval();
        let now = tokio::time::Instant::now();
        let Some(slot) = self.next_poll.checked_sub(interval) else {
            return;
        };
        if slot > now {
            return;
        }
        if self
            .last_polled_slot
            .is_some_and(|last| slot.saturating_duration_since(last) < interval / 2)
        {
            return;
        }
        let served_by_nobody = match &self.args.policy.fence {
            Some(fence) => match (fence.0)(self.args.spec.id) {
                // The old owner polled exactly the slots whose nominal time its own clock had
                // passed before it stopped: compare nominal times, not instants.
                Some(FencedLease {
                    handed_over_at_ms: Some(stopped_ms),
                    ..
                }) if self.args.policy.wall_clock_grid => {
                    let nominal = slot_unix_ms(&self.args.spec, tokio::time::Instant::now() - slot);
                    nominal >= stopped_ms
                }
                Some(lease) => slot >= tokio::time::Instant::from_std(lease.idle_since),
                None => return,
            },
            None => slot >= self.started,
        };
        if !served_by_nobody {
            tracing::debug!(device = %self.args.spec.id, "no catch-up: the slot may have been served before the hand-over");
            return;
        }
        if self.too_soon(now) {
            tracing::debug!(device = %self.args.spec.id, "no catch-up: this actor polled too recently");
            return;
        }
        let late = now.saturating_duration_since(slot);
        tracing::debug!(device = %self.args.spec.id, ?late, "catching up a slot nobody served");
        if late > interval.mul_f64(SLOT_WINDOW) {
            self.skip_slot = Some(self.next_poll);
        }
        metrics::counter!("drover_device_catch_up_polls_total").increment(1);
        self.poll_slot(myself, slot);
    }

    /// Sends the poll of the slot planned at `slot`, when the fence and the session allow.
    fn poll_slot(&mut self, myself: &ActorRef<DeviceMsg>, slot: tokio::time::Instant) {
        let interval = self.poll_interval();
        if let Some(fence) = &self.args.policy.fence {
            match (fence.0)(self.args.spec.id) {
                Some(FencedLease {
                    leaving_at_ms: Some(leaving),
                    ..
                }) if !self.args.policy.wall_clock_grid
                    || slot_unix_ms(
                        &self.args.spec,
                        tokio::time::Instant::now().saturating_duration_since(slot),
                    ) >= leaving =>
                {
                    // Being handed over: this slot belongs to the next owner.
                    tracing::debug!(device = %self.args.spec.id, "poll left to the next owner");
                    metrics::counter!("drover_device_polls_total", "outcome" => "handed_over")
                        .increment(1);
                    return;
                }
                Some(lease) => self.args.epoch = lease.epoch,
                None => {
                    // The shard's lease is not held now: a stale owner never polls.
                    tracing::debug!(device = %self.args.spec.id, "poll fenced: lease not held");
                    metrics::counter!("drover_device_polls_total", "outcome" => "fenced")
                        .increment(1);
                    return;
                }
            }
        }

        let client = match &self.client {
            Some(c) if !c.is_closed() => c.clone(),
            Some(_) => {
                // The session died between polls.
                self.drop_session();
                self.step(
                    myself,
                    Input::SessionLost {
                        reason: "session closed by the device".into(),
                    },
                );
                self.step(myself, Input::PollMissed);
                return;
            }
            None => {
                tracing::debug!(device = %self.args.spec.id, "poll missed: no session");
                metrics::counter!("drover_device_polls_total", "outcome" => "missed").increment(1);
                self.step(myself, Input::PollMissed);
                return;
            }
        };
        if self.poll_in_flight {
            metrics::counter!("drover_device_polls_total", "outcome" => "overrun").increment(1);
            return;
        }
        let now_i = Instant::now();
        let plan = PollPlan {
            routerboard: now_i >= self.routerboard_due,
            firmware: now_i >= self.firmware_due,
            radios: self.radios,
        };
        let (commands, layout) = poll::commands(&plan);
        let timeout = self.args.policy.command_timeout.min(interval.mul_f64(0.9));
        let generation = self.generation;
        let me = myself.clone();
        self.poll_in_flight = true;
        self.last_polled_slot = Some(slot);
        let now = tokio::time::Instant::now();
        self.last_poll_sent = Some(now);
        self.in_flight_late = now.saturating_duration_since(slot) > interval.mul_f64(LATE_SEND);
        tokio::spawn(async move {
            let started = Instant::now();
            let results = client
                .execute_pipelined_with_timeout(commands, timeout)
                .await;
            let _ = me.send_message(DeviceMsg::PollFinished(Box::new(PollFinished {
                generation,
                plan,
                layout,
                results,
                started,
            })));
        });
    }

    fn on_poll_finished(
        &mut self,
        myself: &ActorRef<DeviceMsg>,
        generation: u64,
        plan: PollPlan,
        layout: poll::Layout,
        results: Vec<Result<routeros_client::Response, ClientError>>,
        started: Instant,
    ) {
        // The spacing to the next poll counts from when this one really went out (its task
        // may have started well after it was sent to it), or, if it left late, from its
        // reply: it may have reached the device that late (a new session's first poll can
        // queue behind a storm of handshakes on the device side).
        let went_out = if std::mem::take(&mut self.in_flight_late) {
            tokio::time::Instant::now()
        } else {
            tokio::time::Instant::from_std(started)
        };
        self.last_poll_sent = Some(self.last_poll_sent.map_or(went_out, |s| s.max(went_out)));
        if generation != self.generation {
            return;
        }
        self.poll_in_flight = false;
        metrics::histogram!("drover_device_poll_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let now_secs = self.origin.elapsed().as_secs_f64();
        match poll::interpret(
            &plan,
            &layout,
            results,
            &mut self.baseline,
            now_secs,
            self.args.policy.max_interfaces_per_sample,
        ) {
            Ok(report) => {
                metrics::counter!("drover_device_polls_total", "outcome" => "ok").increment(1);
                self.polls_ok += 1;
                self.last_poll_at = Some(Utc::now());
                self.radios = report.radios;
                if plan.routerboard {
                    self.routerboard_due = Instant::now() + self.args.policy.firmware_check_every;
                }
                let previous_uptime = self.uptime;
                self.uptime = report.uptime;
                merge_facts(&mut self.facts, &report.facts);
                if report.rebooted {
                    metrics::counter!("drover_device_reboots_total").increment(1);
                    self.emit_status_event(
                        Some(self.machine.status()),
                        self.machine.status(),
                        Some(format!(
                            "rebooted: uptime went from {}s to {}s",
                            previous_uptime.unwrap_or(0),
                            report.uptime.unwrap_or(0)
                        )),
                    );
                }
                if plan.firmware {
                    self.firmware_due = Instant::now() + self.args.policy.firmware_check_every;
                    if let Some(fw) = &report.firmware {
                        self.emit_firmware(fw);
                    }
                }
                (self.args.events)(Event::Metrics(MetricsSample {
                    version: EVENT_VERSION,
                    device_id: self.args.spec.id,
                    tenant_id: self.args.spec.tenant_id,
                    timestamp: Utc::now(),
                    cpu_percent: report.cpu_percent,
                    memory_percent: report.memory_percent,
                    disk_percent: report.disk_percent,
                    uptime: report.uptime,
                    temperature_c: report.temperature_c,
                    interfaces: report.interfaces,
                    wireless: report.wireless,
                    epoch: self.args.epoch,
                }));
                self.step(
                    myself,
                    Input::PollSucceeded {
                        warnings: report.warnings,
                    },
                );
            }
            Err(failure) => {
                metrics::counter!("drover_device_polls_total", "outcome" => "failed").increment(1);
                self.polls_failed += 1;
                self.step(
                    myself,
                    Input::PollFailed {
                        reason: failure.reason,
                        session_fatal: failure.session_fatal,
                    },
                );
            }
        }
    }

    fn emit_firmware(&self, fw: &poll::FirmwareInfo) {
        (self.args.events)(Event::Firmware(FirmwareProgress {
            version: EVENT_VERSION,
            device_id: self.args.spec.id,
            tenant_id: self.args.spec.tenant_id,
            installed_version: fw.installed_version.clone(),
            latest_version: fw.latest_version.clone(),
            channel: fw.channel.clone(),
            status: fw.status.clone(),
            stage: if fw.status.starts_with("check-failed") {
                "failed".into()
            } else {
                "checked".into()
            },
            at: Utc::now(),
        }));
    }

    fn execute(
        &mut self,
        command: routeros_client::Command,
        timeout: Duration,
        reply: ractor::RpcReplyPort<Result<routeros_client::Response, CommandError>>,
    ) {
        let client = match &self.client {
            Some(c) if !c.is_closed() => c.clone(),
            _ => {
                let _ = reply.send(Err(CommandError::NotConnected {
                    status: self.machine.status(),
                }));
                return;
            }
        };
        let events = self.args.events.clone();
        let (device_id, tenant_id) = (self.args.spec.id, self.args.spec.tenant_id);
        tokio::spawn(async move {
            let path = command.path.clone();
            let item_id = command.attributes.get(".id").map(str::to_owned);
            let result = client.execute_with_timeout(command, timeout).await;
            if let Ok(response) = &result
                && let Some((menu, action)) = path.rsplit_once('/')
                && matches!(action, "add" | "set" | "remove")
            {
                events(Event::ConfigChange(ConfigChanged {
                    version: EVENT_VERSION,
                    device_id,
                    tenant_id,
                    menu: menu.to_owned(),
                    action: action.to_owned(),
                    item_id: item_id.or_else(|| response.ret().map(str::to_owned)),
                    source: "api".into(),
                    at: Utc::now(),
                }));
            }
            let _ = reply.send(result.map_err(CommandError::from));
        });
    }

    fn update_spec(&mut self, myself: &ActorRef<DeviceMsg>, spec: Arc<DeviceSpec>) {
        let connection = self.args.spec.connection_differs(&spec);
        let interval_changed = self.args.spec.poll_interval != spec.poll_interval;
        self.args.spec = spec;
        if interval_changed {
            let first = first_poll_delay(&self.args.spec, &self.args.policy);
            self.schedule_poll(myself, tokio::time::Instant::now() + first);
        }
        if connection {
            self.baseline.clear();
            self.step(myself, Input::SpecChanged { connection: true });
        }
    }

    fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            id: self.args.spec.id,
            status: self.machine.status(),
            reason: self.machine.reason().map(str::to_owned),
            connected: self.client.as_ref().is_some_and(|c| !c.is_closed()),
            facts: self.facts.clone(),
            uptime: self.uptime,
            last_poll_at: self.last_poll_at,
            polls_ok: self.polls_ok,
            polls_failed: self.polls_failed,
            missed_polls: self.machine.missed_polls(),
            poll_interval: self.args.spec.poll_interval,
            certificate_fingerprint: self
                .client
                .as_ref()
                .and_then(|c| c.info().fingerprint)
                .map(|f| f.to_string()),
        }
    }
}

/// Keeps known facts when a poll did not include them (e.g. the daily routerboard read).
fn merge_facts(known: &mut Facts, new: &Facts) {
    let merge = |k: &mut Option<String>, n: &Option<String>| {
        if n.is_some() {
            k.clone_from(n);
        }
    };
    merge(&mut known.routeros_version, &new.routeros_version);
    merge(&mut known.board_name, &new.board_name);
    merge(&mut known.identity, &new.identity);
    merge(&mut known.serial_number, &new.serial_number);
    merge(&mut known.architecture, &new.architecture);
}
