//! Row-level security, proven against the real PostgreSQL and driven by the catalog: every
//! relation with a `tenant_id` column (and every other non-global table) must have ENABLE +
//! FORCE row-level security, and, connected as the application role, tenant A can neither
//! read, insert, update nor delete tenant B's rows, and a session without a tenant sees
//! nothing. A new table is covered automatically; one without RLS fails the test.

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use drover_store::testing::TestDb;
use drover_store::timeseries::{Maintenance, Retention};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};
use uuid::Uuid;

/// Tables that hold no tenant data, by design. Adding one here needs a reason in review.
const GLOBAL_TABLES: &[&str] = &["seaql_migrations", "system_settings"];

#[derive(Debug)]
struct Rel {
    name: String,
    rls: bool,
    force: bool,
    is_partition: bool,
    has_tenant_id: bool,
}

async fn relations(conn: &mut PgConnection) -> anyhow::Result<Vec<Rel>> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity, c.relforcerowsecurity, c.relispartition,
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                        AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant_id
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Rel {
            name: r.get("name"),
            rls: r.get("relrowsecurity"),
            force: r.get("relforcerowsecurity"),
            is_partition: r.get("relispartition"),
            has_tenant_id: r.get("has_tenant_id"),
        })
        .collect())
}

/// Catalog rule: what is wrong with the tables' row-level security, table by table.
async fn rls_violations(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    let mut bad = Vec::new();
    for rel in relations(conn).await? {
        if GLOBAL_TABLES.contains(&rel.name.as_str()) {
            if rel.has_tenant_id {
                bad.push(format!("{}: global table has tenant_id", rel.name));
            }
            continue;
        }
        if !rel.rls || !rel.force {
            bad.push(format!(
                "{}: row-level security not enabled and forced (rls={}, force={})",
                rel.name, rel.rls, rel.force
            ));
        }
        if rel.has_tenant_id && !rel.is_partition {
            // the tenant policy must use the NULLIF form in both USING and WITH CHECK
            let ok: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public'
                   AND tablename = $1 AND cmd = 'ALL'
                   AND qual LIKE '%NULLIF(current_setting(''app.tenant_id''::text, true), ''''::text)%'
                   AND with_check LIKE '%NULLIF(current_setting(''app.tenant_id''::text, true), ''''::text)%')",
            )
            .bind(&rel.name)
            .fetch_one(&mut *conn)
            .await?;
            if !ok {
                bad.push(format!(
                    "{}: no USING … WITH CHECK policy on NULLIF(current_setting('app.tenant_id', true), '')",
                    rel.name
                ));
            }
        }
    }
    Ok(bad)
}

struct Ids {
    tenant: Uuid,
    device: Uuid,
    group: Uuid,
    tag: Uuid,
    rule: Uuid,
    channel: Uuid,
}

/// One row in every tenant table for one tenant, written as the superuser (bypassing RLS).
async fn seed(su: &mut PgConnection, tenant: Uuid) -> anyhow::Result<Ids> {
    let ids = Ids {
        tenant,
        device: Uuid::new_v4(),
        group: Uuid::new_v4(),
        tag: Uuid::new_v4(),
        rule: Uuid::new_v4(),
        channel: Uuid::new_v4(),
    };
    let (t, d, g, tg, r, c) = (
        ids.tenant,
        ids.device,
        ids.group,
        ids.tag,
        ids.rule,
        ids.channel,
    );
    let (u, s, cp) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let hash = format!("{}{}", t.simple(), u.simple());
    let sql = format!(
        "INSERT INTO tenants (id, name) VALUES ('{t}', 'tenant {t}');
         INSERT INTO tenant_data_keys (tenant_id, version, kek_id, wrapped_key) VALUES ('{t}', 1, 'test', 'w');
         INSERT INTO users (id, tenant_id, email, role) VALUES ('{u}', '{t}', 'u-{t}@example.com', 'tenant_admin');
         INSERT INTO api_keys (tenant_id, user_id, name, key_prefix, key_hash) VALUES ('{t}', '{u}', 'k', 'dk_', '{hash}');
         INSERT INTO sites (id, tenant_id, name) VALUES ('{s}', '{t}', 'site');
         INSERT INTO credential_profiles (id, tenant_id, name, ciphertext) VALUES ('{cp}', '{t}', 'p', '\\x00');
         INSERT INTO devices (id, tenant_id, name, address, site_id, credential_profile_id)
              VALUES ('{d}', '{t}', 'dev', '10.0.0.1', '{s}', '{cp}');
         INSERT INTO device_credentials (device_id, tenant_id, ciphertext) VALUES ('{d}', '{t}', '\\x00');
         INSERT INTO device_groups (id, tenant_id, name) VALUES ('{g}', '{t}', 'g');
         INSERT INTO device_tags (id, tenant_id, name) VALUES ('{tg}', '{t}', 't');
         INSERT INTO device_group_memberships VALUES ('{d}', '{g}');
         INSERT INTO device_tag_assignments VALUES ('{d}', '{tg}');
         INSERT INTO device_status_history (tenant_id, device_id, status, at) VALUES ('{t}', '{d}', 'online', now());
         INSERT INTO device_samples (tenant_id, device_id, time, cpu_percent, wireless_clients,
                if_name, if_running, if_rx_bytes, if_tx_bytes, if_rx_bps, if_tx_bps)
              VALUES ('{t}', '{d}', now(), 1, 1, '{{ether1}}', '{{t}}', '{{1}}', '{{1}}', '{{NULL}}', '{{NULL}}');
         INSERT INTO health_samples_v1 (tenant_id, device_id, time, cpu_percent) VALUES ('{t}', '{d}', now(), 1);
         INSERT INTO interface_samples_v1 (tenant_id, device_id, time, name, running, rx_bytes, tx_bytes)
              VALUES ('{t}', '{d}', now(), 'ether1', true, 1, 1);
         INSERT INTO wireless_samples_v1 (tenant_id, device_id, time, clients) VALUES ('{t}', '{d}', now(), 1);
         INSERT INTO notification_channels (id, tenant_id, name, channel_type) VALUES ('{c}', '{t}', 'n', 'email');
         INSERT INTO alert_rules (id, tenant_id, name, metric, operator, threshold) VALUES ('{r}', '{t}', 'r', 'cpu', '>', 90);
         INSERT INTO alert_rule_channels VALUES ('{r}', '{c}');
         INSERT INTO alert_events (tenant_id, rule_id, device_id, status, severity, message, fired_at)
              VALUES ('{t}', '{r}', '{d}', 'firing', 'warning', 'm', now());
         INSERT INTO maintenance_windows (tenant_id, name, starts_at, ends_at)
              VALUES ('{t}', 'mw', now(), now() + interval '1 hour');
         INSERT INTO config_snapshots (tenant_id, device_id, collected_at, sha256, size_bytes, storage_ref)
              VALUES ('{t}', '{d}', now(), repeat('a', 64), 1, 'ref');
         INSERT INTO audit_log (tenant_id, actor_kind, action) VALUES ('{t}', 'system', 'seed');"
    );
    su.execute(AssertSqlSafe(sql)).await.context("seeding")?;
    Ok(ids)
}

async fn set_tenant(conn: &mut PgConnection, t: Uuid) -> anyhow::Result<()> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(t.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn count(conn: &mut PgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await?)
}

/// Runs `sql` inside a savepoint; Ok(rows affected) or Err(SQLSTATE).
async fn attempt(
    conn: &mut PgConnection,
    sql: &str,
    bind: Option<serde_json::Value>,
) -> Result<u64, String> {
    conn.execute("SAVEPOINT s")
        .await
        .map_err(|e| e.to_string())?;
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
    if let Some(b) = bind {
        q = q.bind(b);
    }
    let r = q.execute(&mut *conn).await;
    match r {
        Ok(done) => {
            conn.execute("RELEASE SAVEPOINT s")
                .await
                .map_err(|e| e.to_string())?;
            Ok(done.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT s")
                .await
                .map_err(|e| e.to_string())?;
            Err(e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()))
                .unwrap_or_else(|| e.to_string()))
        }
    }
}

const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Columns an INSERT may name (identity-always and generated columns excluded).
async fn insertable_columns(conn: &mut PgConnection, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped
            AND a.attidentity <> 'a' AND a.attgenerated = '' ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}

async fn prepare() -> anyhow::Result<(TestDb, Ids, Ids)> {
    let db = TestDb::create().await?;
    let m = Maintenance::connect(&db.owner_url(), Retention::default()).await?;
    m.run(Utc::now()).await?;
    m.close().await;
    // The pre-migration-5 tables get no new partitions; give them today's, as a database
    // upgraded from before migration 5 has, so their isolation is checked with rows in them.
    let mut owner = PgConnection::connect(&db.owner_url()).await?;
    for t in drover_store::timeseries::LEGACY_PARTITIONED_TABLES {
        let day = Utc::now().date_naive();
        let p = drover_store::timeseries::partition_name(t, day);
        owner
            .execute(AssertSqlSafe(format!(
                "CREATE TABLE \"{p}\" PARTITION OF {t} FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00');
                 ALTER TABLE \"{p}\" ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE \"{p}\" FORCE ROW LEVEL SECURITY;",
                next = day + chrono::Duration::days(1)
            )))
            .await?;
    }
    owner.close().await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    let a = seed(&mut su, Uuid::new_v4()).await?;
    let b = seed(&mut su, Uuid::new_v4()).await?;
    // a super_admin (no tenant) must be invisible to tenants
    su.execute("INSERT INTO users (email, role) VALUES ('root@example.com', 'super_admin')")
        .await?;
    su.close().await?;
    Ok((db, a, b))
}

#[tokio::test]
async fn catalog_every_table_has_forced_rls_and_the_nullif_policy() -> anyhow::Result<()> {
    let (db, _a, _b) = prepare().await?;
    let mut owner = PgConnection::connect(&db.owner_url()).await?;
    let bad = rls_violations(&mut owner).await?;
    ensure!(
        bad.is_empty(),
        "tables without proper row-level security:\n{}",
        bad.join("\n")
    );
    // the check itself catches a table someone forgot
    owner
        .execute("CREATE TABLE rogue (id int, tenant_id uuid)")
        .await?;
    owner
        .execute("CREATE TABLE rogue_enabled (id int, tenant_id uuid); ALTER TABLE rogue_enabled ENABLE ROW LEVEL SECURITY")
        .await?;
    owner
        .execute("CREATE TABLE rogue_join (a uuid, b uuid)")
        .await?;
    let bad = rls_violations(&mut owner).await?;
    for t in ["rogue:", "rogue_enabled:", "rogue_join:"] {
        ensure!(
            bad.iter().any(|b| b.starts_with(t)),
            "{t} not flagged: {bad:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn app_role_is_not_superuser_nor_bypassrls() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut app = PgConnection::connect(&db.app_url()).await?;
    let (sup, bypass, inherit): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut app)
    .await?;
    // NOINHERIT: the cross-tenant role's policies apply only after an explicit SET ROLE
    ensure!(!sup && !bypass && !inherit);
    let mut poller = PgConnection::connect(&db.poller_url()).await?;
    let (sup, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut poller)
            .await?;
    ensure!(!sup && !bypass);
    Ok(())
}

#[tokio::test]
async fn tenant_cannot_touch_another_tenants_rows_in_any_table() -> anyhow::Result<()> {
    let (db, a, b) = prepare().await?;
    let mut app = PgConnection::connect(&db.app_url()).await?;
    let rels = relations(&mut app).await?;
    let tenant_tables: Vec<&Rel> = rels
        .iter()
        .filter(|r| r.has_tenant_id && !r.is_partition)
        .collect();
    ensure!(
        tenant_tables.len() >= 15,
        "catalog found too few tables: {}",
        tenant_tables.len()
    );
    let mut report: BTreeMap<String, String> = BTreeMap::new();

    // Use the connection once for a tenant first: afterwards app.tenant_id reads '' (not NULL)
    // on this session, the pitfall the NULLIF form exists for.
    app.execute("BEGIN").await?;
    set_tenant(&mut app, a.tenant).await?;
    app.execute("COMMIT").await?;

    // 1. no tenant: nothing visible anywhere (not even the join tables or tenants)
    app.execute("BEGIN").await?;
    for rel in rels
        .iter()
        .filter(|r| !GLOBAL_TABLES.contains(&r.name.as_str()))
    {
        let n = if rel.is_partition {
            match attempt(&mut app, &format!("SELECT 1 FROM \"{}\"", rel.name), None).await {
                Err(code) if code == INSUFFICIENT_PRIVILEGE => 0,
                Ok(n) => n as i64,
                Err(e) => bail!("{}: {e}", rel.name),
            }
        } else {
            count(&mut app, &format!("SELECT count(*) FROM \"{}\"", rel.name)).await?
        };
        ensure!(n == 0, "{}: {n} rows visible without a tenant", rel.name);
    }
    app.execute("ROLLBACK").await?;

    // 2. as tenant A, against every tenant table
    for rel in &tenant_tables {
        let t = &rel.name;
        app.execute("BEGIN").await?;
        set_tenant(&mut app, a.tenant).await?;
        let own = count(&mut app, &format!("SELECT count(*) FROM \"{t}\"")).await?;
        ensure!(
            own > 0,
            "{t}: the test seeds no row for this table — add one to seed()"
        );
        let foreign = count(
            &mut app,
            &format!(
                "SELECT count(*) FROM \"{t}\" WHERE tenant_id IS DISTINCT FROM '{}'",
                a.tenant
            ),
        )
        .await?;
        ensure!(
            foreign == 0,
            "{t}: tenant A sees {foreign} rows of other tenants"
        );

        // update / delete B's rows: nothing happens (or the role may not at all)
        for sql in [
            format!(
                "UPDATE \"{t}\" SET tenant_id = tenant_id WHERE tenant_id = '{}'",
                b.tenant
            ),
            format!("DELETE FROM \"{t}\" WHERE tenant_id = '{}'", b.tenant),
        ] {
            match attempt(&mut app, &sql, None).await {
                Ok(0) => {}
                Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
                other => bail!("{t}: `{sql}` → {other:?}"),
            }
        }
        // move own rows to B: refused by WITH CHECK (or no UPDATE right)
        let sql = format!("UPDATE \"{t}\" SET tenant_id = '{}'", b.tenant);
        match attempt(&mut app, &sql, None).await {
            Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
            other => bail!("{t}: moving a row to tenant B → {other:?}"),
        }
        // insert a row for B: a copy of A's row with tenant_id = B
        let row: serde_json::Value = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT to_jsonb(x) FROM \"{t}\" x LIMIT 1"
        )))
        .fetch_one(&mut app)
        .await?;
        let mut row = row;
        row["tenant_id"] = serde_json::json!(b.tenant);
        if row.get("id").is_some_and(|v| v.is_string()) {
            row["id"] = serde_json::json!(Uuid::new_v4());
        }
        let cols = insertable_columns(&mut app, t).await?;
        let list = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO \"{t}\" ({list}) SELECT {list} FROM jsonb_populate_record(NULL::\"{t}\", $1)"
        );
        match attempt(&mut app, &sql, Some(row)).await {
            Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
            other => bail!("{t}: inserting a row for tenant B → {other:?}"),
        }
        app.execute("ROLLBACK").await?;
        report.insert(t.clone(), format!("{own} own row(s), isolated"));
    }

    // 3. join tables (no tenant_id): visible only through parents, no cross-tenant links
    app.execute("BEGIN").await?;
    set_tenant(&mut app, a.tenant).await?;
    for (table, own_cols, foreign) in [
        (
            "device_group_memberships",
            (a.device, a.group),
            [(b.device, a.group), (a.device, b.group)],
        ),
        (
            "device_tag_assignments",
            (a.device, a.tag),
            [(b.device, a.tag), (a.device, b.tag)],
        ),
        (
            "alert_rule_channels",
            (a.rule, a.channel),
            [(b.rule, a.channel), (a.rule, b.channel)],
        ),
    ] {
        let n = count(&mut app, &format!("SELECT count(*) FROM {table}")).await?;
        ensure!(
            n == 1,
            "{table}: tenant A sees {n} rows, expected its own 1"
        );
        let _ = own_cols;
        for (x, y) in foreign {
            let sql = format!("INSERT INTO {table} VALUES ('{x}', '{y}')");
            match attempt(&mut app, &sql, None).await {
                Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
                other => bail!("{table}: linking across tenants → {other:?}"),
            }
        }
        let deleted = attempt(
            &mut app,
            &format!(
                "DELETE FROM {table} WHERE {} = '{}'",
                if table == "alert_rule_channels" {
                    "rule_id"
                } else {
                    "device_id"
                },
                if table == "alert_rule_channels" {
                    b.rule
                } else {
                    b.device
                }
            ),
            None,
        )
        .await;
        ensure!(
            matches!(deleted, Ok(0)),
            "{table}: deleting B's links → {deleted:?}"
        );
    }
    // tenants: own row only; cannot create another tenant's row
    ensure!(count(&mut app, "SELECT count(*) FROM tenants").await? == 1);
    let other = Uuid::new_v4();
    match attempt(
        &mut app,
        &format!("INSERT INTO tenants (id, name) VALUES ('{other}', 'x')"),
        None,
    )
    .await
    {
        Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
        r => bail!("tenants: creating a foreign tenant row → {r:?}"),
    }
    ensure!(matches!(
        attempt(
            &mut app,
            &format!(
                "UPDATE tenants SET name = 'pwned' WHERE id = '{}'",
                b.tenant
            ),
            None
        )
        .await,
        Ok(0)
    ));
    // super_admin user rows (tenant_id NULL) are invisible to a tenant
    ensure!(
        count(
            &mut app,
            "SELECT count(*) FROM users WHERE tenant_id IS NULL"
        )
        .await?
            == 0
    );
    app.execute("ROLLBACK").await?;

    // 4. after all that, the session without a tenant still sees nothing
    ensure!(count(&mut app, "SELECT count(*) FROM devices").await? == 0);
    eprintln!("{report:#?}");
    Ok(())
}

#[tokio::test]
async fn cross_tenant_references_are_refused() -> anyhow::Result<()> {
    // Foreign keys bypass RLS when checked, so composite (tenant_id, id) keys must stop a row
    // referencing another tenant's row even when its id is known.
    let (db, a, b) = prepare().await?;
    let mut app = PgConnection::connect(&db.app_url()).await?;
    app.execute("BEGIN").await?;
    set_tenant(&mut app, a.tenant).await?;
    let sql = format!(
        "INSERT INTO alert_rules (tenant_id, name, metric, operator, threshold, device_id)
         VALUES ('{}', 'x', 'cpu', '>', 1, '{}')",
        a.tenant, b.device
    );
    let r = attempt(&mut app, &sql, None).await;
    ensure!(
        matches!(&r, Err(code) if code == "23503"),
        "rule on B's device → {r:?}"
    );
    app.execute("ROLLBACK").await?;
    Ok(())
}

#[tokio::test]
async fn poller_reads_devices_across_tenants_and_nothing_else() -> anyhow::Result<()> {
    let (db, _a, _b) = prepare().await?;
    let mut poller = PgConnection::connect(&db.poller_url()).await?;
    ensure!(count(&mut poller, "SELECT count(*) FROM devices").await? == 2);
    ensure!(count(&mut poller, "SELECT count(*) FROM device_credentials").await? == 2);
    ensure!(count(&mut poller, "SELECT count(*) FROM tenant_data_keys").await? == 2);
    for sql in [
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM audit_log",
        "SELECT count(*) FROM health_samples",
        "UPDATE devices SET name = 'x'",
        "DELETE FROM device_credentials",
    ] {
        match sqlx::query(sql).execute(&mut poller).await {
            Err(e)
                if e.as_database_error().and_then(|d| d.code()).as_deref()
                    == Some(INSUFFICIENT_PRIVILEGE) => {}
            other => bail!("poller: `{sql}` → {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn audit_log_is_append_only_even_for_the_owner() -> anyhow::Result<()> {
    let (db, a, _b) = prepare().await?;
    let mut owner = PgConnection::connect(&db.owner_url()).await?;
    owner.execute("BEGIN").await?;
    set_tenant(&mut owner, a.tenant).await?;
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        match attempt(&mut owner, sql, None).await {
            Err(code) if code == INSUFFICIENT_PRIVILEGE => {}
            other => bail!("owner: `{sql}` → {other:?}"),
        }
    }
    owner.execute("ROLLBACK").await?;
    Ok(())
}
