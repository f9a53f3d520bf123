//! Event payloads: drover's public contract on NATS and SSE. Every payload carries
//! `version` ([`EVENT_VERSION`]) and the ids it concerns; docs/events.md documents each one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, TenantId};
use crate::status::DeviceStatus;
use crate::subjects;

/// Version of the payload shapes below.
pub const EVENT_VERSION: u32 = 1;

/// A device's status changed (emitted once per transition, not on every poll).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatusChanged {
    pub version: u32,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub status: DeviceStatus,
    pub previous_status: Option<DeviceStatus>,
    /// Why, in words, when the status is not `online` (e.g. "3 polls missed: connection refused").
    pub reason: Option<String>,
    /// As RouterOS prints it, e.g. "7.16.1 (stable)".
    pub routeros_version: Option<String>,
    pub board_name: Option<String>,
    /// Seconds since the device booted.
    pub uptime: Option<u64>,
    /// Fencing epoch of the shard lease under which the event was produced (0 when unsharded).
    pub epoch: u64,
    pub at: DateTime<Utc>,
}

/// One interface's counters and the rates derived from the previous sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceSample {
    pub name: String,
    pub running: bool,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Bits per second since the previous sample; `None` on the first sample and after a
    /// counter reset (reboot or wrap), so resets never show as spikes.
    pub rx_bps: Option<f64>,
    pub tx_bps: Option<f64>,
}

/// Wireless clients seen in the registration tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WirelessSummary {
    pub clients: u32,
    /// Mean signal in dBm over clients that reported one.
    pub mean_signal_dbm: Option<f64>,
    pub min_signal_dbm: Option<i32>,
}

/// The values of one successful poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    pub version: u32,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub timestamp: DateTime<Utc>,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    pub uptime: Option<u64>,
    /// Highest temperature sensor reading in °C, if the device has sensors.
    pub temperature_c: Option<f64>,
    pub interfaces: Vec<InterfaceSample>,
    pub wireless: Option<WirelessSummary>,
    pub epoch: u64,
}

/// A device's configuration changed (through drover or detected on the device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChanged {
    pub version: u32,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    /// The menu, e.g. "/ip/address".
    pub menu: String,
    /// "add", "set", "remove" or "detected".
    pub action: String,
    pub item_id: Option<String>,
    /// Who made it: "api" (with the acting user in the audit log) or "device".
    pub source: String,
    pub at: DateTime<Utc>,
}

/// Firmware check or upgrade progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareProgress {
    pub version: u32,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub installed_version: Option<String>,
    pub latest_version: Option<String>,
    pub channel: Option<String>,
    /// RouterOS's status text, e.g. "New version is available".
    pub status: String,
    /// "checked", "downloading", "installing", "rebooting", "done" or "failed".
    pub stage: String,
    pub at: DateTime<Utc>,
}

/// Progress of a configuration push to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigPush {
    pub version: u32,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub push_id: String,
    /// "started", "applied", "rolled_back" or "failed".
    pub stage: String,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

/// An alert rule fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub version: u32,
    pub tenant_id: TenantId,
    pub device_id: Option<DeviceId>,
    pub alert_id: String,
    pub rule: String,
    /// "info", "warning" or "critical".
    pub severity: String,
    pub message: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub at: DateTime<Utc>,
}

/// An interactive session (SSH relay, WinBox tunnel) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub version: u32,
    pub tenant_id: TenantId,
    pub device_id: Option<DeviceId>,
    pub session_id: String,
    pub user_id: Option<String>,
    pub reason: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// Any event drover publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    DeviceStatus(DeviceStatusChanged),
    Metrics(MetricsSample),
    ConfigChange(ConfigChanged),
    Firmware(FirmwareProgress),
    ConfigPush(ConfigPush),
    AlertFired(AlertEvent),
    AlertResolved(AlertEvent),
    SessionEnd(SessionEnded),
}

impl Event {
    /// The NATS subject the event is published on.
    pub fn subject(&self) -> String {
        match self {
            Self::DeviceStatus(e) => subjects::device_status(e.tenant_id, e.device_id),
            Self::Metrics(e) => subjects::metrics_sample(e.tenant_id, e.device_id),
            Self::ConfigChange(e) => subjects::config_change(e.tenant_id, e.device_id),
            Self::Firmware(e) => subjects::firmware_progress(e.tenant_id, e.device_id),
            Self::ConfigPush(e) => subjects::config_push(e.tenant_id, e.device_id),
            Self::AlertFired(e) => subjects::alert_fired(e.tenant_id),
            Self::AlertResolved(e) => subjects::alert_resolved(e.tenant_id),
            Self::SessionEnd(_) => subjects::AUDIT_SESSION_END.to_owned(),
        }
    }

    /// The event family, used as the SSE `event:` name (e.g. `device.status`).
    pub fn family(&self) -> &'static str {
        match self {
            Self::DeviceStatus(_) => "device.status",
            Self::Metrics(_) => "metrics.sample",
            Self::ConfigChange(_) => "config.change",
            Self::Firmware(_) => "firmware.progress",
            Self::ConfigPush(_) => "config.push",
            Self::AlertFired(_) => "alert.fired",
            Self::AlertResolved(_) => "alert.resolved",
            Self::SessionEnd(_) => "audit.session.end",
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        match self {
            Self::DeviceStatus(e) => e.tenant_id,
            Self::Metrics(e) => e.tenant_id,
            Self::ConfigChange(e) => e.tenant_id,
            Self::Firmware(e) => e.tenant_id,
            Self::ConfigPush(e) => e.tenant_id,
            Self::AlertFired(e) | Self::AlertResolved(e) => e.tenant_id,
            Self::SessionEnd(e) => e.tenant_id,
        }
    }

    pub fn device_id(&self) -> Option<DeviceId> {
        match self {
            Self::DeviceStatus(e) => Some(e.device_id),
            Self::Metrics(e) => Some(e.device_id),
            Self::ConfigChange(e) => Some(e.device_id),
            Self::Firmware(e) => Some(e.device_id),
            Self::ConfigPush(e) => Some(e.device_id),
            Self::AlertFired(e) | Self::AlertResolved(e) => e.device_id,
            Self::SessionEnd(e) => e.device_id,
        }
    }

    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        let value = match self {
            Self::DeviceStatus(e) => serde_json::to_vec(e),
            Self::Metrics(e) => serde_json::to_vec(e),
            Self::ConfigChange(e) => serde_json::to_vec(e),
            Self::Firmware(e) => serde_json::to_vec(e),
            Self::ConfigPush(e) => serde_json::to_vec(e),
            Self::AlertFired(e) | Self::AlertResolved(e) => serde_json::to_vec(e),
            Self::SessionEnd(e) => serde_json::to_vec(e),
        };
        // Serialising these plain structs to JSON cannot fail (no maps with non-string keys,
        // no custom serialisers); fall back to an empty object rather than panic.
        value.unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_payload_has_the_documented_fields() {
        let e = DeviceStatusChanged {
            version: EVENT_VERSION,
            device_id: DeviceId(uuid::Uuid::from_u128(2)),
            tenant_id: TenantId(uuid::Uuid::from_u128(1)),
            status: DeviceStatus::Online,
            previous_status: Some(DeviceStatus::Connecting),
            reason: None,
            routeros_version: Some("7.16.1 (stable)".into()),
            board_name: Some("RB5009UG+S+".into()),
            uptime: Some(3600),
            epoch: 0,
            at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
        };
        let event = Event::DeviceStatus(e);
        let v: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        for field in [
            "version",
            "device_id",
            "tenant_id",
            "status",
            "routeros_version",
            "board_name",
            "uptime",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["status"], "online");
        assert_eq!(
            event.subject(),
            "device.status.00000000-0000-0000-0000-000000000001.00000000-0000-0000-0000-000000000002"
        );
    }
}
