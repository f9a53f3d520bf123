//! `drover-bench node`: one drover node (NodeSupervisor, one tenant, Fanout to the SSE hub
//! and optionally JetStream) running device actors for the simulated fleet, printing a
//! [`Report`] line every few seconds. Started by `drover-bench fleet` as a child process.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_device::{DevicePolicy, DeviceSpec};
use drover_model::{DeviceId, DeviceStatus, Event, TenantId};
use drover_node::fanout::Fanout;
use drover_node::hub::EventHub;
use drover_node::publisher::{EventPublisher, PublisherConfig};
use drover_node::{NodeArgs, NodeMsg, NodeSupervisor, RestartPolicy};
use ractor::Actor;
use routeros_client::{Credentials, Transport};

use crate::recorder;
use crate::report::{FleetArgs, Report, device_addresses, exit_when_stdin_closes};

/// Options of the node child.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NodeOpts {
    #[command(flatten)]
    pub(crate) fleet: FleetArgs,
    /// Also publish events to NATS JetStream at this URL.
    #[arg(long)]
    pub(crate) nats: Option<String>,
    /// Seconds to wait after start-up before measuring the idle resident memory.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) idle_settle: f64,
}

/// Stable ids: device `n` of the benchmark tenant.
pub(crate) fn device_id(n: usize) -> DeviceId {
    DeviceId(uuid::Uuid::from_u128(
        0xd20e_0000_0000_0000_0000_0000_0000_0000 | n as u128,
    ))
}

pub(crate) fn tenant_id() -> TenantId {
    TenantId(uuid::Uuid::from_u128(
        0x7e4a_0000_0000_0000_0000_0000_0000_0001,
    ))
}

/// Counts what the harness needs from the event stream before handing events to the fan-out.
#[derive(Debug, Default)]
struct EventCounts {
    events: AtomicU64,
    /// Devices online or degraded (answering polls).
    up: AtomicI64,
    online: AtomicI64,
}

impl EventCounts {
    fn observe(&self, event: &Event) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Event::DeviceStatus(s) = event {
            let answering =
                |st: DeviceStatus| matches!(st, DeviceStatus::Online | DeviceStatus::Degraded);
            let delta = |prev: Option<DeviceStatus>,
                         now: DeviceStatus,
                         f: &dyn Fn(DeviceStatus) -> bool| {
                i64::from(f(now)) - i64::from(prev.is_some_and(f))
            };
            self.up.fetch_add(
                delta(s.previous_status, s.status, &answering),
                Ordering::Relaxed,
            );
            self.online.fetch_add(
                delta(s.previous_status, s.status, &|st| {
                    st == DeviceStatus::Online
                }),
                Ordering::Relaxed,
            );
        }
    }
}

pub(crate) fn run(opts: NodeOpts) -> anyhow::Result<()> {
    exit_when_stdin_closes();
    let metrics = recorder::install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(opts, metrics))
}

async fn serve(opts: NodeOpts, metrics: Arc<recorder::NodeMetrics>) -> anyhow::Result<()> {
    {
        let hub = EventHub::default();
        let publisher = opts.nats.as_ref().map(|url| {
            EventPublisher::start(PublisherConfig {
                nats_url: url.clone(),
                client_name: "drover-bench".to_owned(),
                ..PublisherConfig::default()
            })
        });
        let fanout = Fanout::new(hub, publisher.clone());
        let counts = Arc::new(EventCounts::default());
        let sink = {
            let counts = Arc::clone(&counts);
            let fanout = fanout.clone();
            Arc::new(move |event: Event| {
                counts.observe(&event);
                fanout.emit(event);
            })
        };
        let (node, _join) = NodeSupervisor::spawn(
            Some("node".to_owned()),
            NodeSupervisor,
            NodeArgs {
                policy: Arc::new(DevicePolicy::default()),
                restart: RestartPolicy::default(),
                events: sink,
                max_concurrent_handshakes: opts.fleet.handshakes,
                epoch: 0,
            },
        )
        .await?;

        // Idle: the whole node is up (runtime, actors, fan-out, publisher), no devices.
        tokio::time::sleep(Duration::from_secs_f64(opts.idle_settle)).await;
        Report::measure("idle", 0.0, 0, &metrics.lateness).emit();

        let f = &opts.fleet;
        let transport = Transport::insecure();
        let specs: Vec<DeviceSpec> = device_addresses(f.first, f.devices)
            .into_iter()
            .enumerate()
            .map(|(n, addr)| DeviceSpec {
                id: device_id(n),
                tenant_id: tenant_id(),
                host: addr.to_string(),
                port: Some(f.port),
                transport: transport.clone(),
                credentials: Credentials::new(f.user.clone(), f.password.clone()),
                poll_interval: f.interval,
            })
            .collect();
        let started = Instant::now();
        node.send_message(NodeMsg::Reconcile(specs))?;

        let mut tick = tokio::time::interval(f.report_every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let mut r = Report::measure(
                "tick",
                started.elapsed().as_secs_f64(),
                f.devices,
                &metrics.lateness,
            );
            r.up = counts.up.load(Ordering::Relaxed).max(0) as u64;
            r.online = counts.online.load(Ordering::Relaxed).max(0) as u64;
            r.polls = metrics.polls_ok.load(Ordering::Relaxed);
            r.polls_missed = metrics.polls_missed.load(Ordering::Relaxed);
            r.polls_failed = metrics.polls_failed.load(Ordering::Relaxed);
            r.polls_overrun = metrics.polls_overrun.load(Ordering::Relaxed);
            r.events = counts.events.load(Ordering::Relaxed);
            if let Some(p) = &publisher {
                let s = p.stats();
                r.nats_acked = Some(s.acked);
                r.nats_dropped = Some(s.dropped);
                r.nats_buffered = Some(s.buffered as u64);
            }
            r.emit();
        }
    }
}
