//! [`Fleet`]: a set of simulated devices in this process, started and stopped as one, with
//! the in-process API that Rust tests use (addresses, CA, faults, stats, reboot).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{SimConfig, in_share, index_of_address};
use crate::device::{Device, FleetShared, model_by_name};
use crate::fault::{Fault, FaultSet, Target};
use crate::listener;
use crate::model::Model;
use crate::stats::DeviceStats;
use crate::stop::StopSignal;
use crate::tls::CertAuthority;

/// What `GET /devices` lists for each device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub index: usize,
    pub address: String,
    pub tls_port: u16,
    pub plain_port: Option<u16>,
    pub model: String,
    pub identity: String,
    pub legacy_login: bool,
}

#[derive(Debug)]
pub(crate) struct FleetInner {
    pub(crate) shared: Arc<FleetShared>,
    pub(crate) devices: Vec<Arc<Device>>,
}

/// A running fleet of simulated devices. Dropping it stops every device (use
/// [`Fleet::shutdown`] to also wait for that).
#[derive(Debug)]
pub struct Fleet {
    pub(crate) inner: Arc<FleetInner>,
    tasks: Vec<JoinHandle<()>>,
}

/// How many random bases `for_tests` configurations try before giving up.
const BASE_ATTEMPTS: usize = 24;

fn random_base(devices: usize) -> Ipv4Addr {
    let blocks_needed = devices / 254 + 2;
    let first = 64u32 << 8;
    let last = ((250u32 << 8) | 255).saturating_sub(blocks_needed as u32);
    let block = rand::rng().random_range(first..=last.max(first));
    Ipv4Addr::from((127u32 << 24) | (block << 8) | 1)
}

impl Fleet {
    /// Binds every device's listeners and starts serving. With `random_base` the base
    /// address is drawn at random and re-drawn when an address is already in use.
    pub async fn start(mut config: SimConfig) -> anyhow::Result<Fleet> {
        let ca = match &config.ca {
            Some(pem) => CertAuthority::from_pem(&pem.cert_pem, &pem.key_pem)?,
            None => CertAuthority::generate()?,
        };
        let models: Vec<&'static Model> = config
            .models
            .iter()
            .map(|n| model_by_name(n).with_context(|| format!("unknown model {n:?}")))
            .collect::<anyhow::Result<_>>()?;
        let attempts = if config.random_base { BASE_ATTEMPTS } else { 1 };
        let mut ca = Some(ca);
        for attempt in 0..attempts {
            if config.random_base {
                config.base = random_base(config.devices + config.first_index);
            }
            match bind_all(&config) {
                Ok(listeners) => {
                    let ca = ca.take().context("CA already used")?;
                    return Ok(Self::serve(config, ca, &models, listeners));
                }
                Err(e) if config.random_base && e.kind() == io::ErrorKind::AddrInUse => {
                    tracing::debug!(attempt, base = %config.base, "address in use; new base");
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("bind device listeners from {}", config.base));
                }
            }
        }
        bail!("no free address range after {attempts} attempts")
    }

    fn serve(
        config: SimConfig,
        ca: CertAuthority,
        models: &[&'static Model],
        listeners: Vec<(TcpListener, Option<TcpListener>)>,
    ) -> Fleet {
        let sends_empty = config.sends_empty();
        let shared = Arc::new(FleetShared {
            config,
            ca,
            stop: StopSignal::new(),
            sends_empty,
        });
        let mut devices = Vec::with_capacity(listeners.len());
        let mut tasks = Vec::with_capacity(listeners.len() * 2);
        for (index, (tls, plain)) in listeners.into_iter().enumerate() {
            let dev = Arc::new(Device::new(shared.clone(), index, models));
            tasks.push(tokio::spawn(listener::run(
                dev.clone(),
                dev.tls_addr(),
                true,
                tls,
            )));
            if let (Some(plain), Some(addr)) = (plain, dev.plain_addr()) {
                tasks.push(tokio::spawn(listener::run(dev.clone(), addr, false, plain)));
            }
            devices.push(dev);
        }
        Fleet {
            inner: Arc::new(FleetInner { shared, devices }),
            tasks,
        }
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.inner.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.devices.is_empty()
    }

    /// The configuration in force (with the base address actually used).
    pub fn config(&self) -> &SimConfig {
        &self.inner.shared.config
    }

    fn device(&self, i: usize) -> &Arc<Device> {
        &self.inner.devices[i]
    }

    /// The IP address of device `i`. Panics if `i >= len()`.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.device(i).ip
    }

    /// The API-SSL (TLS) address of device `i`. Panics if `i >= len()`.
    pub fn device_addr(&self, i: usize) -> SocketAddr {
        self.device(i).tls_addr()
    }

    /// The plain API address of device `i`, when the plain port is enabled.
    pub fn plain_addr(&self, i: usize) -> Option<SocketAddr> {
        self.device(i).plain_addr()
    }

    /// The fleet index of the device at `ip`.
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.inner.index_of(ip)
    }

    /// PEM of the CA that signs every device certificate.
    pub fn ca_cert_pem(&self) -> &str {
        self.inner.shared.ca.cert_pem()
    }

    /// The user name and password every device accepts.
    pub fn credentials(&self) -> (&str, &str) {
        let c = &self.inner.shared.config;
        (&c.username, &c.password)
    }

    pub fn info(&self, i: usize) -> DeviceInfo {
        device_info(self.device(i))
    }

    pub fn infos(&self) -> Vec<DeviceInfo> {
        self.inner.devices.iter().map(|d| device_info(d)).collect()
    }

    /// Board name of device `i` (e.g. `RB5009UG+S+`, `CHR`).
    pub fn model(&self, i: usize) -> &'static str {
        self.device(i).model.board_name
    }

    /// Whether device `i` has a wifi radio.
    pub fn has_radio(&self, i: usize) -> bool {
        self.device(i).model.radios
    }

    /// A snapshot of device `i`'s counters. Panics if `i >= len()`.
    pub fn stats(&self, i: usize) -> DeviceStats {
        self.device(i).stats()
    }

    pub fn all_stats(&self) -> Vec<DeviceStats> {
        self.inner.devices.iter().map(|d| d.stats()).collect()
    }

    /// The active faults of device `i`.
    pub fn faults(&self, i: usize) -> FaultSet {
        self.device(i).faults()
    }

    /// Adds `fault` to the targeted devices; returns how many were targeted.
    pub fn set_fault(&self, target: Target, fault: Fault) -> usize {
        self.inner.set_fault(&target, &fault)
    }

    /// Removes every fault from the targeted devices; returns how many were targeted.
    pub fn clear_faults(&self, target: Target) -> usize {
        self.inner.clear_faults(&target)
    }

    /// Makes device `i` use (or stop using) the legacy challenge login.
    pub fn set_legacy_login(&self, i: usize, on: bool) {
        self.device(i).set_legacy_login(on);
    }

    /// Reboots device `i`: open connections drop, connects are refused for the reboot
    /// delay, then it comes back with uptime and interface counters reset.
    pub fn reboot(&self, i: usize) {
        self.device(i).reboot();
    }

    /// Drops every open connection of device `i` (it stays up).
    pub fn drop_connections(&self, i: usize) {
        self.device(i).drop_connections();
    }

    /// Stops every device and waits for the listeners and connections to finish.
    pub async fn shutdown(mut self) {
        self.inner.shared.stop.stop();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.inner.devices.iter().any(|d| {
            d.counters
                .active_connections
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        }) && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.inner.shared.stop.stop();
    }
}

pub(crate) fn device_info(d: &Device) -> DeviceInfo {
    let c = d.config();
    DeviceInfo {
        index: d.global_index,
        address: d.ip.to_string(),
        tls_port: c.tls_port,
        plain_port: c.plain_port,
        model: d.model.board_name.to_owned(),
        identity: d.identity(),
        legacy_login: d.legacy_login(),
    }
}

impl FleetInner {
    pub(crate) fn index_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let c = &self.shared.config;
        let global = index_of_address(c.base, ip)?;
        let local = global.checked_sub(c.first_index)?;
        (local < self.devices.len()).then_some(local)
    }

    pub(crate) fn targets(&self, target: &Target) -> Vec<&Arc<Device>> {
        let c = &self.shared.config;
        match *target {
            Target::All => self.devices.iter().collect(),
            Target::Index(i) => self
                .devices
                .iter()
                .filter(|d| d.global_index == i)
                .collect(),
            Target::Device(ip) => self
                .index_of(ip)
                .map(|i| vec![&self.devices[i]])
                .unwrap_or_default(),
            Target::Share { share, salt } => self
                .devices
                .iter()
                .filter(|d| in_share(c.seed, d.global_index, share, salt))
                .collect(),
        }
    }

    pub(crate) fn set_fault(&self, target: &Target, fault: &Fault) -> usize {
        let devices = self.targets(target);
        for d in &devices {
            d.set_fault(fault);
        }
        devices.len()
    }

    pub(crate) fn clear_faults(&self, target: &Target) -> usize {
        let devices = self.targets(target);
        for d in &devices {
            d.clear_faults();
        }
        devices.len()
    }
}

fn bind_all(config: &SimConfig) -> io::Result<Vec<(TcpListener, Option<TcpListener>)>> {
    let mut out = Vec::with_capacity(config.devices);
    for i in 0..config.devices {
        let ip = config.address_of(config.first_index + i);
        let tls = listener::bind(SocketAddr::from((ip, config.tls_port)), config.backlog)?;
        let plain = match config.plain_port {
            Some(p) => Some(listener::bind(SocketAddr::from((ip, p)), config.backlog)?),
            None => None,
        };
        out.push((tls, plain));
    }
    Ok(out)
}
