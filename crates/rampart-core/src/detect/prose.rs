//! The prose gate: the rules that can match prose, specialised to prose.
//!
//! Most values honest users send are prose (see [`super::is_prose`]): lower-case letters, digits,
//! spaces, line breaks, `,.;!?-` and non-ASCII bytes once normalised. On such a text, no part of a
//! rule that needs another byte (a quote, a parenthesis, `=`, `/`, …) can take part in a match. So
//! each rule is rewritten with every character class narrowed to the prose alphabet, every literal
//! outside it removed, and every branch that can then no longer match dropped. On prose the
//! rewritten rules match exactly when the originals do (a match only ever consumes bytes of the
//! text, and look-arounds such as `\b` are kept as they are), and the automaton is smaller.
//!
//! The prose values of a request are matched together: lower-cased into one batch, each followed
//! by [`BARRIER`], and walked by one lazy DFA in [`LANES`] lanes in lock step. The gate answers
//! "does any value match?" and, in the rare case it does, which values; the full rules then say
//! which rules, value by value.

use regex_automata::nfa::thompson;
use regex_automata::util::look::LookMatcher;
use regex_automata::util::pool::Pool;
use regex_automata::util::start;
use regex_automata::{hybrid, meta, Anchored, Input};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, HirKind, Look, Repetition};

/// The bytes normalised prose is made of. Normalisation lower-cases ASCII, so no `A-Z`.
fn alphabet() -> ClassBytes {
    ClassBytes::new([
        ClassBytesRange::new(b'\n', b'\n'),
        ClassBytesRange::new(b' ', b' '),
        ClassBytesRange::new(b'!', b'!'),
        ClassBytesRange::new(b',', b'.'),
        ClassBytesRange::new(b'0', b'9'),
        ClassBytesRange::new(b';', b';'),
        ClassBytesRange::new(b'?', b'?'),
        ClassBytesRange::new(b'a', b'z'),
        ClassBytesRange::new(0x80, 0xff),
    ])
}

/// Whether `b` is in [`alphabet`]: a prose byte that normalisation leaves (no `A-Z`).
fn in_alphabet(b: u8) -> bool {
    super::is_prose(&[b]) && !b.is_ascii_uppercase()
}

fn never_matches(h: &Hir) -> bool {
    h.properties().minimum_len().is_none()
}

/// `h` narrowed to `alpha`: equal to `h` on texts made only of `alpha`'s bytes.
fn narrow(h: &Hir, alpha: &ClassBytes) -> Hir {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => h.clone(),
        HirKind::Literal(lit) => {
            if lit.0.iter().all(|&b| {
                alpha
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= b && b <= r.end())
            }) {
                h.clone()
            } else {
                Hir::fail()
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut c = c.clone();
            c.intersect(alpha);
            if c.ranges().is_empty() {
                Hir::fail()
            } else {
                Hir::class(Class::Bytes(c))
            }
        }
        // Not produced with Unicode off; kept whole, which is always equal on any text.
        HirKind::Class(Class::Unicode(_)) => h.clone(),
        HirKind::Repetition(rep) => {
            let sub = narrow(&rep.sub, alpha);
            if never_matches(&sub) {
                return if rep.min == 0 {
                    Hir::empty()
                } else {
                    Hir::fail()
                };
            }
            Hir::repetition(Repetition {
                min: rep.min,
                max: rep.max,
                greedy: rep.greedy,
                sub: Box::new(sub),
            })
        }
        // Groups do not matter to "does it match".
        HirKind::Capture(cap) => narrow(&cap.sub, alpha),
        HirKind::Concat(subs) => {
            let mut out = Vec::with_capacity(subs.len());
            for s in subs {
                let n = narrow(s, alpha);
                if never_matches(&n) {
                    return Hir::fail();
                }
                out.push(n);
            }
            Hir::concat(out)
        }
        HirKind::Alternation(subs) => {
            let out: Vec<Hir> = subs
                .iter()
                .map(|s| narrow(s, alpha))
                .filter(|n| !never_matches(n))
                .collect();
            if out.is_empty() {
                Hir::fail()
            } else {
                Hir::alternation(out)
            }
        }
    }
}

/// Separates the values of a batch. Outside the prose alphabet, so no narrowed rule consumes it
/// and no match spans two values; not a word byte, so `\b` sees it as it sees a value's edge.
/// The gate's automata take it as their line terminator, and the rules' start and end anchors
/// become line anchors: each value of a batch is one line.
pub const BARRIER: u8 = 0;

/// `h` with its start and end anchors (`^`, `$`, `\A`, `\z`) turned into line anchors (see
/// [`BARRIER`]). `None` if `h` already has line anchors, whose meaning that would change.
fn batch_edges(h: &Hir) -> Option<Hir> {
    Some(match h.kind() {
        HirKind::Look(Look::Start) => Hir::look(Look::StartLF),
        HirKind::Look(Look::End) => Hir::look(Look::EndLF),
        HirKind::Look(Look::StartLF | Look::EndLF | Look::StartCRLF | Look::EndCRLF) => {
            return None
        }
        HirKind::Empty | HirKind::Look(_) | HirKind::Literal(_) | HirKind::Class(_) => h.clone(),
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            min: rep.min,
            max: rep.max,
            greedy: rep.greedy,
            sub: Box::new(batch_edges(&rep.sub)?),
        }),
        HirKind::Capture(cap) => batch_edges(&cap.sub)?,
        HirKind::Concat(subs) => {
            Hir::concat(subs.iter().map(batch_edges).collect::<Option<Vec<_>>>()?)
        }
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(batch_edges).collect::<Option<Vec<_>>>()?)
        }
    })
}

/// Lanes of a batch walked in lock step: a DFA step waits on the previous one, so one lane
/// leaves the processor idle most of the time; independent walks keep it busy. Measured on a
/// 10 KB JSON body: three lanes 3 % faster than four, two 8 % slower.
const LANES: usize = 3;

/// Batches shorter than this are walked in one lane.
const SHORT_BATCH: usize = 128;

type CachePool = Pool<hybrid::dfa::Cache, Box<dyn Fn() -> hybrid::dfa::Cache + Send + Sync>>;

/// The prose rules, narrowed to prose, as one automaton that also takes a batch of values.
pub struct ProseGate {
    /// For single values, and for a batch the lanes could not finish.
    regex: Option<meta::Regex>,
    /// The same rules as a lazy DFA, for batches.
    dfa: Option<(hybrid::dfa::DFA, CachePool)>,
}

impl std::fmt::Debug for ProseGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProseGate").finish_non_exhaustive()
    }
}

impl ProseGate {
    /// Builds the gate for `patterns` (compiled as the detector compiles them: bytes, no Unicode
    /// classes, case-insensitive).
    ///
    /// # Errors
    /// A pattern that does not parse or an automaton over the size limit.
    pub fn new<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
        nfa_size: usize,
        cache: usize,
    ) -> Result<ProseGate, String> {
        let alpha = alphabet();
        let mut hirs = Vec::new();
        for p in patterns {
            let hir = regex_syntax::ParserBuilder::new()
                .unicode(false)
                .utf8(false)
                .case_insensitive(true)
                .build()
                .parse(p)
                .map_err(|e| e.to_string())?;
            let n = narrow(&hir, &alpha);
            if !never_matches(&n) {
                hirs.push(batch_edges(&n).ok_or_else(|| {
                    format!("{p}: multi-line anchors are not supported in built-in rules")
                })?);
            }
        }
        if hirs.is_empty() {
            return Ok(ProseGate {
                regex: None,
                dfa: None,
            });
        }
        let regex = meta::Builder::new()
            .configure(
                meta::Config::new()
                    .line_terminator(BARRIER)
                    .utf8_empty(false)
                    .nfa_size_limit(Some(nfa_size))
                    .hybrid_cache_capacity(cache),
            )
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())?;
        let mut look_matcher = LookMatcher::new();
        look_matcher.set_line_terminator(BARRIER);
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .look_matcher(look_matcher)
                    .utf8(false)
                    .nfa_size_limit(Some(nfa_size))
                    .shrink(true),
            )
            .build_many_from_hir(&hirs)
            .map_err(|e| e.to_string())?;
        let dfa = hybrid::dfa::DFA::builder()
            .configure(hybrid::dfa::Config::new().cache_capacity(cache))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        let maker = dfa.clone();
        let pool: CachePool = Pool::new(Box::new(move || maker.create_cache()));
        Ok(ProseGate {
            regex: Some(regex),
            dfa: Some((dfa, pool)),
        })
    }

    /// Whether a rule matches `text`, one value made only of the prose alphabet.
    #[must_use]
    pub fn is_match(&self, text: &[u8]) -> bool {
        debug_assert!(text.iter().all(|&b| b == BARRIER || in_alphabet(b)));
        self.regex.as_ref().is_some_and(|r| r.is_match(text))
    }

    /// Whether a rule matches a value of `batch`: values made only of the prose alphabet, each
    /// followed by [`BARRIER`].
    #[must_use]
    pub fn batch_is_match(&self, batch: &[u8]) -> bool {
        let Some((dfa, pool)) = &self.dfa else {
            return false;
        };
        let mut cache = pool.get();
        if batch.len() < SHORT_BATCH {
            // A few short values (a query string, a header): setting up lanes costs more than
            // they save.
            let input = Input::new(batch).earliest(true);
            if let Ok(found) = dfa.try_search_fwd(&mut cache, &input) {
                return found.is_some();
            }
            return self.is_match(batch);
        }
        // Undecided (the DFA's cache had to be cleared mid-way): the one-lane search decides.
        lanes(dfa, &mut cache, batch).unwrap_or_else(|| self.is_match(batch))
    }

    /// The values of `batch` a rule matches, by their index in `ends` (where each value's
    /// barrier is, ascending), in one forward pass that resumes after each matching value.
    #[must_use]
    pub fn matching_values(&self, batch: &[u8], ends: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(regex) = &self.regex else {
            return out;
        };
        let mut start = 0;
        while start < batch.len() {
            let input = Input::new(batch).range(start..);
            let Some(end) = regex.search_half(&input).map(|m| m.offset()) else {
                break;
            };
            // No rule consumes a barrier: the match lies in the value whose barrier is the
            // first at or after its end.
            let k = ends.partition_point(|&e| e < end);
            let Some(&barrier) = ends.get(k) else {
                break;
            };
            out.push(k);
            start = barrier + 1;
        }
        out
    }
}

/// Splits `batch` into [`LANES`] runs of whole values, each starting at the barrier that ends
/// the value before it (which the narrowed rules read as the value's start), and walks them in
/// lock step. `None` when the DFA cache was cleared, which invalidates the other lanes' states.
fn lanes(dfa: &hybrid::dfa::DFA, cache: &mut hybrid::dfa::Cache, batch: &[u8]) -> Option<bool> {
    let mut bounds = [batch.len(); LANES + 1];
    bounds[0] = 0;
    for (k, bound) in bounds.iter_mut().enumerate().take(LANES).skip(1) {
        // The barrier nearest the even split, on either side: lanes of about equal length.
        let target = batch.len() * k / LANES;
        let after = memchr::memchr(BARRIER, &batch[target..]).map(|at| target + at);
        let before = memchr::memrchr(BARRIER, &batch[..target]);
        *bound = match (before, after) {
            (Some(b), Some(a)) if target - b < a - target => b,
            (_, Some(a)) => a,
            (Some(b), None) => b,
            (None, None) => batch.len(),
        };
    }
    for k in 1..=LANES {
        bounds[k] = bounds[k].max(bounds[k - 1]);
    }
    let clears = cache.clear_count();
    let mut sids = [hybrid::LazyStateID::default(); LANES];
    for (k, sid) in sids.iter_mut().enumerate() {
        let look_behind = bounds[k].checked_sub(1).and_then(|i| batch.get(i).copied());
        let config = start::Config::new()
            .anchored(Anchored::No)
            .look_behind(look_behind);
        *sid = dfa.start_state(cache, &config).ok()?;
    }
    if cache.clear_count() != clears {
        return None;
    }
    let runs: [&[u8]; LANES] =
        std::array::from_fn(|k| batch.get(bounds[k]..bounds[k + 1]).unwrap_or_default());
    // All lanes in lock step until the shortest ends, then the two longer ones until the next
    // ends, then the last alone: lanes split at barriers differ by up to a value's length, and
    // a lane walked alone is several times slower per byte.
    const _: () = assert!(LANES == 3, "the phases below are written for three lanes");
    let mut order: [usize; LANES] = std::array::from_fn(|k| k);
    order.sort_by_key(|&k| runs[k].len());
    let [short, middle, long] = order;
    let (a, b) = (runs[short].len(), runs[middle].len());
    if lock_step(
        dfa,
        cache,
        clears,
        &mut sids,
        [&runs[0][..a], &runs[1][..a], &runs[2][..a]],
    )? {
        return Some(true);
    }
    let mut two = [sids[middle], sids[long]];
    if lock_step(
        dfa,
        cache,
        clears,
        &mut two,
        [&runs[middle][a..], &runs[long][a..b]],
    )? {
        return Some(true);
    }
    [sids[middle], sids[long]] = two;
    let mut one = [sids[long]];
    if lock_step(dfa, cache, clears, &mut one, [&runs[long][b..]])? {
        return Some(true);
    }
    sids[long] = one[0];
    for sid in sids {
        let sid = dfa.next_eoi_state(cache, sid).ok()?;
        if cache.clear_count() != clears {
            return None;
        }
        if sid.is_match() {
            return Some(true);
        }
    }
    Some(false)
}

/// Walks `heads` (of one length) from `sids` in lock step: `Some(true)` on a match, `None` when
/// the one-lane search must decide (see [`lanes`]).
fn lock_step<const N: usize>(
    dfa: &hybrid::dfa::DFA,
    cache: &mut hybrid::dfa::Cache,
    clears: usize,
    sids: &mut [hybrid::LazyStateID; N],
    heads: [&[u8]; N],
) -> Option<bool> {
    let len = heads.iter().map(|h| h.len()).min().unwrap_or(0);
    let mut i = 0;
    while i < len {
        // The fast loop: table lookups only, through a shared borrow of the cache (so its
        // table stays in registers), while every lane lands on a computed, untagged state.
        let stopped = {
            let table: &hybrid::dfa::Cache = cache;
            let mut stopped = None;
            while i < len {
                let next: [hybrid::LazyStateID; N] =
                    std::array::from_fn(|k| dfa.next_state_untagged(table, sids[k], heads[k][i]));
                if next.iter().any(hybrid::LazyStateID::is_tagged) {
                    stopped = Some(next);
                    break;
                }
                *sids = next;
                i += 1;
            }
            stopped
        };
        let Some(next) = stopped else {
            break;
        };
        // Step `i` reached a transition not computed yet, or a match.
        for k in 0..N {
            let mut sid = next[k];
            if sid.is_unknown() {
                sid = dfa.next_state(cache, sids[k], heads[k][i]).ok()?;
                if cache.clear_count() != clears {
                    return None;
                }
            }
            if sid.is_match() {
                return Some(true);
            }
            if sid.is_tagged() {
                // Dead or quit: not built here; the one-lane search decides.
                return None;
            }
            sids[k] = sid;
        }
        i += 1;
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_alphabet_has_one_definition() {
        let alpha = super::alphabet();
        for b in 0..=255u8 {
            let in_class = alpha
                .ranges()
                .iter()
                .any(|r| r.start() <= b && b <= r.end());
            assert_eq!(super::in_alphabet(b), in_class, "byte {b:#04x}");
        }
    }
}
