//! Rate-limit algorithms, the clock they run on, and automatic banning.
//!
//! Each algorithm is a small state machine over a per-key state, written as pure functions so the
//! store backends (memory now; shared memory and Redis later) apply them the same way, and so each
//! is tested against a naive model of what it promises:
//!
//! | algorithm | guarantee | state per key | cost per check |
//! |---|---|---|---|
//! | [`Algorithm::SlidingWindow`] (default) | exact: at most N in any W seconds | 8 bytes per request in the window | O(1) amortised, O(log N) for the header values |
//! | [`Algorithm::FixedWindow`] | at most N per clock-aligned window; up to 2N across an edge | one counter | O(1) |
//! | [`Algorithm::SlidingWindowCounter`] | approximate: the previous window weighted by overlap | two counters | O(1) |
//! | [`Algorithm::Gcra`] | long-run rate N/W with bursts of N; up to 2N−1 in a W span | one timestamp | O(1) |
//!
//! No algorithm's cost grows with the number of past requests: the sliding window keeps at most N
//! timestamps and drops expired ones as it goes.
//!
//! Each algorithm also says where a key stands without counting anything (its `standing`,
//! [`standing_cell`]): what an operator reads, and what the next request would find.

pub mod clock;
pub mod fixed_window;
pub mod gcra;
pub mod monitor;
pub mod policy;
pub mod sliding_counter;
pub mod sliding_log;

pub use clock::Clock;

/// How a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    SlidingWindow,
    FixedWindow,
    SlidingWindowCounter,
    Gcra,
}

impl Algorithm {
    pub const NAMES: [&'static str; 4] = [
        "sliding_window",
        "fixed_window",
        "sliding_window_counter",
        "gcra",
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => Self::NAMES[0],
            Algorithm::FixedWindow => Self::NAMES[1],
            Algorithm::SlidingWindowCounter => Self::NAMES[2],
            Algorithm::Gcra => Self::NAMES[3],
        }
    }

    #[must_use]
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "sliding_window" | "sliding_log" | "moving_window" => Some(Algorithm::SlidingWindow),
            "fixed_window" => Some(Algorithm::FixedWindow),
            "sliding_window_counter" | "sliding_counter" => Some(Algorithm::SlidingWindowCounter),
            "gcra" => Some(Algorithm::Gcra),
            _ => None,
        }
    }

    /// Whether the state is a timestamp log (variable size) rather than a fixed [`Cell`].
    #[must_use]
    pub fn uses_log(self) -> bool {
        self == Algorithm::SlidingWindow
    }
}

/// One limit: at most `limit` requests per `window_ms`, counted by `algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub limit: u32,
    pub window_ms: u64,
    pub algorithm: Algorithm,
}

impl Rule {
    #[must_use]
    pub fn new(limit: u32, window_secs: u64, algorithm: Algorithm) -> Rule {
        Rule {
            limit: limit.max(1),
            window_ms: window_secs.max(1).saturating_mul(1000),
            algorithm,
        }
    }

    #[must_use]
    pub fn window_secs(&self) -> u64 {
        self.window_ms / 1000
    }
}

/// The state of one limit for one key after a check, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    /// Milliseconds until the quota is restored (the window resets or the oldest hit leaves it).
    pub reset_ms: u64,
    /// When refused: milliseconds until a request would be allowed.
    pub retry_after_ms: u64,
}

/// The fixed-size state of the counter algorithms (fixed window, sliding counter, GCRA): 16
/// bytes, so a tracked client costs a few dozen bytes in the memory store and fits a slot of
/// the shared-memory table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    pub w: [u32; 3],
    /// When the state is back to "never seen", in whole seconds since the Unix epoch (rounded
    /// up): the store may forget the key from then on.
    pub expires_s: u32,
}

impl Cell {
    pub(crate) fn u64_at(&self, i: usize) -> u64 {
        u64::from(self.w[i]) | (u64::from(self.w[i + 1]) << 32)
    }

    pub(crate) fn set_u64_at(&mut self, i: usize, v: u64) {
        self.w[i] = (v & 0xffff_ffff) as u32;
        self.w[i + 1] = (v >> 32) as u32;
    }
}

/// Milliseconds to whole seconds, rounded up, saturating at `u32::MAX`.
#[must_use]
pub fn ms_to_secs_ceil(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
}

/// Checks one hit against a fixed-size state. Pure: returns the quota and, when allowed, the
/// state to store.
#[must_use]
pub fn check_cell(rule: &Rule, cell: Cell, now_ms: u64) -> (Quota, Cell) {
    match rule.algorithm {
        Algorithm::FixedWindow => fixed_window::check(rule, cell, now_ms),
        Algorithm::SlidingWindowCounter => sliding_counter::check(rule, cell, now_ms),
        // A log rule handed a cell is a caller bug; GCRA is the safe reading of "N per W".
        Algorithm::Gcra | Algorithm::SlidingWindow => gcra::check(rule, cell, now_ms),
    }
}

/// Where a fixed-size state stands at `now_ms`, counting nothing: the quota read as before a
/// request rather than after one. `remaining` is how many requests would be admitted now (so
/// `limit - remaining` are used), `reset_ms` is when the quota grows again as the headers say
/// it (0 when nothing is used), and `retry_after_ms`, when nothing remains, the wait for one.
/// A request checked right after gets `allowed` as said here and one less `remaining`.
#[must_use]
pub fn standing_cell(rule: &Rule, cell: Cell, now_ms: u64) -> Quota {
    match rule.algorithm {
        Algorithm::FixedWindow => fixed_window::standing(rule, cell, now_ms),
        Algorithm::SlidingWindowCounter => sliding_counter::standing(rule, cell, now_ms),
        Algorithm::Gcra | Algorithm::SlidingWindow => gcra::standing(rule, cell, now_ms),
    }
}

/// Whether a cell's state has expired (the key may be forgotten).
#[must_use]
pub fn cell_expired(cell: &Cell, now_ms: u64) -> bool {
    u64::from(cell.expires_s) * 1000 <= now_ms
}
