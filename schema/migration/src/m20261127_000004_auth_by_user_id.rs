//! Auth paths that know a user's id but not yet their tenant (token refresh, enrolment, a
//! super_admin's own account): the app role may read and update exactly the one `users` row
//! named by `app.auth_user_id`, and touch `last_used_at` of the one API key named by
//! `app.auth_key_hash`. The owner role may insert super_admin accounts (bootstrap).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SQL: &str = r#"
CREATE POLICY auth_lookup_id ON users FOR SELECT
    USING (id = NULLIF(current_setting('app.auth_user_id', true), '')::uuid);
CREATE POLICY auth_update_id ON users FOR UPDATE
    USING (id = NULLIF(current_setting('app.auth_user_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.auth_user_id', true), '')::uuid);
-- `drover admin create` / FIRST_ADMIN_EMAIL: the owner role (which runs migrations) may add
-- super_admin accounts, which belong to no tenant; nothing else of `users`.
-- (The owner is whoever owns `users`; migrations may run as a superuser on its behalf.)
DO $$
BEGIN
    EXECUTE format(
        'CREATE POLICY bootstrap_super_admin ON users FOR INSERT TO %I '
        'WITH CHECK (role = ''super_admin'' AND tenant_id IS NULL)',
        (SELECT tableowner FROM pg_tables
          WHERE schemaname = current_schema() AND tablename = 'users'));
END
$$;
CREATE POLICY auth_touch ON api_keys FOR UPDATE
    USING (key_hash = NULLIF(current_setting('app.auth_key_hash', true), ''))
    WITH CHECK (key_hash = NULLIF(current_setting('app.auth_key_hash', true), ''));
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }
}
