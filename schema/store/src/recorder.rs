//! The recorder's write path: device events (`MetricsSample`, `DeviceStatusChanged`) go into a
//! bounded in-memory queue and a tokio task writes them in batches — one transaction per
//! batch, multi-row `INSERT … SELECT FROM UNNEST(…)` per table and tenant, plus the
//! denormalised last values on `devices`. A metrics sample is one `device_samples` row (its
//! interfaces as parallel arrays, sent as array literals, one per sample and column).
//!
//! - **Several writers:** each round takes up to `batch_max × writers` events and writes them
//!   as `writers` concurrent transactions (one pooled connection each), split by
//!   `DeviceId::stable_hash` so a device's rows and its `devices` row are only ever written by
//!   one of them at a time. The first attempt is a plain `INSERT` (no speculative insertion);
//!   a retry, or a batch that meets a primary-key duplicate, uses `ON CONFLICT DO NOTHING`.
//! - **Write fence:** [`RecorderConfig::fence`] drops (and counts) events whose shard epoch
//!   is stale before anything is written.
//! - **Bounded, drop-oldest:** at most `capacity` events wait (plus one batch in flight);
//!   beyond that the oldest are dropped and counted ([`RecorderStats::dropped_overflow`]).
//! - **Lag is visible:** every queued event carries the instant it was queued; the time to
//!   its batch's end goes to `drover_recorder_write_lag_seconds`, and the age of the oldest
//!   event not yet written to [`RecorderStats::lag_ms`] and the gauge
//!   `drover_recorder_lag_seconds` (with `drover_recorder_queued`), refreshed every second
//!   even while a batch is stuck retrying — so a recorder falling behind shows.
//! - **Rides out PostgreSQL restarts:** a batch that fails for a connection reason is retried
//!   with back-off until it commits; meanwhile events keep queueing within the bound.
//!   Retried inserts are idempotent (primary keys + `ON CONFLICT DO NOTHING`).
//! - **Bad input:** values a column cannot hold are clamped or nulled, strings are truncated
//!   and stripped of NULs, events of unknown devices/tenants or with timestamps outside the
//!   partitioned window are rejected — each with a logged reason and a counter. A batch that
//!   still fails for a data reason is retried event by event so one bad event cannot block
//!   or half-write the others.
//!
//! The actor wrapper (supervision, subscriptions) lives with the actor tree; this is a plain
//! async component: [`Recorder::spawn`] → [`RecorderHandle`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_model::events::{DeviceStatusChanged, MetricsSample};
use drover_model::{DeviceId, TenantId};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::timeseries::Retention;
use crate::{Result, Store};

/// Write fencing (the cluster's shard leases): asked once per event, before it is written,
/// whether a sample of this device taken under this shard epoch may still be stored. `false`
/// means the event comes from a node that no longer owns the device's shard (a stale owner's
/// late write); it is dropped and counted ([`RecorderStats::fenced`],
/// `drover_recorder_fenced_total`), never written.
///
/// The function is called on the writer task for every event of every batch: keep it cheap
/// and non-blocking (e.g. a lookup in the node's in-memory lease table).
#[derive(Clone)]
pub struct WriteFence(Arc<dyn Fn(DeviceId, u64) -> bool + Send + Sync>);

impl WriteFence {
    /// `admit(device, epoch)`: `epoch` is the shard epoch the event carries
    /// (`MetricsSample::epoch`, `DeviceStatusChanged::epoch`).
    pub fn new(admit: impl Fn(DeviceId, u64) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(admit))
    }

    /// Whether an event of `device` produced under `epoch` may be written.
    pub fn admits(&self, device: DeviceId, epoch: u64) -> bool {
        (self.0)(device, epoch)
    }
}

impl std::fmt::Debug for WriteFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteFence(..)")
    }
}

/// Recorder tuning.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Events that may wait in memory (excluding the batch being written).
    pub capacity: usize,
    /// Most events written in one transaction.
    pub batch_max: usize,
    /// Concurrent writers (connections); devices are split between them by
    /// `DeviceId::stable_hash`, so one device's events are always written by one writer.
    pub writers: usize,
    /// First retry delay after a failed write; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// The partitioned window; samples outside it are rejected.
    pub retention: Retention,
    /// Drops events whose shard epoch is stale (see [`WriteFence`]); `None` writes all.
    pub fence: Option<WriteFence>,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            capacity: 200_000,
            batch_max: 5_000,
            writers: 4,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            retention: Retention::default(),
            fence: None,
        }
    }
}

/// One thing to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Metrics(MetricsSample),
    Status(DeviceStatusChanged),
}

/// Counters, readable at any time (export them as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub queued: u64,
    /// Age in milliseconds of the oldest event not yet written (queued, or in the batch
    /// being written); 0 when there is none. How far the recorder is behind.
    pub lag_ms: u64,
    pub written_metrics: u64,
    pub written_status: u64,
    /// Dropped because the queue was full (oldest first).
    pub dropped_overflow: u64,
    /// Refused: unknown device/tenant, timestamp outside the window, or a data error.
    pub rejected: u64,
    /// Values clamped, nulled or truncated to fit a column.
    pub clamped: u64,
    /// Batch writes that failed and were retried.
    pub retries: u64,
    /// Dropped by the [`WriteFence`]: produced under a shard epoch this node no longer holds.
    pub fenced: u64,
}

/// The counters behind [`RecorderStats`]; each increment also goes to the `metrics` facade
/// (Prometheus in a node): `drover_recorder_written_total{kind="metrics"|"status"}`,
/// `drover_recorder_dropped_total`, `drover_recorder_rejected_total`,
/// `drover_recorder_clamped_total`, `drover_recorder_retries_total`,
/// `drover_recorder_fenced_total`.
#[derive(Default)]
struct Counters {
    written_metrics: AtomicU64,
    written_status: AtomicU64,
    dropped_overflow: AtomicU64,
    rejected: AtomicU64,
    clamped: AtomicU64,
    retries: AtomicU64,
    fenced: AtomicU64,
}

impl Counters {
    fn written(&self, metrics_events: u64, status_events: u64) {
        if metrics_events > 0 {
            self.written_metrics
                .fetch_add(metrics_events, Ordering::Relaxed);
            metrics::counter!("drover_recorder_written_total", "kind" => "metrics")
                .increment(metrics_events);
        }
        if status_events > 0 {
            self.written_status
                .fetch_add(status_events, Ordering::Relaxed);
            metrics::counter!("drover_recorder_written_total", "kind" => "status")
                .increment(status_events);
        }
    }

    fn dropped(&self, n: u64) {
        self.dropped_overflow.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("drover_recorder_dropped_total").increment(n);
    }

    fn rejected(&self, n: u64) {
        if n > 0 {
            self.rejected.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("drover_recorder_rejected_total").increment(n);
        }
    }

    fn clamped(&self) {
        self.clamped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("drover_recorder_clamped_total").increment(1);
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("drover_recorder_retries_total").increment(1);
    }

    fn fenced(&self, n: u64) {
        if n > 0 {
            self.fenced.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("drover_recorder_fenced_total").increment(n);
        }
    }
}

/// An event waiting in the queue, with when it was queued.
struct Queued {
    at: Instant,
    record: Record,
}

struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    /// When the oldest event of the batch being written was queued (`None`: no batch in
    /// flight).
    in_flight_since: Mutex<Option<Instant>>,
    capacity: usize,
    wake: Notify,
    idle: Notify,
    in_flight: AtomicU64,
    closed: AtomicBool,
    counters: Counters,
}

/// Feeds the recorder. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct RecorderHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RecorderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl RecorderHandle {
    /// Queues an event; if the queue is full the oldest event is dropped (and counted).
    pub fn record(&self, r: Record) {
        let dropped = match self.shared.queue.lock() {
            Ok(mut q) => {
                let mut dropped = 0;
                while q.len() >= self.shared.capacity {
                    q.pop_front();
                    dropped += 1;
                }
                q.push_back(Queued {
                    at: Instant::now(),
                    record: r,
                });
                dropped
            }
            Err(_) => 1,
        };
        if dropped > 0 {
            self.shared.counters.dropped(dropped);
        }
        self.shared.wake.notify_one();
    }

    pub fn record_metrics(&self, s: MetricsSample) {
        self.record(Record::Metrics(s));
    }

    pub fn record_status(&self, s: DeviceStatusChanged) {
        self.record(Record::Status(s));
    }

    pub fn stats(&self) -> RecorderStats {
        let c = &self.shared.counters;
        let (queued, oldest_queued) = self
            .shared
            .queue
            .lock()
            .map(|q| (q.len() as u64, q.front().map(|e| e.at)))
            .unwrap_or((0, None));
        let in_flight = self.shared.in_flight_since.lock().ok().and_then(|t| *t);
        let oldest = in_flight.or(oldest_queued);
        RecorderStats {
            queued,
            lag_ms: oldest.map_or(0, |t| t.elapsed().as_millis() as u64),
            written_metrics: c.written_metrics.load(Ordering::Relaxed),
            written_status: c.written_status.load(Ordering::Relaxed),
            dropped_overflow: c.dropped_overflow.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            clamped: c.clamped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            fenced: c.fenced.load(Ordering::Relaxed),
        }
    }

    fn is_idle(&self) -> bool {
        // The writer moves events from the queue to `in_flight` under the queue's lock, so
        // both are read under it too.
        match self.shared.queue.lock() {
            Ok(q) => q.is_empty() && self.shared.in_flight.load(Ordering::Acquire) == 0,
            Err(_) => true,
        }
    }

    /// Waits until everything queued so far is written (or rejected).
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.is_idle() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), idle).await;
        }
    }

    /// Stops accepting work after what is queued; the task ends once the queue is written.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// The writer task.
#[derive(Debug)]
pub struct Recorder;

impl Recorder {
    /// Starts the writer on the store's (application role) pool.
    pub fn spawn(
        store: &Store,
        cfg: RecorderConfig,
    ) -> (RecorderHandle, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            in_flight_since: Mutex::new(None),
            capacity: cfg.capacity.max(1),
            wake: Notify::new(),
            idle: Notify::new(),
            in_flight: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let handle = RecorderHandle {
            shared: shared.clone(),
        };
        let pool = store.pool().clone();
        tokio::spawn(export_lag(Arc::downgrade(&shared)));
        let task = tokio::spawn(run(pool, shared, cfg));
        (handle, task)
    }
}

/// Every second, the queue depth and the lag as gauges (`drover_recorder_queued`,
/// `drover_recorder_lag_seconds`); a separate task, so a writer stuck retrying a batch
/// still shows its growing lag. Ends when the recorder is gone.
async fn export_lag(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let s = RecorderHandle { shared }.stats();
        metrics::gauge!("drover_recorder_queued").set(s.queued as f64);
        metrics::gauge!("drover_recorder_lag_seconds").set(s.lag_ms as f64 / 1000.0);
    }
}

async fn run(pool: PgPool, shared: Arc<Shared>, cfg: RecorderConfig) {
    let writers = cfg.writers.max(1);
    loop {
        let (batch, queued_at): (Vec<Record>, Vec<Instant>) = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            let n = q.len().min(cfg.batch_max.max(1).saturating_mul(writers));
            shared.in_flight.store(n as u64, Ordering::Release);
            set_in_flight_since(&shared, q.front().map(|e| e.at));
            q.drain(..n).map(|e| (e.record, e.at)).unzip()
        };
        if batch.is_empty() {
            shared.idle.notify_waiters();
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), shared.wake.notified()).await;
            continue;
        }
        let batch = fence(batch, &cfg, &shared.counters);
        if writers == 1 {
            let prepared = prepare(batch, &cfg, &shared.counters);
            write_with_retry(&pool, &prepared, &cfg, &shared.counters).await;
        } else {
            // One transaction per writer, concurrently; a device always lands in the same
            // part, so two writers never update the same `devices` row at once.
            let mut parts: Vec<Vec<Record>> = (0..writers).map(|_| Vec::new()).collect();
            for r in batch {
                let device = match &r {
                    Record::Metrics(m) => m.device_id,
                    Record::Status(s) => s.device_id,
                };
                parts[(device.stable_hash() % writers as u64) as usize].push(r);
            }
            let mut set = tokio::task::JoinSet::new();
            for part in parts.into_iter().filter(|p| !p.is_empty()) {
                let (pool, shared, cfg) = (pool.clone(), shared.clone(), cfg.clone());
                set.spawn(async move {
                    let prepared = prepare(part, &cfg, &shared.counters);
                    write_with_retry(&pool, &prepared, &cfg, &shared.counters).await;
                });
            }
            while let Some(done) = set.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "recorder: a writer task failed");
                }
            }
        }
        // Written, refused or fenced: each event's time in the recorder.
        let lag = metrics::histogram!("drover_recorder_write_lag_seconds");
        for at in &queued_at {
            lag.record(at.elapsed().as_secs_f64());
        }
        set_in_flight_since(&shared, None);
        shared.in_flight.store(0, Ordering::Release);
    }
}

fn set_in_flight_since(shared: &Shared, oldest: Option<Instant>) {
    if let Ok(mut t) = shared.in_flight_since.lock() {
        *t = oldest;
    }
}

/// Drops (and counts) the events the write fence refuses.
fn fence(batch: Vec<Record>, cfg: &RecorderConfig, counters: &Counters) -> Vec<Record> {
    let Some(fence) = &cfg.fence else {
        return batch;
    };
    let before = batch.len();
    let kept: Vec<Record> = batch
        .into_iter()
        .filter(|r| {
            let (device, epoch) = match r {
                Record::Metrics(m) => (m.device_id, m.epoch),
                Record::Status(s) => (s.device_id, s.epoch),
            };
            let ok = fence.admits(device, epoch);
            if !ok {
                tracing::debug!(device = %device.0, epoch,
                    "recorder: event dropped: its shard epoch is no longer current");
            }
            ok
        })
        .collect();
    counters.fenced((before - kept.len()) as u64);
    kept
}

// ------------------------------------------------------------------ sanitising

const MAX_IFACE_NAME: usize = 255;
/// Interfaces kept per sample (the rest are dropped and counted as clamped); the schema's
/// CHECK allows 4,096, this keeps one row well below a megabyte.
pub const MAX_INTERFACES: usize = 1024;
const MAX_REASON: usize = 1000;
const MAX_VERSION: usize = 64;
const MAX_BOARD: usize = 128;

struct Clamp<'a> {
    counters: &'a Counters,
    device: Uuid,
}

impl Clamp<'_> {
    fn note(&self, what: &str) {
        self.counters.clamped();
        tracing::warn!(device = %self.device, "recorder: {what}");
    }

    fn percent(&self, field: &str, v: Option<f64>) -> Option<f32> {
        let v = v?;
        if !v.is_finite() {
            self.note(&format!("{field} is not a number; stored as NULL"));
            return None;
        }
        if !(0.0..=100.0).contains(&v) {
            self.note(&format!("{field} {v} outside 0..100; clamped"));
        }
        Some(v.clamp(0.0, 100.0) as f32)
    }

    fn range_f32(&self, field: &str, v: Option<f64>, lo: f64, hi: f64) -> Option<f32> {
        let v = v?;
        if !v.is_finite() || !(lo..=hi).contains(&v) {
            self.note(&format!("{field} {v} outside {lo}..{hi}; stored as NULL"));
            return None;
        }
        Some(v as f32)
    }

    fn finite_f64(&self, field: &str, v: Option<f64>) -> Option<f64> {
        let v = v?;
        if !v.is_finite() || v < 0.0 {
            self.note(&format!("{field} {v} is not a finite rate; stored as NULL"));
            return None;
        }
        Some(v)
    }

    fn big(&self, field: &str, v: u64) -> i64 {
        i64::try_from(v).unwrap_or_else(|_| {
            self.note(&format!("{field} {v} exceeds bigint; clamped"));
            i64::MAX
        })
    }

    fn int(&self, field: &str, v: u64) -> i32 {
        i32::try_from(v).unwrap_or_else(|_| {
            self.note(&format!("{field} {v} exceeds integer; clamped"));
            i32::MAX
        })
    }

    fn text(&self, field: &str, s: &str, max_chars: usize) -> String {
        let mut out: String = s.chars().filter(|c| *c != '\0').collect();
        if out.len() != s.len() {
            self.note(&format!("{field} contained NUL bytes; removed"));
        }
        if out.chars().count() > max_chars {
            out = out.chars().take(max_chars).collect();
            self.note(&format!(
                "{field} longer than {max_chars} characters; truncated"
            ));
        }
        out
    }
}

#[derive(Default)]
struct TenantBatch {
    devices: Vec<Uuid>,
    samples: SampleRows,
    status: StatusRows,
    /// latest metrics per device (for the last-value update)
    last: HashMap<Uuid, LastValues>,
    /// latest status per device
    last_status: HashMap<Uuid, usize>,
    metrics_events: u64,
}

/// `device_samples` columns, one element per sample. The interface columns hold PostgreSQL
/// array literals (`{…}`), parsed by the server: per-row arrays cannot travel inside the
/// `UNNEST` of a bound array otherwise.
#[derive(Default)]
struct SampleRows {
    device: Vec<Uuid>,
    time: Vec<DateTime<Utc>>,
    cpu: Vec<Option<f32>>,
    mem: Vec<Option<f32>>,
    disk: Vec<Option<f32>>,
    temp: Vec<Option<f32>>,
    uptime: Vec<Option<i64>>,
    clients: Vec<Option<i32>>,
    mean: Vec<Option<f32>>,
    min: Vec<Option<i32>>,
    if_name: Vec<String>,
    if_running: Vec<String>,
    if_rx: Vec<String>,
    if_tx: Vec<String>,
    if_rx_bps: Vec<String>,
    if_tx_bps: Vec<String>,
}

/// Builds one PostgreSQL array literal.
struct ArrayLit(String);

impl ArrayLit {
    fn new() -> Self {
        Self(String::from("{"))
    }

    fn sep(&mut self) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
    }

    /// A text element, always quoted (so `NULL`, spaces, braces and commas stay text).
    fn text(&mut self, v: &str) {
        self.sep();
        self.0.push('"');
        for ch in v.chars() {
            if ch == '"' || ch == '\\' {
                self.0.push('\\');
            }
            self.0.push(ch);
        }
        self.0.push('"');
    }

    fn raw(&mut self, v: impl std::fmt::Display) {
        use std::fmt::Write;
        self.sep();
        let _ = write!(self.0, "{v}");
    }

    fn opt(&mut self, v: Option<f64>) {
        match v {
            // `{:e}` keeps huge values short; PostgreSQL parses it exactly
            Some(x) => self.raw(format_args!("{x:e}")),
            None => self.raw("NULL"),
        }
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[derive(Default)]
struct StatusRows {
    device: Vec<Uuid>,
    status: Vec<String>,
    previous: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    at: Vec<DateTime<Utc>>,
    version: Vec<Option<String>>,
    board: Vec<Option<String>>,
    uptime: Vec<Option<i64>>,
}

#[derive(Clone, Copy)]
struct LastValues {
    time: DateTime<Utc>,
    cpu: Option<f32>,
    mem: Option<f32>,
    disk: Option<f32>,
    temp: Option<f32>,
    clients: Option<i32>,
    uptime: Option<i64>,
}

/// Sanitised events grouped by tenant.
#[derive(Default)]
struct Prepared {
    tenants: BTreeMap<TenantId, TenantBatch>,
    /// the original events, for the one-by-one fallback
    records: Vec<Record>,
}

fn reject(counters: &Counters, device: Uuid, why: &str) {
    counters.rejected(1);
    tracing::warn!(device = %device, "recorder: event rejected: {why}");
}

fn prepare(batch: Vec<Record>, cfg: &RecorderConfig, counters: &Counters) -> Prepared {
    let now = Utc::now();
    let oldest = cfg.retention.oldest_accepted(now);
    let newest = cfg.retention.newest_accepted(now);
    let mut p = Prepared::default();
    for r in &batch {
        match r {
            Record::Metrics(m) => {
                let device = m.device_id.0;
                if m.timestamp < oldest || m.timestamp >= newest {
                    reject(
                        counters,
                        device,
                        &format!("timestamp {} outside {oldest}..{newest}", m.timestamp),
                    );
                    continue;
                }
                let c = Clamp { counters, device };
                let tb = p.tenants.entry(m.tenant_id).or_default();
                tb.metrics_events += 1;
                tb.devices.push(device);
                let lv = LastValues {
                    time: m.timestamp,
                    cpu: c.percent("cpu_percent", m.cpu_percent),
                    mem: c.percent("memory_percent", m.memory_percent),
                    disk: c.percent("disk_percent", m.disk_percent),
                    temp: c.range_f32("temperature_c", m.temperature_c, -100.0, 300.0),
                    clients: m
                        .wireless
                        .as_ref()
                        .map(|w| c.int("wireless.clients", u64::from(w.clients))),
                    uptime: m.uptime.map(|u| c.big("uptime", u)),
                };
                let r = &mut tb.samples;
                r.device.push(device);
                r.time.push(m.timestamp);
                r.cpu.push(lv.cpu);
                r.mem.push(lv.mem);
                r.disk.push(lv.disk);
                r.temp.push(lv.temp);
                r.uptime.push(lv.uptime);
                r.clients.push(lv.clients);
                match &m.wireless {
                    Some(w) => {
                        r.mean.push(c.range_f32(
                            "mean_signal_dbm",
                            w.mean_signal_dbm,
                            -200.0,
                            50.0,
                        ));
                        r.min.push(w.min_signal_dbm.filter(|v| {
                            let ok = (-200..=50).contains(v);
                            if !ok {
                                c.note(&format!(
                                    "min_signal_dbm {v} outside -200..50; stored as NULL"
                                ));
                            }
                            ok
                        }));
                    }
                    None => {
                        r.mean.push(None);
                        r.min.push(None);
                    }
                }
                let (mut name, mut running, mut rx, mut tx, mut rx_bps, mut tx_bps) = (
                    ArrayLit::new(),
                    ArrayLit::new(),
                    ArrayLit::new(),
                    ArrayLit::new(),
                    ArrayLit::new(),
                    ArrayLit::new(),
                );
                if m.interfaces.len() > MAX_INTERFACES {
                    c.note(&format!(
                        "{} interfaces in one sample; the first {MAX_INTERFACES} kept",
                        m.interfaces.len()
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for i in m.interfaces.iter().take(MAX_INTERFACES) {
                    let n = c.text("interface name", &i.name, MAX_IFACE_NAME);
                    if !seen.insert(n.clone()) {
                        c.note(&format!(
                            "interface {n:?} listed twice in one sample; the first kept"
                        ));
                        continue;
                    }
                    name.text(&n);
                    running.raw(if i.running { 't' } else { 'f' });
                    rx.raw(c.big("rx_bytes", i.rx_bytes));
                    tx.raw(c.big("tx_bytes", i.tx_bytes));
                    rx_bps.opt(c.finite_f64("rx_bps", i.rx_bps));
                    tx_bps.opt(c.finite_f64("tx_bps", i.tx_bps));
                }
                r.if_name.push(name.finish());
                r.if_running.push(running.finish());
                r.if_rx.push(rx.finish());
                r.if_tx.push(tx.finish());
                r.if_rx_bps.push(rx_bps.finish());
                r.if_tx_bps.push(tx_bps.finish());
                match tb.last.get(&device) {
                    Some(prev) if prev.time > lv.time => {}
                    _ => {
                        tb.last.insert(device, lv);
                    }
                }
            }
            Record::Status(s) => {
                let device = s.device_id.0;
                if s.at < oldest || s.at >= newest {
                    reject(
                        counters,
                        device,
                        &format!("status time {} outside {oldest}..{newest}", s.at),
                    );
                    continue;
                }
                let c = Clamp { counters, device };
                let tb = p.tenants.entry(s.tenant_id).or_default();
                tb.devices.push(device);
                let st = &mut tb.status;
                let idx = st.device.len();
                st.device.push(device);
                st.status.push(s.status.as_str().to_owned());
                st.previous
                    .push(s.previous_status.map(|x| x.as_str().to_owned()));
                st.reason
                    .push(s.reason.as_deref().map(|r| c.text("reason", r, MAX_REASON)));
                st.at.push(s.at);
                st.version.push(
                    s.routeros_version
                        .as_deref()
                        .map(|v| c.text("routeros_version", v, MAX_VERSION)),
                );
                st.board.push(
                    s.board_name
                        .as_deref()
                        .map(|v| c.text("board_name", v, MAX_BOARD)),
                );
                st.uptime.push(s.uptime.map(|u| c.big("uptime", u)));
                match tb.last_status.get(&device) {
                    Some(&j) if st.at[j] > s.at => {}
                    _ => {
                        tb.last_status.insert(device, idx);
                    }
                }
            }
        }
    }
    p.records = batch;
    p
}

// ------------------------------------------------------------------ writing

/// A connection-level failure worth retrying (as opposed to bad data).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") // connection exception
                || c.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || c.starts_with("53") // insufficient resources
                || c == "40001" || c == "40P01"
        }),
        _ => false,
    }
}

async fn write_with_retry(pool: &PgPool, p: &Prepared, cfg: &RecorderConfig, counters: &Counters) {
    if p.tenants.is_empty() {
        return;
    }
    let mut delay = cfg.retry_min;
    // The first attempt inserts plainly (no speculative insertion: cheaper per row). After a
    // failure the batch may have committed without us hearing of it, and the producer may
    // resend samples: then `ON CONFLICT DO NOTHING` keeps the retry idempotent.
    let mut idempotent = false;
    loop {
        match write_batch(pool, p, counters, idempotent).await {
            Ok(()) => return,
            Err(e) if is_transient(&e) => {
                counters.retried();
                tracing::warn!(error = %e, retry_in = ?delay, "recorder: batch write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(cfg.retry_max);
                idempotent = true;
            }
            Err(e) if !idempotent && is_unique_violation(&e) => {
                // samples already stored (a resend, or a duplicate within the batch)
                idempotent = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, events = p.records.len(),
                    "recorder: batch refused by the database; writing its events one by one");
                write_one_by_one(pool, p, cfg, counters).await;
                return;
            }
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Fallback for a batch with an event the database refuses: each event in its own
/// transaction; refused events are counted and logged.
async fn write_one_by_one(pool: &PgPool, p: &Prepared, cfg: &RecorderConfig, counters: &Counters) {
    let quiet = Counters::default();
    for r in &p.records {
        let single = prepare(vec![r.clone()], cfg, &quiet);
        let device = match r {
            Record::Metrics(m) => m.device_id.0,
            Record::Status(s) => s.device_id.0,
        };
        let mut delay = cfg.retry_min;
        loop {
            match write_batch(pool, &single, counters, true).await {
                Ok(()) => break,
                Err(e) if is_transient(&e) => {
                    counters.retried();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(cfg.retry_max);
                }
                Err(e) => {
                    reject(counters, device, &format!("database refused it: {e}"));
                    break;
                }
            }
        }
    }
}

macro_rules! sample_insert {
    () => {
        "INSERT INTO device_samples (tenant_id, device_id, time, cpu_percent, memory_percent, \
           disk_percent, temperature_c, uptime_s, wireless_clients, wireless_mean_signal_dbm, \
           wireless_min_signal_dbm, if_name, if_running, if_rx_bytes, if_tx_bytes, if_rx_bps, \
           if_tx_bps) \
         SELECT $1, d, t, cpu, mem, disk, temp, up, cl, mean, min, n::text[], r::bool[], \
           rx::bigint[], tx::bigint[], rxb::float8[], txb::float8[] \
         FROM UNNEST($2::uuid[], $3::timestamptz[], $4::real[], $5::real[], $6::real[], \
           $7::real[], $8::bigint[], $9::int[], $10::real[], $11::int[], $12::text[], \
           $13::text[], $14::text[], $15::text[], $16::text[], $17::text[]) \
           AS v(d, t, cpu, mem, disk, temp, up, cl, mean, min, n, r, rx, tx, rxb, txb)"
    };
}

/// One transaction: per tenant, the device check, the sample inserts (plain, or with
/// `ON CONFLICT DO NOTHING` when `idempotent`), status history and the last values.
async fn write_batch(
    pool: &PgPool,
    p: &Prepared,
    counters: &Counters,
    idempotent: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut written_metrics = 0u64;
    let mut written_status = 0u64;
    let mut rejected = 0u64;
    for (tenant, tb) in &p.tenants {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        // Devices this tenant really has (RLS hides everything else): events naming an
        // unknown device or the wrong tenant are dropped here.
        let mut ids = tb.devices.clone();
        ids.sort_unstable();
        ids.dedup();
        let known: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM devices WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        let known: std::collections::HashSet<Uuid> = known.into_iter().collect();
        let ok = |d: &Uuid| known.contains(d);
        if known.len() != ids.len() {
            for d in ids.iter().filter(|d| !known.contains(d)) {
                let n = tb.devices.iter().filter(|x| *x == d).count() as u64;
                rejected += n;
                tracing::warn!(device = %d, tenant = %tenant, events = n,
                    "recorder: events rejected: device unknown in this tenant");
            }
        }
        let r = &tb.samples;
        let keep: Vec<usize> = (0..r.device.len()).filter(|&i| ok(&r.device[i])).collect();
        if !keep.is_empty() {
            sqlx::query(if idempotent {
                concat!(sample_insert!(), " ON CONFLICT DO NOTHING")
            } else {
                sample_insert!()
            })
            .bind(tenant.0)
            .bind(pick(&r.device, &keep))
            .bind(pick(&r.time, &keep))
            .bind(pick(&r.cpu, &keep))
            .bind(pick(&r.mem, &keep))
            .bind(pick(&r.disk, &keep))
            .bind(pick(&r.temp, &keep))
            .bind(pick(&r.uptime, &keep))
            .bind(pick(&r.clients, &keep))
            .bind(pick(&r.mean, &keep))
            .bind(pick(&r.min, &keep))
            .bind(pick(&r.if_name, &keep))
            .bind(pick(&r.if_running, &keep))
            .bind(pick(&r.if_rx, &keep))
            .bind(pick(&r.if_tx, &keep))
            .bind(pick(&r.if_rx_bps, &keep))
            .bind(pick(&r.if_tx_bps, &keep))
            .execute(&mut *tx)
            .await?;
            written_metrics += keep.len() as u64;
        }
        let s = &tb.status;
        let keep: Vec<usize> = (0..s.device.len()).filter(|&i| ok(&s.device[i])).collect();
        if !keep.is_empty() {
            sqlx::query(
                "INSERT INTO device_status_history (tenant_id, device_id, status, previous_status, \
                   reason, at) \
                 SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], \
                   $6::timestamptz[])",
            )
            .bind(tenant.0)
            .bind(pick(&s.device, &keep))
            .bind(pick(&s.status, &keep))
            .bind(pick(&s.previous, &keep))
            .bind(pick(&s.reason, &keep))
            .bind(pick(&s.at, &keep))
            .execute(&mut *tx)
            .await?;
            written_status += keep.len() as u64;
        }
        // denormalised last values (only moving forward in time)
        let last: Vec<(&Uuid, &LastValues)> = tb.last.iter().filter(|(d, _)| ok(d)).collect();
        if !last.is_empty() {
            sqlx::query(
                "UPDATE devices d SET last_seen_at = v.t, \
                   last_cpu_percent = v.cpu, last_memory_percent = v.mem, \
                   last_disk_percent = v.disk, last_temperature_c = v.temp, \
                   last_wireless_clients = v.clients, uptime_s = COALESCE(v.up, d.uptime_s) \
                 FROM UNNEST($1::uuid[], $2::timestamptz[], $3::real[], $4::real[], $5::real[], \
                   $6::real[], $7::int[], $8::bigint[]) AS v(id, t, cpu, mem, disk, temp, clients, up) \
                 WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at <= v.t)",
            )
            .bind(last.iter().map(|(d, _)| **d).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.time).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.cpu).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.mem).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.disk).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.temp).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.clients).collect::<Vec<_>>())
            .bind(last.iter().map(|(_, v)| v.uptime).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        let ls: Vec<usize> = tb
            .last_status
            .iter()
            .filter(|(d, _)| ok(d))
            .map(|(_, &i)| i)
            .collect();
        if !ls.is_empty() {
            sqlx::query(
                "UPDATE devices d SET status = v.status, status_reason = v.reason, \
                   status_changed_at = v.at, \
                   last_seen_at = CASE WHEN v.status = 'online' THEN GREATEST(d.last_seen_at, v.at) \
                                       ELSE d.last_seen_at END, \
                   routeros_version = COALESCE(v.ver, d.routeros_version), \
                   board_name = COALESCE(v.board, d.board_name), \
                   uptime_s = COALESCE(v.up, d.uptime_s), updated_at = now() \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], \
                   $6::text[], $7::bigint[]) AS v(id, status, reason, at, ver, board, up) \
                 WHERE d.id = v.id AND (d.status_changed_at IS NULL OR d.status_changed_at <= v.at)",
            )
            .bind(pick(&s.device, &ls))
            .bind(pick(&s.status, &ls))
            .bind(pick(&s.reason, &ls))
            .bind(pick(&s.at, &ls))
            .bind(pick(&s.version, &ls))
            .bind(pick(&s.board, &ls))
            .bind(pick(&s.uptime, &ls))
            .execute(&mut *tx)
            .await?;
        }
        let _ = tb.metrics_events;
    }
    tx.commit().await?;
    counters.written(written_metrics, written_status);
    counters.rejected(rejected);
    Ok(())
}

fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}
