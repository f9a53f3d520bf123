//! [`NodeSupervisor`]: the root of a drover process's actor tree. It runs one
//! [`TenantSupervisor`] per tenant that has devices on this node and routes device changes to
//! them. The cluster layer decides which devices (shards) this node runs and hands the result
//! to [`NodeMsg::Reconcile`]; stopping a shard is reconciling without its devices.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use drover_device::{
    DeviceMsg, DevicePolicy, DeviceSpec, DeviceTimers, EventSink, device_actor_name,
};
use drover_model::{DeviceId, TenantId};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::Semaphore;

use crate::restart::RestartPolicy;
use crate::tenant::{TenantArgs, TenantMsg, TenantReport, TenantSupervisor};

/// Messages of [`NodeSupervisor`].
pub enum NodeMsg {
    /// The full set of devices this node must run now.
    Reconcile(Vec<DeviceSpec>),
    /// Add or change one device.
    Upsert(Box<DeviceSpec>),
    Remove(DeviceId),
    ClearQuarantine(DeviceId),
    Summary(RpcReplyPort<NodeSummary>),
}

impl ractor::Message for NodeMsg {}

impl std::fmt::Debug for NodeMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reconcile(s) => write!(f, "Reconcile({} devices)", s.len()),
            Self::Upsert(s) => write!(f, "Upsert({})", s.id),
            Self::Remove(id) => write!(f, "Remove({id})"),
            Self::ClearQuarantine(id) => write!(f, "ClearQuarantine({id})"),
            Self::Summary(_) => write!(f, "Summary"),
        }
    }
}

/// Totals over every tenant on this node.
#[derive(Debug, Clone, Default)]
pub struct NodeSummary {
    pub tenants: usize,
    pub devices: usize,
    pub running: usize,
    pub quarantined: Vec<(DeviceId, String)>,
    pub restarts: u64,
}

/// Arguments of [`NodeSupervisor`].
#[derive(Clone)]
pub struct NodeArgs {
    pub policy: Arc<DevicePolicy>,
    pub restart: RestartPolicy,
    /// Where device events go (the node's fan-out to the SSE hub, NATS and the recorder).
    pub events: EventSink,
    /// Most TLS handshakes in progress at once across the node.
    pub max_concurrent_handshakes: usize,
    /// Fencing epoch under which devices run (0 when unsharded).
    pub epoch: u64,
}

impl std::fmt::Debug for NodeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeArgs")
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// The root supervisor actor.
#[derive(Debug, Default)]
pub struct NodeSupervisor;

/// State of the node supervisor.
pub struct NodeState {
    args: NodeArgs,
    handshakes: Arc<Semaphore>,
    /// One timer task for every device actor of the node.
    timers: DeviceTimers,
    tenants: HashMap<TenantId, ActorRef<TenantMsg>>,
    tenant_of_actor: HashMap<ActorId, TenantId>,
    /// Every device this node should run, as last told.
    /// One shared copy per device: the tenant supervisor and the actor hold the same.
    devices: HashMap<DeviceId, Arc<DeviceSpec>>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("tenants", &self.tenants.len())
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// The running actor of a device on this node, if any.
pub fn device_ref(id: DeviceId) -> Option<ActorRef<DeviceMsg>> {
    ractor::registry::where_is(device_actor_name(id)).map(ActorRef::from)
}

impl Actor for NodeSupervisor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<NodeMsg>,
        args: NodeArgs,
    ) -> Result<NodeState, ActorProcessingErr> {
        Ok(NodeState {
            handshakes: Arc::new(Semaphore::new(args.max_concurrent_handshakes.max(1))),
            timers: DeviceTimers::new(),
            args,
            tenants: HashMap::new(),
            tenant_of_actor: HashMap::new(),
            devices: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<NodeMsg>,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        state.tenant_of_actor.clear();
        myself
            .stop_children_and_wait(
                Some("node shutting down".into()),
                Some(Duration::from_secs(20)),
            )
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Reconcile(specs) => state.reconcile(&myself, specs).await?,
            NodeMsg::Upsert(spec) => {
                let tenant = state.tenant(&myself, spec.tenant_id).await?;
                let spec = state.shared_spec(*spec);
                state.devices.insert(spec.id, spec.clone());
                let _ = tenant.send_message(TenantMsg::Upsert(spec));
            }
            NodeMsg::Remove(id) => {
                if let Some(spec) = state.devices.remove(&id)
                    && let Some(sup) = state.tenants.get(&spec.tenant_id)
                {
                    let _ = sup.send_message(TenantMsg::Remove(id));
                }
            }
            NodeMsg::ClearQuarantine(id) => {
                if let Some(spec) = state.devices.get(&id)
                    && let Some(sup) = state.tenants.get(&spec.tenant_id)
                {
                    let _ = sup.send_message(TenantMsg::ClearQuarantine(id));
                }
            }
            NodeMsg::Summary(reply) => {
                let mut summary = NodeSummary {
                    tenants: state.tenants.len(),
                    devices: state.devices.len(),
                    ..NodeSummary::default()
                };
                for sup in state.tenants.values() {
                    let report: Result<TenantReport, _> =
                        ractor::call_t!(sup, TenantMsg::Report, 5_000);
                    if let Ok(r) = report {
                        summary.running += r.running;
                        summary.restarts += r.restarts;
                        summary.quarantined.extend(r.quarantined);
                    }
                }
                let _ = reply.send(summary);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match event {
            SupervisionEvent::ActorTerminated(cell, ..)
            | SupervisionEvent::ActorFailed(cell, _) => cell,
            _ => return Ok(()),
        };
        // A tenant supervisor died unexpectedly: start it again with that tenant's devices.
        // Its device actors were linked to it and are gone too; they restart from their specs.
        if let Some(tenant) = state.tenant_of_actor.remove(&cell.get_id()) {
            metrics::counter!("drover_actor_restarts_total", "reason" => "tenant_supervisor")
                .increment(1);
            state.tenants.remove(&tenant);
            tracing::error!(%tenant, "tenant supervisor ended unexpectedly; restarting it");
            let specs: Vec<Arc<DeviceSpec>> = state
                .devices
                .values()
                .filter(|s| s.tenant_id == tenant)
                .cloned()
                .collect();
            let sup = state.tenant(&myself, tenant).await?;
            let _ = sup.send_message(TenantMsg::Apply(specs));
        }
        Ok(())
    }
}

impl NodeState {
    async fn tenant(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        tenant: TenantId,
    ) -> Result<ActorRef<TenantMsg>, ActorProcessingErr> {
        if let Some(t) = self.tenants.get(&tenant) {
            return Ok(t.clone());
        }
        let args = TenantArgs {
            tenant,
            policy: self.args.policy.clone(),
            restart: self.args.restart.clone(),
            events: self.args.events.clone(),
            handshakes: self.handshakes.clone(),
            timers: self.timers.clone(),
            epoch: self.args.epoch,
        };
        let (actor, _) = TenantSupervisor::spawn_linked(
            Some(format!("tenant:{tenant}")),
            TenantSupervisor,
            args,
            myself.get_cell(),
        )
        .await?;
        self.tenant_of_actor.insert(actor.get_id(), tenant);
        self.tenants.insert(tenant, actor.clone());
        Ok(actor)
    }

    /// The shared copy of `spec`: the one already held when nothing changed (so a full
    /// reload does not leave the actors holding a second copy), a new one otherwise.
    fn shared_spec(&self, spec: DeviceSpec) -> Arc<DeviceSpec> {
        match self.devices.get(&spec.id) {
            Some(held) if held.same_settings(&spec) => held.clone(),
            _ => Arc::new(spec),
        }
    }

    async fn reconcile(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        specs: Vec<DeviceSpec>,
    ) -> Result<(), ActorProcessingErr> {
        let specs: Vec<Arc<DeviceSpec>> = specs.into_iter().map(|s| self.shared_spec(s)).collect();
        let mut by_tenant: HashMap<TenantId, Vec<Arc<DeviceSpec>>> = HashMap::new();
        self.devices = specs.iter().map(|s| (s.id, s.clone())).collect();
        for spec in specs {
            by_tenant.entry(spec.tenant_id).or_default().push(spec);
        }
        let empty: HashSet<TenantId> = self
            .tenants
            .keys()
            .filter(|t| !by_tenant.contains_key(t))
            .copied()
            .collect();
        for tenant in empty {
            if let Some(sup) = self.tenants.remove(&tenant) {
                self.tenant_of_actor.remove(&sup.get_id());
                sup.stop(Some("tenant has no devices on this node".into()));
            }
        }
        for (tenant, specs) in by_tenant {
            let sup = self.tenant(myself, tenant).await?;
            let _ = sup.send_message(TenantMsg::Apply(specs));
        }
        Ok(())
    }
}
