//! Audit records: `Audit` describes one action; `in_tx` writes it inside the transaction that
//! makes the change (so neither commits without the other), `record` writes auth events that
//! have no data change of their own in a transaction of their own.

use drover_model::TenantId;
use drover_store::TenantTx;
use drover_store::queries::{self, AuditEntry};
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::ApiResult;
use crate::state::ApiState;

/// One audit record under construction.
#[derive(Debug, Clone)]
pub struct Audit(AuditEntry);

impl Audit {
    pub fn new(actor_kind: &'static str, actor_id: Option<Uuid>, action: &str) -> Self {
        Self(AuditEntry {
            actor_kind,
            actor_id,
            action: action.to_owned(),
            resource_type: None,
            resource_id: None,
            device_id: None,
            ip_address: None,
            details: serde_json::json!({}),
        })
    }

    /// The record of `caller` doing `action`.
    pub fn by(caller: &Caller, action: &str) -> Self {
        Self::new(caller.actor_kind(), Some(caller.actor_id()), action).ip(caller.ip_string())
    }

    pub fn resource(mut self, kind: &str, id: impl Into<String>) -> Self {
        self.0.resource_type = Some(kind.to_owned());
        self.0.resource_id = Some(id.into());
        self
    }

    pub fn device(mut self, id: Uuid) -> Self {
        self.0.device_id = Some(id);
        self.0.resource_type = Some("device".into());
        self.0.resource_id = Some(id.to_string());
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.0.ip_address = ip;
        self
    }

    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.0.details = d;
        self
    }

    pub fn into_entry(self) -> AuditEntry {
        self.0
    }

    pub fn outcome(mut self, outcome: &str) -> Self {
        if let Some(o) = self.0.details.as_object_mut() {
            o.insert(
                "outcome".into(),
                serde_json::Value::String(outcome.to_owned()),
            );
        }
        self
    }
}

/// Writes the record inside `tx`.
pub async fn in_tx(tx: &TenantTx, a: Audit) -> ApiResult<()> {
    queries::audit(tx, a.0).await?;
    Ok(())
}

/// Writes the record in a transaction of its own; a failure is logged, not returned (the
/// action it describes has already happened or been refused).
pub async fn record(state: &ApiState, tenant: TenantId, a: Audit) {
    let action = a.0.action.clone();
    let result = async {
        let tx = state.store.begin(tenant).await?;
        queries::audit(&tx, a.0).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(%tenant, action, error = %e, "cannot write audit record");
    }
}
