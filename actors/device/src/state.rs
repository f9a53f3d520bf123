//! The device's connection and health state machine. Pure: no IO, no clocks, no actors.
//! The actor feeds it [`Input`]s and carries out the [`Effect`]s it returns.

use std::time::Duration;

use drover_model::DeviceStatus;

use crate::config::DevicePolicy;

/// Something that happened to the device or its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A session was opened and logged in.
    Connected,
    /// Connecting failed (unreachable, refused, TLS, timeout).
    ConnectFailed { reason: String },
    /// The device refused the credentials.
    LoginRejected { reason: String },
    /// An open session ended.
    SessionLost { reason: String },
    /// A poll completed; non-empty `warnings` mean the data was partly unusable.
    PollSucceeded { warnings: Vec<String> },
    /// A poll failed on an open session. `session_fatal` means the session is gone too.
    PollFailed { reason: String, session_fatal: bool },
    /// A poll slot passed without a session to poll on.
    PollMissed,
    /// The device's settings changed; `connection` when a new session is needed.
    SpecChanged { connection: bool },
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Publish a status change (happens once per transition).
    Status {
        from: DeviceStatus,
        to: DeviceStatus,
        reason: Option<String>,
    },
    /// Open a session after this delay (the actor adds jitter).
    Connect { after: Duration },
    /// Close the current session.
    Disconnect,
}

/// Connection and health state of one device.
#[derive(Debug, Clone)]
pub struct Machine {
    status: DeviceStatus,
    connected: bool,
    /// Consecutive poll slots missed or failed.
    missed: u32,
    /// Consecutive failed connects (reset by a successful poll, not by a login, so a device
    /// that accepts and then drops every session still backs off).
    connect_failures: u32,
    /// Why the current status holds (set with the status).
    reason: Option<String>,
    /// The latest connect or session error, used to explain missed polls.
    last_error: Option<String>,
    offline_after: u32,
    reconnect_first: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    auth_retry: Duration,
}

impl Machine {
    pub fn new(policy: &DevicePolicy) -> Self {
        Self {
            status: DeviceStatus::Connecting,
            connected: false,
            missed: 0,
            connect_failures: 0,
            reason: None,
            last_error: None,
            offline_after: policy.offline_after_misses.max(1),
            reconnect_first: policy.reconnect_first,
            backoff_base: policy.backoff_base,
            backoff_max: policy.backoff_max,
            auth_retry: policy.auth_retry,
        }
    }

    pub fn status(&self) -> DeviceStatus {
        self.status
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn missed_polls(&self) -> u32 {
        self.missed
    }

    /// The delay before connect attempt number `failures + 1`.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(20);
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }

    /// Advances the machine; returns what the actor must do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Connected => {
                self.connected = true;
                if self.status == DeviceStatus::AuthFailed {
                    self.set(DeviceStatus::Connecting, None, &mut effects);
                }
            }
            Input::ConnectFailed { reason } => {
                self.connected = false;
                self.connect_failures = self.connect_failures.saturating_add(1);
                self.last_error = Some(reason);
                effects.push(Effect::Connect {
                    after: self.backoff(self.connect_failures),
                });
            }
            Input::LoginRejected { reason } => {
                self.connected = false;
                self.set(DeviceStatus::AuthFailed, Some(reason), &mut effects);
                effects.push(Effect::Connect {
                    after: self.auth_retry,
                });
            }
            Input::SessionLost { reason } => {
                self.connected = false;
                self.last_error = Some(reason);
                let after = if self.connect_failures == 0 {
                    self.reconnect_first
                } else {
                    self.backoff(self.connect_failures)
                };
                self.connect_failures = self.connect_failures.saturating_add(1);
                effects.push(Effect::Connect { after });
            }
            Input::PollSucceeded { warnings } => {
                self.missed = 0;
                self.connect_failures = 0;
                if warnings.is_empty() {
                    self.set(DeviceStatus::Online, None, &mut effects);
                } else {
                    self.set(
                        DeviceStatus::Degraded,
                        Some(warnings.join("; ")),
                        &mut effects,
                    );
                }
            }
            Input::PollFailed {
                reason,
                session_fatal,
            } => {
                self.miss(reason.clone(), &mut effects);
                if session_fatal {
                    effects.push(Effect::Disconnect);
                    effects.extend(self.step(Input::SessionLost { reason }));
                }
            }
            Input::PollMissed => {
                let reason = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no session".to_owned());
                self.miss(reason, &mut effects);
            }
            Input::SpecChanged { connection } => {
                if connection {
                    self.connect_failures = 0;
                    if self.connected {
                        effects.push(Effect::Disconnect);
                    }
                    self.connected = false;
                    if self.status == DeviceStatus::AuthFailed {
                        self.set(DeviceStatus::Connecting, None, &mut effects);
                    }
                    effects.push(Effect::Connect {
                        after: Duration::ZERO,
                    });
                }
            }
        }
        effects
    }

    fn miss(&mut self, reason: String, effects: &mut Vec<Effect>) {
        self.missed = self.missed.saturating_add(1);
        if self.status == DeviceStatus::AuthFailed {
            return; // more specific than offline; it stays until the credentials work
        }
        if self.missed >= self.offline_after {
            let reason = format!("{} polls missed: {reason}", self.missed);
            self.set(DeviceStatus::Offline, Some(reason), effects);
        } else if self.status == DeviceStatus::Online {
            self.set(DeviceStatus::Degraded, Some(reason), effects);
        }
    }

    fn set(&mut self, to: DeviceStatus, reason: Option<String>, effects: &mut Vec<Effect>) {
        if self.status != to {
            effects.push(Effect::Status {
                from: self.status,
                to,
                reason: reason.clone(),
            });
            self.status = to;
        }
        self.reason = reason;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine::new(&DevicePolicy {
            offline_after_misses: 3,
            ..DevicePolicy::default()
        })
    }

    fn statuses(effects: &[Effect]) -> Vec<DeviceStatus> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Status { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    fn ok() -> Input {
        Input::PollSucceeded { warnings: vec![] }
    }

    #[test]
    fn online_is_announced_once_not_on_every_poll() {
        let mut m = machine();
        assert!(m.step(Input::Connected).is_empty());
        assert_eq!(statuses(&m.step(ok())), vec![DeviceStatus::Online]);
        for _ in 0..10 {
            assert!(m.step(ok()).is_empty());
        }
    }

    #[test]
    fn offline_after_the_configured_misses_and_only_once() {
        let mut m = machine();
        m.step(Input::Connected);
        m.step(ok());
        m.step(Input::SessionLost {
            reason: "reset".into(),
        });
        assert_eq!(
            statuses(&m.step(Input::PollMissed)),
            vec![DeviceStatus::Degraded]
        );
        assert!(statuses(&m.step(Input::PollMissed)).is_empty());
        assert_eq!(
            statuses(&m.step(Input::PollMissed)),
            vec![DeviceStatus::Offline]
        );
        assert!(m.reason().unwrap().starts_with("3 polls missed"));
        assert!(statuses(&m.step(Input::PollMissed)).is_empty());
        m.step(Input::Connected);
        assert_eq!(statuses(&m.step(ok())), vec![DeviceStatus::Online]);
    }

    #[test]
    fn connect_failures_back_off_exponentially_to_the_cap() {
        let mut m = machine();
        let delays: Vec<_> = (0..8)
            .map(|_| {
                m.step(Input::ConnectFailed {
                    reason: "refused".into(),
                })
            })
            .map(|e| match e.as_slice() {
                [Effect::Connect { after }] => after.as_secs(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn a_device_that_drops_every_session_still_backs_off() {
        let mut m = machine();
        let mut delays = Vec::new();
        for _ in 0..4 {
            m.step(Input::Connected);
            for e in m.step(Input::SessionLost {
                reason: "dropped".into(),
            }) {
                if let Effect::Connect { after } = e {
                    delays.push(after.as_secs());
                }
            }
        }
        assert_eq!(delays, vec![1, 30, 60, 120]);
    }

    #[test]
    fn rejected_login_retries_only_on_the_slow_period_and_stays_auth_failed() {
        let mut m = machine();
        let e = m.step(Input::LoginRejected {
            reason: "invalid user name or password (6)".into(),
        });
        assert_eq!(statuses(&e), vec![DeviceStatus::AuthFailed]);
        assert!(e.contains(&Effect::Connect {
            after: Duration::from_secs(900)
        }));
        for _ in 0..5 {
            assert!(
                statuses(&m.step(Input::PollMissed)).is_empty(),
                "not offline"
            );
        }
        // Fixing the credentials reconnects at once.
        let e = m.step(Input::SpecChanged { connection: true });
        assert_eq!(statuses(&e), vec![DeviceStatus::Connecting]);
        assert!(e.contains(&Effect::Connect {
            after: Duration::ZERO
        }));
    }

    #[test]
    fn warnings_degrade_and_clean_polls_recover() {
        let mut m = machine();
        m.step(Input::Connected);
        m.step(ok());
        let e = m.step(Input::PollSucceeded {
            warnings: vec!["cpu-load out of range: 900".into()],
        });
        assert_eq!(statuses(&e), vec![DeviceStatus::Degraded]);
        assert_eq!(statuses(&m.step(ok())), vec![DeviceStatus::Online]);
    }

    #[test]
    fn a_fatal_poll_failure_disconnects_and_reconnects() {
        let mut m = machine();
        m.step(Input::Connected);
        m.step(ok());
        let e = m.step(Input::PollFailed {
            reason: "connection lost".into(),
            session_fatal: true,
        });
        assert!(e.contains(&Effect::Disconnect));
        assert!(e.iter().any(|x| matches!(x, Effect::Connect { .. })));
        assert!(!m.is_connected());
    }
}
