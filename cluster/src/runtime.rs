//! The running cluster layer: the peer actor, the failure detector and dialer (membership),
//! the ownership loop (plan, acquire, release), lease renewal and the local lease watchdog.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use drover_model::{SHARD_COUNT, ShardId};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::sync::watch;

use crate::lease::{Granted, LeaseConfig, Leases};
use crate::ring::{self, Hysteresis};
use crate::tls::NodeTls;
use crate::wire::{
    self, DropReason, GatewayError, NodeAd, PEER_PREFIX, PEERS_GROUP, PeerMsg, RemoteDeviceCall,
    RemoteDeviceReply, Reply, Request, RequestBody, Roles, VARIANT, WIRE_VERSION,
};
use crate::{
    ClusterConfig, ClusterError, ClusterHandle, DeviceGateway, HeldLease, MemberInfo, OwnedShards,
    RouteError,
};

/// How often the ownership loop plans.
const PLAN_EVERY: Duration = Duration::from_millis(250);
/// How often local lease deadlines are checked.
const WATCHDOG_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    valid_until: Instant,
    acquired_at: Instant,
    /// See [`Granted::idle_since`] and [`Granted::handed_over_at_ms`].
    idle_since: Instant,
    handed_over_at_ms: Option<u64>,
    /// Being handed over: this node's wall-clock unix ms from which it polls no slot of the
    /// shard (slots nominally before it are still served, until the lease is released).
    leaving_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct Member {
    ad: NodeAd,
    /// Last heartbeat answered.
    last_ok: Instant,
    /// Answered at least one heartbeat.
    confirmed: bool,
}

/// State shared by the handle, the peer actor and the loops.
pub(crate) struct Shared {
    pub(crate) me: String,
    pub(crate) roles: Roles,
    cfg: ClusterConfig,
    advertise: Option<String>,
    draining: AtomicBool,
    members: Mutex<BTreeMap<String, Member>>,
    /// Advertised addresses learnt from peers (name → addr).
    known: Mutex<BTreeMap<String, String>>,
    ring: Mutex<BTreeSet<String>>,
    held: RwLock<BTreeMap<u32, Held>>,
    owned_tx: watch::Sender<Arc<OwnedShards>>,
    gateway: Arc<dyn DeviceGateway>,
    leases: Leases,
    node_server: Option<ActorRef<NodeServerMessage>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn ad(&self) -> NodeAd {
        NodeAd {
            name: self.me.clone(),
            roles: self.roles,
            addr: self.advertise.clone(),
            draining: self.draining.load(Ordering::Relaxed),
        }
    }

    fn known_ads(&self) -> Vec<NodeAd> {
        lock(&self.members)
            .values()
            .filter(|m| m.confirmed)
            .map(|m| m.ad.clone())
            .collect()
    }

    pub(crate) fn lease_epoch(&self, shard: ShardId) -> Option<u64> {
        self.lease(shard).map(|l| l.epoch)
    }

    pub(crate) fn lease(&self, shard: ShardId) -> Option<HeldLease> {
        let held = self
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.get(&shard.0)
            .filter(|h| h.valid_until > Instant::now())
            .map(|h| HeldLease {
                epoch: h.epoch,
                idle_since: h.idle_since,
                handed_over_at_ms: h.handed_over_at_ms,
                leaving_at_ms: h.leaving_at_ms,
            })
    }

    pub(crate) fn members(&self) -> Vec<MemberInfo> {
        let ring = lock(&self.ring).clone();
        let mut out = vec![MemberInfo {
            name: self.me.clone(),
            roles: self.roles,
            addr: self.advertise.clone(),
            local: true,
            alive: true,
            draining: self.draining.load(Ordering::Relaxed),
            in_ring: ring.contains(&self.me),
        }];
        let deadline = self.cfg.failure_deadline();
        for (name, m) in lock(&self.members).iter() {
            out.push(MemberInfo {
                name: name.clone(),
                roles: m.ad.roles,
                addr: m.ad.addr.clone(),
                local: false,
                alive: m.confirmed && m.last_ok.elapsed() < deadline,
                draining: m.ad.draining,
                in_ring: ring.contains(name),
            });
        }
        out
    }

    /// Publishes the held set when it changed.
    fn publish(&self) {
        let epochs: BTreeMap<u32, u64> = self
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(s, h)| (*s, h.epoch))
            .collect();
        metrics::gauge!("drover_cluster_shards_owned").set(epochs.len() as f64);
        self.owned_tx.send_if_modified(|cur| {
            if cur.epochs == epochs {
                false
            } else {
                *cur = Arc::new(OwnedShards { epochs });
                true
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// start

pub(crate) async fn start(
    cfg: ClusterConfig,
    gateway: Arc<dyn DeviceGateway>,
) -> Result<ClusterHandle, ClusterError> {
    cfg.validate().map_err(ClusterError::Config)?;
    let me = cfg.resolved_node_name();
    let leases = Leases::connect(
        &cfg.cluster_redis_url,
        LeaseConfig {
            prefix: cfg.key_prefix(),
            owner: me.clone(),
            ttl: cfg.lease_ttl(),
            margin: cfg.lease_margin(),
        },
    )
    .await?;

    let tls = match (&cfg.cluster_ca, &cfg.cluster_cert, &cfg.cluster_key) {
        (Some(ca), Some(cert), Some(key)) if cfg.joins() => Some(NodeTls::load(ca, cert, key)?),
        _ => None,
    };
    let advertise = cfg
        .cluster_advertise
        .clone()
        .or_else(|| cfg.cluster_listen.map(|a| a.to_string()));

    let mut node_server = None;
    let mut listener = None;
    if let (Some(tls), Some(listen)) = (&tls, cfg.cluster_listen) {
        // ractor_cluster's own listener only takes loopback connections, and only over the
        // same mutual TLS; peers come in through ours (socket options, refusal counted).
        let server = NodeServer::new(
            0,
            cfg.name().to_owned(),
            me.clone(),
            advertise.clone().unwrap_or_else(|| "localhost".into()),
            Some(IncomingEncryptionMode::Tls(
                tokio_rustls::TlsAcceptor::from(tls.server.clone()),
            )),
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .with_max_inbound_frame_size(4 << 20);
        let (server_ref, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| ClusterError::Start(format!("node server: {e}")))?;
        let l = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| ClusterError::Start(format!("cannot listen on {listen}: {e}")))?;
        listener = Some(l);
        node_server = Some(server_ref);
    }

    let (owned_tx, owned_rx) = watch::channel(Arc::new(OwnedShards::default()));
    let shared = Arc::new(Shared {
        me: me.clone(),
        roles: cfg.roles,
        advertise,
        draining: AtomicBool::new(false),
        members: Mutex::new(BTreeMap::new()),
        known: Mutex::new(BTreeMap::new()),
        ring: Mutex::new(BTreeSet::new()),
        held: RwLock::new(BTreeMap::new()),
        owned_tx,
        gateway,
        leases,
        node_server: node_server.clone(),
        tasks: Mutex::new(Vec::new()),
        cfg: cfg.clone(),
    });

    let mut tasks = Vec::new();
    if let (Some(server), Some(tls), Some(listener)) = (node_server, tls, listener) {
        let (peer, _) = Actor::spawn(
            Some(format!("{PEER_PREFIX}{me}")),
            PeerActor,
            shared.clone(),
        )
        .await
        .map_err(|e| ClusterError::Start(format!("peer actor: {e}")))?;
        ractor::pg::join(PEERS_GROUP.to_owned(), vec![peer.get_cell()]);
        tasks.push(tokio::spawn(crate::transport::serve(
            listener,
            tls.clone(),
            server.clone(),
            cfg.failure_deadline(),
        )));
        tasks.push(tokio::spawn(membership_loop(shared.clone(), server, tls)));
    }
    tasks.push(tokio::spawn(ownership_loop(shared.clone())));
    tasks.push(tokio::spawn(renew_loop(shared.clone())));
    tasks.push(tokio::spawn(watchdog_loop(shared.clone())));
    *lock(&shared.tasks) = tasks;
    tracing::info!(node = %me, roles = ?cfg.roles, listen = ?cfg.cluster_listen, seeds = ?cfg.cluster_seeds, "cluster layer started");
    Ok(ClusterHandle {
        inner: shared,
        owned: owned_rx,
    })
}

// ---------------------------------------------------------------------------------------
// the peer actor

struct PeerActor;

impl Actor for PeerActor {
    type Msg = PeerMsg;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<PeerMsg>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PeerMsg>,
        msg: PeerMsg,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        let PeerMsg::Wire {
            variant,
            args,
            reply,
        } = msg;
        let req = match wire::decode_request(&variant, &args, reply.is_some()) {
            Ok(r) => r,
            Err(reason) => {
                metrics::counter!("drover_cluster_messages_dropped_total", "reason" => reason.label())
                    .increment(1);
                tracing::warn!(
                    variant = %variant.chars().take(64).collect::<String>(),
                    len = args.len(),
                    reason = reason.label(),
                    "dropped cluster message"
                );
                if let Some(reply) = reply
                    && matches!(reason, DropReason::Version | DropReason::Malformed)
                {
                    let _ = reply.send(wire::encode(&Reply::Rejected {
                        reason: reason.label().into(),
                    }));
                }
                return Ok(());
            }
        };
        let Some(reply) = reply else { return Ok(()) };
        metrics::counter!("drover_cluster_messages_total").increment(1);
        match req.body {
            RequestBody::Heartbeat { me, known } => {
                learn(shared, &me, &known);
                let _ = reply.send(wire::encode(&Reply::Heartbeat {
                    me: shared.ad(),
                    known: shared.known_ads(),
                }));
            }
            RequestBody::DeviceCall(call) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let result = execute_local(&shared, call).await;
                    let _ = reply.send(wire::encode(&Reply::Device(result)));
                });
            }
        }
        Ok(())
    }
}

/// Remembers advertised addresses (for dialing); liveness comes only from our own probes.
fn learn(shared: &Shared, me: &NodeAd, known: &[NodeAd]) {
    let mut k = lock(&shared.known);
    for ad in std::iter::once(me).chain(known.iter()) {
        if ad.name == shared.me {
            continue;
        }
        if let Some(addr) = &ad.addr {
            k.insert(ad.name.clone(), addr.clone());
        }
    }
}

async fn execute_local(
    shared: &Shared,
    call: RemoteDeviceCall,
) -> Result<RemoteDeviceReply, GatewayError> {
    if call.version != wire::DEVICE_CALL_VERSION {
        return Err(GatewayError::Invalid {
            reason: format!("device call version {} not supported", call.version),
        });
    }
    if shared.lease_epoch(call.device_id.shard()).is_none() {
        return Err(GatewayError::NotOwner);
    }
    let timeout = Duration::from_millis(call.timeout_ms.clamp(1, 600_000));
    match tokio::time::timeout(timeout, shared.gateway.execute(call)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Timeout),
    }
}

fn peer_ref(node: &str) -> Option<ActorRef<PeerMsg>> {
    let want = format!("{PEER_PREFIX}{node}");
    ractor::pg::get_members(&PEERS_GROUP.to_owned())
        .into_iter()
        .find(|c: &ActorCell| !c.get_id().is_local() && c.get_name().as_deref() == Some(&want))
        .map(ActorRef::from)
}

async fn call_raw(
    peer: &ActorRef<PeerMsg>,
    variant: &str,
    args: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, CallFailure> {
    let variant = variant.to_owned();
    match peer
        .call(
            move |reply| PeerMsg::Wire {
                variant,
                args,
                reply: Some(reply),
            },
            Some(timeout),
        )
        .await
    {
        Ok(CallResult::Success(bytes)) => Ok(bytes),
        Ok(CallResult::Timeout) => Err(CallFailure::Timeout),
        Ok(CallResult::SenderError) | Err(_) => Err(CallFailure::Gone),
    }
}

#[derive(Debug)]
enum CallFailure {
    Timeout,
    Gone,
}

async fn call_peer(
    shared: &Shared,
    peer: &ActorRef<PeerMsg>,
    body: RequestBody,
    timeout: Duration,
) -> Result<Reply, CallFailure> {
    let req = Request {
        v: WIRE_VERSION,
        from: shared.me.clone(),
        body,
    };
    let bytes = call_raw(peer, VARIANT, wire::encode(&req), timeout).await?;
    serde_json::from_slice(&bytes).map_err(|_| {
        metrics::counter!("drover_cluster_messages_dropped_total", "reason" => "malformed_reply")
            .increment(1);
        CallFailure::Gone
    })
}

pub(crate) async fn send_raw(
    peer: &str,
    variant: &str,
    args: Vec<u8>,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let peer = peer_ref(peer)?;
    call_raw(&peer, variant, args, timeout).await.ok()
}

// ---------------------------------------------------------------------------------------
// membership: heartbeats, failure detection, dialing

async fn membership_loop(shared: Arc<Shared>, server: ActorRef<NodeServerMessage>, tls: NodeTls) {
    let every = shared.cfg.heartbeat();
    let deadline = shared.cfg.failure_deadline();
    let probe_timeout = every.max(Duration::from_millis(500));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // addr → (next attempt, current backoff)
    let mut backoff: HashMap<String, (Instant, Duration)> = HashMap::new();
    loop {
        tick.tick().await;
        let now = Instant::now();
        // Linked peers: their peer actors are in the process group.
        let linked: BTreeMap<String, ActorRef<PeerMsg>> =
            ractor::pg::get_members(&PEERS_GROUP.to_owned())
                .into_iter()
                .filter(|c| !c.get_id().is_local())
                .filter_map(|c| {
                    let name = c.get_name()?.strip_prefix(PEER_PREFIX)?.to_owned();
                    Some((name, ActorRef::<PeerMsg>::from(c)))
                })
                .collect();
        {
            let mut members = lock(&shared.members);
            members.retain(|name, _| {
                let keep = linked.contains_key(name);
                if !keep {
                    tracing::info!(peer = %name, "peer link closed");
                }
                keep
            });
            for name in linked.keys() {
                members.entry(name.clone()).or_insert_with(|| {
                    tracing::info!(peer = %name, "peer linked");
                    Member {
                        ad: NodeAd {
                            name: name.clone(),
                            roles: Roles::Both,
                            addr: None,
                            draining: false,
                        },
                        last_ok: now,
                        confirmed: false,
                    }
                });
            }
        }
        // Probe every linked peer at once.
        let mut probes = tokio::task::JoinSet::new();
        for (name, peer) in &linked {
            let shared = shared.clone();
            let peer = peer.clone();
            let name = name.clone();
            probes.spawn(async move {
                let body = RequestBody::Heartbeat {
                    me: shared.ad(),
                    known: shared.known_ads(),
                };
                let r = call_peer(&shared, &peer, body, probe_timeout).await;
                (name, r)
            });
        }
        while let Some(res) = probes.join_next().await {
            let Ok((name, r)) = res else { continue };
            match r {
                Ok(Reply::Heartbeat { me, known }) if me.name == name => {
                    learn(&shared, &me, &known);
                    let mut members = lock(&shared.members);
                    if let Some(m) = members.get_mut(&name) {
                        if !m.confirmed {
                            tracing::info!(peer = %name, roles = ?me.roles, "peer alive");
                        }
                        m.ad = me;
                        m.last_ok = Instant::now();
                        m.confirmed = true;
                    }
                }
                Ok(_) => {
                    metrics::counter!("drover_cluster_heartbeats_failed_total").increment(1);
                }
                Err(e) => {
                    metrics::counter!("drover_cluster_heartbeats_failed_total").increment(1);
                    tracing::debug!(peer = %name, error = ?e, "heartbeat failed");
                }
            }
        }
        // Silent too long: declare dead and close the link (it reconnects when it answers).
        let dead: Vec<String> = lock(&shared.members)
            .iter()
            .filter(|(_, m)| m.last_ok.elapsed() > deadline)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &dead {
            tracing::warn!(peer = %name, deadline_ms = deadline.as_millis() as u64, "peer silent past the failure deadline: declared dead, closing its link");
            metrics::counter!("drover_cluster_peers_declared_dead_total").increment(1);
            lock(&shared.members).remove(name);
            close_sessions(&server, name).await;
        }
        let alive = lock(&shared.members)
            .values()
            .filter(|m| m.confirmed)
            .count();
        metrics::gauge!("drover_cluster_members").set((alive + 1) as f64);

        // Dial seeds and advertised addresses of nodes we are not linked to.
        let linked_addrs: BTreeSet<String> = lock(&shared.members)
            .values()
            .filter_map(|m| m.ad.addr.clone())
            .collect();
        let mut targets: BTreeSet<String> = shared.cfg.cluster_seeds.iter().cloned().collect();
        for (name, addr) in lock(&shared.known).iter() {
            if !linked.contains_key(name) && !dead.contains(name) {
                targets.insert(addr.clone());
            }
        }
        for addr in targets {
            if Some(&addr) == shared.advertise.as_ref() || linked_addrs.contains(&addr) {
                backoff.remove(&addr);
                continue;
            }
            let (next, wait) = backoff
                .get(&addr)
                .copied()
                .unwrap_or((now, Duration::from_millis(500)));
            if next > now {
                continue;
            }
            backoff.insert(
                addr.clone(),
                (now + wait, (wait * 2).min(Duration::from_secs(10))),
            );
            let server = server.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match crate::transport::dial(&addr, &tls, &server, deadline).await {
                    Ok(peer) => tracing::debug!(%addr, %peer, "dialed node"),
                    Err(e) => tracing::debug!(%addr, error = %e, "cannot reach node"),
                }
            });
        }
    }
}

/// Stops every ractor session with `node` (forces the disconnect path: proxies stop, the
/// process group forgets its actors).
async fn close_sessions(server: &ActorRef<NodeServerMessage>, node: &str) {
    let prefix = format!("{node}@");
    let Ok(sessions) = ractor::call_t!(server, NodeServerMessage::GetSessions, 2_000) else {
        return;
    };
    for ses in sessions.values() {
        if ses
            .peer_name
            .as_ref()
            .is_some_and(|p| p.name.starts_with(&prefix))
        {
            ses.actor.stop(Some("peer declared dead".into()));
        }
    }
}

// ---------------------------------------------------------------------------------------
// ownership

fn live_pollers(shared: &Shared) -> BTreeSet<String> {
    let deadline = shared.cfg.failure_deadline();
    let mut alive: BTreeSet<String> = lock(&shared.members)
        .iter()
        .filter(|(_, m)| {
            m.confirmed && m.last_ok.elapsed() <= deadline && m.ad.roles.polls() && !m.ad.draining
        })
        .map(|(n, _)| n.clone())
        .collect();
    if shared.roles.polls() && !shared.draining.load(Ordering::Relaxed) {
        alive.insert(shared.me.clone());
    }
    alive
}

async fn ownership_loop(shared: Arc<Shared>) {
    let mut hysteresis = Hysteresis::new(Duration::from_millis(shared.cfg.rebalance_hold_ms));
    let mut tick = tokio::time::interval(PLAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ring = BTreeSet::new();
    // A node that joins through seeds first learns who is there (links, one heartbeat, the
    // hold): taking every free shard while it still believes it is alone would move those
    // shards twice (to it, then back to their preferred owners).
    let has_seeds = shared
        .cfg
        .cluster_seeds
        .iter()
        .any(|s| Some(s) != shared.advertise.as_ref());
    let settle_until = Instant::now()
        + if has_seeds {
            Duration::from_millis(shared.cfg.rebalance_hold_ms) + 2 * shared.cfg.heartbeat()
        } else {
            Duration::ZERO
        };
    loop {
        tick.tick().await;
        if shared.draining.load(Ordering::Relaxed) {
            continue;
        }
        if Instant::now() < settle_until {
            // Peers seen during the settle count at once (they were there before us).
            hysteresis.admit(&live_pollers(&shared));
            continue;
        }
        let alive = live_pollers(&shared);
        let mut ring = hysteresis.update(&alive, Instant::now());
        // This node counts for itself at once; others admit it after their hold.
        if alive.contains(&shared.me) {
            ring.insert(shared.me.clone());
        }
        if ring != last_ring {
            tracing::info!(ring = ?ring, "ownership ring changed");
            metrics::counter!("drover_cluster_rebalances_total").increment(1);
            last_ring = ring.clone();
        }
        *lock(&shared.ring) = ring.clone();
        let min_ownership = Duration::from_millis(shared.cfg.min_ownership_ms);
        let (held, pinned): (BTreeSet<u32>, BTreeSet<u32>) = {
            let map = shared
                .held
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                map.keys().copied().collect(),
                map.iter()
                    .filter(|(_, h)| h.acquired_at.elapsed() < min_ownership)
                    .map(|(s, _)| *s)
                    .collect(),
            )
        };
        // The rate limit is per second; this loop runs several times a second.
        let per_tick = (shared.cfg.rebalance_max_moves as u128 * PLAN_EVERY.as_millis() / 1000)
            .max(1) as usize;
        let plan = ring::plan(&shared.me, &ring, &held, &pinned, SHARD_COUNT, per_tick);
        if !plan.release.is_empty() {
            tracing::info!(
                shards = plan.release.len(),
                deferred = plan.deferred,
                "handing shards over"
            );
            release_shards(&shared, &plan.release).await;
        }
        if !plan.acquire.is_empty() {
            let started = Instant::now();
            match shared.leases.acquire(&plan.acquire).await {
                Ok(granted) => {
                    if !granted.is_empty() {
                        tracing::info!(
                            shards = granted.len(),
                            wanted = plan.acquire.len(),
                            "acquired shard leases"
                        );
                        metrics::counter!("drover_cluster_shards_acquired_total")
                            .increment(granted.len() as u64);
                        metrics::histogram!("drover_cluster_lease_acquire_seconds")
                            .record(started.elapsed().as_secs_f64());
                        insert_granted(&shared, &granted);
                        shared.publish();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot acquire shard leases"),
            }
        }
    }
}

fn insert_granted(shared: &Shared, granted: &[Granted]) {
    let mut held = shared
        .held
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for g in granted {
        held.insert(
            g.shard,
            Held {
                epoch: g.epoch,
                valid_until: g.valid_until,
                acquired_at: Instant::now(),
                idle_since: g.idle_since,
                handed_over_at_ms: g.handed_over_at_ms,
                leaving_at_ms: None,
            },
        );
    }
}

/// Hands shards over: from now on no slot of their devices is polled here (slots nominally
/// earlier still are, so the marker is exact); after the grace period the devices stop and
/// the leases are deleted, leaving the hand-over marker.
async fn release_shards(shared: &Arc<Shared>, shards: &[u32]) {
    let now_ms = crate::lease::unix_ms_now();
    let leaving: Vec<(u32, u64, u64)> = {
        let mut held = shared
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shards
            .iter()
            .filter_map(|s| {
                let h = held.get_mut(s)?;
                // The earliest stop counts when two hand-overs overlap (shutdown vs plan).
                let at = *h.leaving_at_ms.get_or_insert(now_ms);
                Some((*s, h.epoch, at))
            })
            .collect()
    };
    tokio::time::sleep(Duration::from_millis(shared.cfg.handover_grace_ms)).await;
    let released: Vec<(u32, u64, u64)> = {
        let mut held = shared
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        leaving
            .into_iter()
            .filter(|(s, e, _)| {
                let ours = held.get(s).is_some_and(|h| h.epoch == *e);
                if ours {
                    held.remove(s);
                }
                ours
            })
            .collect()
    };
    shared.publish();
    metrics::counter!("drover_cluster_shards_released_total").increment(released.len() as u64);
    if let Err(e) = shared.leases.release(&released).await {
        tracing::warn!(error = %e, shards = released.len(), "cannot release leases; they expire on their own");
    }
}

async fn renew_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.lease_renew());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let budget = shared
        .cfg
        .lease_ttl()
        .saturating_sub(shared.cfg.lease_margin());
    loop {
        tick.tick().await;
        let held: Vec<(u32, u64)> = shared
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(s, h)| (*s, h.epoch))
            .collect();
        if held.is_empty() {
            continue;
        }
        let started = Instant::now();
        match tokio::time::timeout(budget, shared.leases.renew(&held)).await {
            Ok(Ok(renewed)) => {
                metrics::histogram!("drover_cluster_lease_renew_seconds")
                    .record(started.elapsed().as_secs_f64());
                let ok: HashMap<u32, Granted> = renewed.iter().map(|g| (g.shard, *g)).collect();
                let mut lost = 0usize;
                {
                    let mut map = shared
                        .held
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for (s, e) in &held {
                        match (ok.get(s), map.get_mut(s)) {
                            (Some(g), Some(h)) if h.epoch == *e => h.valid_until = g.valid_until,
                            (None, Some(h)) if h.epoch == *e => {
                                map.remove(s);
                                lost += 1;
                            }
                            _ => {}
                        }
                    }
                }
                if lost > 0 {
                    tracing::warn!(
                        shards = lost,
                        "shard leases lost (expired or taken over); their devices stop"
                    );
                    metrics::counter!("drover_cluster_leases_lost_total").increment(lost as u64);
                    shared.publish();
                }
            }
            Ok(Err(e)) => {
                metrics::counter!("drover_cluster_lease_renew_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot renew shard leases; devices stop at the local deadline unless a renewal succeeds");
            }
            Err(_) => {
                metrics::counter!("drover_cluster_lease_renew_failures_total").increment(1);
                tracing::warn!(
                    "lease renewal timed out; devices stop at the local deadline unless a renewal succeeds"
                );
            }
        }
    }
}

/// Drops leases past their local deadline: the devices stop before Redis can give the
/// shard to someone else.
async fn watchdog_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(WATCHDOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let expired = {
            let mut held = shared
                .held
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = held.len();
            held.retain(|_, h| h.valid_until > now);
            before - held.len()
        };
        if expired > 0 {
            tracing::warn!(
                shards = expired,
                "shard leases reached their local deadline without renewal: stopping their devices"
            );
            metrics::counter!("drover_cluster_leases_lost_total").increment(expired as u64);
            shared.publish();
        }
    }
}

// ---------------------------------------------------------------------------------------
// routing

pub(crate) async fn call_device(
    shared: &Arc<Shared>,
    call: RemoteDeviceCall,
) -> Result<RemoteDeviceReply, RouteError> {
    let retry = RouteError::NoOwner {
        retry_after: shared.cfg.lease_renew().max(Duration::from_secs(1)),
    };
    let shard = call.device_id.shard();
    if shared.lease_epoch(shard).is_some() {
        return execute_local(shared, call)
            .await
            .map_err(map_gateway(&retry));
    }
    let holder = shared
        .leases
        .holder(shard.0)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?;
    let Some(holder) = holder else {
        return Err(retry);
    };
    if holder.owner == shared.me {
        // Taken this instant, not yet visible locally, or just lost: ask again shortly.
        return Err(retry);
    }
    let Some(peer) = peer_ref(&holder.owner) else {
        return Err(retry);
    };
    let timeout = Duration::from_millis(call.timeout_ms.clamp(1, 600_000));
    // A little longer than the owner's own timeout, so its answer wins the race.
    match call_peer(
        shared,
        &peer,
        RequestBody::DeviceCall(call),
        timeout + Duration::from_millis(500),
    )
    .await
    {
        Ok(Reply::Device(r)) => r.map_err(map_gateway(&retry)),
        Ok(Reply::Rejected { reason }) => Err(RouteError::Remote(GatewayError::Invalid { reason })),
        Ok(Reply::Heartbeat { .. }) => Err(RouteError::Remote(GatewayError::Internal {
            message: "unexpected reply".into(),
        })),
        Err(CallFailure::Timeout) => Err(RouteError::Timeout),
        Err(CallFailure::Gone) => Err(retry),
    }
}

fn map_gateway(retry: &RouteError) -> impl Fn(GatewayError) -> RouteError + '_ {
    move |e| match e {
        GatewayError::NotOwner => retry.clone(),
        GatewayError::Timeout => RouteError::Timeout,
        other => RouteError::Remote(other),
    }
}

// ---------------------------------------------------------------------------------------
// shutdown

pub(crate) async fn shutdown(shared: &Arc<Shared>) {
    if shared.draining.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::info!("handing every shard over before leaving");
    // Peers see `draining` in the next heartbeat and stop counting this node; they take the
    // shards as soon as the leases are gone.
    let all: Vec<u32> = shared
        .held
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .keys()
        .copied()
        .collect();
    release_shards(shared, &all).await;
    for t in lock(&shared.tasks).drain(..) {
        t.abort();
    }
    if let Some(server) = &shared.node_server {
        server.stop(Some("node leaving".into()));
    }
}
