//! One simulated device: identity, model, boot time, counters, faults, the up/down life
//! cycle (reboot, flap, dropped connections) and its lazily made TLS configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::sync::watch;

use crate::config::{SimConfig, device_hash, device_unit, in_share};
use crate::fault::{Fault, FaultSet};
use crate::format::now_unix_ms;
use crate::model::{MODELS, Model, model_for};
use crate::stats::{Counters, DeviceStats};
use crate::stop::StopSignal;
use crate::tables::ConfigTree;
use crate::tls::CertAuthority;

/// State shared by every device of a fleet.
#[derive(Debug)]
pub(crate) struct FleetShared {
    pub(crate) config: SimConfig,
    pub(crate) ca: CertAuthority,
    pub(crate) stop: StopSignal,
    pub(crate) sends_empty: bool,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[derive(Debug)]
struct Life {
    /// Stopped to drop every open connection of the device.
    connections: StopSignal,
    /// Bumped at every down transition, so a stale "come back up" timer does nothing.
    down_generation: u64,
}

/// One simulated RouterOS device.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) index: usize,
    pub(crate) global_index: usize,
    pub(crate) ip: Ipv4Addr,
    pub(crate) model: &'static Model,
    pub(crate) fleet: Arc<FleetShared>,
    pub(crate) counters: Counters,
    faults: Mutex<FaultSet>,
    legacy_login: AtomicBool,
    boot_unix_ms: AtomicU64,
    tree: Mutex<Option<Box<ConfigTree>>>,
    tls: Mutex<Option<Arc<ServerConfig>>>,
    life: Mutex<Life>,
    up: watch::Sender<bool>,
    flapper: Mutex<Option<tokio::task::AbortHandle>>,
    connection_serial: AtomicU64,
}

impl Device {
    pub(crate) fn new(fleet: Arc<FleetShared>, index: usize, models: &[&'static Model]) -> Self {
        let cfg = &fleet.config;
        let global_index = cfg.first_index + index;
        let model = if models.is_empty() {
            model_for(cfg.seed, global_index)
        } else {
            models[global_index % models.len()]
        };
        // Initial uptime between one hour and 40 days.
        let initial_uptime_ms =
            3_600_000 + (device_unit(cfg.seed, global_index, 0xB007) * 39.0 * 86_400_000.0) as u64;
        let legacy = in_share(cfg.seed, global_index, cfg.legacy_login_share, 0x1E6AC7);
        let connections = fleet.stop.child();
        Self {
            index,
            global_index,
            ip: cfg.address_of(global_index),
            model,
            counters: Counters::default(),
            faults: Mutex::new(FaultSet::default()),
            legacy_login: AtomicBool::new(legacy),
            boot_unix_ms: AtomicU64::new(now_unix_ms().saturating_sub(initial_uptime_ms)),
            tree: Mutex::new(None),
            tls: Mutex::new(None),
            life: Mutex::new(Life {
                connections,
                down_generation: 0,
            }),
            up: watch::channel(true).0,
            flapper: Mutex::new(None),
            connection_serial: AtomicU64::new(0),
            fleet,
        }
    }

    pub(crate) fn config(&self) -> &SimConfig {
        &self.fleet.config
    }

    /// A reproducible per-device hash for `purpose`.
    pub(crate) fn hash(&self, purpose: u64) -> u64 {
        device_hash(self.config().seed, self.global_index, purpose)
    }

    pub(crate) fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.config().tls_port))
    }

    pub(crate) fn plain_addr(&self) -> Option<SocketAddr> {
        self.config()
            .plain_port
            .map(|p| SocketAddr::from((self.ip, p)))
    }

    pub(crate) fn next_connection_serial(&self) -> u64 {
        self.connection_serial.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn uptime_ms(&self) -> u64 {
        now_unix_ms().saturating_sub(self.boot_unix_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn boot_unix_ms(&self) -> u64 {
        self.boot_unix_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn legacy_login(&self) -> bool {
        self.legacy_login.load(Ordering::Relaxed)
    }

    pub(crate) fn set_legacy_login(&self, on: bool) {
        self.legacy_login.store(on, Ordering::Relaxed);
    }

    pub(crate) fn faults(&self) -> FaultSet {
        lock(&self.faults).clone()
    }

    /// The configuration tree, made on first use.
    pub(crate) fn tree(&self) -> MappedTree<'_> {
        let mut guard = lock(&self.tree);
        if guard.is_none() {
            *guard = Some(Box::new(ConfigTree::new(self)));
        }
        MappedTree { guard }
    }

    pub(crate) fn identity(&self) -> String {
        match lock(&self.tree).as_ref() {
            Some(t) => t.identity.clone(),
            None => ConfigTree::default_identity(self.global_index),
        }
    }

    pub(crate) fn stats(&self) -> DeviceStats {
        self.counters
            .snapshot(self.index, self.ip.to_string(), self.uptime_ms())
    }

    /// The TLS server configuration, made (and cached) on first use.
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let mut guard = lock(&self.tls);
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = self.fleet.ca.server_config_for(self.ip)?;
        *guard = Some(config.clone());
        Ok(config)
    }

    /// The signal that stops the device's current connections.
    pub(crate) fn connections_signal(&self) -> StopSignal {
        lock(&self.life).connections.clone()
    }

    /// Whether the device is up (accepting connections).
    pub(crate) fn up_receiver(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Drops every open connection; the device stays up.
    pub(crate) fn drop_connections(&self) {
        let mut life = lock(&self.life);
        life.connections.stop();
        life.connections = self.fleet.stop.child();
    }

    /// Goes down for `down_for`: open connections drop, listeners close. When `reboot`, the
    /// device comes back with uptime (and so interface counters) reset.
    pub(crate) fn go_down(self: &Arc<Self>, down_for: Duration, reboot: bool) {
        let generation = {
            let mut life = lock(&self.life);
            life.connections.stop();
            life.connections = self.fleet.stop.child();
            life.down_generation += 1;
            life.down_generation
        };
        self.up.send_replace(false);
        if reboot {
            Counters::bump(&self.counters.reboots);
        }
        let device = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(down_for) => {}
                _ = device.fleet.stop.stopped() => return,
            }
            let life = lock(&device.life);
            if life.down_generation != generation {
                return;
            }
            if reboot {
                device.boot_unix_ms.store(now_unix_ms(), Ordering::Relaxed);
            }
            device.up.send_replace(true);
        });
    }

    pub(crate) fn reboot(self: &Arc<Self>) {
        self.go_down(self.config().reboot_delay, true);
    }

    /// Adds a fault (replacing one of the same kind) and starts what it needs at once.
    pub(crate) fn set_fault(self: &Arc<Self>, fault: &Fault) {
        lock(&self.faults).apply(fault);
        match *fault {
            Fault::Drop { after_replies: 0 } => self.drop_connections(),
            Fault::Flap { .. } => self.start_flapping(),
            _ => {}
        }
    }

    pub(crate) fn clear_faults(&self) {
        *lock(&self.faults) = FaultSet::default();
        if let Some(h) = lock(&self.flapper).take() {
            h.abort();
        }
    }

    fn start_flapping(self: &Arc<Self>) {
        let Some((period, down)) = lock(&self.faults).flap else {
            return;
        };
        let device = self.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period.saturating_sub(down)) => {}
                    _ = device.fleet.stop.stopped() => return,
                }
                device.go_down(down, false);
                tokio::select! {
                    _ = tokio::time::sleep(down) => {}
                    _ = device.fleet.stop.stopped() => return,
                }
            }
        });
        if let Some(old) = lock(&self.flapper).replace(task.abort_handle()) {
            old.abort();
        }
    }
}

/// A locked configuration tree.
#[derive(Debug)]
pub(crate) struct MappedTree<'a> {
    guard: MutexGuard<'a, Option<Box<ConfigTree>>>,
}

impl std::ops::Deref for MappedTree<'_> {
    type Target = ConfigTree;
    fn deref(&self) -> &ConfigTree {
        match self.guard.as_ref() {
            Some(t) => t,
            None => unreachable!("tree() fills the slot before handing out the guard"),
        }
    }
}

impl std::ops::DerefMut for MappedTree<'_> {
    fn deref_mut(&mut self) -> &mut ConfigTree {
        match self.guard.as_mut() {
            Some(t) => t,
            None => unreachable!("tree() fills the slot before handing out the guard"),
        }
    }
}

/// Looks a model up by board name (for `SimConfig::models`).
pub(crate) fn model_by_name(name: &str) -> Option<&'static Model> {
    MODELS
        .iter()
        .find(|m| m.board_name.eq_ignore_ascii_case(name) || m.routerboard_model == name)
}
