//! Server-Sent Events: `GET /api/sse/subscribe?tenant_id=…` streams one tenant's device events
//! to a browser.
//!
//! Source: one node-wide JetStream ordered consumer over the events stream (every family but
//! metrics, each event's `id:` is its stream sequence) plus one core-NATS subscription to
//! `metrics.sample.>` (no id: samples are not replayed). Both feed [`SseHub`], which fans out
//! per tenant through bounded broadcast channels, so a node holds two NATS subscriptions
//! whatever the number of browsers, and events of devices on any cluster node reach every
//! node's clients. A client more than the channel's capacity behind is disconnected with an
//! `error` event (`slow_client`) instead of slowing the others. `Last-Event-ID` replays the
//! tenant's events after that sequence from JetStream (two filtered ordered consumers, at
//! most [`MAX_REPLAY`] events) before switching to live events without gaps or repeats.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use drover_auth::tokens::Role;
use drover_model::TenantId;
use futures_util::{Stream, StreamExt};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::EventStream;
use poem_openapi::{Object, OpenApi};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::caller::{ACCESS_COOKIE, authenticate};
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiTags;
use crate::routes::auth::SseGrant;
use crate::state::ApiState;

/// Events buffered per tenant for slow clients before they are disconnected.
pub const TENANT_BUFFER: usize = 4096;
/// Most events replayed for one `Last-Event-ID`.
pub const MAX_REPLAY: usize = 10_000;
/// The JetStream stream holding every family but metrics.
pub const EVENTS_STREAM: &str = "DROVER_EVENTS";

/// One event as it goes to clients.
#[derive(Debug, Clone)]
pub struct HubEvent {
    /// Stream sequence (events stream), or `None` for metrics samples.
    pub seq: Option<u64>,
    /// SSE `event:` name: the family, e.g. `device.status`.
    pub event: &'static str,
    /// The JSON payload as published.
    pub data: Arc<str>,
}

/// What a client's stream yields.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SseMessage {
    /// The family: `device.status`, `metrics.sample`, `config.change`, `firmware.progress`,
    /// `config.push`, `alert.fired`, `alert.resolved`; or `error` / `resync` from the server.
    pub event: String,
    /// Stream sequence; send it back as `Last-Event-ID` to resume.
    pub id: Option<u64>,
    /// The event's JSON.
    pub data: String,
}

/// Per-tenant fan-out of events to SSE clients on this node.
#[derive(Debug, Clone)]
pub struct SseHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    tenants: Mutex<HashMap<TenantId, broadcast::Sender<HubEvent>>>,
    clients: AtomicUsize,
    max_clients: usize,
}

/// Held while a client is connected; counts clients.
#[derive(Debug)]
pub struct ClientSlot {
    inner: Arc<HubInner>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.inner.clients.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("drover_sse_clients").decrement(1.0);
    }
}

fn family_of(subject: &str) -> Option<&'static str> {
    let mut parts = subject.split('.');
    let a = parts.next()?;
    let b = parts.next()?;
    Some(match (a, b) {
        ("device", "status") => "device.status",
        ("metrics", "sample") => "metrics.sample",
        ("config", "change") => "config.change",
        ("firmware", "progress") => "firmware.progress",
        ("config", "push") => "config.push",
        ("alert", "fired") => "alert.fired",
        ("alert", "resolved") => "alert.resolved",
        _ => return None,
    })
}

/// The tenant of a subject (`family.kind.{tenant}[.{device}]`).
fn tenant_of(subject: &str) -> Option<TenantId> {
    subject
        .split('.')
        .nth(2)?
        .parse::<Uuid>()
        .ok()
        .map(TenantId)
}

impl SseHub {
    pub fn new(max_clients: usize) -> Self {
        Self {
            inner: Arc::new(HubInner {
                tenants: Mutex::new(HashMap::new()),
                clients: AtomicUsize::new(0),
                max_clients,
            }),
        }
    }

    /// A place for one more client, unless the node is full.
    pub fn admit(&self) -> Option<ClientSlot> {
        let n = self.inner.clients.fetch_add(1, Ordering::Relaxed);
        if n >= self.inner.max_clients {
            self.inner.clients.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        metrics::gauge!("drover_sse_clients").increment(1.0);
        Some(ClientSlot {
            inner: self.inner.clone(),
        })
    }

    pub fn clients(&self) -> usize {
        self.inner.clients.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self, tenant: TenantId) -> broadcast::Receiver<HubEvent> {
        let mut t = match self.inner.tenants.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        t.entry(tenant)
            .or_insert_with(|| broadcast::channel(TENANT_BUFFER).0)
            .subscribe()
    }

    /// Delivers one NATS message to its tenant's clients (dropped when nobody listens).
    pub fn deliver(&self, subject: &str, seq: Option<u64>, payload: &[u8]) {
        let (Some(tenant), Some(event)) = (tenant_of(subject), family_of(subject)) else {
            metrics::counter!("drover_sse_unroutable_total").increment(1);
            return;
        };
        let Ok(text) = std::str::from_utf8(payload) else {
            metrics::counter!("drover_sse_unroutable_total").increment(1);
            return;
        };
        let mut t = match self.inner.tenants.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if let Some(tx) = t.get(&tenant) {
            if tx.receiver_count() == 0 {
                t.remove(&tenant);
                return;
            }
            let _ = tx.send(HubEvent {
                seq,
                event,
                data: Arc::from(text),
            });
        }
    }

    /// Feeds the hub from NATS until `shutdown` fires: the events stream through an ordered
    /// consumer (re-created after errors) and metrics through a core subscription.
    pub fn run(
        self,
        nats: async_nats::Client,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let events = {
                let hub = self.clone();
                let nats = nats.clone();
                let mut shutdown = shutdown.clone();
                async move {
                    loop {
                        if *shutdown.borrow() {
                            return;
                        }
                        if let Err(e) = hub.pump_events(&nats, &mut shutdown).await {
                            tracing::warn!(error = %e, "SSE events consumer stopped; retrying");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            };
            let samples = {
                let hub = self.clone();
                let mut shutdown = shutdown.clone();
                async move {
                    loop {
                        match nats.subscribe("metrics.sample.>").await {
                            Ok(mut sub) => loop {
                                tokio::select! {
                                    m = sub.next() => match m {
                                        Some(m) => hub.deliver(m.subject.as_str(), None, &m.payload),
                                        None => break,
                                    },
                                    _ = shutdown.changed() => return,
                                }
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "SSE metrics subscription failed; retrying")
                            }
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            };
            tokio::join!(events, samples);
        })
    }

    async fn pump_events(
        &self,
        nats: &async_nats::Client,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let js = jetstream::new(nats.clone());
        let stream = js
            .get_stream(EVENTS_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: nats.new_inbox(),
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(m)) => {
                        let seq = m.info().ok().map(|i| i.stream_sequence);
                        self.deliver(m.subject.as_str(), seq, &m.payload);
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("consumer ended".into()),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

/// The tenant's events after `after` from JetStream, in sequence order; `Err` when they are
/// no longer all in the stream (the client must reload its view).
async fn replay(
    nats: &async_nats::Client,
    tenant: TenantId,
    after: u64,
) -> Result<Vec<HubEvent>, ReplayGap> {
    let js = jetstream::new(nats.clone());
    let gap = |why: String| {
        tracing::info!(%tenant, after, why, "SSE resume impossible; client told to resync");
        ReplayGap
    };
    let mut stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| gap(e.to_string()))?;
    let info = stream.info().await.map_err(|e| gap(e.to_string()))?;
    let last = info.state.last_sequence;
    if after >= last {
        return Ok(Vec::new());
    }
    if after + 1 < info.state.first_sequence || last - after > MAX_REPLAY as u64 {
        return Err(gap(format!(
            "stream holds {}..={last}",
            info.state.first_sequence
        )));
    }
    let mut out = Vec::new();
    // NATS 2.9 takes one filter per consumer, and each must lie inside one of the stream's
    // subjects: one short-lived consumer per family of the tenant.
    for filter in drover_model::subjects::tenant_filters(tenant)
        .into_iter()
        .filter(|f| !f.starts_with("metrics."))
    {
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: nats.new_inbox(),
                filter_subject: filter,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| gap(e.to_string()))?;
        let mut messages = consumer.messages().await.map_err(|e| gap(e.to_string()))?;
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
            let Ok(Some(Ok(m))) = next else { break };
            let Ok(i) = m.info() else { break };
            let seq = i.stream_sequence;
            let pending = i.pending;
            if seq > last {
                break;
            }
            if let (Some(event), Ok(text)) = (
                family_of(m.subject.as_str()),
                std::str::from_utf8(&m.payload),
            ) {
                out.push(HubEvent {
                    seq: Some(seq),
                    event,
                    data: Arc::from(text),
                });
            }
            if pending == 0 || seq == last || out.len() > MAX_REPLAY {
                break;
            }
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

#[derive(Debug)]
struct ReplayGap;

fn message(e: &HubEvent) -> SseMessage {
    SseMessage {
        event: e.event.to_owned(),
        id: e.seq,
        data: e.data.to_string(),
    }
}

fn server_event(event: &str, reason: &str) -> SseMessage {
    SseMessage {
        event: event.to_owned(),
        id: None,
        data: serde_json::json!({ "reason": reason }).to_string(),
    }
}

type BoxStream = Pin<Box<dyn Stream<Item = SseMessage> + Send>>;

/// The live stream of one client: replayed events first, then live ones past them; ends with
/// an `error` event when the client falls too far behind.
fn client_stream(
    slot: ClientSlot,
    live: broadcast::Receiver<HubEvent>,
    replayed: Vec<HubEvent>,
    resync: bool,
) -> BoxStream {
    let last_replayed = replayed.last().and_then(|e| e.seq).unwrap_or(0);
    let head: Vec<SseMessage> = if resync {
        vec![server_event(
            "resync",
            "events since Last-Event-ID are no longer available; reload",
        )]
    } else {
        replayed.iter().map(message).collect()
    };
    let tail = futures_util::stream::unfold(Some((slot, live)), move |state| async move {
        let (slot, mut live) = state?;
        loop {
            match live.recv().await {
                Ok(e) if e.seq.is_some_and(|s| s <= last_replayed) => continue,
                Ok(e) => return Some((message(&e), Some((slot, live)))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    metrics::counter!("drover_sse_slow_disconnects_total").increment(1);
                    return Some((server_event("error", "slow_client"), None));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Box::pin(futures_util::stream::iter(head).chain(tail))
}

#[derive(Debug)]
pub struct SseApi;

#[OpenApi(tag = "ApiTags::Events")]
impl SseApi {
    /// Live events of one tenant as Server-Sent Events. Authenticate with a single-use
    /// `ticket` from `POST /api/auth/sse-ticket` (for `EventSource`) or the access cookie.
    /// `Last-Event-ID` (header, or `last_event_id`) resumes after that event without gaps.
    /// A comment line every 15 s keeps proxies from closing the stream. Event names:
    /// `device.status`, `metrics.sample`, `config.change`, `firmware.progress`, `config.push`,
    /// `alert.fired`, `alert.resolved`; the server may send `resync` (reload your view) and
    /// `error` (`slow_client`, then the stream ends; reconnect).
    #[oai(
        path = "/api/sse/subscribe",
        method = "get",
        operation_id = "sse_subscribe"
    )]
    async fn subscribe(
        &self,
        state: Data<&Arc<ApiState>>,
        req: &Request,
        tenant_id: Query<Uuid>,
        #[oai(validator(max_length = 200))] ticket: Query<Option<String>>,
        #[oai(name = "Last-Event-ID")] last_event_id_header: Header<Option<String>>,
        last_event_id: Query<Option<u64>>,
    ) -> ApiResult<EventStream<BoxStream>> {
        let tenant = TenantId(tenant_id.0);
        match ticket.0.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => {
                let Some(raw) = state.auth.tickets.redeem("sse", t).await? else {
                    return Err(ApiError::unauthorized(
                        "invalid_ticket",
                        "the SSE ticket is unknown, used or expired",
                    ));
                };
                let grant: SseGrant = serde_json::from_str(&raw).map_err(ApiError::internal)?;
                if grant.tenant_id != tenant.0 {
                    return Err(ApiError::forbidden("the ticket is for another tenant"));
                }
            }
            None => {
                let token = req
                    .headers()
                    .get_all("cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .filter_map(|kv| kv.trim().split_once('='))
                    .find(|(k, _)| *k == ACCESS_COOKIE)
                    .map(|(_, v)| v.to_owned())
                    .or_else(|| {
                        req.headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(str::to_owned)
                    })
                    .ok_or_else(|| ApiError::unauthenticated("give a ticket or log in"))?;
                let caller = authenticate(&state, req, &token).await?;
                caller.in_tenant(tenant.0, Role::Viewer)?;
            }
        }
        let Some(slot) = state.sse.admit() else {
            return Err(ApiError::unavailable(
                "too_many_clients",
                "this node serves its maximum of SSE clients",
                10,
            ));
        };
        // Subscribe before replaying, so nothing published meanwhile is lost.
        let live = state.sse.subscribe(tenant);
        let resume = last_event_id_header
            .0
            .as_deref()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .or(last_event_id.0);
        let (replayed, resync) = match (resume, &state.nats) {
            (Some(after), Some(nats)) => match replay(nats, tenant, after).await {
                Ok(r) => (r, false),
                Err(ReplayGap) => (Vec::new(), true),
            },
            _ => (Vec::new(), false),
        };
        let stream = client_stream(slot, live, replayed, resync);
        Ok(EventStream::new(stream)
            .keep_alive(Duration::from_secs(15))
            .to_event(|m: SseMessage| {
                let mut e = poem::web::sse::Event::message(m.data).event_type(m.event);
                if let Some(id) = m.id {
                    e = e.id(id.to_string());
                }
                e
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_route_to_tenant_and_family() {
        let t = Uuid::new_v4();
        let d = Uuid::new_v4();
        assert_eq!(
            tenant_of(&format!("device.status.{t}.{d}")),
            Some(TenantId(t))
        );
        assert_eq!(
            family_of(&format!("device.status.{t}.{d}")),
            Some("device.status")
        );
        assert_eq!(tenant_of(&format!("alert.fired.{t}")), Some(TenantId(t)));
        assert_eq!(tenant_of("audit.session.end"), None);
        assert_eq!(family_of("bogus.x.y"), None);
    }
}
