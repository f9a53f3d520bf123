//! A minimal `metrics::Recorder` for the drover node child: it keeps the poll lateness
//! histogram (`drover_device_poll_lateness_seconds`) and the poll outcome counters
//! (`drover_device_polls_total{outcome}`) and ignores every other metric.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::histogram::AtomicHistogram;

/// The values the harness reads; shared with the recorder.
#[derive(Debug, Default)]
pub(crate) struct NodeMetrics {
    pub(crate) lateness: Arc<AtomicHistogram>,
    pub(crate) polls_ok: Arc<AtomicU64>,
    pub(crate) polls_missed: Arc<AtomicU64>,
    pub(crate) polls_failed: Arc<AtomicU64>,
    pub(crate) polls_overrun: Arc<AtomicU64>,
}

/// The recorder; install with [`install`].
#[derive(Debug)]
struct BenchRecorder {
    m: Arc<NodeMetrics>,
}

impl Recorder for BenchRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != "drover_device_polls_total" {
            return Counter::noop();
        }
        let outcome = key
            .labels()
            .find(|l| l.key() == "outcome")
            .map(|l| l.value().to_owned());
        let slot = match outcome.as_deref() {
            Some("ok") => &self.m.polls_ok,
            Some("missed") => &self.m.polls_missed,
            Some("failed") => &self.m.polls_failed,
            Some("overrun") => &self.m.polls_overrun,
            _ => return Counter::noop(),
        };
        Counter::from_arc(Arc::clone(slot))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == "drover_device_poll_lateness_seconds" {
            Histogram::from_arc(Arc::clone(&self.m.lateness))
        } else {
            Histogram::noop()
        }
    }
}

/// Installs the recorder process-wide and returns the values it fills.
pub(crate) fn install() -> anyhow::Result<Arc<NodeMetrics>> {
    let m = Arc::new(NodeMetrics::default());
    metrics::set_global_recorder(BenchRecorder { m: Arc::clone(&m) })
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    Ok(m)
}
