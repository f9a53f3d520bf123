//! [`ClusterConfig`]: the cluster flags of `drover run`, with defaults under which one node
//! with no cluster flags runs alone (no listener, no peers) and still takes every shard's
//! lease in Redis, so two unconfigured nodes never both poll a device.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::wire::Roles;

/// Cluster settings (flattened into `drover run`).
#[derive(Args, Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster name: the Redis key prefix of the leases and the ractor cookie (an identifier,
    /// not a secret; mutual TLS authenticates nodes). Nodes with the same name share the
    /// fleet. Default: set by the binary (`drover run` uses `db-<database name>`), else
    /// `drover`.
    #[arg(long, env = "DROVER_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// This node's name, unique in the cluster ([A-Za-z0-9._-]); default: host name plus a
    /// random suffix (a new name per start).
    #[arg(long, env = "DROVER_NODE_NAME")]
    pub node_name: Option<String>,
    /// What this node does: api (no devices), poller, or both.
    #[arg(long, env = "DROVER_ROLES", value_enum, default_value_t = Roles::Both)]
    pub roles: Roles,
    /// Redis holding the shard leases.
    #[arg(
        long,
        env = "DROVER_CLUSTER_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub cluster_redis_url: String,
    /// Address to accept node links on (mutual TLS). Unset: this node neither listens nor
    /// joins a cluster (it still takes leases).
    #[arg(long, env = "DROVER_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Address other nodes dial to reach this one (default: the listen address).
    #[arg(long, env = "DROVER_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// Nodes to join through (host:port, comma-separated); any one member is enough.
    #[arg(long, env = "DROVER_CLUSTER_SEEDS", value_delimiter = ',')]
    pub cluster_seeds: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "DROVER_CLUSTER_CA")]
    pub cluster_ca: Option<PathBuf>,
    /// This node's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "DROVER_CLUSTER_CERT")]
    pub cluster_cert: Option<PathBuf>,
    /// This node's private key (PKCS#8 PEM).
    #[arg(long, env = "DROVER_CLUSTER_KEY")]
    pub cluster_key: Option<PathBuf>,
    /// A peer silent for this long is declared dead and its link closed.
    #[arg(
        long,
        env = "DROVER_CLUSTER_FAILURE_DEADLINE_MS",
        default_value_t = 10_000
    )]
    pub failure_deadline_ms: u64,
    /// How often each peer is probed.
    #[arg(long, env = "DROVER_CLUSTER_HEARTBEAT_MS", default_value_t = 1_000)]
    pub heartbeat_ms: u64,
    /// Shard lease time to live (in Redis).
    #[arg(long, env = "DROVER_LEASE_TTL_MS", default_value_t = 15_000)]
    pub lease_ttl_ms: u64,
    /// How often held leases are renewed.
    #[arg(long, env = "DROVER_LEASE_RENEW_MS", default_value_t = 5_000)]
    pub lease_renew_ms: u64,
    /// A lease counts locally until renew start + TTL − this margin; the shard's devices stop
    /// then if it was not renewed.
    #[arg(long, env = "DROVER_LEASE_MARGIN_MS", default_value_t = 3_000)]
    pub lease_margin_ms: u64,
    /// A node joins the ring (gets shards) only after being alive this long.
    #[arg(long, env = "DROVER_REBALANCE_HOLD_MS", default_value_t = 5_000)]
    pub rebalance_hold_ms: u64,
    /// Most shards handed over per second while rebalancing.
    #[arg(long, env = "DROVER_REBALANCE_MAX_MOVES", default_value_t = 512)]
    pub rebalance_max_moves: usize,
    /// A shard taken less than this long ago is not handed over for rebalancing (draining
    /// and failures excepted). Set it above the longest poll interval: then a device loses at
    /// most one poll slot per move, so a rolling restart leaves no device more than two
    /// intervals without a poll.
    #[arg(long, env = "DROVER_MIN_OWNERSHIP_MS", default_value_t = 90_000)]
    pub min_ownership_ms: u64,
    /// After giving up a shard locally, wait this long (its devices stop) before deleting
    /// the lease.
    #[arg(long, env = "DROVER_HANDOVER_GRACE_MS", default_value_t = 1_000)]
    pub handover_grace_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            cluster_name: None,
            node_name: None,
            roles: Roles::Both,
            cluster_redis_url: "redis://127.0.0.1:6379".into(),
            cluster_listen: None,
            cluster_advertise: None,
            cluster_seeds: Vec::new(),
            cluster_ca: None,
            cluster_cert: None,
            cluster_key: None,
            failure_deadline_ms: 10_000,
            heartbeat_ms: 1_000,
            lease_ttl_ms: 15_000,
            lease_renew_ms: 5_000,
            lease_margin_ms: 3_000,
            rebalance_hold_ms: 5_000,
            rebalance_max_moves: 512,
            min_ownership_ms: 90_000,
            handover_grace_ms: 1_000,
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ClusterConfig {
    /// Checks the values; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_name(self.name()) {
            return Err(format!(
                "DROVER_CLUSTER_NAME must be 1-128 of [A-Za-z0-9._-], got {:?}",
                self.name()
            ));
        }
        if let Some(n) = &self.node_name
            && !valid_name(n)
        {
            return Err(format!(
                "DROVER_NODE_NAME must be 1-128 of [A-Za-z0-9._-], got {n:?}"
            ));
        }
        if self.joins() {
            if self.cluster_ca.is_none()
                || self.cluster_cert.is_none()
                || self.cluster_key.is_none()
            {
                return Err("a clustered node (DROVER_CLUSTER_LISTEN or DROVER_CLUSTER_SEEDS) needs DROVER_CLUSTER_CA, DROVER_CLUSTER_CERT and DROVER_CLUSTER_KEY (see `drover cluster init-ca`)".into());
            }
            if self.cluster_listen.is_none() {
                return Err(
                    "DROVER_CLUSTER_SEEDS needs DROVER_CLUSTER_LISTEN (peers dial back)".into(),
                );
            }
        }
        if self.heartbeat_ms == 0 || self.failure_deadline_ms < 2 * self.heartbeat_ms {
            return Err(
                "DROVER_CLUSTER_FAILURE_DEADLINE_MS must be at least twice DROVER_CLUSTER_HEARTBEAT_MS (and that above 0)"
                    .into(),
            );
        }
        if self.lease_margin_ms == 0 || self.lease_margin_ms >= self.lease_ttl_ms {
            return Err(
                "DROVER_LEASE_MARGIN_MS must be above 0 and below DROVER_LEASE_TTL_MS".into(),
            );
        }
        if self.lease_renew_ms == 0
            || 2 * self.lease_renew_ms > self.lease_ttl_ms - self.lease_margin_ms
        {
            return Err("DROVER_LEASE_RENEW_MS must be above 0 and at most half of TTL − margin (one failed renewal must not lose the lease)".into());
        }
        if self.rebalance_max_moves == 0 {
            return Err("DROVER_REBALANCE_MAX_MOVES must be at least 1".into());
        }
        Ok(())
    }

    /// Whether this node links to other nodes.
    pub fn joins(&self) -> bool {
        self.cluster_listen.is_some() || !self.cluster_seeds.is_empty()
    }

    pub fn failure_deadline(&self) -> Duration {
        Duration::from_millis(self.failure_deadline_ms)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    pub fn lease_renew(&self) -> Duration {
        Duration::from_millis(self.lease_renew_ms)
    }

    pub fn lease_margin(&self) -> Duration {
        Duration::from_millis(self.lease_margin_ms)
    }

    /// The cluster name in effect.
    pub fn name(&self) -> &str {
        self.cluster_name.as_deref().unwrap_or("drover")
    }

    /// Redis key prefix.
    pub fn key_prefix(&self) -> String {
        format!("drover:{}", self.name())
    }

    /// The configured node name, or host name + random suffix.
    pub fn resolved_node_name(&self) -> String {
        if let Some(n) = &self.node_name {
            return n.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .take(64)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "drover".into());
        format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_standalone() {
        let c = ClusterConfig::default();
        c.validate().unwrap();
        assert!(!c.joins());
        let n = c.resolved_node_name();
        assert!(valid_name(&n), "{n}");
    }

    #[test]
    fn bad_values_are_refused() {
        let c = ClusterConfig {
            lease_renew_ms: 7_000,
            ..ClusterConfig::default()
        };
        assert!(c.validate().is_err());
        let c = ClusterConfig {
            cluster_seeds: vec!["10.0.0.1:7946".into()],
            ..ClusterConfig::default()
        };
        assert!(c.validate().is_err());
        let c = ClusterConfig {
            node_name: Some("a|b".into()),
            ..ClusterConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
