//! GCRA (generic cell rate algorithm): one "theoretical arrival time" per key.
//!
//! Each request moves the arrival time forward by the emission interval `T = W / N`; a request is
//! allowed while the arrival time is at most `W − T` ahead of now. Guarantee: a burst of up to N at
//! once, then a steady N per W; it is the same as a token bucket of N tokens refilled one per T.
//! Because the bucket refills continuously, a W span can see up to 2N − 1 requests (a full burst,
//! then refills), so it is not "N in any W". One timestamp per key, one comparison, no timers.
//!
//! Times are kept in microseconds so that `T` stays exact enough for any `N` and `W`.
//! State: `w[0..2]` = theoretical arrival time in µs since the epoch.

use super::{Cell, Quota, Rule};

/// The emission interval `T`, the burst tolerance `tau`, now and the arrival time that applies
/// now (never earlier than now), all in µs.
fn times(rule: &Rule, cell: Cell, now_ms: u64) -> (u64, u64, u64, u64) {
    let window_us = rule.window_ms.saturating_mul(1000);
    let t = (window_us / u64::from(rule.limit)).max(1);
    let tau = window_us.saturating_sub(t);
    let now_us = now_ms.saturating_mul(1000);
    let stored = if super::cell_expired(&cell, now_ms) {
        0
    } else {
        cell.u64_at(0)
    };
    (t, tau, now_us, stored.max(now_us))
}

#[must_use]
pub fn check(rule: &Rule, cell: Cell, now_ms: u64) -> (Quota, Cell) {
    let (t, tau, now_us, tat) = times(rule, cell, now_ms);
    if tat > now_us.saturating_add(tau) {
        let wait = tat - tau - now_us;
        let quota = Quota {
            allowed: false,
            limit: rule.limit,
            remaining: 0,
            reset_ms: (tat - now_us).div_ceil(1000),
            retry_after_ms: wait.div_ceil(1000).max(1),
        };
        return (quota, cell);
    }
    let new_tat = tat.saturating_add(t);
    let room = (now_us.saturating_add(tau).saturating_add(t)).saturating_sub(new_tat) / t;
    let mut next = Cell::default();
    next.set_u64_at(0, new_tat);
    next.expires_s = super::ms_to_secs_ceil(new_tat.div_ceil(1000));
    let quota = Quota {
        allowed: true,
        limit: rule.limit,
        remaining: u32::try_from(room).unwrap_or(u32::MAX),
        reset_ms: (new_tat - now_us).div_ceil(1000),
        retry_after_ms: 0,
    };
    (quota, next)
}

/// Where the key stands at `now_ms`, nothing counted (see [`super::standing_cell`]): requests
/// fit while the arrival time, moved on by `T` for each, stays within `tau` of now.
#[must_use]
pub fn standing(rule: &Rule, cell: Cell, now_ms: u64) -> Quota {
    let (t, tau, now_us, tat) = times(rule, cell, now_ms);
    let reset_ms = (tat - now_us).div_ceil(1000);
    let limit_us = now_us.saturating_add(tau);
    if tat > limit_us {
        return Quota {
            allowed: false,
            limit: rule.limit,
            remaining: 0,
            reset_ms,
            retry_after_ms: (tat - limit_us).div_ceil(1000).max(1),
        };
    }
    let room = (limit_us - tat) / t + 1;
    Quota {
        allowed: true,
        limit: rule.limit,
        remaining: u32::try_from(room).unwrap_or(u32::MAX).min(rule.limit),
        reset_ms,
        retry_after_ms: 0,
    }
}
