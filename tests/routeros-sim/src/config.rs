//! Fleet configuration ([`SimConfig`]), device addressing in 127.0.0.0/8, and the seeded
//! hashing that makes every per-device choice reproducible.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default first device address of the binary.
pub const DEFAULT_BASE: Ipv4Addr = Ipv4Addr::new(127, 10, 0, 1);
/// The default emulated RouterOS version (7.18+, so `!empty` is exercised).
pub const DEFAULT_VERSION: &str = "7.18.2 (stable)";
/// The default API user.
pub const DEFAULT_USER: &str = "admin";
/// The default API password.
pub const DEFAULT_PASSWORD: &str = "drover-sim";

/// A CA certificate and its private key, both PEM.
#[derive(Clone, Serialize, Deserialize)]
pub struct CaPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Everything a [`crate::Fleet`] needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// How many devices this fleet simulates.
    pub devices: usize,
    /// Address of global device 0. Addresses are consecutive, skipping last octets 0 and 255.
    pub base: Ipv4Addr,
    /// Global index of this fleet's first device (non-zero in multi-process workers).
    pub first_index: usize,
    /// API-SSL port on every device address (RouterOS default 8729).
    pub tls_port: u16,
    /// Plain API port (RouterOS default 8728), or `None` for TLS only.
    pub plain_port: Option<u16>,
    /// Seed of every per-device choice (model, rates, fault shares, legacy login share).
    pub seed: u64,
    /// The emulated RouterOS version string, e.g. `7.18.2 (stable)`. `!empty` is sent only
    /// when it is 7.18 or later.
    pub version: String,
    pub username: String,
    pub password: String,
    /// Share (0.0..=1.0) of devices, chosen from the seed, that use the legacy login flow.
    pub legacy_login_share: f64,
    /// How long a rebooting device refuses connections.
    pub reboot_delay: Duration,
    /// CA that signs the per-device leaf certificates; generated at start when `None`.
    pub ca: Option<CaPem>,
    /// Pick a random base in 127.64.0.0–127.250.255.255 and retry with another one when an
    /// address is already in use (for tests running in parallel processes).
    pub random_base: bool,
    /// Listen backlog of every device listener.
    pub backlog: u32,
    /// Board names (e.g. `CHR`, `hAP ax^3`) given to devices in turn; empty: chosen from the
    /// seed (40 % RB5009UG+S+, 25 % hAP ax^3, 20 % CCR2004-1G-12S+2XS, 15 % CHR).
    pub models: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            base: DEFAULT_BASE,
            first_index: 0,
            tls_port: 8729,
            plain_port: None,
            seed: 1,
            version: DEFAULT_VERSION.to_owned(),
            username: DEFAULT_USER.to_owned(),
            password: DEFAULT_PASSWORD.to_owned(),
            legacy_login_share: 0.0,
            reboot_delay: Duration::from_secs(5),
            ca: None,
            random_base: false,
            backlog: 128,
            models: Vec::new(),
        }
    }
}

impl SimConfig {
    /// A configuration for in-process tests: one device, plain port enabled, a random base
    /// address (retried on `AddrInUse`), a 300 ms reboot delay and a random seed.
    pub fn for_tests() -> Self {
        Self {
            plain_port: Some(8728),
            random_base: true,
            reboot_delay: Duration::from_millis(300),
            seed: rand::random(),
            ..Self::default()
        }
    }

    /// Address of the device with global index `global_index`.
    pub fn address_of(&self, global_index: usize) -> Ipv4Addr {
        device_address(self.base, global_index)
    }

    /// Whether the emulated version sends `!empty` (7.18 and later).
    pub fn sends_empty(&self) -> bool {
        version_at_least(&self.version, 7, 18)
    }
}

/// Number of usable addresses per /24 (last octet 1..=254).
const PER_BLOCK: u32 = 254;

/// The address `index` steps after `base`, skipping last octets 0 and 255. A base ending in
/// 0 or 255 is moved to the next usable address. Saturates at 127.255.255.254.
pub fn device_address(base: Ipv4Addr, index: usize) -> Ipv4Addr {
    let b = u32::from(base);
    let block = b >> 8;
    let last = b & 0xFF;
    let (block, slot) = match last {
        0 => (block, 0),
        255 => (block + 1, 0),
        n => (block, n - 1),
    };
    let linear = u64::from(block) * u64::from(PER_BLOCK) + u64::from(slot) + index as u64;
    let block = linear / u64::from(PER_BLOCK);
    let last = linear % u64::from(PER_BLOCK) + 1;
    let max_block = u64::from(u32::from(Ipv4Addr::new(127, 255, 255, 0)) >> 8);
    if block > max_block {
        return Ipv4Addr::new(127, 255, 255, 254);
    }
    Ipv4Addr::from(((block as u32) << 8) | last as u32)
}

/// Global index of `addr` relative to `base`, if `addr` is at or after `base`.
pub fn index_of_address(base: Ipv4Addr, addr: Ipv4Addr) -> Option<usize> {
    let slot = |a: Ipv4Addr| -> Option<u64> {
        let v = u32::from(a);
        let last = v & 0xFF;
        if last == 0 || last == 255 {
            return None;
        }
        Some(u64::from(v >> 8) * u64::from(PER_BLOCK) + u64::from(last - 1))
    };
    let start = slot(device_address(base, 0))?;
    let here = slot(addr)?;
    usize::try_from(here.checked_sub(start)?).ok()
}

/// Whether `version` (e.g. `7.18.2 (stable)`) is at least `major.minor`.
pub fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let number = version.split_whitespace().next().unwrap_or_default();
    let mut parts = number.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().unwrap_or(0)
    });
    let ma = parts.next().unwrap_or(0);
    let mi = parts.next().unwrap_or(0);
    (ma, mi) >= (major, minor)
}

/// SplitMix64 finalizer: a fast, well-mixed 64-bit hash step.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A reproducible hash of (seed, global device index, purpose).
pub(crate) fn device_hash(seed: u64, global_index: usize, purpose: u64) -> u64 {
    mix64(mix64(seed ^ mix64(purpose)) ^ global_index as u64)
}

/// A reproducible number in `[0, 1)` for (seed, device, purpose).
pub(crate) fn device_unit(seed: u64, global_index: usize, purpose: u64) -> f64 {
    (device_hash(seed, global_index, purpose) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the device falls in a seeded `share` of the fleet. The same seed always picks the
/// same devices, and a larger share picks a superset of a smaller one.
pub fn in_share(seed: u64, global_index: usize, share: f64, salt: u64) -> bool {
    share > 0.0 && device_unit(seed, global_index, 0x5AA2E ^ salt) < share
}

/// Parses a RouterOS-style duration (`5s`, `250ms`, `1m30s`, or bare seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    crate::format::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_zero_and_broadcast_octets() {
        let base = DEFAULT_BASE;
        assert_eq!(device_address(base, 0), Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(device_address(base, 253), Ipv4Addr::new(127, 10, 0, 254));
        assert_eq!(device_address(base, 254), Ipv4Addr::new(127, 10, 1, 1));
        assert_eq!(device_address(Ipv4Addr::new(127, 10, 0, 0), 0), base);
        for i in [0usize, 1, 253, 254, 99_999] {
            assert_eq!(index_of_address(base, device_address(base, i)), Some(i));
        }
        assert_eq!(index_of_address(base, Ipv4Addr::new(127, 9, 0, 1)), None);
        assert_eq!(
            device_address(base, 99_999),
            Ipv4Addr::new(127, 11, 137, 178)
        );
    }

    #[test]
    fn versions_compare() {
        assert!(version_at_least("7.18.2 (stable)", 7, 18));
        assert!(version_at_least("7.20rc1 (testing)", 7, 18));
        assert!(!version_at_least("7.16.1 (stable)", 7, 18));
        assert!(!version_at_least("6.49.17 (long-term)", 7, 18));
    }

    #[test]
    fn shares_are_reproducible_and_nested() {
        let small: Vec<usize> = (0..10_000).filter(|&i| in_share(7, i, 0.1, 0)).collect();
        let large: Vec<usize> = (0..10_000).filter(|&i| in_share(7, i, 0.3, 0)).collect();
        assert!((800..1200).contains(&small.len()), "{}", small.len());
        assert!(small.iter().all(|i| large.contains(i)));
        let again: Vec<usize> = (0..10_000).filter(|&i| in_share(7, i, 0.1, 0)).collect();
        assert_eq!(small, again);
    }
}
