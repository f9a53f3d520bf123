//! One `emit` for every output of a device event: the SSE hub, the JetStream publisher and
//! the recorder (PostgreSQL writer).
//!
//! Every output is non-blocking: the hub writes into per-tenant ring buffers, the publisher
//! into its bounded queue, the recorder through `try_send`. A full or closed recorder queue
//! counts a drop (`drover_events_dropped_total{reason="recorder_full"|"recorder_closed"}`);
//! nothing a slow consumer does can stall a device actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use drover_model::Event;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::hub::EventHub;
use crate::publisher::EventPublisher;

/// Counters of a [`Fanout`], shared by its clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanoutStats {
    /// Events passed to `emit`.
    pub emitted: u64,
    /// Events the recorder queue had no room for.
    pub recorder_dropped_full: u64,
    /// Events emitted after the recorder's receiver was gone.
    pub recorder_dropped_closed: u64,
}

/// Sends each event to the hub, the publisher (if any) and the recorder (if any). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Fanout {
    hub: EventHub,
    publisher: Option<EventPublisher>,
    recorder: Option<mpsc::Sender<Arc<Event>>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    emitted: AtomicU64,
    recorder_full: AtomicU64,
    recorder_closed: AtomicU64,
}

impl Fanout {
    /// A fan-out to `hub` and, when given, to JetStream through `publisher`.
    pub fn new(hub: EventHub, publisher: Option<EventPublisher>) -> Self {
        Self {
            hub,
            publisher,
            recorder: None,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Also feeds the recorder through `tx` (with `try_send`: a full queue drops and counts
    /// the event, it never blocks the emitter).
    pub fn with_recorder(mut self, tx: mpsc::Sender<Arc<Event>>) -> Self {
        self.recorder = Some(tx);
        self
    }

    /// Delivers `event` to every output. Never blocks.
    pub fn emit(&self, event: Event) {
        self.emit_shared(Arc::new(event));
    }

    /// [`Fanout::emit`] for an event that is already shared.
    pub fn emit_shared(&self, event: Arc<Event>) {
        self.counters.emitted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("drover_events_emitted_total", "family" => event.family()).increment(1);
        if let Some(recorder) = &self.recorder {
            match recorder.try_send(Arc::clone(&event)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.recorder_full.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("drover_events_dropped_total", "reason" => "recorder_full")
                        .increment(1);
                }
                Err(TrySendError::Closed(_)) => {
                    self.counters
                        .recorder_closed
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("drover_events_dropped_total", "reason" => "recorder_closed")
                        .increment(1);
                }
            }
        }
        if let Some(publisher) = &self.publisher {
            publisher.publish(Arc::clone(&event));
        }
        self.hub.publish(event);
    }

    /// The fan-out as a plain callback, e.g. for a device actor's event sink.
    pub fn sink(&self) -> Arc<dyn Fn(Event) + Send + Sync> {
        let fanout = self.clone();
        Arc::new(move |event| fanout.emit(event))
    }

    /// The hub this fan-out feeds.
    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// The publisher this fan-out feeds, if any.
    pub fn publisher(&self) -> Option<&EventPublisher> {
        self.publisher.as_ref()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FanoutStats {
        FanoutStats {
            emitted: self.counters.emitted.load(Ordering::Relaxed),
            recorder_dropped_full: self.counters.recorder_full.load(Ordering::Relaxed),
            recorder_dropped_closed: self.counters.recorder_closed.load(Ordering::Relaxed),
        }
    }
}
