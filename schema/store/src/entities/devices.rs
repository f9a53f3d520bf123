//! Entity for the `devices` table: supervised routers, with denormalised last values for fleet lists.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub address: String,
    pub api_port: i32,
    /// `verify`, `insecure` or `plain`.
    pub tls_mode: String,
    /// Lowercase hex SHA-256 of the device certificate, when pinned.
    pub pinned_fingerprint: Option<String>,
    /// Seconds; `None` means the tenant's `default_poll_interval_s`.
    pub poll_interval_s: Option<i32>,
    pub site_id: Option<Uuid>,
    pub credential_profile_id: Option<Uuid>,
    /// A `drover_model::DeviceStatus` in snake_case.
    pub status: String,
    pub status_reason: Option<String>,
    pub status_changed_at: Option<DateTimeUtc>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub last_cpu_percent: Option<f32>,
    pub last_memory_percent: Option<f32>,
    pub last_disk_percent: Option<f32>,
    pub last_temperature_c: Option<f32>,
    pub last_wireless_clients: Option<i32>,
    pub uptime_s: Option<i64>,
    pub routeros_version: Option<String>,
    pub board_name: Option<String>,
    pub serial_number: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
