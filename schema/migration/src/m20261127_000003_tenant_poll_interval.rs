//! Per-tenant poll interval: `tenants.default_poll_interval_s`, and `devices.poll_interval_s`
//! becomes optional (NULL: the tenant's default). The poller role may read each tenant's id
//! and default interval, nothing else of `tenants`; changing a tenant's default notifies
//! `drover_tenant_changes` so running nodes re-time that tenant's devices.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SQL: &str = r#"
ALTER TABLE tenants ADD COLUMN default_poll_interval_s integer NOT NULL DEFAULT 60
    CHECK (default_poll_interval_s BETWEEN 5 AND 86400);
ALTER TABLE devices ALTER COLUMN poll_interval_s DROP NOT NULL;
ALTER TABLE devices ALTER COLUMN poll_interval_s DROP DEFAULT;
COMMENT ON COLUMN devices.poll_interval_s IS 'seconds; NULL means the tenant''s default_poll_interval_s';

GRANT SELECT (id, default_poll_interval_s) ON tenants TO @POLLER@;
CREATE POLICY poller_read ON tenants FOR SELECT TO @POLLER@ USING (true);

CREATE FUNCTION drover_notify_tenant_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drover_tenant_changes', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_notify_poll_interval AFTER UPDATE OF default_poll_interval_s ON tenants
    FOR EACH ROW EXECUTE FUNCTION drover_notify_tenant_change();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let roles = crate::role_names(m).await?;
        let sql = SQL.replace("@POLLER@", &format!("\"{}\"", roles.poller));
        m.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}
