//! `drover demo seed`: creates (or re-creates) a demo tenant whose devices are the routers of
//! a running `drover-sim`, with their credentials stored encrypted like any other device's.

use std::net::Ipv4Addr;
use std::sync::Arc;

use clap::{Args, Subcommand};
use drover_store::crypto::{DeviceCredentials, Envelope, LocalKek, Secret, set_device_credentials};
use drover_store::entities::tenants;
use drover_store::entities::tenants::Entity as Tenants;
use drover_store::queries::{NewDevice, create_device};
use drover_store::{CrossTenantAccess, Store, StoreConfig, TenantId};

use crate::config::DatabaseArgs;

#[derive(Subcommand, Debug)]
pub(crate) enum DemoCommand {
    /// Fill a demo tenant with the devices of a simulated fleet.
    Seed(SeedArgs),
}

#[derive(Args, Debug)]
pub(crate) struct SeedArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Name of the demo tenant; an existing tenant of that name is replaced.
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// Number of simulated devices.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Address of the first simulated device (the next ones follow, skipping .0 and .255).
    #[arg(long, default_value = "127.10.0.1")]
    first: Ipv4Addr,
    #[arg(long, default_value_t = 8729)]
    port: u16,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, env = "DROVER_SIM_PASSWORD", default_value = "drover-sim")]
    password: String,
    /// Poll interval in seconds.
    #[arg(long, default_value_t = 10)]
    interval: u32,
}

pub(crate) async fn run(cmd: DemoCommand) -> anyhow::Result<()> {
    match cmd {
        DemoCommand::Seed(args) => seed(args).await,
    }
}

/// The `n`-th address after `first`, skipping last octets 0 and 255 (the simulator's rule).
fn device_address(first: Ipv4Addr, n: usize) -> Ipv4Addr {
    let mut addr = u32::from(first);
    let mut left = n;
    while left > 0 {
        addr = addr.wrapping_add(1);
        if !matches!(addr & 0xFF, 0 | 255) {
            left -= 1;
        }
    }
    Ipv4Addr::from(addr)
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    use sea_orm::{ColumnTrait, EntityTrait, ModelTrait, QueryFilter};
    args.database.migrate().await?;
    let store = Store::connect(&StoreConfig::new(args.database.app_url())).await?;
    let envelope = Envelope::new(Arc::new(LocalKek::from_env()?));
    let access = CrossTenantAccess {
        actor_user_id: uuid::Uuid::nil(),
        reason: format!("demo seed of tenant {:?}", args.tenant),
        ip_address: None,
    };
    let mut tx = store.begin_cross_tenant(access).await?;
    if let Some(old) = Tenants::find()
        .filter(tenants::Column::Name.eq(args.tenant.clone()))
        .one(tx.conn())
        .await?
    {
        tx.act_as(TenantId(old.id)).await?;
        old.delete(tx.conn()).await?;
    }
    let tenant = tx.create_tenant(&args.tenant).await?;
    tx.commit().await?;
    let tenant_id = TenantId(tenant.id);

    for chunk_start in (0..args.devices).step_by(500) {
        let tx = store.begin(tenant_id).await?;
        for n in chunk_start..(chunk_start + 500).min(args.devices) {
            let address = device_address(args.first, n);
            let mut d = NewDevice::new(format!("sim-{address}"), address.to_string());
            d.api_port = args.port;
            d.tls_mode = "insecure".into();
            d.poll_interval_s = Some(args.interval.max(5));
            let device = create_device(&tx, &d).await?;
            let creds = DeviceCredentials {
                username: args.user.clone(),
                password: Secret::new(args.password.clone().into_bytes()),
            };
            set_device_credentials(&envelope, &tx, device.id, &creds).await?;
        }
        tx.commit().await?;
    }
    println!(
        "{}",
        serde_json::json!({"tenant_id": tenant_id.to_string(), "tenant": args.tenant, "devices": args.devices})
    );
    store.close().await;
    Ok(())
}
