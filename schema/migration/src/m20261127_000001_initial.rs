//! Migration 1 (frozen): the first release's tables, indexes, row-level security policies and
//! grants. Do not edit once released; add a new migration instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The policy expression every tenant table uses. The `NULLIF` matters: after a transaction
/// has used `set_config('app.tenant_id', …, true)` the setting reads `''` (not NULL) on that
/// pooled connection, and `''::uuid` is an error.
const CURRENT_TENANT: &str = "NULLIF(current_setting('app.tenant_id', true), '')::uuid";

/// Tables carrying `tenant_id`, isolated by the standard policy. (Frozen with this migration;
/// later migrations list their own tables.)
const TENANT_TABLES: &[&str] = &[
    "tenant_data_keys",
    "users",
    "api_keys",
    "sites",
    "credential_profiles",
    "devices",
    "device_credentials",
    "device_groups",
    "device_tags",
    "device_status_history",
    "health_samples",
    "interface_samples",
    "wireless_samples",
    "alert_rules",
    "alert_events",
    "notification_channels",
    "maintenance_windows",
    "config_snapshots",
    "audit_log",
];

const SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- ------------------------------------------------------------------ tenancy and identity
CREATE TABLE tenants (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text CHECK (length(description) <= 2000),
    contact_email text CHECK (length(contact_email) <= 320),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

-- Per-tenant data-encryption keys, wrapped by a key-encryption key (local or Transit).
-- Rotation of the KEK rewrites `wrapped_key` only; credential rows are untouched.
CREATE TABLE tenant_data_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    kek_id      text NOT NULL CHECK (length(kek_id) <= 200),
    wrapped_key text NOT NULL CHECK (length(wrapped_key) <= 4096),
    created_at  timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid REFERENCES tenants (id) ON DELETE CASCADE,
    email              text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name               text CHECK (length(name) <= 200),
    role               text NOT NULL DEFAULT 'viewer'
                       CHECK (role IN ('super_admin', 'tenant_admin', 'operator', 'viewer')),
    srp_salt           bytea CHECK (length(srp_salt) <= 64),
    srp_verifier       bytea CHECK (length(srp_verifier) <= 1024),
    secret_key_version integer,
    secret_key_created_at timestamptz,
    legacy_password_hash text CHECK (length(legacy_password_hash) <= 200),
    must_upgrade_auth  boolean NOT NULL DEFAULT false,
    is_active          boolean NOT NULL DEFAULT true,
    tokens_valid_after timestamptz NOT NULL DEFAULT now(),
    last_login_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- super_admin is the only role without a tenant
    CHECK ((role = 'super_admin') = (tenant_id IS NULL)),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant ON users (tenant_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_prefix   text NOT NULL CHECK (length(key_prefix) <= 16),
    key_hash     text NOT NULL UNIQUE CHECK (length(key_hash) = 64),
    scopes       jsonb NOT NULL DEFAULT '[]',
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_keys_tenant_revoked ON api_keys (tenant_id, revoked_at);

-- Global settings (no tenant): SMTP relay, defaults. Secrets are stored encrypted.
CREATE TABLE system_settings (
    key              text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    value            jsonb NOT NULL DEFAULT 'null',
    secret_ciphertext bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       uuid
);

-- ------------------------------------------------------------------ fleet
CREATE TABLE sites (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    address    text CHECK (length(address) <= 500),
    latitude   double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude  double precision CHECK (longitude BETWEEN -180 AND 180),
    notes      text CHECK (length(notes) <= 4000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE credential_profiles (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 2000),
    credential_type text NOT NULL DEFAULT 'routeros'
                    CHECK (credential_type IN ('routeros', 'snmp_v1', 'snmp_v2c', 'snmp_v3')),
    ciphertext      bytea NOT NULL CHECK (length(ciphertext) <= 16384),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE devices (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    address               text NOT NULL CHECK (length(address) BETWEEN 1 AND 255),
    api_port              integer NOT NULL DEFAULT 8729 CHECK (api_port BETWEEN 1 AND 65535),
    tls_mode              text NOT NULL DEFAULT 'verify'
                          CHECK (tls_mode IN ('verify', 'insecure', 'plain')),
    pinned_fingerprint    text CHECK (pinned_fingerprint ~ '^[0-9a-f]{64}$'),
    poll_interval_s       integer NOT NULL DEFAULT 60 CHECK (poll_interval_s BETWEEN 5 AND 86400),
    site_id               uuid,
    credential_profile_id uuid,
    status                text NOT NULL DEFAULT 'connecting'
                          CHECK (status IN ('connecting', 'online', 'degraded', 'offline',
                                            'auth_failed', 'quarantined')),
    status_reason         text CHECK (length(status_reason) <= 1000),
    status_changed_at     timestamptz,
    last_seen_at          timestamptz,
    -- denormalised last values for fast fleet lists (kept by the recorder)
    last_cpu_percent      real,
    last_memory_percent   real,
    last_disk_percent     real,
    last_temperature_c    real,
    last_wireless_clients integer,
    uptime_s              bigint CHECK (uptime_s >= 0),
    routeros_version      text CHECK (length(routeros_version) <= 64),
    board_name            text CHECK (length(board_name) <= 128),
    serial_number         text CHECK (length(serial_number) <= 128),
    notes                 text CHECK (length(notes) <= 4000),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id),
    -- composite keys: a row can only reference rows of its own tenant
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE SET NULL (site_id),
    FOREIGN KEY (tenant_id, credential_profile_id)
        REFERENCES credential_profiles (tenant_id, id) ON DELETE SET NULL (credential_profile_id)
) WITH (fillfactor = 80);
-- fillfactor and no index on the last-value columns: the recorder updates every device
-- every poll, and those updates stay HOT (no index churn).
-- fleet list: filter by status, sort by name/address/last seen, search by substring
CREATE INDEX devices_tenant_status_name ON devices (tenant_id, status, name);
CREATE INDEX devices_tenant_address ON devices (tenant_id, address);
CREATE INDEX devices_tenant_site ON devices (tenant_id, site_id) WHERE site_id IS NOT NULL;
CREATE INDEX devices_name_trgm ON devices USING gin (name gin_trgm_ops);
CREATE INDEX devices_address_trgm ON devices USING gin (address gin_trgm_ops);

-- One encrypted credential per device; the record id in the AEAD associated data is device_id.
CREATE TABLE device_credentials (
    device_id  uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    ciphertext bytea NOT NULL CHECK (length(ciphertext) <= 16384),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE device_groups (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE device_tags (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    color      text CHECK (color ~ '^#[0-9a-fA-F]{6}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

-- Join tables carry no tenant_id; their policies go through both parents.
CREATE TABLE device_group_memberships (
    device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    group_id  uuid NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, group_id)
);
CREATE INDEX device_group_memberships_group ON device_group_memberships (group_id);

CREATE TABLE device_tag_assignments (
    device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag_id    uuid NOT NULL REFERENCES device_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, tag_id)
);
CREATE INDEX device_tag_assignments_tag ON device_tag_assignments (tag_id);

CREATE TABLE device_status_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    device_id       uuid NOT NULL,
    status          text NOT NULL,
    previous_status text,
    reason          text CHECK (length(reason) <= 1000),
    at              timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX device_status_history_device ON device_status_history (tenant_id, device_id, at DESC);

-- ------------------------------------------------------------------ time series
-- Natively partitioned by day on `time`; drover-store creates partitions ahead and drops
-- whole partitions past retention. No foreign keys (volume, and retention by DROP).
-- Primary keys make the recorder's retries idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE health_samples (
    tenant_id      uuid NOT NULL,
    device_id      uuid NOT NULL,
    time           timestamptz NOT NULL,
    cpu_percent    real,
    memory_percent real,
    disk_percent   real,
    temperature_c  real,
    uptime_s       bigint,
    PRIMARY KEY (device_id, time)
) PARTITION BY RANGE (time);

CREATE TABLE interface_samples (
    tenant_id uuid NOT NULL,
    device_id uuid NOT NULL,
    time      timestamptz NOT NULL,
    name      text NOT NULL,
    running   boolean NOT NULL,
    rx_bytes  bigint NOT NULL,
    tx_bytes  bigint NOT NULL,
    rx_bps    double precision,
    tx_bps    double precision,
    PRIMARY KEY (device_id, name, time)
) PARTITION BY RANGE (time);

CREATE TABLE wireless_samples (
    tenant_id       uuid NOT NULL,
    device_id       uuid NOT NULL,
    time            timestamptz NOT NULL,
    clients         integer NOT NULL,
    mean_signal_dbm real,
    min_signal_dbm  integer,
    PRIMARY KEY (device_id, time)
) PARTITION BY RANGE (time);

-- ------------------------------------------------------------------ alerts, notifications
CREATE TABLE notification_channels (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    channel_type      text NOT NULL CHECK (channel_type IN ('email', 'webhook', 'slack')),
    config            jsonb NOT NULL DEFAULT '{}',
    secret_ciphertext bytea CHECK (length(secret_ciphertext) <= 16384),
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE alert_rules (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metric         text NOT NULL CHECK (length(metric) BETWEEN 1 AND 100),
    operator       text NOT NULL CHECK (operator IN ('>', '>=', '<', '<=', '==', '!=')),
    threshold      double precision NOT NULL,
    duration_polls integer NOT NULL DEFAULT 1 CHECK (duration_polls BETWEEN 1 AND 1000),
    severity       text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    enabled        boolean NOT NULL DEFAULT true,
    device_id      uuid,
    group_id       uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, group_id) REFERENCES device_groups (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_rules_tenant_enabled ON alert_rules (tenant_id, enabled);

CREATE TABLE alert_rule_channels (
    rule_id    uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);

CREATE TABLE alert_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         uuid,
    device_id       uuid,
    status          text NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    metric          text CHECK (length(metric) <= 100),
    value           double precision,
    threshold       double precision,
    message         text NOT NULL CHECK (length(message) <= 4000),
    fired_at        timestamptz NOT NULL,
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by uuid,
    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE SET NULL (rule_id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_events_tenant_fired ON alert_events (tenant_id, fired_at DESC);
CREATE INDEX alert_events_firing ON alert_events (tenant_id, device_id) WHERE status = 'firing';

CREATE TABLE maintenance_windows (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    suppress_alerts boolean NOT NULL DEFAULT true,
    device_ids      uuid[] NOT NULL DEFAULT '{}',
    group_ids       uuid[] NOT NULL DEFAULT '{}',
    notes           text CHECK (length(notes) <= 4000),
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_tenant_time ON maintenance_windows (tenant_id, starts_at, ends_at);

-- ------------------------------------------------------------------ config, audit
CREATE TABLE config_snapshots (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    device_id    uuid NOT NULL,
    collected_at timestamptz NOT NULL,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    storage_ref  text NOT NULL CHECK (length(storage_ref) <= 500),
    trigger      text NOT NULL DEFAULT 'scheduled' CHECK (length(trigger) <= 50),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX config_snapshots_device ON config_snapshots (tenant_id, device_id, collected_at DESC);

-- Append-only (trigger below; the app role has INSERT and SELECT only). No foreign key to
-- tenants: the record outlives what it describes.
CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_kind    text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system', 'device')),
    actor_id      uuid,
    action        text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    resource_type text CHECK (length(resource_type) <= 100),
    resource_id   text CHECK (length(resource_id) <= 200),
    device_id     uuid,
    ip_address    text CHECK (length(ip_address) <= 64),
    details       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC);
CREATE INDEX audit_log_tenant_action ON audit_log (tenant_id, action, at DESC);

CREATE FUNCTION drover_audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION drover_audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION drover_audit_log_is_append_only();

-- The "System (Internal)" tenant: owner of super-admin audit records.
INSERT INTO tenants (id, name, description)
VALUES ('00000000-0000-0000-0000-000000000000', 'System (Internal)',
        'Holds records of cross-tenant (super_admin) actions');
"#;

/// Policies, `FORCE` and grants. `@APP@`, `@POLLER@` and `@XT@` (cross-tenant) are replaced
/// by the quoted role names; `@T@` is the current-tenant expression.
const SECURITY: &str = r#"
-- tenants: a tenant sees its own row
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = @T@) WITH CHECK (id = @T@);
CREATE POLICY cross_tenant_read ON tenants FOR SELECT TO @XT@ USING (true);

-- users: the login path may look up exactly one user by e-mail before the tenant is known
CREATE POLICY auth_lookup ON users FOR SELECT
    USING (lower(email) = NULLIF(current_setting('app.auth_email', true), ''));
CREATE POLICY auth_update ON users FOR UPDATE
    USING (lower(email) = NULLIF(current_setting('app.auth_email', true), ''))
    WITH CHECK (lower(email) = NULLIF(current_setting('app.auth_email', true), ''));
-- api_keys: the API-key path may look up exactly one key by its hash
CREATE POLICY auth_lookup ON api_keys FOR SELECT
    USING (key_hash = NULLIF(current_setting('app.auth_key_hash', true), ''));

-- join tables: visible and writable only when both parents are (parents are RLS-filtered)
ALTER TABLE device_group_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_group_memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY through_parents ON device_group_memberships
    USING (EXISTS (SELECT 1 FROM devices d WHERE d.id = device_id)
           AND EXISTS (SELECT 1 FROM device_groups g WHERE g.id = group_id))
    WITH CHECK (EXISTS (SELECT 1 FROM devices d WHERE d.id = device_id AND d.tenant_id = @T@)
           AND EXISTS (SELECT 1 FROM device_groups g WHERE g.id = group_id AND g.tenant_id = @T@));
ALTER TABLE device_tag_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_tag_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY through_parents ON device_tag_assignments
    USING (EXISTS (SELECT 1 FROM devices d WHERE d.id = device_id)
           AND EXISTS (SELECT 1 FROM device_tags t WHERE t.id = tag_id))
    WITH CHECK (EXISTS (SELECT 1 FROM devices d WHERE d.id = device_id AND d.tenant_id = @T@)
           AND EXISTS (SELECT 1 FROM device_tags t WHERE t.id = tag_id AND t.tenant_id = @T@));
ALTER TABLE alert_rule_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_rule_channels FORCE ROW LEVEL SECURITY;
CREATE POLICY through_parents ON alert_rule_channels
    USING (EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = rule_id)
           AND EXISTS (SELECT 1 FROM notification_channels c WHERE c.id = channel_id))
    WITH CHECK (EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = rule_id AND r.tenant_id = @T@)
           AND EXISTS (SELECT 1 FROM notification_channels c WHERE c.id = channel_id AND c.tenant_id = @T@));

-- the poller role: cross-tenant read of what a device actor needs to connect, nothing else
CREATE POLICY poller_read ON devices FOR SELECT TO @POLLER@ USING (true);
CREATE POLICY poller_read ON device_credentials FOR SELECT TO @POLLER@ USING (true);
CREATE POLICY poller_read ON credential_profiles FOR SELECT TO @POLLER@ USING (true);
CREATE POLICY poller_read ON tenant_data_keys FOR SELECT TO @POLLER@ USING (true);

-- grants
GRANT USAGE ON SCHEMA public TO @APP@, @POLLER@, @XT@;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenants, tenant_data_keys, users, api_keys, sites, credential_profiles, devices,
    device_credentials, device_groups, device_tags, device_group_memberships,
    device_tag_assignments, device_status_history, health_samples, interface_samples,
    wireless_samples, alert_rules, alert_rule_channels, alert_events, notification_channels,
    maintenance_windows, config_snapshots
    TO @APP@, @XT@;
GRANT SELECT, INSERT ON audit_log TO @APP@, @XT@;
GRANT SELECT, INSERT, UPDATE ON system_settings TO @APP@, @XT@;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO @APP@, @XT@;
GRANT SELECT ON devices, device_credentials, credential_profiles, tenant_data_keys, system_settings
    TO @POLLER@;
"#;

fn tenant_policy(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n\
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n\
         CREATE POLICY tenant_isolation ON {table} \
           USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT});\n\
         CREATE POLICY cross_tenant_read ON {table} FOR SELECT TO @XT@ USING (true);\n"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let roles = crate::role_names(m).await?;
        let db = m.get_connection();
        db.execute_unprepared(SCHEMA).await?;
        let mut sql = String::new();
        for t in TENANT_TABLES {
            sql.push_str(&tenant_policy(t));
        }
        sql.push_str(&SECURITY.replace("@T@", CURRENT_TENANT));
        let sql = sql
            .replace("@APP@", &format!("\"{}\"", roles.app))
            .replace("@POLLER@", &format!("\"{}\"", roles.poller))
            .replace("@XT@", &format!("\"{}\"", roles.cross_tenant));
        db.execute_unprepared(&sql).await?;
        Ok(())
    }
}
