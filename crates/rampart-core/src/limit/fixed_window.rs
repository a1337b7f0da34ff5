//! Fixed window: a counter per clock-aligned window (`now / W`).
//!
//! Guarantee: at most N requests in each aligned window, so up to 2N across a window edge. The
//! cheapest algorithm: one counter, one comparison. Windows are aligned to the Unix epoch, so
//! every process sharing a store agrees on where they start.
//!
//! State: `w[0]` = window number (low 32 bits), `w[1]` = count.

use super::{Cell, Quota, Rule};

/// The window counted in at `now_ms` and its count so far.
fn current(cell: Cell, now_ms: u64, w: u64) -> (u64, u32) {
    let id = now_ms / w;
    if super::cell_expired(&cell, now_ms) {
        return (id, 0);
    }
    let stored = u64::from(cell.w[0]);
    // The same window, or the clock stepped back into an earlier one: keep counting there.
    if (id & 0xffff_ffff) <= stored {
        ((id & !0xffff_ffff) | stored, cell.w[1])
    } else {
        (id, 0)
    }
}

#[must_use]
pub fn check(rule: &Rule, cell: Cell, now_ms: u64) -> (Quota, Cell) {
    let w = rule.window_ms;
    let (id, count) = current(cell, now_ms, w);
    let end = id.saturating_add(1).saturating_mul(w);
    let reset_ms = end.saturating_sub(now_ms);
    if count >= rule.limit {
        let quota = Quota {
            allowed: false,
            limit: rule.limit,
            remaining: 0,
            reset_ms,
            retry_after_ms: reset_ms,
        };
        return (quota, cell);
    }
    let count = count + 1;
    let next = Cell {
        w: [(id & 0xffff_ffff) as u32, count, 0],
        expires_s: super::ms_to_secs_ceil(end),
    };
    let quota = Quota {
        allowed: true,
        limit: rule.limit,
        remaining: rule.limit - count,
        reset_ms,
        retry_after_ms: 0,
    };
    (quota, next)
}

/// Where the key stands at `now_ms`, nothing counted (see [`super::standing_cell`]).
#[must_use]
pub fn standing(rule: &Rule, cell: Cell, now_ms: u64) -> Quota {
    let w = rule.window_ms;
    let (id, count) = current(cell, now_ms, w);
    let remaining = rule.limit.saturating_sub(count);
    let reset_ms = if count == 0 {
        0
    } else {
        id.saturating_add(1)
            .saturating_mul(w)
            .saturating_sub(now_ms)
    };
    Quota {
        allowed: remaining > 0,
        limit: rule.limit,
        remaining,
        reset_ms,
        retry_after_ms: if remaining == 0 { reset_ms } else { 0 },
    }
}
