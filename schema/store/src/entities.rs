//! sea-orm entities: one module per table, describing the schema as migrations left it.
//! The time-series table (`device_samples`, one row per poll; the read-only `*_v1` tables and
//! the compatibility views over both) has no entity: it is written by the recorder and read
//! through `timeseries`.

pub mod alert_events;
pub mod alert_rule_channels;
pub mod alert_rules;
pub mod api_keys;
pub mod audit_log;
pub mod config_snapshots;
pub mod credential_profiles;
pub mod device_credentials;
pub mod device_group_memberships;
pub mod device_groups;
pub mod device_status_history;
pub mod device_tag_assignments;
pub mod device_tags;
pub mod devices;
pub mod maintenance_windows;
pub mod notification_channels;
pub mod sites;
pub mod system_settings;
pub mod tenant_data_keys;
pub mod tenants;
pub mod users;
