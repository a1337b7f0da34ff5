//! Live counters of one engine (one process): what `rampart.stats` reports.
//!
//! The allow path pays one relaxed atomic add for the request count and one for the timing
//! bucket; blocks and detections (rare) take a short lock to count by reason or category.
//! Inspection times go into log-spaced buckets (four per power of two), from which the
//! percentiles are read with a bucket's precision (±9 %).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Buckets: 4 per power of two of nanoseconds, up to 2^40 ns (18 minutes).
const SUB: usize = 4;
const BUCKETS: usize = 41 * SUB;

#[derive(Debug)]
pub struct Stats {
    requests: AtomicU64,
    timings: Box<[AtomicU64]>,
    blocked: Mutex<BTreeMap<Cow<'static, str>, u64>>,
    detections: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            timings: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            blocked: Mutex::new(BTreeMap::new()),
            detections: Mutex::new(BTreeMap::new()),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    /// Refused requests by event action (`ip_blacklisted`, `rate_limited`, …, and the
    /// adapter's own: `custom_request_check`, …).
    pub blocked: BTreeMap<Cow<'static, str>, u64>,
    /// Requests with an attack, by category (`sqli`, `xss`, …).
    pub detections: BTreeMap<&'static str, u64>,
    /// Engine calls timed.
    pub timed: u64,
    /// Median and 99th percentile of the engine's time per call, in nanoseconds.
    pub p50_ns: u64,
    pub p99_ns: u64,
}

fn bucket(ns: u64) -> usize {
    if ns < 2 {
        return 0;
    }
    let log = 63 - ns.leading_zeros() as usize;
    // The two bits below the leading one pick the sub-bucket.
    let sub = if log >= 2 {
        usize::try_from((ns >> (log - 2)) & 3).unwrap_or(0)
    } else {
        0
    };
    (log * SUB + sub).min(BUCKETS - 1)
}

/// The upper bound of a bucket, in nanoseconds.
fn bucket_ceiling(i: usize) -> u64 {
    let (log, sub) = (i / SUB, i % SUB);
    if log < 2 {
        return 1u64 << (log + 1);
    }
    let base = 1u64 << log;
    base + (base >> 2) * (sub as u64 + 1)
}

impl Stats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn timed(&self, ns: u64) {
        if let Some(b) = self.timings.get(bucket(ns)) {
            b.fetch_add(1, Relaxed);
        }
    }

    /// Counts a refused request under its event action (the engine's own actions are static
    /// names; the adapter's come as strings).
    pub fn blocked(&self, action: impl Into<Cow<'static, str>>) {
        if let Ok(mut m) = self.blocked.lock() {
            *m.entry(action.into()).or_default() += 1;
        }
    }

    pub fn detected(&self, category: &'static str) {
        if let Ok(mut m) = self.detections.lock() {
            *m.entry(category).or_default() += 1;
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let counts: Vec<u64> = self.timings.iter().map(|b| b.load(Relaxed)).collect();
        let timed: u64 = counts.iter().sum();
        let percentile = |p: u64| {
            if timed == 0 {
                return 0;
            }
            let rank = (timed * p).div_ceil(100).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_ceiling(i);
                }
            }
            bucket_ceiling(BUCKETS - 1)
        };
        Snapshot {
            requests: self.requests.load(Relaxed),
            blocked: self.blocked.lock().map(|m| m.clone()).unwrap_or_default(),
            detections: self
                .detections
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            timed,
            p50_ns: percentile(50),
            p99_ns: percentile(99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for ns in [1u64, 2, 3, 5, 7, 100, 999, 1000, 1_500, 65_536, 10_000_000] {
            let ceiling = bucket_ceiling(bucket(ns));
            assert!(ceiling >= ns, "{ns} over {ceiling}");
            assert!(ceiling <= ns + ns / 4 + 2, "{ns}: {ceiling} too loose");
        }
    }

    #[test]
    fn percentiles_and_counts() {
        let s = Stats::default();
        for _ in 0..98 {
            s.timed(1_000);
        }
        s.timed(50_000);
        s.timed(60_000);
        s.request();
        s.blocked("rate_limited");
        s.blocked("rate_limited");
        s.blocked(String::from("custom_request_check"));
        s.detected("sqli");
        let snap = s.snapshot();
        assert_eq!(snap.timed, 100);
        assert!((1_000..=1_250).contains(&snap.p50_ns), "{}", snap.p50_ns);
        assert!((50_000..=62_500).contains(&snap.p99_ns), "{}", snap.p99_ns);
        assert_eq!(snap.blocked.get("rate_limited"), Some(&2));
        assert_eq!(snap.blocked.get("custom_request_check"), Some(&1));
        assert_eq!(snap.detections.get("sqli"), Some(&1));
        assert_eq!(snap.requests, 1);
    }
}
