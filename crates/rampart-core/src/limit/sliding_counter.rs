//! Sliding-window counter: the current window's count plus the previous window's, weighted by how
//! much of it still overlaps the last W seconds.
//!
//! Guarantee: approximate. It assumes the previous window's requests were spread evenly; a burst
//! at the end of the previous window is under-counted, so up to about 2N can pass in the worst
//! W span, but steady traffic is held close to N per W. Two counters per key, O(1).
//!
//! A request is allowed when `prev × (W − elapsed) / W + cur + 1 ≤ N`, computed exactly in
//! integers. State: `w[0]` = window number (low 32 bits), `w[1]` = previous count, `w[2]` = current.

use super::{Cell, Quota, Rule};

/// The counts that apply at `now`: `(window number, previous, current)`.
fn counts(cell: Cell, now_ms: u64, w: u64) -> (u64, u64, u64) {
    let id = now_ms / w;
    if super::cell_expired(&cell, now_ms) {
        return (id, 0, 0);
    }
    let low = id & 0xffff_ffff;
    let stored = u64::from(cell.w[0]);
    let base = id & !0xffff_ffff;
    let (prev, cur) = (u64::from(cell.w[1]), u64::from(cell.w[2]));
    if low <= stored {
        // The same window, or the clock stepped back: stay in the stored one.
        (base | stored, prev, cur)
    } else if low == stored + 1 {
        (id, cur, 0)
    } else {
        (id, 0, 0)
    }
}

/// Whether one more request fits at `elapsed` ms into a window with these counts.
fn fits(prev: u64, cur: u64, elapsed: u64, w: u64, limit: u64) -> bool {
    let weighted = u128::from(prev) * u128::from(w - elapsed) + u128::from(cur + 1) * u128::from(w);
    weighted <= u128::from(limit) * u128::from(w)
}

#[must_use]
pub fn check(rule: &Rule, cell: Cell, now_ms: u64) -> (Quota, Cell) {
    let w = rule.window_ms;
    let limit = u64::from(rule.limit);
    let (id, prev, cur) = counts(cell, now_ms, w);
    let start = id.saturating_mul(w);
    let elapsed = now_ms.saturating_sub(start).min(w - 1);
    let end = start.saturating_add(w);
    let reset_ms = end.saturating_sub(now_ms);
    if !fits(prev, cur, elapsed, w, limit) {
        let quota = Quota {
            allowed: false,
            limit: rule.limit,
            remaining: 0,
            reset_ms,
            retry_after_ms: retry_after(prev, cur, elapsed, w, limit).max(1),
        };
        return (quota, cell);
    }
    let cur = cur + 1;
    let used = u128::from(prev) * u128::from(w - elapsed) + u128::from(cur) * u128::from(w);
    let room = (u128::from(limit) * u128::from(w)).saturating_sub(used) / u128::from(w);
    let next = Cell {
        w: [
            (id & 0xffff_ffff) as u32,
            u32::try_from(prev).unwrap_or(u32::MAX),
            u32::try_from(cur).unwrap_or(u32::MAX),
        ],
        expires_s: super::ms_to_secs_ceil(end.saturating_add(w)),
    };
    let quota = Quota {
        allowed: true,
        limit: rule.limit,
        remaining: u32::try_from(room).unwrap_or(u32::MAX),
        reset_ms,
        retry_after_ms: 0,
    };
    (quota, next)
}

/// Where the key stands at `now_ms`, nothing counted (see [`super::standing_cell`]): the
/// requests that fit under the weighted count, which is rounded up into `limit - remaining`.
#[must_use]
pub fn standing(rule: &Rule, cell: Cell, now_ms: u64) -> Quota {
    let w = rule.window_ms;
    let limit = u64::from(rule.limit);
    let (id, prev, cur) = counts(cell, now_ms, w);
    let start = id.saturating_mul(w);
    let elapsed = now_ms.saturating_sub(start).min(w - 1);
    let used = u128::from(prev) * u128::from(w - elapsed) + u128::from(cur) * u128::from(w);
    let room = (u128::from(limit) * u128::from(w)).saturating_sub(used) / u128::from(w);
    let remaining = u32::try_from(room).unwrap_or(u32::MAX);
    let reset_ms = if used == 0 {
        0
    } else {
        start.saturating_add(w).saturating_sub(now_ms)
    };
    Quota {
        allowed: remaining > 0,
        limit: rule.limit,
        remaining,
        reset_ms,
        retry_after_ms: if remaining == 0 {
            retry_after(prev, cur, elapsed, w, limit).max(1)
        } else {
            0
        },
    }
}

/// Milliseconds until one more request fits, if nothing else arrives meanwhile.
fn retry_after(prev: u64, cur: u64, elapsed: u64, w: u64, limit: u64) -> u64 {
    // Later in this window: the previous window's weight shrinks as time passes.
    if cur < limit && prev > 0 {
        // Smallest e with prev·(w − e) ≤ (limit − cur − 1)·w.
        let allowed = u128::from(limit - cur - 1) * u128::from(w);
        let need = u128::from(prev) * u128::from(w);
        let shrink = need.saturating_sub(allowed).div_ceil(u128::from(prev));
        let e = u64::try_from(shrink).unwrap_or(u64::MAX);
        if e < w {
            return e.saturating_sub(elapsed);
        }
    }
    // In the next window the current count becomes the weighted one.
    let to_next = w - elapsed;
    if cur == 0 {
        return to_next;
    }
    let allowed = u128::from(limit.saturating_sub(1)) * u128::from(w);
    let need = u128::from(cur) * u128::from(w);
    let shrink = need.saturating_sub(allowed).div_ceil(u128::from(cur));
    to_next + u64::try_from(shrink).unwrap_or(u64::MAX).min(w)
}
