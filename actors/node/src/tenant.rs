//! [`TenantSupervisor`]: runs the device actors of one tenant on this node, restarts them
//! one-for-one with back-off, quarantines a device that keeps dying, kills actors stuck in a
//! handler, and hands their events to the node's fan-out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use drover_device::{
    DeviceActor, DeviceArgs, DeviceMsg, DevicePolicy, DeviceSpec, DeviceTimers, EventSink,
    Progress, device_actor_name,
};
use drover_model::events::{DeviceStatusChanged, EVENT_VERSION};
use drover_model::{DeviceId, DeviceStatus, Event, TenantId};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::restart::{RestartDecision, RestartPolicy, RestartTracker};

/// Messages of [`TenantSupervisor`].
pub enum TenantMsg {
    /// The full set of this tenant's devices this node must run; others are stopped.
    Apply(Vec<Arc<DeviceSpec>>),
    /// Add a device or change its settings (a running actor gets the new spec in place).
    Upsert(Arc<DeviceSpec>),
    Remove(DeviceId),
    /// Let a quarantined device run again.
    ClearQuarantine(DeviceId),
    /// Back-off timer: restart a device if it is still meant to run.
    Restart {
        device: DeviceId,
        attempt: u64,
    },
    /// Periodic check for actors stuck in a handler.
    CheckStuck,
    Report(RpcReplyPort<TenantReport>),
}

impl ractor::Message for TenantMsg {}

impl std::fmt::Debug for TenantMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Apply(s) => write!(f, "Apply({} devices)", s.len()),
            Self::Upsert(s) => write!(f, "Upsert({})", s.id),
            Self::Remove(id) => write!(f, "Remove({id})"),
            Self::ClearQuarantine(id) => write!(f, "ClearQuarantine({id})"),
            Self::Restart { device, attempt } => write!(f, "Restart({device}, {attempt})"),
            Self::CheckStuck => write!(f, "CheckStuck"),
            Self::Report(_) => write!(f, "Report"),
        }
    }
}

/// What a tenant supervisor is running.
#[derive(Debug, Clone, Default)]
pub struct TenantReport {
    pub running: usize,
    pub waiting_restart: usize,
    /// Quarantined devices with the reason.
    pub quarantined: Vec<(DeviceId, String)>,
    pub restarts: u64,
}

/// Arguments of [`TenantSupervisor`].
#[derive(Clone)]
pub struct TenantArgs {
    pub tenant: TenantId,
    pub policy: Arc<DevicePolicy>,
    pub restart: RestartPolicy,
    pub events: EventSink,
    pub handshakes: Arc<Semaphore>,
    /// The node's device timer task.
    pub timers: DeviceTimers,
    pub epoch: u64,
}

impl std::fmt::Debug for TenantArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantArgs")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// The supervisor actor; its data is in [`TenantState`].
#[derive(Debug, Default)]
pub struct TenantSupervisor;

struct Child {
    spec: Arc<DeviceSpec>,
    actor: Option<(ActorRef<DeviceMsg>, JoinHandle<()>)>,
    progress: Arc<Progress>,
    tracker: RestartTracker,
    quarantined: Option<String>,
    /// Bumped whenever a pending restart becomes obsolete.
    attempt: u64,
    killed_as_stuck: bool,
}

/// State of a tenant supervisor.
pub struct TenantState {
    args: TenantArgs,
    children: HashMap<DeviceId, Child>,
    by_actor: HashMap<ActorId, DeviceId>,
    restarts: u64,
    stuck_timer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TenantState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantState")
            .field("tenant", &self.args.tenant)
            .field("devices", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Actor for TenantSupervisor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = TenantArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TenantMsg>,
        args: TenantArgs,
    ) -> Result<TenantState, ActorProcessingErr> {
        Ok(TenantState {
            args,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: 0,
            stuck_timer: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TenantMsg>,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        let period = (state.args.restart.stuck_after / 4).max(Duration::from_millis(100));
        let me = myself.clone();
        state.stuck_timer = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if me.send_message(TenantMsg::CheckStuck).is_err() {
                    return;
                }
            }
        }));
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<TenantMsg>,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.stuck_timer.take() {
            t.abort();
        }
        // Graceful: stop every device (closing its session) before this supervisor ends.
        state.by_actor.clear();
        myself
            .stop_children_and_wait(
                Some("tenant supervisor stopping".into()),
                Some(Duration::from_secs(10)),
            )
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        msg: TenantMsg,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TenantMsg::Apply(specs) => state.apply(&myself, specs).await,
            TenantMsg::Upsert(spec) => state.upsert(&myself, spec).await,
            TenantMsg::Remove(id) => state.remove(&[id]).await,
            TenantMsg::ClearQuarantine(id) => {
                if let Some(child) = state.children.get_mut(&id)
                    && child.quarantined.take().is_some()
                {
                    child.tracker.clear();
                    state.spawn(&myself, id).await;
                }
            }
            TenantMsg::Restart { device, attempt } => {
                let due = state.children.get(&device).is_some_and(|c| {
                    c.attempt == attempt && c.actor.is_none() && c.quarantined.is_none()
                });
                if due {
                    state.spawn(&myself, device).await;
                }
            }
            TenantMsg::CheckStuck => state.kill_stuck(),
            TenantMsg::Report(reply) => {
                let _ = reply.send(state.report());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<TenantMsg>,
        event: SupervisionEvent,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, error) => (cell, format!("failed: {error}")),
            _ => return Ok(()),
        };
        // Devices removed on purpose are no longer in `by_actor`.
        if let Some(device) = state.by_actor.remove(&cell.get_id()) {
            state.on_child_death(&myself, device, why);
        }
        Ok(())
    }
}

impl TenantState {
    async fn apply(&mut self, myself: &ActorRef<TenantMsg>, specs: Vec<Arc<DeviceSpec>>) {
        let wanted: HashMap<DeviceId, Arc<DeviceSpec>> = specs
            .into_iter()
            .filter(|s| s.tenant_id == self.args.tenant)
            .map(|s| (s.id, s))
            .collect();
        let gone: Vec<DeviceId> = self
            .children
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        self.remove(&gone).await;
        for (_, spec) in wanted {
            self.upsert(myself, spec).await;
        }
    }

    async fn upsert(&mut self, myself: &ActorRef<TenantMsg>, spec: Arc<DeviceSpec>) {
        if spec.tenant_id != self.args.tenant {
            tracing::warn!(device = %spec.id, "device of another tenant sent to the wrong supervisor");
            return;
        }
        let id = spec.id;
        match self.children.get_mut(&id) {
            Some(child) => {
                if child.spec.same_settings(&spec) {
                    // Keep the copy the actor shares.
                    return;
                }
                child.spec = spec.clone();
                if child.quarantined.take().is_some() {
                    // A configuration change clears quarantine.
                    child.tracker.clear();
                    self.spawn(myself, id).await;
                } else if let Some((actor, _)) = &child.actor {
                    let _ = actor.send_message(DeviceMsg::UpdateSpec(spec));
                }
            }
            None => {
                self.children.insert(
                    id,
                    Child {
                        spec,
                        actor: None,
                        progress: Arc::new(Progress::default()),
                        tracker: RestartTracker::default(),
                        quarantined: None,
                        attempt: 0,
                        killed_as_stuck: false,
                    },
                );
                self.spawn(myself, id).await;
            }
        }
    }

    /// Stops devices on purpose: all first, then waits for all, so a shard hand-over of
    /// thousands of devices takes one round of waiting, not thousands.
    async fn remove(&mut self, ids: &[DeviceId]) {
        let mut stopping = Vec::new();
        for id in ids {
            if let Some(child) = self.children.remove(id)
                && let Some((actor, join)) = child.actor
            {
                self.by_actor.remove(&actor.get_id());
                actor.stop(Some("device removed from this node".into()));
                stopping.push(join);
            }
        }
        for join in stopping {
            let _ = tokio::time::timeout(Duration::from_secs(10), join).await;
        }
    }

    async fn spawn(&mut self, myself: &ActorRef<TenantMsg>, id: DeviceId) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.progress = Arc::new(Progress::default());
        child.killed_as_stuck = false;
        let args = DeviceArgs {
            spec: child.spec.clone(),
            policy: self.args.policy.clone(),
            events: self.args.events.clone(),
            handshakes: self.args.handshakes.clone(),
            timers: self.args.timers.clone(),
            progress: child.progress.clone(),
            epoch: self.args.epoch,
        };
        match DeviceActor::spawn_linked(
            Some(device_actor_name(id)),
            DeviceActor,
            args,
            myself.get_cell(),
        )
        .await
        {
            Ok((actor, join)) => {
                self.by_actor.insert(actor.get_id(), id);
                child.actor = Some((actor, join));
            }
            Err(e) => {
                // E.g. the previous actor's name is still registered while it stops.
                tracing::warn!(device = %id, error = %e, "could not start device actor");
                self.on_child_death(myself, id, format!("spawn failed: {e}"));
            }
        }
    }

    fn on_child_death(&mut self, myself: &ActorRef<TenantMsg>, id: DeviceId, why: String) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.actor = None;
        let reason = if child.killed_as_stuck {
            "stuck"
        } else {
            "died"
        };
        metrics::counter!("drover_actor_restarts_total", "reason" => reason).increment(1);
        self.restarts += 1;
        match child.tracker.on_death(Instant::now(), &self.args.restart) {
            RestartDecision::RestartAfter(delay) => {
                tracing::warn!(device = %id, %why, ?delay, "device actor ended; restarting");
                child.attempt += 1;
                let attempt = child.attempt;
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = me.send_message(TenantMsg::Restart {
                        device: id,
                        attempt,
                    });
                });
            }
            RestartDecision::Quarantine { restarts, window } => {
                let reason = format!(
                    "restarted {restarts} times within {}s (last: {why}); quarantined until cleared or reconfigured",
                    window.as_secs()
                );
                tracing::error!(device = %id, %reason, "device quarantined");
                metrics::counter!("drover_device_quarantines_total").increment(1);
                child.quarantined = Some(reason.clone());
                (self.args.events)(Event::DeviceStatus(DeviceStatusChanged {
                    version: EVENT_VERSION,
                    device_id: id,
                    tenant_id: self.args.tenant,
                    status: DeviceStatus::Quarantined,
                    previous_status: None,
                    reason: Some(reason),
                    routeros_version: None,
                    board_name: None,
                    uptime: None,
                    epoch: self.args.epoch,
                    at: Utc::now(),
                }));
            }
        }
    }

    fn kill_stuck(&mut self) {
        let limit = self.args.restart.stuck_after;
        for (id, child) in &mut self.children {
            if let Some((actor, _)) = &child.actor
                && child.progress.busy_for().is_some_and(|d| d > limit)
                && !child.killed_as_stuck
            {
                tracing::error!(device = %id, "device actor stuck in a handler; killing it");
                child.killed_as_stuck = true;
                actor.kill();
            }
        }
    }

    fn report(&self) -> TenantReport {
        let mut r = TenantReport {
            restarts: self.restarts,
            ..TenantReport::default()
        };
        for (id, child) in &self.children {
            match (&child.actor, &child.quarantined) {
                (_, Some(reason)) => r.quarantined.push((*id, reason.clone())),
                (Some(_), None) => r.running += 1,
                (None, None) => r.waiting_restart += 1,
            }
        }
        r
    }
}
