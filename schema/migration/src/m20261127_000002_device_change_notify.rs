//! Device change notifications: triggers that `pg_notify('drover_device_changes', id)` when a
//! device is added, removed, or changes how it is reached (address, port, TLS mode, pinned
//! fingerprint, poll interval, credentials), so running nodes update the device's actor
//! within about a second. Status and last-value updates by the recorder do not notify.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SQL: &str = r#"
CREATE FUNCTION drover_notify_device_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed uuid;
BEGIN
    IF TG_TABLE_NAME = 'devices' THEN
        IF TG_OP = 'DELETE' THEN changed := OLD.id; ELSE changed := NEW.id; END IF;
    ELSE
        IF TG_OP = 'DELETE' THEN changed := OLD.device_id; ELSE changed := NEW.device_id; END IF;
    END IF;
    PERFORM pg_notify('drover_device_changes', changed::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_notify_insert_delete AFTER INSERT OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION drover_notify_device_change();
CREATE TRIGGER devices_notify_reach_change
    AFTER UPDATE OF address, api_port, tls_mode, pinned_fingerprint, poll_interval_s,
                    credential_profile_id ON devices
    FOR EACH ROW EXECUTE FUNCTION drover_notify_device_change();
CREATE TRIGGER device_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON device_credentials
    FOR EACH ROW EXECUTE FUNCTION drover_notify_device_change();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }
}
