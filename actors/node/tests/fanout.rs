//! Event fan-out against real NATS JetStream: subjects and payloads, stream limits, buffering
//! across a NATS restart, drop-oldest beyond the bound, Msg-Id de-duplication, the per-tenant
//! hub and its lagging subscribers.
//!
//! Every test that needs NATS starts its own `nats-server -js` on a free port with its own
//! store directory (the machine's shared server on 4222 is never touched) and kills it on drop.
//! Waiting is done with "eventually" polling against a deadline, never with fixed sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::stream::DiscardPolicy;
use chrono::{DateTime, Utc};
use drover_model::events::{
    AlertEvent, ConfigChanged, ConfigPush, DeviceStatusChanged, EVENT_VERSION, FirmwareProgress,
    InterfaceSample, MetricsSample, SessionEnded, WirelessSummary,
};
use drover_model::{DeviceId, DeviceStatus, Event, TenantId};
use drover_node::fanout::Fanout;
use drover_node::hub::EventHub;
use drover_node::publisher::{
    EVENTS_STREAM, EventPublisher, METRICS_STREAM, PublisherConfig, StreamLimits, StreamSpec,
};
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// A private nats-server per test
// ---------------------------------------------------------------------------------------------

fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DROVER_NATS_SERVER") {
        return PathBuf::from(path);
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        let path = PathBuf::from(candidate);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from("nats-server")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `nats-server -js` child process on its own port and store directory.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// A server that is not running yet, on a reserved-free port.
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("drover-fanout-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            child: None,
            port: free_port(),
            dir,
        }
    }

    fn started() -> Self {
        let mut server = Self::new();
        server.start();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the server on the same port and store directory and waits until
    /// it accepts connections.
    fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-js")
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (set DROVER_NATS_SERVER if it is not in /usr/sbin)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
                panic!("nats-server exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("not running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `condition` until it holds, failing the test after `PATIENCE`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`eventually`] for a condition that needs to await (e.g. a NATS query).
async fn eventually_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A publisher tuned for tests: quick reconnects and retries.
fn config(url: &str) -> PublisherConfig {
    PublisherConfig {
        nats_url: url.to_owned(),
        client_name: "drover-fanout-test".to_owned(),
        ack_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        reconnect_max_delay: Duration::from_millis(200),
        ping_interval: Duration::from_secs(2),
        retry_max_delay: Duration::from_millis(200),
        ..PublisherConfig::default()
    }
}

fn at() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_774_267_205, 0).unwrap()
}

fn status(tenant: TenantId, device: DeviceId, uptime: u64) -> Event {
    Event::DeviceStatus(DeviceStatusChanged {
        version: EVENT_VERSION,
        device_id: device,
        tenant_id: tenant,
        status: DeviceStatus::Online,
        previous_status: Some(DeviceStatus::Connecting),
        reason: None,
        routeros_version: Some("7.16.1 (stable)".into()),
        board_name: Some("RB5009UG+S+".into()),
        uptime: Some(uptime),
        epoch: 0,
        at: at(),
    })
}

fn metrics(tenant: TenantId, device: DeviceId, uptime: u64) -> Event {
    Event::Metrics(MetricsSample {
        version: EVENT_VERSION,
        device_id: device,
        tenant_id: tenant,
        timestamp: at(),
        cpu_percent: Some(4.0),
        memory_percent: Some(20.2),
        disk_percent: Some(11.5),
        uptime: Some(uptime),
        temperature_c: Some(48.0),
        interfaces: vec![InterfaceSample {
            name: "ether1".into(),
            running: true,
            rx_bytes: 1_234_567,
            tx_bytes: 7_654_321,
            rx_bps: Some(1_000_000.0),
            tx_bps: None,
        }],
        wireless: Some(WirelessSummary {
            clients: 3,
            mean_signal_dbm: Some(-61.5),
            min_signal_dbm: Some(-70),
        }),
        epoch: 0,
    })
}

fn config_push(tenant: TenantId, device: DeviceId, n: u64) -> Event {
    Event::ConfigPush(ConfigPush {
        version: EVENT_VERSION,
        device_id: device,
        tenant_id: tenant,
        push_id: n.to_string(),
        stage: "applied".into(),
        message: None,
        at: at(),
    })
}

fn alert(tenant: TenantId, device: DeviceId) -> AlertEvent {
    AlertEvent {
        version: EVENT_VERSION,
        tenant_id: tenant,
        device_id: Some(device),
        alert_id: "a-1".into(),
        rule: "cpu_high".into(),
        severity: "warning".into(),
        message: "CPU above 90% for 5 minutes".into(),
        value: Some(93.0),
        threshold: Some(90.0),
        at: at(),
    }
}

/// One event of every family.
fn one_of_each(tenant: TenantId, device: DeviceId) -> Vec<Event> {
    vec![
        status(tenant, device, 3600),
        metrics(tenant, device, 3600),
        Event::ConfigChange(ConfigChanged {
            version: EVENT_VERSION,
            device_id: device,
            tenant_id: tenant,
            menu: "/ip/address".into(),
            action: "add".into(),
            item_id: Some("*1".into()),
            source: "api".into(),
            at: at(),
        }),
        Event::Firmware(FirmwareProgress {
            version: EVENT_VERSION,
            device_id: device,
            tenant_id: tenant,
            installed_version: Some("7.16.1".into()),
            latest_version: Some("7.16.2".into()),
            channel: Some("stable".into()),
            status: "New version is available".into(),
            stage: "checked".into(),
            at: at(),
        }),
        config_push(tenant, device, 1),
        Event::AlertFired(alert(tenant, device)),
        Event::AlertResolved(alert(tenant, device)),
        Event::SessionEnd(SessionEnded {
            version: EVENT_VERSION,
            tenant_id: tenant,
            device_id: Some(device),
            session_id: "s-1".into(),
            user_id: Some("u-1".into()),
            reason: "normal".into(),
            started_at: at(),
            ended_at: at(),
        }),
    ]
}

/// Event number `n`, alternating between the two streams; `marker` reads `n` back.
fn numbered(tenant: TenantId, device: DeviceId, n: u64) -> Event {
    if n.is_multiple_of(2) {
        metrics(tenant, device, n)
    } else {
        config_push(tenant, device, n)
    }
}

fn marker(payload: &Value) -> u64 {
    match payload.get("push_id").and_then(Value::as_str) {
        Some(id) => id.parse().unwrap(),
        None => payload["uptime"].as_u64().unwrap(),
    }
}

/// One stored message.
struct Stored {
    subject: String,
    msg_id: String,
    payload: Value,
}

/// Every message of `stream`, read by sequence.
async fn read_stream(url: &str, stream: &str) -> Vec<Stored> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await.unwrap();
        out.push(Stored {
            subject: message.subject.to_string(),
            msg_id: message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
            payload: serde_json::from_slice(&message.payload).unwrap(),
        });
    }
    out
}

async fn stream_info(url: &str, stream: &str) -> Option<jetstream::stream::Info> {
    let client = async_nats::connect(url).await.ok()?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(stream).await.ok()?;
    stream.info().await.ok().cloned()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn events_arrive_on_the_documented_subjects_with_the_documented_payloads() {
    let server = NatsServer::started();
    let publisher = EventPublisher::start(config(&server.url()));
    let fanout = Fanout::new(EventHub::new(64), Some(publisher.clone()));
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());

    for event in one_of_each(tenant, device) {
        fanout.emit(event);
    }
    eventually("8 acks", || publisher.stats().acked == 8).await;

    // The streams exist with the default limits.
    let events = stream_info(&server.url(), EVENTS_STREAM).await.unwrap();
    assert_eq!(events.config.subjects, StreamLimits::events_subjects());
    assert_eq!(events.config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(events.config.max_bytes, 1 << 30);
    assert_eq!(events.config.discard, DiscardPolicy::Old);
    let metrics_info = stream_info(&server.url(), METRICS_STREAM).await.unwrap();
    assert_eq!(metrics_info.config.subjects, vec!["metrics.sample.>"]);
    assert_eq!(metrics_info.config.max_age, Duration::from_secs(3600));
    assert_eq!(metrics_info.config.max_bytes, 2 << 30);
    assert_eq!(metrics_info.config.discard, DiscardPolicy::Old);

    // Subjects and fields exactly as docs/events.md lists them.
    let (t, d) = (tenant.to_string(), device.to_string());
    let expected: Vec<(String, &[&str])> = vec![
        (
            format!("device.status.{t}.{d}"),
            &[
                "version",
                "device_id",
                "tenant_id",
                "status",
                "previous_status",
                "reason",
                "routeros_version",
                "board_name",
                "uptime",
                "epoch",
                "at",
            ],
        ),
        (
            format!("config.change.{t}.{d}"),
            &[
                "version",
                "device_id",
                "tenant_id",
                "menu",
                "action",
                "item_id",
                "source",
                "at",
            ],
        ),
        (
            format!("firmware.progress.{t}.{d}"),
            &[
                "version",
                "device_id",
                "tenant_id",
                "installed_version",
                "latest_version",
                "channel",
                "status",
                "stage",
                "at",
            ],
        ),
        (
            format!("config.push.{t}.{d}"),
            &[
                "version",
                "device_id",
                "tenant_id",
                "push_id",
                "stage",
                "message",
                "at",
            ],
        ),
        (
            format!("alert.fired.{t}"),
            &[
                "version",
                "tenant_id",
                "device_id",
                "alert_id",
                "rule",
                "severity",
                "message",
                "value",
                "threshold",
                "at",
            ],
        ),
        (
            format!("alert.resolved.{t}"),
            &[
                "version",
                "tenant_id",
                "device_id",
                "alert_id",
                "rule",
                "severity",
                "message",
                "value",
                "threshold",
                "at",
            ],
        ),
        (
            "audit.session.end".to_owned(),
            &[
                "version",
                "tenant_id",
                "device_id",
                "session_id",
                "user_id",
                "reason",
                "started_at",
                "ended_at",
            ],
        ),
    ];
    let stored = read_stream(&server.url(), EVENTS_STREAM).await;
    assert_eq!(stored.len(), expected.len());
    let mut ids = HashSet::new();
    for (message, (subject, fields)) in stored.iter().zip(&expected) {
        assert_eq!(&message.subject, subject);
        assert!(
            ids.insert(message.msg_id.clone()),
            "Nats-Msg-Id missing or reused"
        );
        assert_eq!(message.payload["version"], 1, "{subject}");
        assert_eq!(message.payload["tenant_id"], t.as_str(), "{subject}");
        assert_eq!(message.payload["device_id"], d.as_str(), "{subject}");
        let object = message.payload.as_object().unwrap();
        for field in *fields {
            assert!(object.contains_key(*field), "{subject} lacks {field}");
        }
        assert_eq!(
            object.len(),
            fields.len(),
            "{subject} has undocumented fields: {object:?}"
        );
    }
    assert_eq!(stored[0].payload["status"], "online");
    assert_eq!(stored[0].payload["routeros_version"], "7.16.1 (stable)");
    assert_eq!(stored[0].payload["uptime"], 3600);
    assert_eq!(stored[4].payload["severity"], "warning");

    let samples = read_stream(&server.url(), METRICS_STREAM).await;
    assert_eq!(samples.len(), 1);
    let sample = &samples[0];
    assert_eq!(sample.subject, format!("metrics.sample.{t}.{d}"));
    assert!(ids.insert(sample.msg_id.clone()));
    let p = &sample.payload;
    assert_eq!(p["version"], 1);
    for field in [
        "device_id",
        "tenant_id",
        "timestamp",
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "uptime",
        "temperature_c",
        "interfaces",
        "wireless",
        "epoch",
    ] {
        assert!(p.get(field).is_some(), "metrics.sample lacks {field}");
    }
    let iface = &p["interfaces"][0];
    assert_eq!(iface["name"], "ether1");
    assert_eq!(iface["rx_bytes"], 1_234_567);
    assert_eq!(iface["tx_bytes"], 7_654_321);
    assert_eq!(iface["rx_bps"], 1_000_000.0);
    assert!(iface["tx_bps"].is_null());
    assert_eq!(p["wireless"]["clients"], 3);

    let stats = publisher.stats();
    assert_eq!((stats.published, stats.dropped, stats.buffered), (8, 0, 0));
    assert!(stats.connected);
}

#[tokio::test]
async fn stream_limits_are_configurable_and_applied_to_existing_streams() {
    let server = NatsServer::started();
    // An existing stream with other limits is updated in place at connect.
    {
        let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        js.create_stream(jetstream::stream::Config {
            name: "T_EVENTS".into(),
            subjects: vec!["device.status.>".into()],
            max_age: Duration::from_secs(86_400),
            max_bytes: 10 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let spec = |name: &str, secs: u64, mib: i64| StreamSpec {
        name: name.into(),
        max_age: Duration::from_secs(secs),
        max_bytes: mib << 20,
        duplicate_window: Duration::from_secs(60),
        replicas: 1,
    };
    let publisher = EventPublisher::start(PublisherConfig {
        streams: StreamLimits {
            events: spec("T_EVENTS", 7200, 64),
            metrics: spec("T_METRICS", 600, 32),
        },
        ..config(&server.url())
    });
    let url = server.url();
    eventually_async("streams updated", || async {
        let (Some(e), Some(m)) = (
            stream_info(&url, "T_EVENTS").await,
            stream_info(&url, "T_METRICS").await,
        ) else {
            return false;
        };
        e.config.max_age == Duration::from_secs(7200)
            && e.config.max_bytes == 64 << 20
            && e.config.subjects == StreamLimits::events_subjects()
            && e.config.duplicate_window == Duration::from_secs(60)
            && m.config.max_age == Duration::from_secs(600)
            && m.config.max_bytes == 32 << 20
    })
    .await;

    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    publisher.publish(Arc::new(metrics(tenant, device, 1)));
    publisher.publish(Arc::new(status(tenant, device, 1)));
    eventually("2 acks", || publisher.stats().acked == 2).await;
    assert_eq!(read_stream(&url, "T_METRICS").await.len(), 1);
    assert_eq!(read_stream(&url, "T_EVENTS").await.len(), 1);
}

#[tokio::test]
async fn nats_restart_loses_no_event_within_the_buffer_bound() {
    let mut server = NatsServer::started();
    let publisher = EventPublisher::start(PublisherConfig {
        buffer_capacity: 10_000,
        ..config(&server.url())
    });
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());

    for n in 0..100 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    eventually("first 100 acked", || publisher.stats().acked == 100).await;

    server.stop();
    eventually("disconnect noticed", || !publisher.stats().connected).await;
    for n in 100..600 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    let stats = publisher.stats();
    assert_eq!(stats.published, 600);
    assert_eq!(stats.dropped, 0);
    assert!(stats.buffered >= 500, "{stats:?}");
    assert!(stats.oldest_buffered_age.is_some());

    server.start();
    eventually("all 600 acked after the restart", || {
        publisher.stats().acked == 600
    })
    .await;
    let stats = publisher.stats();
    assert_eq!((stats.dropped, stats.buffered), (0, 0), "{stats:?}");
    assert!(stats.connected);

    // Read everything back by sequence: every event exactly once.
    let mut stored = read_stream(&server.url(), EVENTS_STREAM).await;
    stored.extend(read_stream(&server.url(), METRICS_STREAM).await);
    assert_eq!(stored.len(), 600, "duplicates or losses in the streams");
    let markers: BTreeSet<u64> = stored.iter().map(|m| marker(&m.payload)).collect();
    assert_eq!(markers, (0..600).collect::<BTreeSet<u64>>());
    let ids: HashSet<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), 600);
}

#[tokio::test]
async fn nats_stopped_while_batches_are_in_flight_stores_every_event_once() {
    // The server goes away while the publisher is busy, so some batches lose their acks and
    // are retried after the restart; the Msg-Id keeps the stream free of duplicates.
    let mut server = NatsServer::started();
    let publisher = EventPublisher::start(PublisherConfig {
        buffer_capacity: 20_000,
        batch_size: 64,
        ..config(&server.url())
    });
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    eventually("connected", || publisher.stats().connected).await;

    for n in 0..5_000 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    // Stop as soon as the publisher is part-way through the backlog.
    eventually("publishing under way", || publisher.stats().acked > 0).await;
    server.stop();
    for n in 5_000..6_000 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    server.start();
    eventually("all 6,000 acked", || publisher.stats().acked == 6_000).await;

    let mut stored = read_stream(&server.url(), EVENTS_STREAM).await;
    stored.extend(read_stream(&server.url(), METRICS_STREAM).await);
    let markers: BTreeSet<u64> = stored.iter().map(|m| marker(&m.payload)).collect();
    assert_eq!(markers, (0..6_000).collect::<BTreeSet<u64>>());
    assert_eq!(stored.len(), 6_000, "duplicates in the streams");
    let stats = publisher.stats();
    assert_eq!((stats.dropped, stats.buffered), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn beyond_the_bound_the_oldest_events_are_dropped_and_counted() {
    // NATS is down from the start: nothing listens on the port yet.
    let mut server = NatsServer::new();
    let publisher = EventPublisher::start(PublisherConfig {
        buffer_capacity: 100,
        batch_size: 32,
        ..config(&server.url())
    });
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    for n in 0..250 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    let stats = publisher.stats();
    assert_eq!(stats.published, 250);
    assert_eq!(stats.buffered, 100);
    assert_eq!(stats.dropped_buffer_full, 150);
    assert_eq!(stats.dropped, 150);
    assert!(!stats.connected);

    server.start();
    eventually("the 100 newest acked", || publisher.stats().acked == 100).await;
    let mut stored = read_stream(&server.url(), EVENTS_STREAM).await;
    stored.extend(read_stream(&server.url(), METRICS_STREAM).await);
    let markers: BTreeSet<u64> = stored.iter().map(|m| marker(&m.payload)).collect();
    assert_eq!(markers, (150..250).collect::<BTreeSet<u64>>());
    assert_eq!(stored.len(), 100);
    assert_eq!(publisher.stats().dropped, 150);
}

#[tokio::test]
async fn a_retry_with_the_same_msg_id_is_stored_once() {
    let server = NatsServer::started();
    let publisher = EventPublisher::start(config(&server.url()));
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    let event = status(tenant, device, 42);
    publisher.publish(Arc::new(event.clone()));
    eventually("ack", || publisher.stats().acked == 1).await;
    let stored = read_stream(&server.url(), EVENTS_STREAM).await;
    assert_eq!(stored.len(), 1);
    let msg_id = stored[0].msg_id.clone();
    assert!(!msg_id.is_empty());

    // What a retry after a lost ack does: the same Msg-Id again.
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id.as_str());
    let ack = js
        .publish_with_headers(event.subject(), headers, event.to_json().into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(read_stream(&server.url(), EVENTS_STREAM).await.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn publish_never_blocks_while_nats_is_down() {
    // On a single-threaded runtime the publisher's task cannot run while this test calls
    // `emit` in a loop without awaiting: if publishing depended on that task (a bounded
    // channel, a lock it holds across an await, a NATS round trip), the loop would hang.
    let mut server = NatsServer::started();
    let publisher = EventPublisher::start(PublisherConfig {
        buffer_capacity: 1_000,
        ..config(&server.url())
    });
    let hub = EventHub::new(16);
    let (recorder_tx, _recorder_rx) = mpsc::channel(10);
    let fanout = Fanout::new(hub.clone(), Some(publisher.clone())).with_recorder(recorder_tx);
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    let _subscriber = hub.subscribe(tenant);

    fanout.emit(status(tenant, device, 0));
    eventually("connected and acked", || publisher.stats().acked == 1).await;
    server.stop();
    eventually("disconnect noticed", || !publisher.stats().connected).await;

    for n in 0..50_000 {
        fanout.emit(numbered(tenant, device, n));
    }
    let stats = publisher.stats();
    assert_eq!(stats.published, 50_001);
    assert_eq!(stats.buffered, 1_000);
    assert_eq!(stats.dropped_buffer_full, 49_000);
    let fanout_stats = fanout.stats();
    assert_eq!(fanout_stats.emitted, 50_001);
    // The recorder queue (10) took the first events; the rest were counted, not awaited.
    assert_eq!(fanout_stats.recorder_dropped_full, 50_001 - 10);

    // A publisher that never reached NATS behaves the same.
    let never = EventPublisher::start(PublisherConfig {
        buffer_capacity: 10,
        ..config(&format!("nats://127.0.0.1:{}", free_port()))
    });
    for n in 0..10_000 {
        never.publish(Arc::new(numbered(tenant, device, n)));
    }
    assert_eq!(never.stats().dropped, 9_990);
    assert_eq!(never.stats().buffered, 10);
}

#[tokio::test]
async fn shutdown_flushes_within_the_grace_and_counts_the_rest() {
    let server = NatsServer::started();
    let publisher = EventPublisher::start(config(&server.url()));
    let observer = publisher.clone();
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    eventually("connected", || observer.stats().connected).await;
    for n in 0..2_000 {
        publisher.publish(Arc::new(numbered(tenant, device, n)));
    }
    publisher.shutdown(Duration::from_secs(20)).await;
    let stats = observer.stats();
    assert_eq!(stats.acked, 2_000, "{stats:?}");
    assert_eq!((stats.dropped, stats.buffered), (0, 0));
    // After shutdown nothing is accepted, and nothing blocks.
    observer.publish(Arc::new(status(tenant, device, 1)));
    assert_eq!(observer.stats().dropped_shutdown, 1);

    // With NATS unreachable the grace runs out and what is left is counted.
    let down = EventPublisher::start(config(&format!("nats://127.0.0.1:{}", free_port())));
    let watcher = down.clone();
    for n in 0..50 {
        down.publish(Arc::new(numbered(tenant, device, n)));
    }
    down.shutdown(Duration::from_millis(100)).await;
    let stats = watcher.stats();
    assert_eq!(
        (stats.dropped_shutdown, stats.buffered, stats.acked),
        (50, 0, 0)
    );
}

#[tokio::test]
async fn fanout_feeds_the_hub_the_publisher_and_the_recorder() {
    let server = NatsServer::started();
    let publisher = EventPublisher::start(config(&server.url()));
    let hub = EventHub::new(64);
    let (recorder_tx, mut recorder_rx) = mpsc::channel(4);
    let fanout = Fanout::new(hub.clone(), Some(publisher.clone())).with_recorder(recorder_tx);
    let (tenant, device) = (TenantId::new_random(), DeviceId::new_random());
    let mut live = hub.subscribe(tenant);

    let sink = fanout.sink();
    for n in 0..10 {
        sink(numbered(tenant, device, n));
    }
    for n in 0..10 {
        let event = live.recv().await.unwrap();
        assert_eq!(
            marker(&serde_json::from_slice(&event.to_json()).unwrap()),
            n
        );
    }
    for n in 0..4 {
        let event = recorder_rx.recv().await.unwrap();
        assert_eq!(
            marker(&serde_json::from_slice(&event.to_json()).unwrap()),
            n
        );
    }
    assert_eq!(fanout.stats().recorder_dropped_full, 6);
    eventually("10 acks", || publisher.stats().acked == 10).await;

    drop(recorder_rx);
    fanout.emit(status(tenant, device, 1));
    assert_eq!(fanout.stats().recorder_dropped_closed, 1);
}

#[tokio::test]
async fn the_hub_delivers_only_the_subscribed_tenants_events() {
    let hub = EventHub::new(32);
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let device = DeviceId::new_random();
    let mut first = hub.subscribe(a);
    let mut second = hub.subscribe(a);
    assert_eq!(hub.subscriber_count(a), 2);
    assert_eq!(hub.subscriber_count(b), 0);

    hub.publish(Arc::new(status(a, device, 1)));
    hub.publish(Arc::new(status(b, device, 2)));
    hub.publish(Arc::new(config_push(a, device, 3)));

    for receiver in [&mut first, &mut second] {
        let got: Vec<u64> = vec![
            marker(&serde_json::from_slice(&receiver.recv().await.unwrap().to_json()).unwrap()),
            marker(&serde_json::from_slice(&receiver.recv().await.unwrap().to_json()).unwrap()),
        ];
        assert_eq!(got, vec![1, 3]);
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    // A tenant whose subscribers left costs nothing after its next event.
    drop(first);
    drop(second);
    assert_eq!(hub.subscriber_count(a), 0);
    hub.publish(Arc::new(status(a, device, 4)));
    assert_eq!(hub.tenant_count(), 0);
}

#[tokio::test]
async fn a_slow_subscriber_lags_without_blocking_the_publisher() {
    let hub = EventHub::new(16);
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let device = DeviceId::new_random();
    let mut slow = hub.subscribe(a);
    let mut other_tenant = hub.subscribe(b);

    // The slow subscriber reads nothing while 1,000 events go out: publish returns each time.
    for n in 0..1_000 {
        hub.publish(Arc::new(config_push(a, device, n)));
    }
    hub.publish(Arc::new(config_push(b, device, 7)));

    assert_eq!(
        slow.recv().await.unwrap_err(),
        RecvError::Lagged(1_000 - 16)
    );
    // After the lag it continues with the oldest event still held.
    let next = slow.recv().await.unwrap();
    assert_eq!(
        marker(&serde_json::from_slice(&next.to_json()).unwrap()),
        1_000 - 16
    );
    // Another tenant's subscriber is unaffected.
    let other = other_tenant.recv().await.unwrap();
    assert_eq!(
        marker(&serde_json::from_slice(&other.to_json()).unwrap()),
        7
    );
}
