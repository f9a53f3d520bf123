//! Migration 5: one time-series row per device poll. `device_samples` holds the health
//! figures, the wireless figures and the interfaces as parallel arrays, so the recorder writes
//! one row per sample instead of four (1 health + N interface + 1 wireless): PostgreSQL's cost
//! per row (heap, primary-key btree, partition routing, RLS `WITH CHECK`, WAL) was the ingest
//! limit. The three old tables are kept, read-only, as `*_v1` (their daily partitions renamed
//! to match) until retention has emptied them; the old names become read-only views over
//! old and new rows, so ad-hoc SQL and dashboards on `health_samples`, `interface_samples`
//! and `wireless_samples` keep working. No row is copied: the migration only touches the
//! catalog, so it is quick on a database of any size.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SQL: &str = r#"
-- The old tables move aside, with their partitions (`<table>_pYYYYMMDD` →
-- `<table>_v1_pYYYYMMDD`, the names partition maintenance expects), policies and grants.
DO $$
DECLARE
    t text;
    p text;
BEGIN
    FOREACH t IN ARRAY ARRAY['health_samples', 'interface_samples', 'wireless_samples'] LOOP
        FOR p IN
            SELECT c.relname FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid
              JOIN pg_class pc ON pc.oid = i.inhparent
              JOIN pg_namespace n ON n.oid = pc.relnamespace
             WHERE pc.relname = t AND n.nspname = current_schema()
        LOOP
            IF p LIKE t || '\_p%' THEN
                EXECUTE format('ALTER TABLE %I RENAME TO %I', p,
                               t || '_v1_p' || substr(p, length(t) + 3));
            END IF;
        END LOOP;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_v1');
        EXECUTE format('REVOKE INSERT, UPDATE ON %I FROM @APP@, @XT@', t || '_v1');
    END LOOP;
END
$$;

-- One row per device poll. Interfaces are parallel arrays (element i of every if_* array is
-- interface i); a sample without wireless has wireless_clients NULL.
CREATE TABLE device_samples (
    tenant_id                uuid NOT NULL,
    device_id                uuid NOT NULL,
    time                     timestamptz NOT NULL,
    uptime_s                 bigint,
    cpu_percent              real,
    memory_percent           real,
    disk_percent             real,
    temperature_c            real,
    wireless_clients         integer,
    wireless_mean_signal_dbm real,
    wireless_min_signal_dbm  integer,
    if_name                  text[] NOT NULL DEFAULT '{}',
    if_running               boolean[] NOT NULL DEFAULT '{}',
    if_rx_bytes              bigint[] NOT NULL DEFAULT '{}',
    if_tx_bytes              bigint[] NOT NULL DEFAULT '{}',
    if_rx_bps                double precision[] NOT NULL DEFAULT '{}',
    if_tx_bps                double precision[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, time),
    CONSTRAINT device_samples_if_arrays CHECK (
        cardinality(if_running) = cardinality(if_name)
        AND cardinality(if_rx_bytes) = cardinality(if_name)
        AND cardinality(if_tx_bytes) = cardinality(if_name)
        AND cardinality(if_rx_bps) = cardinality(if_name)
        AND cardinality(if_tx_bps) = cardinality(if_name)
        AND cardinality(if_name) <= 4096)
) PARTITION BY RANGE (time);
ALTER TABLE device_samples ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_samples FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON device_samples
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY cross_tenant_read ON device_samples FOR SELECT TO @XT@ USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON device_samples TO @APP@, @XT@;

-- The old names, read-only: old rows and new rows in the old shapes. security_invoker makes
-- the caller's privileges and row-level security apply, as if the tables were queried.
CREATE VIEW health_samples WITH (security_invoker = true) AS
    SELECT tenant_id, device_id, time, cpu_percent, memory_percent, disk_percent,
           temperature_c, uptime_s
      FROM health_samples_v1
    UNION ALL
    SELECT tenant_id, device_id, time, cpu_percent, memory_percent, disk_percent,
           temperature_c, uptime_s
      FROM device_samples;

CREATE VIEW interface_samples WITH (security_invoker = true) AS
    SELECT tenant_id, device_id, time, name, running, rx_bytes, tx_bytes, rx_bps, tx_bps
      FROM interface_samples_v1
    UNION ALL
    SELECT s.tenant_id, s.device_id, s.time, i.name, i.running, i.rx_bytes, i.tx_bytes,
           i.rx_bps, i.tx_bps
      FROM device_samples s
      CROSS JOIN LATERAL unnest(s.if_name, s.if_running, s.if_rx_bytes, s.if_tx_bytes,
                                s.if_rx_bps, s.if_tx_bps)
           AS i(name, running, rx_bytes, tx_bytes, rx_bps, tx_bps);

CREATE VIEW wireless_samples WITH (security_invoker = true) AS
    SELECT tenant_id, device_id, time, clients, mean_signal_dbm, min_signal_dbm
      FROM wireless_samples_v1
    UNION ALL
    SELECT tenant_id, device_id, time, wireless_clients, wireless_mean_signal_dbm,
           wireless_min_signal_dbm
      FROM device_samples
     WHERE wireless_clients IS NOT NULL;

GRANT SELECT ON health_samples, interface_samples, wireless_samples TO @APP@, @XT@;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let roles = crate::role_names(m).await?;
        let sql = SQL
            .replace("@APP@", &format!("\"{}\"", roles.app))
            .replace("@XT@", &format!("\"{}\"", roles.cross_tenant));
        m.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}
