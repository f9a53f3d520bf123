//! Per-tenant in-process broadcast of device events for SSE subscribers.
//!
//! The API subscribes once per tenant per node and fans out to its SSE clients; this hub keeps
//! one bounded [`tokio::sync::broadcast`] channel per tenant that has subscribers.
//!
//! - [`EventHub::publish`] never blocks: a broadcast send only writes into the ring buffer.
//!   A tenant without subscribers costs one map lookup.
//! - A receiver that falls more than `capacity_per_tenant` events behind gets
//!   [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) on its next
//!   `recv`; the API disconnects it (the browser then resumes from the stream, see
//!   docs/events.md). A slow receiver never slows the publisher or other tenants.
//! - Channels of tenants whose last receiver was dropped are removed lazily, on the next
//!   publish for that tenant.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use drover_model::{Event, TenantId};
use tokio::sync::broadcast;

/// In-process, per-tenant broadcast of events. Cheap to clone (shared state inside).
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    capacity: usize,
    tenants: RwLock<HashMap<TenantId, broadcast::Sender<Arc<Event>>>>,
}

impl EventHub {
    /// A hub whose per-tenant channels hold `capacity_per_tenant` events for the slowest
    /// receiver (at least 1).
    pub fn new(capacity_per_tenant: usize) -> Self {
        Self {
            inner: Arc::new(HubInner {
                capacity: capacity_per_tenant.max(1),
                tenants: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The per-tenant channel capacity.
    pub fn capacity_per_tenant(&self) -> usize {
        self.inner.capacity
    }

    /// Delivers `event` to the subscribers of its tenant. Never blocks; a no-op when the
    /// tenant has no subscribers.
    pub fn publish(&self, event: Arc<Event>) {
        let tenant = event.tenant_id();
        let orphaned = {
            let tenants = self
                .inner
                .tenants
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match tenants.get(&tenant) {
                None => return,
                // `send` fails only when there is no receiver left.
                Some(sender) => sender.send(event).is_err(),
            }
        };
        if orphaned {
            self.remove_if_unused(tenant);
        }
    }

    /// A receiver of the tenant's events from now on.
    pub fn subscribe(&self, tenant: TenantId) -> broadcast::Receiver<Arc<Event>> {
        let mut tenants = self
            .inner
            .tenants
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match tenants.get(&tenant) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.inner.capacity);
                tenants.insert(tenant, sender);
                receiver
            }
        }
    }

    /// How many receivers the tenant has on this node.
    pub fn subscriber_count(&self, tenant: TenantId) -> usize {
        self.inner
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&tenant)
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// How many tenants currently have a channel (subscribed now, or until their next event).
    pub fn tenant_count(&self) -> usize {
        self.inner
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    fn remove_if_unused(&self, tenant: TenantId) {
        let mut tenants = self
            .inner
            .tenants
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Re-check under the write lock: a subscriber may have arrived in between.
        if tenants
            .get(&tenant)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            tenants.remove(&tenant);
        }
    }
}

impl Default for EventHub {
    /// A hub with 1,024 events per tenant.
    fn default() -> Self {
        Self::new(1024)
    }
}
