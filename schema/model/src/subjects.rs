//! NATS subjects of drover's event contract. Subjects are built here and nowhere else.
//!
//! Families: `device.status.{tenant}.{device}`, `metrics.sample.{tenant}.{device}`,
//! `config.change.{tenant}.{device}`, `firmware.progress.{tenant}.{device}`,
//! `config.push.{tenant}.{device}`, `alert.fired.{tenant}`, `alert.resolved.{tenant}`,
//! `audit.session.end`.

use crate::ids::{DeviceId, TenantId};

pub const AUDIT_SESSION_END: &str = "audit.session.end";

/// Subject filters of the JetStream stream holding device events.
pub const DEVICE_EVENT_FILTERS: &[&str] = &[
    "device.status.>",
    "metrics.sample.>",
    "config.change.>",
    "firmware.progress.>",
    "config.push.>",
    "alert.fired.>",
    "alert.resolved.>",
    "audit.session.end",
];

pub fn device_status(tenant: TenantId, device: DeviceId) -> String {
    format!("device.status.{tenant}.{device}")
}

pub fn metrics_sample(tenant: TenantId, device: DeviceId) -> String {
    format!("metrics.sample.{tenant}.{device}")
}

pub fn config_change(tenant: TenantId, device: DeviceId) -> String {
    format!("config.change.{tenant}.{device}")
}

pub fn firmware_progress(tenant: TenantId, device: DeviceId) -> String {
    format!("firmware.progress.{tenant}.{device}")
}

pub fn config_push(tenant: TenantId, device: DeviceId) -> String {
    format!("config.push.{tenant}.{device}")
}

pub fn alert_fired(tenant: TenantId) -> String {
    format!("alert.fired.{tenant}")
}

pub fn alert_resolved(tenant: TenantId) -> String {
    format!("alert.resolved.{tenant}")
}

/// Every subject of one tenant's events, for a per-tenant consumer (SSE resume).
pub fn tenant_filters(tenant: TenantId) -> Vec<String> {
    vec![
        format!("device.status.{tenant}.*"),
        format!("metrics.sample.{tenant}.*"),
        format!("config.change.{tenant}.*"),
        format!("firmware.progress.{tenant}.*"),
        format!("config.push.{tenant}.*"),
        alert_fired(tenant),
        alert_resolved(tenant),
    ]
}
