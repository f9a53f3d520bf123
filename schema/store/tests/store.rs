//! The store's typed API against the real PostgreSQL: tenant-scoped and audited cross-tenant
//! transactions, login-time lookups, envelope encryption bound to tenant and record, key
//! rotation, the fleet list, and migrations (idempotent, serialised, configurable roles).

use std::sync::Arc;

use anyhow::ensure;
use drover_migration::{MigrateOptions, RoleSpec, Roles};
use drover_store::crypto::{
    DeviceCredentials, Envelope, LocalKek, Secret, device_credentials,
    device_credentials_for_poller, devices_credentials_for_poller, set_device_credentials,
};
use drover_store::entities::{audit_log, devices};
use drover_store::queries::{self, DeviceFilter, DeviceSort, NewDevice};
use drover_store::testing::TestDb;
use drover_store::{CrossTenantAccess, PollerStore, SYSTEM_TENANT, Store, StoreConfig, TenantId};
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

const KEY1: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
const KEY2: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn access(reason: &str) -> CrossTenantAccess {
    CrossTenantAccess {
        actor_user_id: Uuid::new_v4(),
        reason: reason.into(),
        ip_address: Some("192.0.2.1".into()),
    }
}

async fn two_tenants(store: &Store) -> anyhow::Result<(TenantId, TenantId)> {
    let mut x = store.begin_cross_tenant(access("test setup")).await?;
    let a = TenantId(x.create_tenant(&format!("a-{}", Uuid::new_v4())).await?.id);
    let b = TenantId(x.create_tenant(&format!("b-{}", Uuid::new_v4())).await?.id);
    x.commit().await?;
    Ok((a, b))
}

#[tokio::test]
async fn tenant_tx_reaches_only_its_tenant() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    let tx = store.begin(a).await?;
    let da = queries::create_device(&tx, &NewDevice::new("core-a", "10.0.0.1")).await?;
    tx.commit().await?;
    let tx = store.begin(b).await?;
    let db_ = queries::create_device(&tx, &NewDevice::new("core-b", "10.0.0.2")).await?;
    // B cannot see A's device even by id, nor list it
    ensure!(
        devices::Entity::find_by_id(da.id)
            .one(tx.conn())
            .await?
            .is_none()
    );
    let page = queries::list_devices(
        &tx,
        &DeviceFilter::default(),
        DeviceSort::Name,
        Order::Asc,
        0,
        50,
    )
    .await?;
    ensure!(page.total == 1 && page.items[0].id == db_.id);
    tx.commit().await?;
    // invalid input is refused before the database
    let tx = store.begin(a).await?;
    ensure!(
        queries::create_device(&tx, &NewDevice::new("", "x"))
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn cross_tenant_access_is_explicit_and_audited() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    for t in [a, b] {
        let tx = store.begin(t).await?;
        queries::create_device(&tx, &NewDevice::new("d", "10.0.0.1")).await?;
        tx.commit().await?;
    }
    ensure!(
        store.begin_cross_tenant(access("  ")).await.is_err(),
        "a reason is required"
    );

    let x = store
        .begin_cross_tenant(access("support ticket 42"))
        .await?;
    let all = devices::Entity::find().all(x.conn()).await?;
    ensure!(
        all.len() == 2,
        "super_admin reads all tenants: {}",
        all.len()
    );
    let audit_id = x.audit_id();
    x.commit().await?;
    let sys = store.begin(SYSTEM_TENANT).await?;
    let row = audit_log::Entity::find_by_id(audit_id)
        .one(sys.conn())
        .await?;
    ensure!(row.is_some_and(
        |r| r.action == "cross_tenant_access" && r.details["reason"] == "support ticket 42"
    ));
    sys.commit().await?;

    // acting in a tenant leaves a record in that tenant's own log
    let mut x = store.begin_cross_tenant(access("fix device")).await?;
    x.act_as(a).await?;
    x.commit().await?;
    let tx = store.begin(a).await?;
    let n = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("super_admin_access"))
        .all(tx.conn())
        .await?
        .len();
    ensure!(n >= 1);
    // a rolled-back cross-tenant transaction leaves nothing (its reads did not happen either)
    let x = store.begin_cross_tenant(access("rolled back")).await?;
    let id = x.audit_id();
    x.rollback().await?;
    let sys = store.begin(SYSTEM_TENANT).await?;
    ensure!(
        audit_log::Entity::find_by_id(id)
            .one(sys.conn())
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn login_lookups_see_exactly_one_row() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, _b) = two_tenants(&store).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(AssertSqlSafe(format!(
        "INSERT INTO users (email, role, tenant_id) VALUES ('Alice@Example.com', 'operator', '{a}');
         INSERT INTO users (email, role) VALUES ('root@example.com', 'super_admin');"
    )))
    .await?;
    let u = store.auth_find_user_by_email("alice@example.COM ").await?;
    ensure!(
        u.as_ref().is_some_and(|u| u.tenant_id == Some(a.0)),
        "{u:?}"
    );
    let root = store.auth_find_user_by_email("root@example.com").await?;
    ensure!(root.is_some_and(|u| u.tenant_id.is_none() && u.role == "super_admin"));
    ensure!(
        store
            .auth_find_user_by_email("nobody@example.com")
            .await?
            .is_none()
    );
    store.auth_record_login("alice@example.com").await?;
    ensure!(store.auth_find_api_key(&"0".repeat(64)).await?.is_none());
    Ok(())
}

async fn device_in(store: &Store, t: TenantId, name: &str) -> anyhow::Result<Uuid> {
    let tx = store.begin(t).await?;
    let d = queries::create_device(&tx, &NewDevice::new(name, "10.0.0.1")).await?;
    tx.commit().await?;
    Ok(d.id)
}

fn creds(pw: &str) -> DeviceCredentials {
    DeviceCredentials {
        username: "admin".into(),
        password: Secret::new(pw.as_bytes().to_vec()),
    }
}

#[tokio::test]
async fn credentials_are_bound_to_tenant_and_record() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    let (a1, a2, b1) = (
        device_in(&store, a, "a1").await?,
        device_in(&store, a, "a2").await?,
        device_in(&store, b, "b1").await?,
    );
    let env = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    for (t, d, pw) in [(a, a1, "pw-a1"), (a, a2, "pw-a2"), (b, b1, "pw-b1")] {
        let tx = store.begin(t).await?;
        set_device_credentials(&env, &tx, d, &creds(pw)).await?;
        tx.commit().await?;
    }
    let tx = store.begin(a).await?;
    let got = device_credentials(&env, &tx, a1).await?;
    ensure!(
        got.as_ref()
            .is_some_and(|c| c.password.expose() == b"pw-a1")
    );
    ensure!(!format!("{got:?}").contains("pw-a1"), "password in Debug");
    tx.commit().await?;

    // the poller decrypts any tenant's credentials
    let poller = PollerStore::connect(&StoreConfig::new(db.poller_url())).await?;
    let fresh = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let c = device_credentials_for_poller(&fresh, &poller, b1).await?;
    ensure!(c.is_some_and(|c| c.password.expose() == b"pw-b1"));

    // copy a1's ciphertext onto a2 (same tenant) and onto b1 (other tenant): neither opens
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    su.execute(AssertSqlSafe(format!(
        "UPDATE device_credentials SET ciphertext = (SELECT ciphertext FROM device_credentials WHERE device_id = '{a1}')
          WHERE device_id IN ('{a2}', '{b1}')"
    )))
    .await?;
    let fresh = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let tx = store.begin(a).await?;
    let r = device_credentials(&fresh, &tx, a2).await;
    ensure!(
        matches!(r, Err(drover_store::Error::Decrypt)),
        "copied to another row: {r:?}"
    );
    tx.commit().await?;
    let r = device_credentials_for_poller(&fresh, &poller, b1).await;
    ensure!(r.is_err(), "copied to another tenant: {r:?}");
    // the cache never serves a stale secret for a changed ciphertext
    let r = device_credentials_for_poller(&env, &poller, a2).await;
    ensure!(
        r.is_err(),
        "cached plaintext served for a different ciphertext: {r:?}"
    );
    // a full load reads them all at once, with the same answer per device: a bad one does
    // not spoil the others
    let page = poller.devices_page(None, 1000).await?;
    let fresh = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let all = devices_credentials_for_poller(&fresh, &poller, &page).await?;
    ensure!(all.len() == 3, "{} answers", all.len());
    ensure!(
        all[&a1]
            .as_ref()
            .is_ok_and(|c| c.as_ref().is_some_and(|c| c.password.expose() == b"pw-a1")),
        "a1: {:?}",
        all[&a1]
    );
    ensure!(
        matches!(all[&a2], Err(drover_store::Error::Decrypt)),
        "a2: {:?}",
        all[&a2]
    );
    ensure!(all[&b1].is_err(), "b1: {:?}", all[&b1]);
    Ok(())
}

#[tokio::test]
async fn kek_rotation_rewraps_data_keys_without_touching_rows() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    let old = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let mut ids = Vec::new();
    for t in [a, b] {
        let d = device_in(&store, t, "d").await?;
        let tx = store.begin(t).await?;
        set_device_credentials(&old, &tx, d, &creds("secret")).await?;
        tx.commit().await?;
        ids.push((t, d));
    }
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    let before: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT ciphertext FROM device_credentials ORDER BY device_id")
            .fetch_all(&mut su)
            .await?;
    let rotating = Envelope::new(Arc::new(LocalKek::new(KEY2, &[KEY1])?));
    let mut x = store.begin_cross_tenant(access("KEK rotation")).await?;
    let n = rotating.rewrap_all(&mut x).await?;
    x.commit().await?;
    ensure!(n == 2, "rewrapped {n}");
    let after: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT ciphertext FROM device_credentials ORDER BY device_id")
            .fetch_all(&mut su)
            .await?;
    ensure!(before == after, "rows were rewritten");
    // only the new key is needed now
    let new_only = Envelope::new(Arc::new(LocalKek::new(KEY2, &[])?));
    for (t, d) in ids {
        let tx = store.begin(t).await?;
        let c = device_credentials(&new_only, &tx, d).await?;
        ensure!(c.is_some_and(|c| c.password.expose() == b"secret"));
    }
    let old_only = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let tx = store.begin(a).await?;
    ensure!(
        device_credentials(&old_only, &tx, ids_first(&store, a).await?)
            .await
            .is_err()
    );
    Ok(())
}

async fn ids_first(store: &Store, t: TenantId) -> anyhow::Result<Uuid> {
    let tx = store.begin(t).await?;
    let d = devices::Entity::find().one(tx.conn()).await?;
    Ok(d.map(|d| d.id).unwrap_or_default())
}

#[tokio::test]
async fn fleet_list_pages_searches_filters_and_sorts() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    for (t, n) in [(a, 1000), (b, 500)] {
        su.execute(AssertSqlSafe(format!(
            "INSERT INTO devices (tenant_id, name, address, status)
             SELECT '{t}', 'router-' || lpad(i::text, 5, '0'), '10.1.' || (i / 256) || '.' || (i % 256),
                    CASE WHEN i % 10 = 0 THEN 'offline' ELSE 'online' END
               FROM generate_series(1, {n}) i"
        )))
        .await?;
    }
    let tx = store.begin(a).await?;
    let all = queries::list_devices(
        &tx,
        &DeviceFilter::default(),
        DeviceSort::Name,
        Order::Asc,
        0,
        100,
    )
    .await?;
    ensure!(all.total == 1000 && all.items.len() == 100);
    ensure!(all.items[0].name == "router-00001");
    let last = queries::list_devices(
        &tx,
        &DeviceFilter::default(),
        DeviceSort::Name,
        Order::Desc,
        0,
        1,
    )
    .await?;
    ensure!(last.items[0].name == "router-01000");
    let offline = DeviceFilter {
        status: Some(drover_model::DeviceStatus::Offline),
        ..Default::default()
    };
    let p = queries::list_devices(&tx, &offline, DeviceSort::Address, Order::Asc, 0, 500).await?;
    ensure!(p.total == 100 && p.items.iter().all(|d| d.status == "offline"));
    let search = DeviceFilter {
        search: Some("ER-0099".into()),
        ..Default::default()
    };
    let p = queries::list_devices(&tx, &search, DeviceSort::Name, Order::Asc, 0, 50).await?;
    ensure!(p.total == 10, "search found {}", p.total);
    let search = DeviceFilter {
        search: Some("10.1.3.".into()),
        ..Default::default()
    };
    let p = queries::list_devices(&tx, &search, DeviceSort::Name, Order::Asc, 0, 500).await?;
    ensure!(p.total >= 1 && p.items.iter().all(|d| d.address.contains("10.1.3.")));
    let pct = DeviceFilter {
        search: Some("%".into()),
        ..Default::default()
    };
    ensure!(
        queries::list_devices(&tx, &pct, DeviceSort::Name, Order::Asc, 0, 5)
            .await?
            .total
            == 0
    );
    Ok(())
}

#[tokio::test]
async fn migrations_are_idempotent_and_serialised_across_callers() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let opts = MigrateOptions {
        ensure_roles: false,
        ..Default::default()
    };
    let url = db.owner_url();
    let runs = (0..4).map(|_| {
        let (url, opts) = (url.clone(), opts.clone());
        tokio::spawn(async move { drover_migration::migrate(&url, &opts).await })
    });
    for r in futures_join(runs).await {
        let report = r??;
        ensure!(report.applied.is_empty(), "{report:?}");
    }
    Ok(())
}

async fn futures_join<T>(
    hs: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in hs.collect::<Vec<_>>() {
        out.push(h.await);
    }
    out
}

#[tokio::test]
async fn role_names_are_configurable() -> anyhow::Result<()> {
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let roles = Roles {
        owner: RoleSpec::named(format!("t{tag}_owner")),
        app: RoleSpec {
            name: format!("t{tag}_app"),
            password: Some("not-used-with-trust".into()),
        },
        poller: RoleSpec::named(format!("t{tag}_poller")),
        cross_tenant: RoleSpec::named(format!("t{tag}_xt")),
    };
    let names = [
        roles.owner.name.clone(),
        roles.app.name.clone(),
        roles.poller.name.clone(),
        roles.cross_tenant.name.clone(),
    ];
    let result = async {
        let db = TestDb::create_with_roles(roles).await?;
        let store = Store::connect(&db.app_config()).await?;
        let (a, _) = two_tenants(&store).await?;
        device_in(&store, a, "x").await?;
        store.close().await;
        drop(db);
        anyhow::Ok(())
    }
    .await;
    // roles are cluster-global: remove this test's roles again
    let mut su = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
    for n in names.iter().rev() {
        su.execute(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{n}\"")))
            .await?;
    }
    result
}

#[tokio::test]
async fn fleet_list_figures_at_100k_devices() -> anyhow::Result<()> {
    // A figure, not a gate (performance claims belong in benches/): printed for the record,
    // with the plan of the substring search to show the trigram index is used.
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, b) = two_tenants(&store).await?;
    let mut su = PgConnection::connect(&db.superuser_url()).await?;
    for (t, n) in [(a, 100_000), (b, 10_000)] {
        su.execute(AssertSqlSafe(format!(
            "INSERT INTO devices (tenant_id, name, address, status)
             SELECT '{t}', 'site' || (i % 700) || '-rtr-' || i, '10.' || (i / 65536) || '.' || (i / 256 % 256) || '.' || (i % 256),
                    (ARRAY['online','online','online','offline','degraded'])[1 + i % 5]
               FROM generate_series(1, {n}) i"
        )))
        .await?;
    }
    su.execute("ANALYZE devices").await?;
    let tx = store.begin(a).await?;
    let cases: [(&str, DeviceFilter, DeviceSort, u64); 4] = [
        (
            "first page by name",
            DeviceFilter::default(),
            DeviceSort::Name,
            0,
        ),
        (
            "page 200 by name",
            DeviceFilter::default(),
            DeviceSort::Name,
            10_000,
        ),
        (
            "offline, by address",
            DeviceFilter {
                status: Some(drover_model::DeviceStatus::Offline),
                ..Default::default()
            },
            DeviceSort::Address,
            0,
        ),
        (
            "search 'rtr-4242'",
            DeviceFilter {
                search: Some("rtr-4242".into()),
                ..Default::default()
            },
            DeviceSort::Name,
            0,
        ),
    ];
    for (what, filter, sort, offset) in cases {
        queries::list_devices(&tx, &filter, sort, Order::Asc, offset, 50).await?; // warm
        let started = std::time::Instant::now();
        let p = queries::list_devices(&tx, &filter, sort, Order::Asc, offset, 50).await?;
        eprintln!(
            "fleet list, 100k devices, {what}: {} of {} in {:?}",
            p.items.len(),
            p.total,
            started.elapsed()
        );
        ensure!(!p.items.is_empty());
    }
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT * FROM devices WHERE tenant_id = gen_random_uuid() AND name ILIKE '%rtr-4242%'",
    )
    .fetch_all(&mut su)
    .await?;
    eprintln!("{}", plan.join("\n"));
    ensure!(
        plan.iter().any(|l| l.contains("devices_name_trgm")),
        "trigram index unused"
    );
    {
        let mut app = PgConnection::connect(&db.app_url()).await?;
        app.execute("BEGIN").await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(a.to_string())
            .execute(&mut app)
            .await?;
        // as the app role, the tenant policy is an index condition: no sequential scan
        for q in [
            "EXPLAIN ANALYZE SELECT * FROM devices ORDER BY name, id LIMIT 50",
            "EXPLAIN ANALYZE SELECT * FROM devices WHERE status = 'offline' ORDER BY name LIMIT 50",
        ] {
            let plan: Vec<String> = sqlx::query_scalar(q).fetch_all(&mut app).await?;
            eprintln!("{q}\n{}", plan.join("\n"));
            ensure!(
                !plan.iter().any(|l| l.contains("Seq Scan")),
                "sequential scan:\n{}",
                plan.join("\n")
            );
        }
        let q = "EXPLAIN ANALYZE SELECT count(*) FROM devices \
                 WHERE name ILIKE '%rtr-4242%' OR address ILIKE '%rtr-4242%'";
        let plan: Vec<String> = sqlx::query_scalar(q).fetch_all(&mut app).await?;
        eprintln!("{q}\n{}", plan.join("\n"));
    }
    Ok(())
}

#[tokio::test]
async fn poller_falls_back_to_the_devices_credential_profile() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let store = Store::connect(&StoreConfig::new(db.app_url())).await?;
    let (a, _) = two_tenants(&store).await?;
    let env = Envelope::new(Arc::new(LocalKek::new(KEY1, &[])?));
    let tx = store.begin(a).await?;
    let profile = drover_store::entities::credential_profiles::ActiveModel {
        id: sea_orm::ActiveValue::Set(Uuid::new_v4()),
        tenant_id: sea_orm::ActiveValue::Set(a.0),
        name: sea_orm::ActiveValue::Set("default".into()),
        credential_type: sea_orm::ActiveValue::Set("routeros".into()),
        ciphertext: sea_orm::ActiveValue::Set(vec![0]),
        created_at: sea_orm::ActiveValue::Set(chrono::Utc::now()),
        updated_at: sea_orm::ActiveValue::Set(chrono::Utc::now()),
        ..Default::default()
    };
    let profile = sea_orm::ActiveModelTrait::insert(profile, tx.conn()).await?;
    drover_store::crypto::set_profile_credentials(&env, &tx, profile.id, &creds("from-profile"))
        .await?;
    let d = queries::create_device(&tx, &NewDevice::new("p", "10.0.0.9")).await?;
    devices::Entity::update_many()
        .col_expr(
            devices::Column::CredentialProfileId,
            sea_orm::sea_query::Expr::value(profile.id),
        )
        .filter(devices::Column::Id.eq(d.id))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    let poller = PollerStore::connect(&StoreConfig::new(db.poller_url())).await?;
    let c = device_credentials_for_poller(&env, &poller, d.id).await?;
    ensure!(c.is_some_and(|c| c.password.expose() == b"from-profile"));

    // the batched read of a full load: the profile's credentials once for every device
    // using it, none for a device without credentials or profile
    let tx = store.begin(a).await?;
    let bare = queries::create_device(&tx, &NewDevice::new("bare", "10.0.0.10")).await?;
    let d2 = queries::create_device(&tx, &NewDevice::new("p2", "10.0.0.11")).await?;
    devices::Entity::update_many()
        .col_expr(
            devices::Column::CredentialProfileId,
            sea_orm::sea_query::Expr::value(profile.id),
        )
        .filter(devices::Column::Id.eq(d2.id))
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    let page = poller.devices_page(None, 1000).await?;
    let all = devices_credentials_for_poller(&env, &poller, &page).await?;
    for id in [d.id, d2.id] {
        ensure!(
            all[&id].as_ref().is_ok_and(|c| c
                .as_ref()
                .is_some_and(|c| c.password.expose() == b"from-profile")),
            "{id}: {:?}",
            all[&id]
        );
    }
    ensure!(matches!(all[&bare.id], Ok(None)), "{:?}", all[&bare.id]);
    Ok(())
}
