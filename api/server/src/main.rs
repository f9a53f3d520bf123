//! `drover`: the node binary. `drover run` supervises the fleet stored in PostgreSQL;
//! `drover migrate` applies the schema; `drover demo seed` fills a demo tenant with devices
//! of a running simulator.

mod cluster_cmd;
mod cluster_gateway;
mod config;
mod config_file;
mod demo;
mod device_source;
mod http;
mod node;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, NodeConfig};

#[derive(Parser, Debug)]
#[command(
    name = "drover",
    version,
    about = "Supervises fleets of MikroTik RouterOS devices"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a node: migrate, load the devices, poll them, publish their events.
    Run(Box<NodeConfig>),
    /// Apply pending migrations (once per cluster, under an advisory lock).
    Migrate(DatabaseArgs),
    /// Demo helpers.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// Cluster certificates: a CA and node certificates for mutual TLS between nodes.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI document (what api/openapi.json holds).
    ExportOpenapi,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create a super_admin with a temporary password; their first login leads to SRP
    /// enrolment (password + Secret Key).
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        email: String,
        /// Read from this variable (default FIRST_ADMIN_PASSWORD), never from the command line.
        #[arg(long, default_value = "FIRST_ADMIN_PASSWORD")]
        password_env: String,
    },
}

fn main() -> std::process::ExitCode {
    // `--config FILE` (or DROVER_CONFIG): TOML settings below the environment and the flags.
    let args = match config_file::apply(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drover: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // One crypto provider for every TLS user in the process (device sessions, NATS, sqlx).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drover: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(cfg) => {
                cfg.validate()?;
                node::run(*cfg).await
            }
            Command::Migrate(db) => {
                let report = db.migrate().await?;
                println!(
                    "applied {} migration(s): {:?}",
                    report.applied.len(),
                    report.applied
                );
                Ok(())
            }
            Command::Demo(cmd) => demo::run(cmd).await,
            Command::Cluster(cmd) => cluster_cmd::run(cmd),
            Command::ExportOpenapi => {
                println!("{}", drover_api::spec_json());
                Ok(())
            }
            Command::Admin(AdminCommand::Create {
                database,
                email,
                password_env,
            }) => {
                let password = std::env::var(&password_env).map_err(|_| {
                    config::ConfigError(format!("set the temporary password in {password_env}"))
                })?;
                database.migrate().await?;
                if http::bootstrap_admin(&database.owner_url(), &email, &password).await? {
                    println!("created super_admin {email}; the first login leads to SRP enrolment");
                } else {
                    println!("an account with the address {email} already exists; nothing changed");
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drover: {e:#}");
            // 64 (EX_USAGE) for configuration errors, 1 otherwise.
            if e.downcast_ref::<config::ConfigError>().is_some() {
                std::process::ExitCode::from(64)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
