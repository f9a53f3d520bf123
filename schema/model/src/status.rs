//! The externally visible status of a device, as events, the API and the store show it.

use serde::{Deserialize, Serialize};

/// Where a device stands. `Online` and `Offline` are what most operators watch; the others
/// say why a device is not polled normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Not yet reached since drover started supervising it.
    Connecting,
    /// Polled successfully on schedule.
    Online,
    /// Reachable, but the last poll(s) failed or returned unusable data.
    Degraded,
    /// Missed the configured number of polls in a row.
    Offline,
    /// The device rejected the credentials; retried only on the slow back-off.
    AuthFailed,
    /// Restarted too often; not supervised until an operator or a configuration change
    /// clears it.
    Quarantined,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Degraded => "degraded",
            Self::Offline => "offline",
            Self::AuthFailed => "auth_failed",
            Self::Quarantined => "quarantined",
        }
    }

    pub const ALL: [DeviceStatus; 6] = [
        Self::Connecting,
        Self::Online,
        Self::Degraded,
        Self::Offline,
        Self::AuthFailed,
        Self::Quarantined,
    ];
}

impl std::fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeviceStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.chars().take(40).collect()))
    }
}

/// A status name that is not one of [`DeviceStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown device status {:?}", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

#[cfg(test)]
mod parse_tests {
    use super::DeviceStatus;

    #[test]
    fn every_status_parses_from_its_name() {
        for s in DeviceStatus::ALL {
            assert_eq!(s.as_str().parse::<DeviceStatus>(), Ok(s));
        }
        assert!("Online".parse::<DeviceStatus>().is_err());
    }
}
