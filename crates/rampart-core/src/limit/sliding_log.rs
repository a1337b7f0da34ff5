//! Exact sliding window: the timestamps of the admitted requests still inside the window.
//!
//! Guarantee: at most N requests in any span of W (a request at `t` counts while `now − t < W`).
//! This is what both reference extensions promise. The log never holds more than N timestamps
//! and expired ones are dropped from the front as time passes, so a check costs O(1) amortised
//! however many requests came before — the log cannot grow with a client's history.
//!
//! Memory: 8 bytes per request currently in the window (allocated as the client uses them).

use std::collections::VecDeque;

use super::{Quota, Rule};

/// The admitted timestamps (ms) of one key, oldest first, never decreasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    times: VecDeque<u64>,
}

impl Log {
    /// Drops the timestamps that left the window.
    pub fn prune(&mut self, rule: &Rule, now_ms: u64) {
        while self
            .times
            .front()
            .is_some_and(|&t| t.saturating_add(rule.window_ms) <= now_ms)
        {
            self.times.pop_front();
        }
    }

    /// Whether one more request fits now, and the quota it would leave. Expired timestamps are
    /// dropped; nothing is recorded (see [`Log::commit`]).
    pub fn peek(&mut self, rule: &Rule, now_ms: u64) -> Quota {
        self.prune(rule, now_ms);
        let len = u32::try_from(self.times.len()).unwrap_or(u32::MAX);
        quota(rule, len, self.times.front().copied(), now_ms)
    }

    /// Where the log stands at `now_ms`, nothing counted and nothing dropped (see
    /// [`standing`]).
    #[must_use]
    pub fn standing(&self, rule: &Rule, now_ms: u64) -> Quota {
        let first = self
            .times
            .partition_point(|&t| t.saturating_add(rule.window_ms) <= now_ms);
        let len = u32::try_from(self.times.len() - first).unwrap_or(u32::MAX);
        standing(rule, len, self.times.get(first).copied(), now_ms)
    }

    /// Records an admitted request (after a [`Log::peek`] that allowed it).
    pub fn commit(&mut self, rule: &Rule, now_ms: u64) {
        let t = self.times.back().map_or(now_ms, |&last| last.max(now_ms));
        let limit = usize::try_from(rule.limit).unwrap_or(usize::MAX);
        if self.times.len() == self.times.capacity() {
            // Grow by doubling, but never past the limit: a client costs what it uses.
            let want = self
                .times
                .len()
                .max(2)
                .min(limit.saturating_sub(self.times.len()));
            self.times.reserve_exact(want.max(1));
        }
        self.times.push_back(t);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.times.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// When the newest timestamp leaves the window (ms since the epoch): the log is empty then.
    #[must_use]
    pub fn expires_ms(&self, rule: &Rule) -> u64 {
        self.times
            .back()
            .map_or(0, |&t| t.saturating_add(rule.window_ms))
    }

    /// Removes every timestamp (used when a strike count turns into a ban).
    pub fn clear(&mut self) {
        self.times = VecDeque::new();
    }

    /// Heap bytes held by the timestamps.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.times.capacity() * std::mem::size_of::<u64>()
    }
}

/// Whether one more request fits a log holding `len` live timestamps, the oldest at `oldest`,
/// and the quota it would leave (shared with stores that keep the log elsewhere).
#[must_use]
pub fn quota(rule: &Rule, len: u32, oldest: Option<u64>, now_ms: u64) -> Quota {
    let oldest_leaves = oldest.map_or(rule.window_ms, |t| {
        t.saturating_add(rule.window_ms).saturating_sub(now_ms)
    });
    if len >= rule.limit {
        return Quota {
            allowed: false,
            limit: rule.limit,
            remaining: 0,
            reset_ms: oldest_leaves,
            retry_after_ms: oldest_leaves.max(1),
        };
    }
    Quota {
        allowed: true,
        limit: rule.limit,
        remaining: rule.limit - len - 1,
        reset_ms: oldest_leaves,
        retry_after_ms: 0,
    }
}

/// Where a log holding `len` live timestamps, the oldest at `oldest`, stands at `now_ms`,
/// nothing counted: the quota read as before a request (see
/// [`super::standing_cell`]); `reset_ms` is when the oldest leaves, 0 for an empty log.
#[must_use]
pub fn standing(rule: &Rule, len: u32, oldest: Option<u64>, now_ms: u64) -> Quota {
    let remaining = rule.limit.saturating_sub(len);
    let reset_ms = oldest.map_or(0, |t| {
        t.saturating_add(rule.window_ms).saturating_sub(now_ms)
    });
    Quota {
        allowed: remaining > 0,
        limit: rule.limit,
        remaining,
        reset_ms,
        retry_after_ms: if remaining == 0 { reset_ms.max(1) } else { 0 },
    }
}
