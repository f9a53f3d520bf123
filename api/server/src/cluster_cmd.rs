//! `drover cluster init-ca` and `drover cluster issue-node-cert`: the files a cluster's
//! mutual TLS needs. Keys are written with mode 0600.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

/// Cluster certificate helpers.
#[derive(Subcommand, Debug)]
pub(crate) enum ClusterCommand {
    /// Create a cluster CA: `<dir>/ca.pem` and `<dir>/ca.key`.
    InitCa(InitCa),
    /// Issue a node certificate signed by the cluster CA: `<dir>/<node>.pem`, `<dir>/<node>.key`.
    IssueNodeCert(IssueNodeCert),
}

#[derive(Args, Debug)]
pub(crate) struct InitCa {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// The cluster's name (DROVER_CLUSTER_NAME); written into the CA's subject.
    #[arg(long, env = "DROVER_CLUSTER_NAME", default_value = "drover")]
    cluster_name: String,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub(crate) struct IssueNodeCert {
    /// The CA certificate.
    #[arg(long, default_value = "ca.pem")]
    ca_cert: PathBuf,
    /// The CA private key.
    #[arg(long, default_value = "ca.key")]
    ca_key: PathBuf,
    /// The cluster's name, as given to init-ca.
    #[arg(long, env = "DROVER_CLUSTER_NAME", default_value = "drover")]
    cluster_name: String,
    /// The node's name (DROVER_NODE_NAME); the certificate's common name.
    #[arg(long)]
    node_name: String,
    /// Extra DNS names or IP addresses of the node (comma-separated), for operators' tools.
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

fn write(path: &Path, contents: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(if secret { 0o600 } else { 0o644 });
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

pub(crate) fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::InitCa(a) => {
            std::fs::create_dir_all(&a.out_dir)?;
            let ca = drover_cluster::tls::generate_ca(&a.cluster_name)?;
            write(&a.out_dir.join("ca.pem"), &ca.cert_pem, false, a.force)?;
            write(&a.out_dir.join("ca.key"), &ca.key_pem, true, a.force)?;
            println!(
                "wrote {} and {} (keep ca.key off the nodes)",
                a.out_dir.join("ca.pem").display(),
                a.out_dir.join("ca.key").display()
            );
        }
        ClusterCommand::IssueNodeCert(a) => {
            let ca = drover_cluster::tls::CaPem {
                cert_pem: std::fs::read_to_string(&a.ca_cert)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", a.ca_cert.display()))?,
                key_pem: std::fs::read_to_string(&a.ca_key)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", a.ca_key.display()))?,
            };
            let node =
                drover_cluster::tls::issue_node_cert(&ca, &a.cluster_name, &a.node_name, &a.names)?;
            std::fs::create_dir_all(&a.out_dir)?;
            let cert = a.out_dir.join(format!("{}.pem", a.node_name));
            let key = a.out_dir.join(format!("{}.key", a.node_name));
            write(&cert, &node.cert_pem, false, a.force)?;
            write(&key, &node.key_pem, true, a.force)?;
            println!("wrote {} and {}", cert.display(), key.display());
        }
    }
    Ok(())
}
