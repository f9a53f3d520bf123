//! Restart bookkeeping for supervised device actors: exponential back-off between restarts
//! and a limit within a window, past which the device is quarantined. Pure; no clocks inside.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a supervisor restarts its children.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubles with each restart still in the window.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Most restarts within `window` before the device is quarantined.
    pub max_restarts: usize,
    pub window: Duration,
    /// A handler running longer than this is considered stuck and the actor is killed.
    pub stuck_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_restarts: 5,
            window: Duration::from_secs(600),
            stuck_after: Duration::from_secs(60),
        }
    }
}

/// What to do after a child died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    RestartAfter(Duration),
    Quarantine { restarts: usize, window: Duration },
}

/// Restart times of one child within the policy's window.
#[derive(Debug, Clone, Default)]
pub struct RestartTracker {
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// Records a death at `now` and decides.
    pub fn on_death(&mut self, now: Instant, policy: &RestartPolicy) -> RestartDecision {
        while let Some(&t) = self.recent.front() {
            if now.duration_since(t) > policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= policy.max_restarts {
            return RestartDecision::Quarantine {
                restarts: self.recent.len(),
                window: policy.window,
            };
        }
        let doublings = self.recent.len().min(16) as u32;
        self.recent.push_back(now);
        RestartDecision::RestartAfter(
            policy
                .backoff_base
                .saturating_mul(1 << doublings)
                .min(policy.backoff_max),
        )
    }

    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_quarantines_within_the_window() {
        let policy = RestartPolicy::default();
        let mut t = RestartTracker::default();
        let start = Instant::now();
        let decisions: Vec<_> = (0..6)
            .map(|i| t.on_death(start + Duration::from_secs(i), &policy))
            .collect();
        assert_eq!(
            decisions[..5],
            [1, 2, 4, 8, 16].map(|s| RestartDecision::RestartAfter(Duration::from_secs(s)))
        );
        assert!(matches!(
            decisions[5],
            RestartDecision::Quarantine { restarts: 5, .. }
        ));
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let policy = RestartPolicy::default();
        let mut t = RestartTracker::default();
        let start = Instant::now();
        for i in 0..5 {
            t.on_death(start + Duration::from_secs(i), &policy);
        }
        let later = start + policy.window + Duration::from_secs(10);
        assert_eq!(
            t.on_death(later, &policy),
            RestartDecision::RestartAfter(Duration::from_secs(1))
        );
    }
}
