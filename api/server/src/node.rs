//! `drover run`: wires one node together — migrations, metrics, the store, the recorder, the
//! event fan-out, the cluster layer (shard leases), the actor tree and the device source —
//! and shuts it down in order.

use std::sync::Arc;
use std::time::Duration;

use drover_cluster::{Cluster, ClusterHandle};
use drover_device::{DevicePolicy, Fence, FencedLease};
use drover_model::Event;
use drover_node::fanout::Fanout;
use drover_node::hub::EventHub;
use drover_node::publisher::{EventPublisher, PublisherConfig};
use drover_node::{NodeArgs, NodeMsg, NodeSupervisor, RestartPolicy};
use drover_store::crypto::{Envelope, LocalKek};
use drover_store::recorder::{Record, Recorder, RecorderConfig};
use drover_store::timeseries::{Maintenance, Retention};
use drover_store::{PollerStore, Store, StoreConfig};
use ractor::Actor;
use routeros_client::TlsPolicy;

use crate::cluster_gateway::LocalGateway;
use crate::config::NodeConfig;
use crate::device_source::{self, DeviceSource};

pub(crate) async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let (recorder_impl, exporter) = metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(cfg.metrics_addr)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {}: {e}", cfg.metrics_addr))?;
    let prometheus = recorder_impl.handle();
    metrics::set_global_recorder(recorder_impl)
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    tokio::spawn(exporter);

    let report = cfg.database.migrate().await?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "migrations applied");
    }
    // Sample partitions exist ahead of time and old ones are dropped: now, then hourly.
    let retention = Retention::from_env(|k| std::env::var(k).ok())?;
    let maintenance = Maintenance::connect(&cfg.database.owner_url(), retention).await?;
    // Runs under an advisory lock: nodes that start together take turns, none fails.
    match maintenance.run(chrono::Utc::now()).await {
        Ok(report) => tracing::info!(
            created = report.created.len(),
            dropped = report.dropped.len(),
            "partition maintenance"
        ),
        Err(e) => tracing::warn!(error = %e, "partition maintenance failed; retrying in an hour"),
    }
    let maintenance_task = tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        hourly.tick().await;
        loop {
            hourly.tick().await;
            if let Err(e) = maintenance.run(chrono::Utc::now()).await {
                tracing::warn!(error = %e, "partition maintenance failed; retrying in an hour");
            }
        }
    });
    let pool = |url: String| StoreConfig {
        max_connections: cfg.db_max_connections,
        ..StoreConfig::new(url)
    };
    let store = Store::connect(&pool(cfg.database.app_url())).await?;
    let poller = PollerStore::connect(&pool(cfg.database.poller_url())).await?;
    let envelope = Arc::new(Envelope::new(Arc::new(LocalKek::from_env()?)));
    let api_envelope = envelope.clone();

    // The cluster layer decides which shards (and so which devices) run here; every poll
    // first checks that this node holds the device's shard lease at that instant.
    let cluster = Cluster::start(cfg.cluster(), Arc::new(LocalGateway)).await?;

    // Sample writers share the app pool with the API: at most a quarter of it.
    let (recorder, recorder_task) = Recorder::spawn(
        &store,
        RecorderConfig {
            writers: usize::try_from(cfg.db_max_connections / 4)
                .unwrap_or(1)
                .clamp(1, RecorderConfig::default().writers),
            ..RecorderConfig::default()
        },
    );
    let hub = EventHub::new(1024);
    let publisher = EventPublisher::start(PublisherConfig {
        nats_url: cfg.nats_url.clone(),
        ..PublisherConfig::default()
    });
    let fanout = Fanout::new(hub, Some(publisher.clone()));
    let sink_recorder = recorder.clone();
    let write_fence = cluster.clone();
    // Writes are fenced when the event is made (right after its poll): a sample or status of
    // an epoch this node does not hold at that instant is a stale owner's, and is not
    // written (it still goes out with its epoch, so consumers can tell). Checked here rather
    // than when the batch is written, so samples queued while the database is slow are
    // not lost at a hand-over.
    let events: drover_device::EventSink = Arc::new(move |event: Event| {
        let current = |device, epoch| {
            let ok = write_fence.lease_epoch(device) == Some(epoch);
            if !ok {
                metrics::counter!("drover_recorder_fenced_at_source_total").increment(1);
            }
            ok
        };
        match &event {
            Event::Metrics(m) if current(m.device_id, m.epoch) => {
                sink_recorder.record(Record::Metrics(m.clone()));
            }
            Event::DeviceStatus(s) if current(s.device_id, s.epoch) => {
                sink_recorder.record(Record::Status(s.clone()));
            }
            _ => {}
        }
        fanout.emit(event);
    });

    let fence_cluster = cluster.clone();
    let policy = DevicePolicy {
        offline_after_misses: cfg.offline_after_misses,
        fence: Some(Fence(Arc::new(move |id| {
            fence_cluster.lease(id).map(|l| FencedLease {
                epoch: l.epoch,
                idle_since: l.idle_since,
                handed_over_at_ms: l.handed_over_at_ms,
                leaving_at_ms: l.leaving_at_ms,
            })
        }))),
        wall_clock_grid: true,
        ..DevicePolicy::default()
    };
    let (node, node_task) = Actor::spawn(
        Some("node".into()),
        NodeSupervisor,
        NodeArgs {
            policy: Arc::new(policy),
            restart: RestartPolicy::default(),
            events,
            max_concurrent_handshakes: cfg.max_handshakes,
            epoch: 0,
        },
    )
    .await?;

    let verify = load_verify_policy(cfg.device_ca_bundle.as_deref());
    // One TLS policy (the CA bundle is read once) for the device actors and the API's tests.
    let api_verify = verify.clone();
    let source = DeviceSource {
        poller,
        envelope,
        verify,
    };
    let watcher = tokio::spawn(device_source::watch(
        source,
        cfg.database.poller_url(),
        node.clone(),
        cfg.full_reload(),
        cluster.owned_shards(),
    ));
    let status = tokio::spawn(print_status(
        node.clone(),
        publisher.clone(),
        recorder.clone(),
        cfg.status_every_secs,
    ));

    let cluster_status = tokio::spawn(cluster_status(cluster.clone()));

    // The HTTP API (nodes with the `api` role): commands reach devices through the cluster.
    if let (Some(email), Some(password)) = (&cfg.first_admin_email, &cfg.first_admin_password) {
        match crate::http::bootstrap_admin(&cfg.database.owner_url(), email, password).await {
            Ok(true) => {
                tracing::info!(%email, "first super_admin created; their first login leads to SRP enrolment")
            }
            Ok(false) => tracing::info!(%email, "first super_admin already exists"),
            Err(e) => return Err(e.context("cannot create the first super_admin")),
        }
    }
    let (http_stop, http_stop_rx) = tokio::sync::watch::channel(false);
    let http_task = if cfg.cluster.roles.serves_api() {
        let render = prometheus.clone();
        let ready_cluster = cluster.clone();
        Some(
            crate::http::serve(
                cfg.http.clone(),
                crate::http::HttpDeps {
                    store: store.clone(),
                    envelope: api_envelope,
                    redis_url: cfg.redis_url.clone(),
                    nats_url: cfg.nats_url.clone(),
                    devices: Arc::new(crate::http::ClusterDevices {
                        cluster: cluster.clone(),
                        verify: api_verify,
                    }),
                    metrics: Some(drover_api::MetricsRender(Arc::new(move || render.render()))),
                    ready_probes: vec![drover_api::ReadyProbe(Arc::new(move || {
                        let members = ready_cluster.members();
                        drover_api::DependencyHealth {
                            name: "cluster",
                            ok: !members.is_empty(),
                            detail: Some(format!("{} member(s)", members.len())),
                        }
                    }))],
                },
                http_stop_rx,
            )
            .await?,
        )
    } else {
        None
    };

    tracing::info!(metrics = %cfg.metrics_addr, nats = %cfg.nats_url, node = cluster.node_name(), "drover node running");
    wait_for_shutdown_signal().await;
    tracing::info!("shutting down: handing shards over, stopping device actors, flushing events");

    // Order: hand the shards over (the device source stops their devices, then the leases
    // are released for other nodes), stop taking changes, stop the rest of the actor tree
    // (closing sessions), flush events and samples.
    let _ = http_stop.send(true);
    if let Some(t) = http_task {
        let _ = tokio::time::timeout(Duration::from_secs(6), t).await;
    }
    cluster.shutdown().await;
    cluster_status.abort();
    watcher.abort();
    status.abort();
    maintenance_task.abort();
    node.stop(Some("node shutting down".into()));
    let _ = tokio::time::timeout(Duration::from_secs(30), node_task).await;
    publisher.shutdown(Duration::from_secs(5)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), recorder.flush()).await;
    recorder.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), recorder_task).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn load_verify_policy(bundle: Option<&std::path::Path>) -> Option<TlsPolicy> {
    let path = bundle.unwrap_or_else(|| std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"));
    match std::fs::read(path) {
        Ok(pem) => match TlsPolicy::verify_with_ca_pem(&pem) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable CA bundle: devices in verify mode will not start");
                None
            }
        },
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no CA bundle: devices in verify mode will not start");
            None
        }
    }
}

async fn print_status(
    node: ractor::ActorRef<NodeMsg>,
    publisher: EventPublisher,
    recorder: drover_store::recorder::RecorderHandle,
    every: u64,
) {
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Ok(summary) = ractor::call_t!(node, NodeMsg::Summary, 10_000) else {
            continue;
        };
        let p = publisher.stats();
        let r = recorder.stats();
        tracing::info!(
            devices = summary.devices,
            running = summary.running,
            quarantined = summary.quarantined.len(),
            events_acked = p.acked,
            events_buffered = p.buffered,
            events_dropped = p.dropped,
            nats_connected = p.connected,
            recorder = ?r,
            "status"
        );
    }
}

/// Logs membership and ownership changes.
async fn cluster_status(cluster: ClusterHandle) {
    let mut owned = cluster.owned_shards();
    let mut last = usize::MAX;
    loop {
        let n = owned.borrow_and_update().len();
        if n != last {
            let members = cluster.members();
            tracing::info!(
                shards = n,
                members = members.len(),
                alive = members.iter().filter(|m| m.alive).count(),
                "shards owned"
            );
            last = n;
        }
        if owned.changed().await.is_err() {
            return;
        }
    }
}

async fn wait_for_shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
