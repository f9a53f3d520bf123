//! Where the node's devices come from: the `devices` table read with the poller role,
//! credentials decrypted with the envelope keys, turned into `DeviceSpec`s. Changes arrive
//! as PostgreSQL notifications (`drover_device_changes`, one per changed device id) and reach
//! the running actor within about a second; a periodic full reload is the safety net.
//!
//! The node runs only the devices of the shards whose leases it holds
//! ([`drover_cluster::OwnedShards`]): every device is read, and the set handed to
//! `NodeMsg::Reconcile` is filtered by shard; a change of the owned shards is one reconcile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drover_cluster::OwnedShards;
use tokio::sync::watch;

use drover_device::DeviceSpec;
use drover_model::{DeviceId, TenantId};
use drover_node::NodeMsg;
use drover_store::PollerStore;
use drover_store::crypto::{
    DeviceCredentials, Envelope, device_row_credentials_for_poller, devices_credentials_for_poller,
};
use drover_store::entities::devices;
use ractor::ActorRef;
use routeros_client::{Credentials, Fingerprint, TlsPolicy, Transport};
use uuid::Uuid;

/// The PostgreSQL notification channel the migration's triggers notify on.
pub(crate) const CHANGES_CHANNEL: &str = "drover_device_changes";
/// Notified with a tenant id when the tenant's default poll interval changes.
pub(crate) const TENANT_CHANGES_CHANNEL: &str = "drover_tenant_changes";
/// Poll interval when neither the device nor its tenant sets one.
const DEFAULT_POLL_INTERVAL_S: i32 = 60;

/// Reads devices for this node.
#[derive(Clone)]
pub(crate) struct DeviceSource {
    pub(crate) poller: PollerStore,
    pub(crate) envelope: Arc<Envelope>,
    /// Policy for devices in `verify` mode.
    pub(crate) verify: Option<TlsPolicy>,
}

impl DeviceSource {
    /// Every device, in pages.
    pub(crate) async fn load_all(&self) -> anyhow::Result<Vec<DeviceSpec>> {
        let intervals = self.poller.tenant_poll_intervals().await?;
        let mut specs = Vec::new();
        let mut after = None;
        loop {
            let page = self.poller.devices_page(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let mut credentials =
                devices_credentials_for_poller(&self.envelope, &self.poller, &page).await?;
            for row in page {
                let tenant_default = intervals.get(&row.tenant_id).copied();
                let creds = credentials.remove(&row.id).unwrap_or(Ok(None));
                if let Some(spec) = self.spec(row, tenant_default, creds)? {
                    specs.push(spec);
                }
            }
        }
        Ok(specs)
    }

    /// One device, or `None` when it no longer exists.
    pub(crate) async fn load_one(&self, id: Uuid) -> anyhow::Result<Option<DeviceSpec>> {
        match self.poller.device(id).await? {
            Some(row) => {
                let tenant_default = self.poller.tenant_poll_interval(row.tenant_id).await?;
                let creds =
                    device_row_credentials_for_poller(&self.envelope, &self.poller, &row).await;
                self.spec(row, tenant_default, creds)
            }
            None => Ok(None),
        }
    }

    /// The device's spec; `Ok(None)` when the device cannot run (its credentials do not
    /// decrypt, or its TLS mode has no CA bundle). An error reading the database or the key
    /// backend fails the whole load, which is retried: a device must never be stopped
    /// because a read failed.
    fn spec(
        &self,
        row: devices::Model,
        tenant_default: Option<i32>,
        credentials: drover_store::Result<Option<DeviceCredentials>>,
    ) -> anyhow::Result<Option<DeviceSpec>> {
        let credentials = match credentials {
            Ok(Some(c)) => Credentials::new(
                c.username.clone(),
                String::from_utf8_lossy(c.password.expose()).into_owned(),
            ),
            // No credentials yet: the device shows as auth_failed until they are set.
            Ok(None) => Credentials::new("", ""),
            Err(e @ (drover_store::Error::Decrypt | drover_store::Error::Invalid(_))) => {
                tracing::error!(device = %row.id, error = %e, "cannot decrypt device credentials; device not started");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let transport = match row.tls_mode.as_str() {
            "plain" => Transport::Plain,
            "verify" => match &self.verify {
                Some(p) => Transport::Tls(p.clone()),
                None => {
                    tracing::error!(device = %row.id, "verify mode but no CA bundle could be loaded; device not started");
                    return Ok(None);
                }
            },
            _ => {
                let mut policy = TlsPolicy::insecure();
                if let Some(fp) = row
                    .pinned_fingerprint
                    .as_deref()
                    .and_then(Fingerprint::parse)
                {
                    policy = policy.pinned(fp);
                }
                Transport::Tls(policy)
            }
        };
        Ok(Some(DeviceSpec {
            id: DeviceId(row.id),
            tenant_id: TenantId(row.tenant_id),
            host: row.address,
            port: u16::try_from(row.api_port).ok(),
            transport,
            credentials,
            // The device's own interval, else its tenant's default.
            poll_interval: Duration::from_secs(
                u64::try_from(
                    row.poll_interval_s
                        .or(tenant_default)
                        .unwrap_or(DEFAULT_POLL_INTERVAL_S),
                )
                .unwrap_or(60)
                .max(1),
            ),
        }))
    }
}

/// Every device in the store, and the shards this node holds: what runs here is the
/// intersection.
struct Assigned {
    all: HashMap<DeviceId, DeviceSpec>,
    owned: Arc<OwnedShards>,
    loaded: bool,
}

impl Assigned {
    fn reconcile(&self, node: &ActorRef<NodeMsg>) -> bool {
        if !self.loaded {
            return true;
        }
        let specs: Vec<DeviceSpec> = self
            .all
            .values()
            .filter(|s| self.owned.epoch_of(s.id).is_some())
            .cloned()
            .collect();
        tracing::debug!(
            devices = specs.len(),
            stored = self.all.len(),
            shards = self.owned.len(),
            "devices assigned to this node"
        );
        metrics::gauge!("drover_node_devices_assigned").set(specs.len() as f64);
        node.send_message(NodeMsg::Reconcile(specs)).is_ok()
    }

    fn upsert(&mut self, spec: DeviceSpec, node: &ActorRef<NodeMsg>) {
        let id = spec.id;
        let mine = self.owned.epoch_of(id).is_some();
        self.all.insert(id, spec.clone());
        if self.loaded {
            let _ = if mine {
                node.send_message(NodeMsg::Upsert(Box::new(spec)))
            } else {
                node.send_message(NodeMsg::Remove(id))
            };
        }
    }

    fn remove(&mut self, id: DeviceId, node: &ActorRef<NodeMsg>) {
        self.all.remove(&id);
        let _ = node.send_message(NodeMsg::Remove(id));
    }
}

/// Keeps the node's device set in step with the database and with the shards it holds,
/// until the node stops.
pub(crate) async fn watch(
    source: DeviceSource,
    poller_url: String,
    node: ActorRef<NodeMsg>,
    full_reload: Duration,
    mut owned: watch::Receiver<Arc<OwnedShards>>,
) {
    let mut assigned = Assigned {
        all: HashMap::new(),
        owned: owned.borrow_and_update().clone(),
        loaded: false,
    };
    let mut owned_open = true;
    loop {
        // (Re)connect the listener first, then reload everything: no change can slip between.
        let mut listener = match sqlx::postgres::PgListener::connect(&poller_url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for device changes; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([CHANGES_CHANNEL, TENANT_CHANGES_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        assigned.owned = owned.borrow_and_update().clone();
        if !reload(&source, &node, &mut assigned).await {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let mut ticker = tokio::time::interval(full_reload);
        ticker.tick().await;
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) if n.channel() == TENANT_CHANGES_CHANNEL => {
                        // A tenant's default interval changed: rare, so re-read everything.
                        reload(&source, &node, &mut assigned).await;
                    }
                    Ok(n) => {
                        let Ok(id) = n.payload().parse::<Uuid>() else {
                            tracing::warn!(payload = n.payload(), "ignoring malformed device change notification");
                            continue;
                        };
                        match source.load_one(id).await {
                            Ok(Some(spec)) => assigned.upsert(spec, &node),
                            Ok(None) => assigned.remove(DeviceId(id), &node),
                            Err(e) => tracing::warn!(device = %id, error = %e, "cannot load changed device"),
                        }
                        metrics::counter!("drover_device_changes_total").increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "device change listener lost; reconnecting");
                        break;
                    }
                },
                changed = owned.changed(), if owned_open => {
                    if changed.is_err() {
                        owned_open = false;
                        continue;
                    }
                    assigned.owned = owned.borrow_and_update().clone();
                    assigned.reconcile(&node);
                }
                _ = ticker.tick() => { reload(&source, &node, &mut assigned).await; }
            }
        }
    }
}

async fn reload(source: &DeviceSource, node: &ActorRef<NodeMsg>, assigned: &mut Assigned) -> bool {
    match source.load_all().await {
        Ok(specs) => {
            tracing::info!(devices = specs.len(), "device set loaded");
            assigned.all = specs.into_iter().map(|s| (s.id, s)).collect();
            assigned.loaded = true;
            assigned.reconcile(node)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load devices");
            false
        }
    }
}
