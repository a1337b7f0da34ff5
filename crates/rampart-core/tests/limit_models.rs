//! Property tests: every rate-limit algorithm against a naive reference model.
//!
//! Each property drives an algorithm and its model through the same random sequence of request
//! times — non-decreasing milliseconds with bursts at the same millisecond, gaps longer than the
//! window, and times exactly on window edges and on the moment the oldest admitted request leaves
//! the window — and asserts that they agree on every decision and on the quota they report.
//!
//! The models are written the obvious way (lists, per-window counts, a token bucket), without the
//! implementations' tricks (aligned ids in 32 bits, expiry stamps, a theoretical arrival time), so
//! an agreement means the tricks are right.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_core::limit::sliding_log::Log;
use rampart_core::limit::{check_cell, standing_cell, Algorithm, Cell, Quota, Rule};
use rampart_core::store::{Admission, Charge, Key, MemoryStore, Store, Subject};

// ---------------------------------------------------------------------------------------------
// Request times
// ---------------------------------------------------------------------------------------------

/// How far the next request comes after the previous one.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The same millisecond (a burst).
    Same,
    /// A few milliseconds later.
    Small(u64),
    /// This many thousandths of the window later (1..=999).
    Part(u64),
    /// Exactly one window later.
    Window,
    /// One window later, less a millisecond.
    WindowMinus1,
    /// At the start of the next clock-aligned window (`now / W + 1`) × W.
    NextEdge,
    /// A millisecond before the start of the next clock-aligned window.
    NextEdgeMinus1,
    /// The moment the oldest admitted request still in the window leaves it (`t + W`).
    OldestLeaves,
    /// A millisecond before that.
    OldestLeavesMinus1,
    /// `k` whole windows plus this many thousandths of one (a gap longer than the window).
    Long(u64, u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Same),
        4 => (1u64..=20).prop_map(Step::Small),
        4 => (1u64..1000).prop_map(Step::Part),
        1 => Just(Step::Window),
        1 => Just(Step::WindowMinus1),
        2 => Just(Step::NextEdge),
        1 => Just(Step::NextEdgeMinus1),
        2 => Just(Step::OldestLeaves),
        1 => Just(Step::OldestLeavesMinus1),
        1 => (1u64..=3, 0u64..1000).prop_map(|(k, part)| Step::Long(k, part)),
    ]
}

/// The time of the request after one at `now`; `admitted` are the admitted times so far (never
/// decreasing), `w` the window in ms. Never earlier than `now`.
fn next_time(now: u64, w: u64, step: Step, admitted: &[u64]) -> u64 {
    let oldest_in_window = || {
        let i = admitted.partition_point(|&t| t + w <= now);
        admitted.get(i).copied()
    };
    let next = match step {
        Step::Same => now,
        Step::Small(ms) => now + ms,
        Step::Part(per_mille) => now + w * per_mille / 1000,
        Step::Window => now + w,
        Step::WindowMinus1 => now + w - 1,
        Step::NextEdge => (now / w + 1) * w,
        Step::NextEdgeMinus1 => (now / w + 1) * w - 1,
        Step::OldestLeaves => oldest_in_window().map_or(now, |t| t + w),
        Step::OldestLeavesMinus1 => oldest_in_window().map_or(now, |t| t + w - 1),
        Step::Long(k, per_mille) => now + k * w + w * per_mille / 1000,
    };
    next.max(now)
}

/// One random run: a rule's limit and window, a start time and the steps between requests.
#[derive(Debug, Clone)]
struct Scenario {
    limit: u32,
    window_s: u64,
    start: u64,
    steps: Vec<Step>,
}

/// Start times: the epoch itself, early times, today's wall-clock range, and a few milliseconds
/// after a whole second (where the stores' whole-second expiry stamps fall).
fn start_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => 0u64..10_000_000,
        3 => 1_600_000_000_000u64..1_800_000_000_000,
        2 => (1_600_000_000u64..1_800_000_000, 0u64..3).prop_map(|(s, ms)| s * 1000 + ms),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1u32..=20,
        1u64..=30,
        start_time(),
        prop::collection::vec(step(), 1..200),
    )
        .prop_map(|(limit, window_s, start, steps)| Scenario {
            limit,
            window_s,
            start,
            steps,
        })
}

/// Sends the scenario's requests to `request`, which answers whether it admitted each. Returns
/// the admitted times.
fn drive(
    sc: &Scenario,
    w: u64,
    mut request: impl FnMut(u64) -> Result<bool, TestCaseError>,
) -> Result<Vec<u64>, TestCaseError> {
    let mut admitted = Vec::new();
    let mut now = sc.start;
    for &s in &sc.steps {
        now = next_time(now, w, s, &admitted);
        if request(now)? {
            admitted.push(now);
        }
    }
    Ok(admitted)
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// What a model says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    allowed: bool,
    /// Requests still allowed right now after this one (0 when refused).
    remaining: u32,
    /// When refused: ms until a request would be allowed with no other traffic.
    retry_after_ms: Option<u64>,
}

trait Model {
    /// The decision for a request at `now`, without counting it.
    fn decide(&self, now: u64) -> Expect;
    /// Counts an admitted request at `now`.
    fn record(&mut self, now: u64);
}

fn ms(rule: &Rule) -> u64 {
    rule.window_ms
}

/// Sliding window: every admitted time; a request at `now` is admitted while fewer than N
/// admitted times `t` have `now - t < W`.
struct SlidingModel {
    limit: u32,
    w: u64,
    admitted: Vec<u64>,
}

impl SlidingModel {
    fn new(rule: &Rule) -> Self {
        SlidingModel {
            limit: rule.limit,
            w: ms(rule),
            admitted: Vec::new(),
        }
    }

    fn in_window(&self, now: u64) -> impl Iterator<Item = u64> + '_ {
        let w = self.w;
        self.admitted.iter().copied().filter(move |&t| now - t < w)
    }

    fn count(&self, now: u64) -> u32 {
        u32::try_from(self.in_window(now).count()).expect("small count")
    }

    /// When the quota comes back: the oldest in-window time leaves, or a full window when empty.
    fn reset_ms(&self, now: u64) -> u64 {
        self.in_window(now)
            .min()
            .map_or(self.w, |t| t + self.w - now)
    }
}

impl Model for SlidingModel {
    fn decide(&self, now: u64) -> Expect {
        let count = self.count(now);
        if count < self.limit {
            Expect {
                allowed: true,
                remaining: self.limit - (count + 1),
                retry_after_ms: None,
            }
        } else {
            let oldest = self
                .in_window(now)
                .min()
                .expect("a full window has an oldest");
            Expect {
                allowed: false,
                remaining: 0,
                retry_after_ms: Some(oldest + self.w - now),
            }
        }
    }

    fn record(&mut self, now: u64) {
        self.admitted.push(now);
    }
}

/// Fixed window: admitted counts per window id `now / W`.
struct FixedModel {
    limit: u32,
    w: u64,
    counts: HashMap<u64, u32>,
}

impl FixedModel {
    fn new(rule: &Rule) -> Self {
        FixedModel {
            limit: rule.limit,
            w: ms(rule),
            counts: HashMap::new(),
        }
    }

    fn reset_ms(&self, now: u64) -> u64 {
        (now / self.w + 1) * self.w - now
    }
}

impl Model for FixedModel {
    fn decide(&self, now: u64) -> Expect {
        let count = self.counts.get(&(now / self.w)).copied().unwrap_or(0);
        if count < self.limit {
            Expect {
                allowed: true,
                remaining: self.limit - (count + 1),
                retry_after_ms: None,
            }
        } else {
            Expect {
                allowed: false,
                remaining: 0,
                retry_after_ms: Some(self.reset_ms(now)),
            }
        }
    }

    fn record(&mut self, now: u64) {
        *self.counts.entry(now / self.w).or_insert(0) += 1;
    }
}

/// GCRA's model: a token bucket in integer microseconds. A request costs `T = W_us / N` (integer
/// division, as the implementation computes it); the bucket holds `tau + T` with
/// `tau = W_us - T`, starts full and refills one µs per µs. With the same `T` the two are exactly
/// equivalent: the bucket's level is `tau + T - max(0, tat - now)`.
struct BucketModel {
    t: u64,
    capacity: u64,
    /// The level at `at_us`.
    level: u64,
    at_us: u64,
}

impl BucketModel {
    fn new(rule: &Rule) -> Self {
        let window_us = ms(rule) * 1000;
        let t = (window_us / u64::from(rule.limit)).max(1);
        let tau = window_us - t;
        BucketModel {
            t,
            capacity: tau + t,
            level: tau + t,
            at_us: 0,
        }
    }

    fn level_at(&self, now: u64) -> u64 {
        let now_us = now * 1000;
        (self.level + now_us.saturating_sub(self.at_us)).min(self.capacity)
    }
}

impl Model for BucketModel {
    fn decide(&self, now: u64) -> Expect {
        let level = self.level_at(now);
        if level >= self.t {
            Expect {
                allowed: true,
                remaining: u32::try_from((level - self.t) / self.t).expect("at most N"),
                retry_after_ms: None,
            }
        } else {
            Expect {
                allowed: false,
                remaining: 0,
                retry_after_ms: Some((self.t - level).div_ceil(1000).max(1)),
            }
        }
    }

    fn record(&mut self, now: u64) {
        self.level = self.level_at(now) - self.t;
        self.at_us = now * 1000;
    }
}

/// Sliding-window counter: admitted counts per aligned window. A request is admitted when
/// `prev × (W − elapsed) + (cur + 1) × W ≤ N × W`, `elapsed = now − window start` (at most W − 1).
struct CounterModel {
    limit: u64,
    w: u64,
    counts: HashMap<u64, u64>,
}

impl CounterModel {
    fn new(rule: &Rule) -> Self {
        CounterModel {
            limit: u64::from(rule.limit),
            w: ms(rule),
            counts: HashMap::new(),
        }
    }

    fn count(&self, id: u64) -> u64 {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// Whether `extra` more requests at `now` would all fit.
    fn fits(&self, now: u64, extra: u64) -> bool {
        let id = now / self.w;
        let elapsed = (now - id * self.w).min(self.w - 1);
        let prev = if id == 0 { 0 } else { self.count(id - 1) };
        let cur = self.count(id);
        prev * (self.w - elapsed) + (cur + extra) * self.w <= self.limit * self.w
    }
}

impl Model for CounterModel {
    fn decide(&self, now: u64) -> Expect {
        if self.fits(now, 1) {
            // Counted one at a time: how many more fit at this very instant.
            let mut more = 0;
            while self.fits(now, 2 + more) {
                more += 1;
            }
            Expect {
                allowed: true,
                remaining: u32::try_from(more).expect("at most N"),
                retry_after_ms: None,
            }
        } else {
            // With no more traffic the answer only goes from "no" to "yes" (the previous
            // window's weight shrinks; at the edge the current count becomes a weight below
            // its full value), and two windows on everything has left: search [1, 2W].
            let (mut lo, mut hi) = (1, 2 * self.w);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.fits(now + mid, 1) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            Expect {
                allowed: false,
                remaining: 0,
                retry_after_ms: Some(lo),
            }
        }
    }

    fn record(&mut self, now: u64) {
        *self.counts.entry(now / self.w).or_insert(0) += 1;
    }
}

fn model_for(rule: &Rule) -> Box<dyn Model> {
    match rule.algorithm {
        Algorithm::SlidingWindow => Box::new(SlidingModel::new(rule)),
        Algorithm::FixedWindow => Box::new(FixedModel::new(rule)),
        Algorithm::Gcra => Box::new(BucketModel::new(rule)),
        Algorithm::SlidingWindowCounter => Box::new(CounterModel::new(rule)),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Checks one counter algorithm (through `check_cell`) against its model, storing the returned
/// cell only when the request was allowed, as the stores do. `extra` runs after each request
/// with the cell before it, the time and the quota.
fn check_cells(
    sc: &Scenario,
    algorithm: Algorithm,
    mut extra: impl FnMut(&Rule, Cell, u64, &Quota) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let rule = Rule::new(sc.limit, sc.window_s, algorithm);
    let mut model = model_for(&rule);
    let mut cell = Cell::default();
    drive(sc, rule.window_ms, |now| {
        let want = model.decide(now);
        let (quota, next) = check_cell(&rule, cell, now);
        prop_assert_eq!(quota.allowed, want.allowed, "decision at {}", now);
        prop_assert_eq!(quota.limit, rule.limit);
        prop_assert_eq!(quota.remaining, want.remaining, "remaining at {}", now);
        if let Some(retry) = want.retry_after_ms {
            prop_assert_eq!(quota.retry_after_ms, retry, "retry_after_ms at {}", now);
        } else {
            prop_assert_eq!(quota.retry_after_ms, 0);
        }
        extra(&rule, cell, now, &quota)?;
        if quota.allowed {
            model.record(now);
            cell = next;
        } else {
            prop_assert_eq!(next, cell, "a refused request leaves the state alone");
        }
        Ok(quota.allowed)
    })?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The sliding log agrees with "at most N admitted times t with now − t < W", reports the
    /// remaining count and the moment the oldest leaves, and never lets N + 1 into a span of W.
    #[test]
    fn sliding_log_matches_model(sc in scenario()) {
        let rule = Rule::new(sc.limit, sc.window_s, Algorithm::SlidingWindow);
        let w = rule.window_ms;
        let mut model = SlidingModel::new(&rule);
        let mut log = Log::default();
        let admitted = drive(&sc, w, |now| {
            let want = model.decide(now);
            let reset = model.reset_ms(now);
            let quota = log.peek(&rule, now);
            prop_assert_eq!(quota.allowed, want.allowed, "decision at {}", now);
            prop_assert_eq!(quota.limit, rule.limit);
            prop_assert_eq!(quota.reset_ms, reset, "reset_ms at {}", now);
            prop_assert_eq!(log.len(), usize::try_from(model.count(now)).expect("small"));
            if quota.allowed {
                log.commit(&rule, now);
                model.record(now);
                prop_assert_eq!(quota.remaining, sc.limit - model.count(now));
                prop_assert_eq!(quota.retry_after_ms, 0);
            } else {
                prop_assert_eq!(quota.remaining, sc.limit - model.count(now));
                prop_assert_eq!(Some(quota.retry_after_ms), want.retry_after_ms);
                prop_assert!(quota.retry_after_ms >= 1);
            }
            prop_assert!(log.len() <= usize::try_from(sc.limit).expect("small"));
            Ok(quota.allowed)
        })?;
        // The guarantee itself: every half-open span [s, s + W) holds at most N admitted
        // requests. The fullest spans start at an admitted time, so those are the ones to check.
        for (i, &s) in admitted.iter().enumerate() {
            let inside = admitted[i..].iter().take_while(|&&t| t < s + w).count();
            prop_assert!(
                inside <= usize::try_from(sc.limit).expect("small"),
                "{} admitted in [{}, {})", inside, s, s + w
            );
        }
    }

    /// Fixed window: at most N per aligned window `now / W`, with the reset at the window's end.
    #[test]
    fn fixed_window_matches_model(sc in scenario()) {
        check_cells(&sc, Algorithm::FixedWindow, |rule, _, now, quota| {
            let w = rule.window_ms;
            prop_assert_eq!(quota.reset_ms, (now / w + 1) * w - now, "reset_ms at {}", now);
            Ok(())
        })?;
    }

    /// GCRA is a token bucket of `tau + T` µs, starting full, each request costing `T`.
    #[test]
    fn gcra_matches_token_bucket(sc in scenario()) {
        check_cells(&sc, Algorithm::Gcra, |rule, cell, now, quota| {
            if !quota.allowed {
                // The advertised wait is exact to the millisecond.
                let (later, _) = check_cell(rule, cell, now + quota.retry_after_ms);
                prop_assert!(later.allowed, "refused again at now + retry_after ({})", now);
                if quota.retry_after_ms > 1 {
                    let (sooner, _) = check_cell(rule, cell, now + quota.retry_after_ms - 1);
                    prop_assert!(!sooner.allowed, "allowed before retry_after ({})", now);
                }
            }
            Ok(())
        })?;
    }

    /// A bucket exactly N × T µs deep when N divides W_us, written as "N tokens": for these
    /// rules GCRA is the textbook N-per-W token bucket.
    #[test]
    fn gcra_matches_n_token_bucket_when_t_is_exact(
        sc in scenario().prop_flat_map(|sc| {
            let window_us = sc.window_s * 1_000_000;
            let divisors: Vec<u32> =
                (1..=20).filter(|&n| window_us % u64::from(n) == 0).collect();
            (Just(sc), prop::sample::select(divisors))
        }).prop_map(|(sc, limit)| Scenario { limit, ..sc })
    ) {
        let rule = Rule::new(sc.limit, sc.window_s, Algorithm::Gcra);
        let t = rule.window_ms * 1000 / u64::from(sc.limit);
        let n = u64::from(sc.limit);
        // Tokens in units of T/1000 ms, i.e. µs; full at N·T.
        let (mut level, mut at_us) = (n * t, 0u64);
        let mut cell = Cell::default();
        drive(&sc, rule.window_ms, |now| {
            let now_us = now * 1000;
            let refilled = (level + (now_us - at_us.min(now_us))).min(n * t);
            let (quota, next) = check_cell(&rule, cell, now);
            prop_assert_eq!(quota.allowed, refilled >= t, "decision at {}", now);
            if quota.allowed {
                level = refilled - t;
                at_us = now_us;
                cell = next;
                prop_assert_eq!(u64::from(quota.remaining), level / t);
            }
            Ok(quota.allowed)
        })?;
    }

    /// Sliding-window counter: the weighted count decides, `remaining` is how many more fit at
    /// this instant, and `retry_after_ms` is the exact wait with no other traffic.
    #[test]
    fn sliding_counter_matches_model(sc in scenario()) {
        check_cells(&sc, Algorithm::SlidingWindowCounter, |rule, cell, now, quota| {
            if !quota.allowed {
                let (later, _) = check_cell(rule, cell, now + quota.retry_after_ms);
                prop_assert!(later.allowed, "refused again at now + retry_after ({})", now);
                if quota.retry_after_ms > 1 {
                    let (sooner, _) = check_cell(rule, cell, now + quota.retry_after_ms - 1);
                    prop_assert!(!sooner.allowed, "allowed before retry_after ({})", now);
                }
            }
            Ok(())
        })?;
    }

    /// Reading where a key stands counts nothing and reads as before the next request: the
    /// model's decision and wait, one more remaining than the model leaves after it, and once
    /// the request is counted, what its check reported.
    #[test]
    fn standing_reads_as_before_the_next_request(
        sc in scenario(),
        algorithm in prop_oneof![
            Just(Algorithm::SlidingWindow),
            Just(Algorithm::FixedWindow),
            Just(Algorithm::SlidingWindowCounter),
            Just(Algorithm::Gcra),
        ],
    ) {
        let rule = Rule::new(sc.limit, sc.window_s, algorithm);
        let mut model = model_for(&rule);
        let (mut cell, mut log) = (Cell::default(), Log::default());
        let standing = |cell: Cell, log: &Log, now| {
            if algorithm.uses_log() {
                log.standing(&rule, now)
            } else {
                standing_cell(&rule, cell, now)
            }
        };
        prop_assert_eq!(standing(cell, &log, sc.start), Quota {
            allowed: true,
            limit: rule.limit,
            remaining: rule.limit,
            reset_ms: 0,
            retry_after_ms: 0,
        });
        drive(&sc, rule.window_ms, |now| {
            let want = model.decide(now);
            let before = standing(cell, &log, now);
            prop_assert_eq!(standing(cell, &log, now), before, "a read changes nothing");
            prop_assert_eq!(before.allowed, want.allowed, "decision at {}", now);
            prop_assert_eq!(before.limit, rule.limit);
            let left = if want.allowed { want.remaining + 1 } else { 0 };
            prop_assert_eq!(before.remaining, left, "remaining at {}", now);
            prop_assert_eq!(before.retry_after_ms, want.retry_after_ms.unwrap_or(0));
            let quota = if algorithm.uses_log() {
                let quota = log.peek(&rule, now);
                if quota.allowed {
                    log.commit(&rule, now);
                }
                quota
            } else {
                let (quota, next) = check_cell(&rule, cell, now);
                if quota.allowed {
                    cell = next;
                }
                quota
            };
            if quota.allowed {
                model.record(now);
                let after = standing(cell, &log, now);
                prop_assert_eq!(after.remaining, quota.remaining, "after the request at {}", now);
                prop_assert_eq!(after.reset_ms, quota.reset_ms, "reset after the request at {}", now);
            }
            Ok(quota.allowed)
        })?;
    }

    /// The memory store counts a request against all of a client's limits or none: it matches
    /// one model per limit where a request is recorded by all only when all admit.
    #[test]
    fn memory_store_is_all_or_nothing(
        sc in scenario(),
        rules in prop::collection::vec(
            (1u32..=20, 1u64..=30, prop_oneof![
                Just(Algorithm::SlidingWindow),
                Just(Algorithm::FixedWindow),
                Just(Algorithm::SlidingWindowCounter),
                Just(Algorithm::Gcra),
            ]),
            2..=3,
        ),
    ) {
        let store = MemoryStore::new(10_000);
        let who = Subject::ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        let charges: Vec<Charge> = rules
            .iter()
            .zip(1u32..)
            .map(|(&(limit, window_s, algorithm), id)| Charge {
                key: Key { rule: id, subject: who },
                rule: Rule::new(limit, window_s, algorithm),
            })
            .collect();
        let mut models: Vec<Box<dyn Model>> = charges.iter().map(|c| model_for(&c.rule)).collect();
        let mut quotas = Vec::new();
        let w = charges.iter().map(|c| c.rule.window_ms).min().expect("two or more");
        drive(&sc, w, |now| {
            let wants: Vec<Expect> = models.iter().map(|m| m.decide(now)).collect();
            let all = wants.iter().all(|e| e.allowed);
            let got = store.admit(now, Some(who), &charges, &mut quotas);
            prop_assert_eq!(quotas.len(), charges.len());
            for (i, (q, e)) in quotas.iter().zip(&wants).enumerate() {
                prop_assert_eq!(q.allowed, e.allowed, "charge {} at {}", i, now);
                prop_assert_eq!(q.limit, charges[i].rule.limit);
                if !e.allowed {
                    prop_assert_eq!(q.remaining, 0);
                } else if all {
                    prop_assert_eq!(q.remaining, e.remaining, "charge {} at {}", i, now);
                } else {
                    // Not counted: what was left before this request.
                    prop_assert_eq!(
                        q.remaining,
                        (e.remaining + 1).min(charges[i].rule.limit),
                        "uncounted charge {} at {}", i, now
                    );
                }
            }
            if all {
                prop_assert_eq!(got, Admission::Admitted, "at {}", now);
                for m in &mut models {
                    m.record(now);
                }
            } else {
                // A refusing limit with the longest wait is named (which one among equal waits
                // is not part of the contract).
                let longest = quotas
                    .iter()
                    .filter(|q| !q.allowed)
                    .map(|q| q.retry_after_ms)
                    .max()
                    .expect("one refused");
                let Admission::Limited { index } = got else {
                    return Err(TestCaseError::fail(format!("{got:?} at {now}, want Limited")));
                };
                prop_assert!(index < quotas.len());
                prop_assert!(!quotas[index].allowed, "index {} names an allowing limit", index);
                prop_assert_eq!(
                    quotas[index].retry_after_ms, longest, "index {} at {}", index, now
                );
            }
            Ok(all)
        })?;
    }
}

/// A sliding log's cost does not grow with history: it holds exactly the admitted times still in
/// the window, and once the window has passed a single check drops them all. (A correctness
/// check on the log's size, not a timing.)
#[test]
fn sliding_log_cost_does_not_grow_with_history() {
    const N: u64 = 200_000;
    let limit = 1_000_000_000u32;
    let rule = Rule::new(limit, 60, Algorithm::SlidingWindow);
    let start = 1_700_000_000_000u64;
    let mut log = Log::default();
    // Ten requests per millisecond: 200 000 requests over 20 s, all inside one 60 s window.
    for i in 0..N {
        let now = start + i / 10;
        let quota = log.peek(&rule, now);
        assert!(quota.allowed, "request {i} refused");
        let before = u32::try_from(i).expect("small");
        assert_eq!(quota.remaining, limit - before - 1);
        log.commit(&rule, now);
        assert_eq!(log.len(), usize::try_from(i + 1).expect("small"));
    }
    let last = start + (N - 1) / 10;
    let n = usize::try_from(N).expect("small");

    // Nothing has left a millisecond before the oldest does.
    let quota = log.peek(&rule, start + 60_000 - 1);
    assert_eq!(log.len(), n);
    assert_eq!(quota.reset_ms, 1);
    // Then exactly the ten requests of the first millisecond leave.
    let quota = log.peek(&rule, start + 60_000);
    assert_eq!(log.len(), n - 10);
    assert_eq!(quota.reset_ms, 1);

    // After the newest has left, one peek empties the log.
    let quota = log.peek(&rule, last + 60_000);
    assert!(log.is_empty(), "{} times left after the window", log.len());
    assert_eq!(log.len(), 0);
    assert!(quota.allowed);
    assert_eq!(quota.remaining, limit - 1);
    assert_eq!(quota.reset_ms, 60_000);
    assert_eq!(log.expires_ms(&rule), 0);

    // And with a small limit, a long history never makes the log longer than the limit.
    let rule = Rule::new(100, 1, Algorithm::SlidingWindow);
    let mut log = Log::default();
    let mut admitted = 0u64;
    for i in 0..N {
        let now = start + i / 4;
        if log.peek(&rule, now).allowed {
            log.commit(&rule, now);
            admitted += 1;
        }
        assert!(log.len() <= 100, "{} times held", log.len());
    }
    // 50 000 ms of traffic at 4 per ms: 100 admitted per 1 s window, 50 windows.
    assert_eq!(admitted, 50 * 100);
    assert!(log.heap_bytes() <= 2 * 100 * std::mem::size_of::<u64>());
}
