//! A lock-free log-linear histogram of durations (microseconds, ~3 % relative error) whose
//! cumulative snapshots can be subtracted, so the parent computes percentiles of a window.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: the relative bucket width is 1/16 (±3 % around the middle).
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// Values below 16 µs have one bucket each; above, 16 per power of two up to 2^63.
pub(crate) const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// The bucket holding `v` microseconds.
pub(crate) fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + sub) as usize
}

/// The middle of bucket `i`, in microseconds.
pub(crate) fn bucket_mid(i: usize) -> f64 {
    let i = i as u64;
    if i < SUB {
        return i as f64;
    }
    let e = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let low = (SUB + sub) * width;
    low as f64 + width as f64 / 2.0
}

/// Concurrent recorder of values in microseconds.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    counts: Vec<AtomicU64>,
    /// Largest value since the last [`AtomicHistogram::take_max`].
    max: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    pub(crate) fn record_us(&self, v: u64) {
        if let Some(c) = self.counts.get(bucket_of(v)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub(crate) fn record_secs(&self, secs: f64) {
        let us = if secs.is_finite() && secs > 0.0 {
            (secs * 1e6) as u64
        } else {
            0
        };
        self.record_us(us);
    }

    /// The largest value since the previous call.
    pub(crate) fn take_max(&self) -> u64 {
        self.max.swap(0, Ordering::Relaxed)
    }

    /// Non-zero cumulative bucket counts as `(bucket, count)`.
    pub(crate) fn snapshot(&self) -> Vec<(u16, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16, n))
            })
            .collect()
    }
}

impl metrics::HistogramFn for AtomicHistogram {
    fn record(&self, value: f64) {
        self.record_secs(value);
    }
}

/// Dense counts, for arithmetic on snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts(pub Vec<u64>);

impl Counts {
    pub(crate) fn from_sparse(sparse: &[(u16, u64)]) -> Self {
        let mut v = vec![0; BUCKETS];
        for &(i, n) in sparse {
            if let Some(slot) = v.get_mut(usize::from(i)) {
                *slot = n;
            }
        }
        Self(v)
    }

    /// `self - earlier`, bucket by bucket.
    pub(crate) fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .zip(&earlier.0)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        )
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0..=1) in microseconds (bucket middle), or `None` when empty.
    pub(crate) fn quantile_us(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_mid(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in [
            0u64, 1, 15, 16, 17, 31, 32, 1000, 999_999, 1_000_000, 60_000_000,
        ] {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
            let mid = bucket_mid(b);
            assert!(
                (mid - v as f64).abs() <= (v as f64 / 16.0).max(1.0),
                "{v} -> {mid}"
            );
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_window() {
        let h = AtomicHistogram::default();
        for v in 1..=100u64 {
            h.record_us(v * 1000);
        }
        let before = Counts::from_sparse(&h.snapshot());
        for _ in 0..100 {
            h.record_us(5_000_000);
        }
        let after = Counts::from_sparse(&h.snapshot());
        let window = after.since(&before);
        assert_eq!(window.total(), 100);
        let p50 = window.quantile_us(0.5).unwrap();
        assert!((p50 - 5e6).abs() < 5e6 / 16.0);
        let all = after.quantile_us(0.25).unwrap();
        assert!((all - 50_000.0).abs() < 50_000.0 / 16.0 + 1000.0, "{all}");
        assert_eq!(h.take_max(), 5_000_000);
        assert_eq!(h.take_max(), 0);
    }
}
