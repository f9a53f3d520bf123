//! JetStream publishing of device events with a bounded buffer that survives NATS outages.
//!
//! [`EventPublisher::publish`] only appends to an in-memory queue (a short mutex, no await):
//! polling and the API never wait for NATS. One background task owns the NATS connection and
//! drains the queue in batches:
//!
//! 1. It connects in the background (the client reconnects forever with capped, jittered
//!    back-off) and, after every (re)connect, creates or updates the two streams with their
//!    age and byte limits ([`StreamLimits`]).
//! 2. It takes up to `batch_size` events from the front, publishes them with the async
//!    JetStream API (collecting `PublishAckFuture`s), then awaits all acks.
//! 3. Acked events are done. Events whose ack failed or timed out go back to the front of
//!    the queue in their original order and are retried; every event carries a
//!    `Nats-Msg-Id` fixed when it was enqueued, so JetStream's duplicate window makes a retry
//!    of an event it already stored a no-op.
//!
//! While NATS is unreachable the queue holds at most `buffer_capacity` events; beyond that
//! the oldest are dropped and counted (`drover_events_dropped_total{reason="buffer_full"}`).
//! Delivery into JetStream is therefore at-least-once within the bound, de-duplicated within
//! the stream's duplicate window. docs/events.md is the consumer-facing description.
//!
//! Metrics: `drover_events_published_total` (events handed to `publish`),
//! `drover_events_acked_total`, `drover_events_dropped_total{reason}`,
//! `drover_events_publish_retries_total`, `drover_events_buffered` (gauge),
//! `drover_events_publish_lag_seconds` (histogram, enqueue to ack) and
//! `drover_nats_connected` (gauge).

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use drover_model::Event;
use drover_model::subjects::DEVICE_EVENT_FILTERS;
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Name of the stream holding every event family except metrics samples.
pub const EVENTS_STREAM: &str = "DROVER_EVENTS";
/// Name of the stream holding `metrics.sample.>`.
pub const METRICS_STREAM: &str = "DROVER_METRICS";

const GIB: i64 = 1024 * 1024 * 1024;
/// How often the idle publisher task refreshes its gauges and re-checks the connection.
const TICK: Duration = Duration::from_millis(250);

/// Why a publisher configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublisherError {
    #[error("invalid publisher configuration: {0}")]
    InvalidConfig(String),
}

/// One JetStream stream's name and limits. Limits are always set: the original system ran
/// out of memory with unbounded streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    /// Messages older than this are removed.
    pub max_age: Duration,
    /// When the stream exceeds this many bytes the oldest messages are removed (discard old).
    pub max_bytes: i64,
    /// Window within which a repeated `Nats-Msg-Id` is recognised as a duplicate. A retry
    /// later than this after the first attempt may be stored twice.
    pub duplicate_window: Duration,
    /// Stream replicas (1 on a single server; 3 in a JetStream cluster).
    pub replicas: usize,
}

/// The streams drover publishes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// Every family but metrics samples. Default `DROVER_EVENTS`, 7 days, 1 GiB.
    pub events: StreamSpec,
    /// `metrics.sample.>`. Default `DROVER_METRICS`, 1 hour, 2 GiB.
    pub metrics: StreamSpec,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            events: StreamSpec {
                name: EVENTS_STREAM.to_owned(),
                max_age: Duration::from_secs(7 * 24 * 3600),
                max_bytes: GIB,
                duplicate_window: Duration::from_secs(120),
                replicas: 1,
            },
            metrics: StreamSpec {
                name: METRICS_STREAM.to_owned(),
                max_age: Duration::from_secs(3600),
                max_bytes: 2 * GIB,
                duplicate_window: Duration::from_secs(120),
                replicas: 1,
            },
        }
    }
}

impl StreamLimits {
    /// Subjects captured by the events stream: the model's filters without metrics samples.
    pub fn events_subjects() -> Vec<String> {
        DEVICE_EVENT_FILTERS
            .iter()
            .filter(|filter| !is_metrics_filter(filter))
            .map(|filter| (*filter).to_owned())
            .collect()
    }

    /// Subjects captured by the metrics stream.
    pub fn metrics_subjects() -> Vec<String> {
        DEVICE_EVENT_FILTERS
            .iter()
            .filter(|filter| is_metrics_filter(filter))
            .map(|filter| (*filter).to_owned())
            .collect()
    }

    /// The name of the stream that stores `event`.
    pub fn stream_for(&self, event: &Event) -> &str {
        match event {
            Event::Metrics(_) => &self.metrics.name,
            _ => &self.events.name,
        }
    }

    /// The JetStream configurations, in the order they must be applied (events first, so a
    /// stream that used to capture metrics subjects releases them before the metrics stream
    /// claims them).
    pub fn stream_configs(&self) -> [stream::Config; 2] {
        [
            stream_config(
                &self.events,
                Self::events_subjects(),
                "drover device events (all families but metrics samples)",
            ),
            stream_config(
                &self.metrics,
                Self::metrics_subjects(),
                "drover metrics samples",
            ),
        ]
    }
}

fn is_metrics_filter(filter: &str) -> bool {
    filter.starts_with("metrics.sample.")
}

fn stream_config(spec: &StreamSpec, subjects: Vec<String>, description: &str) -> stream::Config {
    stream::Config {
        name: spec.name.clone(),
        description: Some(description.to_owned()),
        subjects,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        max_age: spec.max_age,
        max_bytes: spec.max_bytes,
        duplicate_window: spec.duplicate_window,
        num_replicas: spec.replicas.max(1),
        ..Default::default()
    }
}

/// How the publisher connects, buffers and batches.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherConfig {
    /// `nats://host:port` (user and password may be part of the URL).
    pub nats_url: String,
    /// Connection name shown by the NATS server.
    pub client_name: String,
    /// Events held while NATS is slow or down; beyond it the oldest are dropped. Events in
    /// flight (at most `batch_size`) come on top.
    pub buffer_capacity: usize,
    /// Events published per batch before their acks are awaited.
    pub batch_size: usize,
    pub streams: StreamLimits,
    /// Create or update the streams after every (re)connect. Off when an operator manages
    /// them; then they must exist with matching subjects.
    pub manage_streams: bool,
    /// How long one ack (and one hand-over to the connection) may take before the event is
    /// retried.
    pub ack_timeout: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Cap of the reconnect back-off (it starts at 100 ms, doubles, with jitter).
    pub reconnect_max_delay: Duration,
    /// Ping interval; a dead server is noticed after two unanswered pings.
    pub ping_interval: Duration,
    /// Cap of the pause after a batch with failures.
    pub retry_max_delay: Duration,
    /// An event the server rejects (other than for a missing stream or a timeout) this many
    /// times is dropped (`reason="rejected"`).
    pub max_rejections: u32,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            client_name: "drover-node".to_owned(),
            buffer_capacity: 100_000,
            batch_size: 256,
            streams: StreamLimits::default(),
            manage_streams: true,
            ack_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            reconnect_max_delay: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(2),
            max_rejections: 5,
        }
    }
}

impl PublisherConfig {
    /// Checks the configuration; a binary calls it at start-up and refuses a bad one.
    /// [`EventPublisher::start`] itself never fails: it repairs what it can (see
    /// [`PublisherConfig::sanitized`]).
    pub fn validate(&self) -> Result<(), PublisherError> {
        let bad = |what: &str| Err(PublisherError::InvalidConfig(what.to_owned()));
        if self.nats_url.trim().is_empty() {
            return bad("nats_url is empty");
        }
        if self.buffer_capacity == 0 {
            return bad("buffer_capacity must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        for spec in [&self.streams.events, &self.streams.metrics] {
            if spec.name.is_empty() || spec.name.contains(['.', '*', '>', ' ']) {
                return bad(&format!("invalid stream name {:?}", spec.name));
            }
            if spec.max_age.is_zero() {
                return bad(&format!(
                    "stream {} needs a max_age (zero means unbounded)",
                    spec.name
                ));
            }
            if spec.max_bytes <= 0 {
                return bad(&format!("stream {} needs a positive max_bytes", spec.name));
            }
        }
        if self.streams.events.name == self.streams.metrics.name {
            return bad("the events and metrics streams need different names");
        }
        if self.ack_timeout.is_zero() {
            return bad("ack_timeout must be positive");
        }
        Ok(())
    }

    /// The configuration with unusable values replaced by defaults: zero sizes become 1,
    /// unbounded stream limits become the default limits, a zero timeout the default.
    pub fn sanitized(mut self) -> Self {
        let defaults = Self::default();
        self.buffer_capacity = self.buffer_capacity.max(1);
        self.batch_size = self.batch_size.max(1);
        for (spec, default) in [
            (&mut self.streams.events, &defaults.streams.events),
            (&mut self.streams.metrics, &defaults.streams.metrics),
        ] {
            if spec.max_age.is_zero() {
                spec.max_age = default.max_age;
            }
            if spec.max_bytes <= 0 {
                spec.max_bytes = default.max_bytes;
            }
        }
        if self.ack_timeout.is_zero() {
            self.ack_timeout = defaults.ack_timeout;
        }
        if self.connect_timeout.is_zero() {
            self.connect_timeout = defaults.connect_timeout;
        }
        if self.ping_interval.is_zero() {
            self.ping_interval = defaults.ping_interval;
        }
        self.max_rejections = self.max_rejections.max(1);
        self
    }
}

/// A snapshot of the publisher's counters. Once the queue is empty,
/// `published == acked + dropped + buffered`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublisherStats {
    /// Events handed to [`EventPublisher::publish`].
    pub published: u64,
    /// Events JetStream acknowledged as stored (each counted once, retries included).
    pub acked: u64,
    /// Of `acked`, acks JetStream flagged as duplicates: a retry of an event it had already
    /// stored, recognised by its `Nats-Msg-Id`.
    pub duplicates: u64,
    /// Publish attempts whose ack failed or timed out, put back to be retried.
    pub retried: u64,
    /// Events dropped, all reasons.
    pub dropped: u64,
    /// Oldest events dropped because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Events the server rejected repeatedly (e.g. larger than its max payload).
    pub dropped_rejected: u64,
    /// Events still buffered when the shutdown grace ran out, or published after shutdown.
    pub dropped_shutdown: u64,
    /// Events waiting or in flight.
    pub buffered: usize,
    /// Events published and awaiting their ack.
    pub in_flight: usize,
    /// Whether the NATS connection is up.
    pub connected: bool,
    /// Age of the oldest event not yet acked.
    pub oldest_buffered_age: Option<Duration>,
}

/// Publishes events to JetStream through a bounded buffer. Cheap to clone; all clones share
/// one queue and one connection. Dropping the last clone stops the background task without
/// flushing; call [`EventPublisher::shutdown`] to flush.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    handle: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    spawned: bool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close(Instant::now());
    }
}

impl EventPublisher {
    /// Starts the publisher. Returns at once, also when NATS is down: the connection and
    /// the stream set-up happen in a background task. Must be called inside a Tokio runtime;
    /// outside one the publisher only buffers (and drops beyond the bound).
    pub fn start(config: PublisherConfig) -> Self {
        if let Err(err) = config.validate() {
            tracing::warn!(error = %err, "event publisher configuration repaired with defaults");
        }
        let config = config.sanitized();
        let shared = Arc::new(Shared::new(config));
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(run(Arc::clone(&shared)))),
            Err(_) => {
                tracing::error!(
                    "EventPublisher::start called outside a Tokio runtime; events will only be buffered"
                );
                None
            }
        };
        metrics::gauge!("drover_nats_connected").set(0.0);
        Self {
            handle: Arc::new(Handle {
                shared,
                spawned: task.is_some(),
                task: Mutex::new(task),
            }),
        }
    }

    /// Enqueues `event` for JetStream. Never blocks and never fails: beyond the buffer
    /// capacity the oldest waiting event is dropped and counted.
    pub fn publish(&self, event: Arc<Event>) {
        self.handle.shared.enqueue(event);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PublisherStats {
        self.handle.shared.stats()
    }

    /// The configuration in force (after [`PublisherConfig::sanitized`]).
    pub fn config(&self) -> &PublisherConfig {
        &self.handle.shared.config
    }

    /// Stops accepting events, publishes what it can within `grace`, counts the rest as
    /// dropped (`reason="shutdown"`) and closes the connection. Stops the publisher for
    /// every clone.
    pub async fn shutdown(self, grace: Duration) {
        let shared = Arc::clone(&self.handle.shared);
        shared.begin_close(Instant::now() + grace);
        let task = lock(&self.handle.task).take();
        if let Some(mut task) = task {
            // The task honours the deadline itself; the margin covers closing the connection.
            let limit = grace + Duration::from_secs(2);
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                task.abort();
                shared.drop_all_buffered("shutdown");
            }
        } else if !self.handle.spawned {
            // Started outside a runtime: nothing will ever publish what is buffered.
            shared.drop_all_buffered("shutdown");
        }
        // Otherwise another clone's `shutdown` is already flushing.
    }
}

/// One buffered event.
#[derive(Debug)]
struct Pending {
    event: Arc<Event>,
    /// `Nats-Msg-Id`: unique per event, fixed at enqueue, so retries are idempotent.
    msg_id: String,
    enqueued_at: Instant,
    /// Subject and JSON, computed on the first attempt and reused by retries.
    encoded: Option<(String, Bytes)>,
    rejections: u32,
}

#[derive(Debug, Default)]
struct Buffer {
    queue: VecDeque<Pending>,
    in_flight: usize,
    in_flight_oldest: Option<Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    acked: AtomicU64,
    duplicates: AtomicU64,
    retried: AtomicU64,
    dropped_buffer_full: AtomicU64,
    dropped_rejected: AtomicU64,
    dropped_shutdown: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    config: PublisherConfig,
    buffer: Mutex<Buffer>,
    /// Wakes the task: an event was enqueued, the connection came up, or shutdown began.
    wake: Notify,
    connected: AtomicBool,
    /// Incremented on every successful (re)connect; streams are ensured once per value.
    connection_generation: AtomicU64,
    closing: AtomicBool,
    /// After `closing`, no event is accepted any more.
    closed: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    counters: Counters,
    id_prefix: String,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn new(config: PublisherConfig) -> Self {
        Self {
            config,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            connection_generation: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            deadline: Mutex::new(None),
            counters: Counters::default(),
            id_prefix: uuid::Uuid::new_v4().simple().to_string(),
            next_id: AtomicU64::new(1),
        }
    }

    fn enqueue(&self, event: Arc<Event>) {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("drover_events_published_total").increment(1);
        if self.closed.load(Ordering::Acquire) {
            self.count_dropped("shutdown", 1);
            return;
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pending = Pending {
            event,
            msg_id: format!("{}-{n}", self.id_prefix),
            enqueued_at: Instant::now(),
            encoded: None,
            rejections: 0,
        };
        let dropped = {
            let mut buffer = lock(&self.buffer);
            buffer.queue.push_back(pending);
            trim(&mut buffer.queue, self.config.buffer_capacity)
        };
        if dropped > 0 {
            self.count_dropped("buffer_full", dropped);
        }
        self.wake.notify_one();
    }

    fn count_dropped(&self, reason: &'static str, n: u64) {
        let counter = match reason {
            "buffer_full" => &self.counters.dropped_buffer_full,
            "rejected" => &self.counters.dropped_rejected,
            _ => &self.counters.dropped_shutdown,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("drover_events_dropped_total", "reason" => reason).increment(n);
    }

    fn stats(&self) -> PublisherStats {
        let (buffered, in_flight, oldest) = {
            let buffer = lock(&self.buffer);
            let oldest = match (
                buffer.in_flight_oldest,
                buffer.queue.front().map(|p| p.enqueued_at),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (
                buffer.queue.len() + buffer.in_flight,
                buffer.in_flight,
                oldest,
            )
        };
        let c = &self.counters;
        let dropped_buffer_full = c.dropped_buffer_full.load(Ordering::Relaxed);
        let dropped_rejected = c.dropped_rejected.load(Ordering::Relaxed);
        let dropped_shutdown = c.dropped_shutdown.load(Ordering::Relaxed);
        PublisherStats {
            published: c.published.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dropped: dropped_buffer_full + dropped_rejected + dropped_shutdown,
            dropped_buffer_full,
            dropped_rejected,
            dropped_shutdown,
            buffered,
            in_flight,
            connected: self.connected.load(Ordering::Relaxed),
            oldest_buffered_age: oldest.map(|t| t.elapsed()),
        }
    }

    fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::AcqRel) != connected {
            metrics::gauge!("drover_nats_connected").set(if connected { 1.0 } else { 0.0 });
        }
    }

    fn refresh_gauges(&self) {
        let buffered = {
            let buffer = lock(&self.buffer);
            buffer.queue.len() + buffer.in_flight
        };
        metrics::gauge!("drover_events_buffered").set(buffered as f64);
    }

    fn begin_close(&self, deadline: Instant) {
        {
            let mut current = lock(&self.deadline);
            *current = Some(current.map_or(deadline, |d| d.min(deadline)));
        }
        self.closed.store(true, Ordering::Release);
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn close_deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }

    fn buffer_is_empty(&self) -> bool {
        let buffer = lock(&self.buffer);
        buffer.queue.is_empty() && buffer.in_flight == 0
    }

    /// Moves up to `n` events from the front of the queue into flight.
    fn take_batch(&self, n: usize) -> Vec<Pending> {
        let mut buffer = lock(&self.buffer);
        let n = n.min(buffer.queue.len());
        let batch: Vec<Pending> = buffer.queue.drain(..n).collect();
        buffer.in_flight = batch.len();
        buffer.in_flight_oldest = batch.iter().map(|p| p.enqueued_at).min();
        batch
    }

    /// Ends a batch: the events in `retry` go back to the front, in order; if that overfills
    /// the buffer, the oldest are dropped.
    fn finish_batch(&self, retry: Vec<Pending>) {
        let retried = retry.len() as u64;
        let dropped = {
            let mut buffer = lock(&self.buffer);
            buffer.in_flight = 0;
            buffer.in_flight_oldest = None;
            for pending in retry.into_iter().rev() {
                buffer.queue.push_front(pending);
            }
            trim(&mut buffer.queue, self.config.buffer_capacity)
        };
        if retried > 0 {
            self.counters.retried.fetch_add(retried, Ordering::Relaxed);
            metrics::counter!("drover_events_publish_retries_total").increment(retried);
        }
        if dropped > 0 {
            self.count_dropped("buffer_full", dropped);
        }
    }

    fn record_ack(&self, pending: &Pending, duplicate: bool) {
        self.counters.acked.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("drover_events_acked_total").increment(1);
        if duplicate {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        metrics::histogram!("drover_events_publish_lag_seconds")
            .record(pending.enqueued_at.elapsed().as_secs_f64());
    }

    fn drop_all_buffered(&self, reason: &'static str) {
        let dropped = {
            let mut buffer = lock(&self.buffer);
            let n = buffer.queue.len() + buffer.in_flight;
            buffer.queue.clear();
            buffer.in_flight = 0;
            buffer.in_flight_oldest = None;
            n as u64
        };
        if dropped > 0 {
            self.count_dropped(reason, dropped);
        }
        self.refresh_gauges();
    }

    fn on_nats_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                self.connection_generation.fetch_add(1, Ordering::AcqRel);
                self.set_connected(true);
                tracing::info!(url = %self.config.nats_url, "event publisher connected to NATS");
                self.wake.notify_one();
            }
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                self.set_connected(false);
                tracing::warn!(url = %self.config.nats_url, "event publisher lost its NATS connection; buffering");
            }
            other => tracing::debug!(event = %other, "NATS client event"),
        }
    }

    /// Waits for a wake-up or `max`, whichever comes first.
    async fn idle(&self, max: Duration) {
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(max) => {}
        }
    }
}

/// Removes the oldest events beyond `capacity`; returns how many.
fn trim(queue: &mut VecDeque<Pending>, capacity: usize) -> u64 {
    let mut dropped = 0;
    while queue.len() > capacity {
        queue.pop_front();
        dropped += 1;
    }
    dropped
}

/// Reconnect delay: immediate first retry, then 100 ms doubling up to `max`, ±20 % jitter.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    let base = Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(max);
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// What the batch left to do.
struct BatchOutcome {
    retry: Vec<Pending>,
    failed: bool,
    stream_missing: bool,
}

/// The background task: connect, ensure streams, drain the queue in batches, flush at
/// shutdown.
async fn run(shared: Arc<Shared>) {
    let config = shared.config.clone();
    let weak: Weak<Shared> = Arc::downgrade(&shared);
    let max_delay = config.reconnect_max_delay;
    let options = async_nats::ConnectOptions::new()
        .name(&config.client_name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(config.connect_timeout)
        .ping_interval(config.ping_interval)
        .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
        .event_callback(move |event| {
            let weak = weak.clone();
            async move {
                if let Some(shared) = weak.upgrade() {
                    shared.on_nats_event(event);
                }
            }
        });
    let client = match options.connect(config.nats_url.as_str()).await {
        Ok(client) => client,
        Err(err) => {
            // With retry_on_initial_connect only an unusable URL gets here; it never heals.
            tracing::error!(url = %config.nats_url, error = %err, "cannot use the NATS URL; events are buffered and dropped beyond the bound");
            loop {
                if shared.is_closing() {
                    shared.drop_all_buffered("shutdown");
                    return;
                }
                shared.refresh_gauges();
                shared.idle(Duration::from_secs(1)).await;
            }
        }
    };
    // A batch holds at most `batch_size` ack permits and awaits them all before the next
    // one, so twice that never runs out (running out would make `send_publish` wait).
    let context = jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .ack_timeout(config.ack_timeout)
        .max_ack_inflight(config.batch_size.saturating_mul(2).max(64))
        .build(client.clone());

    let mut streams_ready_for: Option<u64> = None;
    let mut failures: u32 = 0;
    loop {
        shared.refresh_gauges();
        let connected = client.connection_state() == State::Connected;
        shared.set_connected(connected);

        let deadline = if shared.is_closing() {
            let deadline = shared.close_deadline().unwrap_or_else(Instant::now);
            if shared.buffer_is_empty() || Instant::now() >= deadline {
                break;
            }
            Some(deadline)
        } else {
            None
        };
        let wait_limit = deadline.map_or(TICK, |d| {
            d.saturating_duration_since(Instant::now()).min(TICK)
        });

        if !connected {
            shared.idle(wait_limit).await;
            continue;
        }

        if config.manage_streams {
            let generation = shared.connection_generation.load(Ordering::Acquire);
            if streams_ready_for != Some(generation) {
                match ensure_streams(&context, &config.streams).await {
                    Ok(()) => {
                        streams_ready_for = Some(generation);
                        failures = 0;
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %err, "could not create or update the event streams; retrying");
                        let pause = backoff(failures, config.retry_max_delay);
                        let pause = deadline.map_or(pause, |d| {
                            pause.min(d.saturating_duration_since(Instant::now()))
                        });
                        shared.idle(pause).await;
                        continue;
                    }
                }
            }
        }

        let batch = shared.take_batch(config.batch_size);
        if batch.is_empty() {
            shared.idle(wait_limit).await;
            continue;
        }
        let outcome = publish_batch(&shared, &context, batch, deadline).await;
        shared.finish_batch(outcome.retry);
        if outcome.stream_missing {
            streams_ready_for = None;
        }
        if outcome.failed {
            failures = failures.saturating_add(1);
            let pause = backoff(failures, config.retry_max_delay);
            let pause = deadline.map_or(pause, |d| {
                pause.min(d.saturating_duration_since(Instant::now()))
            });
            shared.idle(pause).await;
        } else {
            failures = 0;
        }
    }

    shared.drop_all_buffered("shutdown");
    if client.connection_state() == State::Connected {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
    }
    drop(context);
    drop(client);
    shared.set_connected(false);
    metrics::gauge!("drover_nats_connected").set(0.0);
}

fn backoff(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_millis(50)
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(max)
}

async fn ensure_streams(context: &Context, limits: &StreamLimits) -> Result<(), String> {
    for config in limits.stream_configs() {
        let name = config.name.clone();
        context
            .create_or_update_stream(config)
            .await
            .map_err(|err| format!("stream {name}: {err}"))?;
    }
    Ok(())
}

/// Publishes one batch with the async API, then awaits all acks.
async fn publish_batch(
    shared: &Shared,
    context: &Context,
    batch: Vec<Pending>,
    deadline: Option<Instant>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome {
        retry: Vec::new(),
        failed: false,
        stream_missing: false,
    };
    let mut sent = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    let mut batch = batch.into_iter();
    for mut pending in batch.by_ref() {
        let (subject, payload) = pending
            .encoded
            .get_or_insert_with(|| {
                (
                    pending.event.subject(),
                    Bytes::from(pending.event.to_json()),
                )
            })
            .clone();
        let message = PublishMessage::build()
            .payload(payload)
            .message_id(&pending.msg_id);
        match context.send_publish(subject, message).await {
            Ok(ack) => {
                acks.push(ack.into_future());
                sent.push(pending);
            }
            Err(err) if err.kind() == PublishErrorKind::MaxPayloadExceeded => {
                tracing::warn!(subject = %pending.event.subject(), error = %err, "event too large for NATS; dropped");
                shared.count_dropped("rejected", 1);
            }
            Err(err) => {
                tracing::debug!(error = %err, "publish failed; the rest of the batch is retried");
                outcome.failed = true;
                outcome.retry.push(pending);
                break;
            }
        }
    }
    // Events after a failed hand-over were never sent.
    let unsent: Vec<Pending> = batch.collect();

    let results = match deadline {
        None => Some(futures_util::future::join_all(acks).await),
        Some(deadline) => tokio::time::timeout_at(deadline, futures_util::future::join_all(acks))
            .await
            .ok(),
    };
    let mut retry = Vec::with_capacity(sent.len());
    match results {
        None => {
            // Shutdown grace ran out before the acks came; whether they were stored is
            // unknown, so they count as not delivered.
            outcome.failed = true;
            retry.extend(sent);
        }
        Some(results) => {
            for (mut pending, result) in sent.into_iter().zip(results) {
                match result {
                    Ok(ack) => shared.record_ack(&pending, ack.duplicate),
                    Err(err) => {
                        outcome.failed = true;
                        match err.kind() {
                            PublishErrorKind::TimedOut
                            | PublishErrorKind::BrokenPipe
                            | PublishErrorKind::MaxAckPending => retry.push(pending),
                            PublishErrorKind::StreamNotFound => {
                                outcome.stream_missing = true;
                                retry.push(pending);
                            }
                            PublishErrorKind::MaxPayloadExceeded => {
                                shared.count_dropped("rejected", 1);
                            }
                            _ => {
                                pending.rejections += 1;
                                if pending.rejections >= shared.config.max_rejections {
                                    tracing::warn!(subject = %pending.event.subject(), error = %err, "JetStream keeps rejecting an event; dropped");
                                    shared.count_dropped("rejected", 1);
                                } else {
                                    retry.push(pending);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Order: retried acks first (they are the oldest), then the failed hand-over, then unsent.
    retry.append(&mut outcome.retry);
    retry.extend(unsent);
    outcome.retry = retry;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_split_metrics_from_everything_else() {
        let events = StreamLimits::events_subjects();
        let metrics = StreamLimits::metrics_subjects();
        assert_eq!(metrics, vec!["metrics.sample.>".to_owned()]);
        assert_eq!(events.len() + metrics.len(), DEVICE_EVENT_FILTERS.len());
        assert!(!events.iter().any(|s| s.starts_with("metrics")));
        let [e, m] = StreamLimits::default().stream_configs();
        assert_eq!(e.discard, DiscardPolicy::Old);
        assert_eq!(m.max_age, Duration::from_secs(3600));
        assert_eq!(m.max_bytes, 2 * GIB);
    }

    #[test]
    fn sanitized_repairs_unbounded_limits_and_zero_sizes() {
        let mut config = PublisherConfig {
            buffer_capacity: 0,
            batch_size: 0,
            ..Default::default()
        };
        config.streams.metrics.max_bytes = 0;
        config.streams.events.max_age = Duration::ZERO;
        assert!(config.validate().is_err());
        let fixed = config.sanitized();
        assert!(fixed.validate().is_ok());
        assert_eq!(fixed.buffer_capacity, 1);
        assert_eq!(fixed.streams.metrics.max_bytes, 2 * GIB);
    }

    #[test]
    fn reconnect_delay_is_capped() {
        let max = Duration::from_secs(5);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        for attempts in 2..200 {
            assert!(reconnect_delay(attempts, max) <= max.mul_f64(1.2));
        }
    }
}
