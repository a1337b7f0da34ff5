//! The shared-memory store: counters and bans in a memory-mapped file that every process of a
//! host maps, so gunicorn or uWSGI workers share one set of limits without a server.
//!
//! # Layout
//!
//! ```text
//! header   64 words: magic, version, slot counts, a random 128-bit hash seed, the time base,
//!          the count of operations that found the table full
//! counters `slots` × 4 words:     key | value | owner | spare
//! bans     `ban_slots` × 8 words: key | value | subject (2) | reason (4)
//! ```
//!
//! # Lock-free updates
//!
//! Nothing in the file is a lock, so a worker killed at any instruction leaves nothing held.
//! Every change is one compare-and-swap of one 64-bit word:
//!
//! - **key word** = 32-bit tag | 4-bit generation | 28-bit expiry (minutes since the epoch).
//!   Empty is 0; a tombstone has tag 1. The tag comes from a keyed `SipHash` of the key (seed in the
//!   header, random per file), and the slot index from other bits of the same hash, so a client
//!   cannot aim two keys at one slot.
//! - **value word** = 4-bit generation | 60-bit payload. A value whose generation differs from its
//!   key word's is "never seen" — which is how a reclaimed slot starts fresh without a second write.
//!
//! A writer reads both words, computes the new state, raises the key word's expiry if needed,
//! swaps the value, then checks the key word is still the one it read; if the slot was reclaimed
//! in between it starts again (its hit is then counted once, in the key's new slot). A slot whose
//! key word says "expired" is reclaimed lazily by the next insert that passes it; an insert that
//! finds no free slot within [`PROBE`] slots **fails open**: the request is admitted uncounted,
//! the file's `full` counter goes up and [`Store::take_warning`] reports it once per process.
//!
//! # The exact sliding window
//!
//! The default algorithm needs the last `N` admission times, not a single counter. Here they are
//! a ring of `N` entries plus a head, each its own slot (keys `(rule, subject, part)`): the head
//! counts admissions, entry `i % N` holds admission `i`'s sequence number and time. Admission `h`
//! is allowed when the entry it would overwrite (admission `h − N`) has left the window; it is
//! recorded by swapping that entry, then the head is moved on — by the writer or by whoever sees
//! the entry written first. Limits above [`MAX_RING`] use the sliding-window counter instead.
//!
//! A request charged against several limits is counted against each in turn; when a later limit
//! refuses (another process took its last slot meanwhile) the earlier counts are taken back. A
//! race can thus refuse a request that would have fitted, never admit one that does not.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

use memmap2::MmapRaw;

use super::{Admission, Ban, Charge, Key, Store, StoreNote, StoreStats, Strike, Subject, STRIKES};
use crate::limit::{check_cell, sliding_log, standing_cell, Algorithm, Cell, Clock, Quota, Rule};

const MAGIC: u64 = u64::from_le_bytes(*b"RAMPART\x01");
const VERSION: u64 = 1;
const HEADER_WORDS: usize = 64;
const SLOT_WORDS: usize = 4;
const BAN_WORDS: usize = 8;
/// How many slots an operation looks at from a key's home slot.
pub const PROBE: usize = 64;
/// The largest limit counted exactly (a ring of that many entries per client).
pub const MAX_RING: u32 = 4096;
/// How often one operation may start again after losing races before it gives up (fails open).
const RETRIES: usize = 64;

// Header words.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SLOTS: usize = 2;
const H_BAN_SLOTS: usize = 3;
const H_SEED0: usize = 4;
const H_SEED1: usize = 5;
const H_BASE_MS: usize = 6;
const H_FULL: usize = 7;

const TAG_BITS: u32 = 32;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const TOMB: u64 = 1;
const EXP_MASK: u64 = (1 << 28) - 1;
const PAYLOAD_MASK: u64 = (1 << 60) - 1;
const MINUTE: u64 = 60_000;

// Owner word: a hash of the subject, and what the slot holds.
const KIND_CELL: u64 = 1;
const KIND_HEAD: u64 = 2;
const KIND_ENTRY: u64 = 3;
const KIND_MASK: u64 = 0x0f;
const OWNER_STRIKES: u64 = 0x10;

/// Where the file goes and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmOptions {
    /// The file, or a directory to hold `rampart.shm`.
    pub path: PathBuf,
    /// Counter slots (rounded up to a power of two). An existing file keeps its own size.
    pub slots: usize,
    /// Ban slots (rounded up to a power of two).
    pub ban_slots: usize,
}

impl ShmOptions {
    /// Sized for `max_keys` tracked counters: twice as many slots (a sliding-window client holds
    /// `limit + 1`, see the module docs), and a sixteenth as many bans (at least 4096).
    #[must_use]
    pub fn for_keys(path: impl Into<PathBuf>, max_keys: usize) -> ShmOptions {
        ShmOptions {
            path: path.into(),
            slots: max_keys.saturating_mul(2).max(1024),
            ban_slots: (max_keys / 16).max(4096),
        }
    }
}

/// The shared-memory [`Store`]. Cheap to share between threads; every process opens its own.
#[derive(Debug)]
pub struct ShmStore {
    map: MmapRaw,
    /// Held for the shared `flock` that tells an initialiser the file is in use.
    _file: File,
    path: PathBuf,
    slots: usize,
    ban_slots: usize,
    seed: (u64, u64),
    base_ms: u64,
    warned_full: AtomicBool,
    warn_pending: AtomicBool,
    /// When an operation of this process last found the table full.
    full_at_ms: AtomicU64,
    /// A "room again" note waits for [`Store::take_warning`].
    recovered_pending: AtomicBool,
}

/// How long no operation may have found the table full before it counts as having room again
/// (a table that fills on every new client would otherwise flap between the two notes).
const RECOVER_AFTER_MS: u64 = 60_000;

/// Why an operation found no slot.
#[derive(Debug)]
struct Full;

/// A table inside the file: counters or bans.
#[derive(Clone, Copy)]
struct Table<'a> {
    words: &'a [AtomicU64],
    mask: usize,
    stride: usize,
}

impl Table<'_> {
    fn key(&self, slot: usize) -> &AtomicU64 {
        &self.words[slot * self.stride]
    }
    fn word(&self, slot: usize, i: usize) -> &AtomicU64 {
        &self.words[slot * self.stride + i]
    }
}

fn tag_of(k: u64) -> u64 {
    k >> 32
}
fn gen_of(k: u64) -> u64 {
    (k >> 28) & 0xf
}
fn exp_of(k: u64) -> u64 {
    k & EXP_MASK
}
fn key_word(tag: u64, generation: u64, exp: u64) -> u64 {
    (tag << 32) | ((generation & 0xf) << 28) | (exp & EXP_MASK)
}
fn value_word(generation: u64, payload: u64) -> u64 {
    ((generation & 0xf) << 60) | (payload & PAYLOAD_MASK)
}

/// What an update does with the state it was shown.
enum Step<T> {
    /// Leave the slot alone; answer `T`.
    Keep(T),
    /// Store `payload`, alive until `exp_ms`; answer `T`.
    Write(T, u64, u64),
}

impl ShmStore {
    /// Opens (creating and initialising if needed) the file. Every process of a host that opens
    /// the same path shares the same counters and bans.
    ///
    /// # Errors
    /// When the file cannot be created, locked or mapped, or it is held by processes using an
    /// incompatible layout; the message names the path.
    pub fn open(options: &ShmOptions) -> Result<ShmStore, String> {
        let path = if options.path.is_dir() {
            options.path.join("rampart.shm")
        } else {
            options.path.clone()
        };
        let slots = options.slots.max(64).next_power_of_two();
        let ban_slots = options.ban_slots.max(64).next_power_of_two();
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("shared-memory store {}: {what}: {e}", path.display())
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|e| fail("cannot open", &e))?;
        for _ in 0..200 {
            file.lock_shared().map_err(|e| fail("cannot lock", &e))?;
            if let Some(layout) = read_header(&file) {
                let map = MmapRaw::map_raw(&file).map_err(|e| fail("cannot map", &e))?;
                let store = ShmStore {
                    map,
                    _file: file,
                    path,
                    slots: layout.0,
                    ban_slots: layout.1,
                    seed: layout.2,
                    base_ms: layout.3,
                    warned_full: AtomicBool::new(false),
                    warn_pending: AtomicBool::new(false),
                    full_at_ms: AtomicU64::new(0),
                    recovered_pending: AtomicBool::new(false),
                };
                return Ok(store);
            }
            // Not initialised (or from another version): only a process alone with the file may
            // (re)initialise it.
            file.unlock().map_err(|e| fail("cannot unlock", &e))?;
            match file.try_lock() {
                Ok(()) => {
                    if read_header(&file).is_none() {
                        init_file(&file, slots, ban_slots)
                            .map_err(|e| fail("cannot initialise", &e))?;
                    }
                    file.unlock().map_err(|e| fail("cannot unlock", &e))?;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        Err(fail(
            "in use by processes with another layout or version",
            &"stop them or choose another path",
        ))
    }

    /// The file in use.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn words(&self) -> &[AtomicU64] {
        let len = self.map.len() / 8;
        // SAFETY: the mapping is page-aligned, at least `len * 8` bytes long, and lives as long
        // as `self`. It is shared with other processes, which is why every access to it goes
        // through atomics; `AtomicU64` has the size and alignment of `u64`.
        #[allow(clippy::cast_ptr_alignment)]
        // The mapping starts on a page boundary, so the cast pointer is 8-byte aligned.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), len)
        }
    }

    fn counters(&self) -> Table<'_> {
        let w = self.words();
        Table {
            words: &w[HEADER_WORDS..HEADER_WORDS + self.slots * SLOT_WORDS],
            mask: self.slots - 1,
            stride: SLOT_WORDS,
        }
    }

    fn ban_table(&self) -> Table<'_> {
        let w = self.words();
        let start = HEADER_WORDS + self.slots * SLOT_WORDS;
        Table {
            words: &w[start..start + self.ban_slots * BAN_WORDS],
            mask: self.ban_slots - 1,
            stride: BAN_WORDS,
        }
    }

    fn header(&self, i: usize) -> &AtomicU64 {
        &self.words()[i]
    }

    /// How many operations found the table full since the file was created.
    #[must_use]
    pub fn full_events(&self) -> u64 {
        self.header(H_FULL).load(SeqCst)
    }

    fn full_message(&self) -> String {
        format!(
            "shared-memory store {} is full ({} slots): requests are admitted uncounted until \
             entries expire; give it more room with ?slots=N",
            self.path.display(),
            self.slots
        )
    }

    fn note_full(&self, now_ms: u64) {
        self.header(H_FULL).fetch_add(1, SeqCst);
        self.full_at_ms.store(now_ms, SeqCst);
        if !self.warned_full.swap(true, SeqCst) {
            self.recovered_pending.store(false, SeqCst);
            self.warn_pending.store(true, SeqCst);
        }
    }

    /// After a full table: once no operation has found it full for [`RECOVER_AFTER_MS`], it has
    /// room again, said once. One relaxed load while it never filled.
    fn note_room(&self, now_ms: u64) {
        if !self.warned_full.load(Relaxed) {
            return;
        }
        let quiet = now_ms.saturating_sub(self.full_at_ms.load(SeqCst));
        if quiet >= RECOVER_AFTER_MS && self.warned_full.swap(false, SeqCst) {
            self.recovered_pending.store(true, SeqCst);
        }
    }

    fn hash(&self, words: [u64; 3]) -> u64 {
        sip13(self.seed, &words)
    }

    fn slot_hash(&self, key: &Key, part: u32) -> u64 {
        let [lo, hi] = key.subject.words();
        self.hash([u64::from(key.rule) | (u64::from(part) << 32), lo, hi])
    }

    fn owner(&self, key: &Key, kind: u64) -> u64 {
        let strikes = if key.rule == STRIKES {
            OWNER_STRIKES
        } else {
            0
        };
        (self.subject_hash(key.subject) & !0xff) | strikes | kind
    }

    fn subject_hash(&self, subject: Subject) -> u64 {
        let [lo, hi] = subject.words();
        self.hash([u64::MAX, lo, hi])
    }

    fn exp_field(&self, exp_ms: u64) -> u64 {
        if exp_ms <= self.base_ms {
            return 1;
        }
        (exp_ms - self.base_ms)
            .div_ceil(MINUTE)
            .saturating_add(1)
            .min(EXP_MASK)
    }

    fn expired(&self, k: u64, now_ms: u64) -> bool {
        let e = exp_of(k);
        e != EXP_MASK && self.base_ms.saturating_add(e.saturating_mul(MINUTE)) <= now_ms
    }

    /// Finds the live slot holding `tag` in the probe sequence from `home`.
    fn find(t: Table<'_>, home: usize, tag: u64) -> Option<(usize, u64)> {
        for i in 0..PROBE.min(t.mask + 1) {
            let s = (home + i) & t.mask;
            let k = t.key(s).load(SeqCst);
            if k == 0 {
                return None;
            }
            if tag_of(k) == tag {
                return Some((s, k));
            }
        }
        None
    }

    /// Claims a free, dead or expired slot for `tag` and makes sure it is the only one holding
    /// it (two processes inserting the same key at once: the earlier slot wins).
    fn claim(
        &self,
        t: Table<'_>,
        home: usize,
        tag: u64,
        exp_ms: u64,
        now_ms: u64,
    ) -> Result<Option<(usize, u64)>, Full> {
        let n = PROBE.min(t.mask + 1);
        let mut won = None;
        for i in 0..n {
            let s = (home + i) & t.mask;
            let k = t.key(s).load(SeqCst);
            if k != 0 && tag_of(k) == tag {
                // Someone inserted it meanwhile: start again and use theirs.
                return Ok(None);
            }
            if k == 0 || tag_of(k) == TOMB || self.expired(k, now_ms) {
                let new = key_word(tag, gen_of(k) + 1, self.exp_field(exp_ms));
                if t.key(s).compare_exchange(k, new, SeqCst, SeqCst).is_ok() {
                    won = Some((s, new));
                    break;
                }
                // Lost the slot: look at it again.
                return Ok(None);
            }
        }
        let Some((mine, word)) = won else {
            return Err(Full);
        };
        for i in 0..n {
            let s = (home + i) & t.mask;
            if s == mine {
                continue;
            }
            let k = t.key(s).load(SeqCst);
            if k == 0 {
                break;
            }
            if tag_of(k) == tag {
                let before = (s.wrapping_sub(home) & t.mask) < (mine.wrapping_sub(home) & t.mask);
                let (victim, vk) = if before { (mine, word) } else { (s, k) };
                let tomb = key_word(TOMB, gen_of(vk) + 1, 0);
                let _ = t.key(victim).compare_exchange(vk, tomb, SeqCst, SeqCst);
                if before {
                    return Ok(None);
                }
            }
        }
        Ok(Some((mine, word)))
    }

    /// The one read-modify-write of the store: shows `f` the payload of the slot for `hash`
    /// (`None` when absent or reclaimed) and applies what it returns. `init` writes the slot's
    /// side words (owner, subject, reason) before the value is published.
    fn update<T>(
        &self,
        t: Table<'_>,
        hash: u64,
        now_ms: u64,
        init: &dyn Fn(&Table<'_>, usize, bool),
        f: &mut dyn FnMut(Option<u64>) -> Step<T>,
    ) -> Result<T, Full> {
        #[allow(clippy::cast_possible_truncation)]
        let home = (hash as usize) & t.mask;
        let tag = (tag_of(hash) & TAG_MASK).max(2);
        for _ in 0..RETRIES {
            let found = Self::find(t, home, tag);
            let (slot, k, state, v) = match found {
                Some((s, k)) => {
                    let v = t.word(s, 1).load(SeqCst);
                    let state = (v >> 60 == gen_of(k)).then_some(v & PAYLOAD_MASK);
                    (Some(s), k, state, v)
                }
                None => (None, 0, None, 0),
            };
            let (answer, payload, exp_ms) = match f(state) {
                Step::Keep(answer) => return Ok(answer),
                Step::Write(answer, payload, exp_ms) => (answer, payload, exp_ms),
            };
            let (s, mut k, v) = match slot {
                Some(s) => (s, k, v),
                None => match self.claim(t, home, tag, exp_ms, now_ms)? {
                    Some((s, k)) => {
                        init(&t, s, true);
                        (s, k, t.word(s, 1).load(SeqCst))
                    }
                    None => continue,
                },
            };
            if slot.is_some() {
                init(&t, s, false);
            }
            let want = self.exp_field(exp_ms);
            if exp_of(k) < want {
                let raised = key_word(tag_of(k), gen_of(k), want);
                if t.key(s)
                    .compare_exchange(k, raised, SeqCst, SeqCst)
                    .is_err()
                {
                    continue;
                }
                k = raised;
            }
            let new = value_word(gen_of(k), payload);
            if t.word(s, 1)
                .compare_exchange(v, new, SeqCst, SeqCst)
                .is_err()
            {
                continue;
            }
            if tag_of(t.key(s).load(SeqCst)) != tag_of(k)
                || gen_of(t.key(s).load(SeqCst)) != gen_of(k)
            {
                continue;
            }
            return Ok(answer);
        }
        Err(Full)
    }

    /// Reads the payload of the slot for `hash` without changing anything.
    fn read(t: Table<'_>, hash: u64) -> Option<(usize, u64)> {
        #[allow(clippy::cast_possible_truncation)]
        let home = (hash as usize) & t.mask;
        let tag = (tag_of(hash) & TAG_MASK).max(2);
        let (s, k) = Self::find(t, home, tag)?;
        let v = t.word(s, 1).load(SeqCst);
        (v >> 60 == gen_of(k)).then_some((s, v & PAYLOAD_MASK))
    }

    fn remove_slot(t: Table<'_>, s: usize) {
        let k = t.key(s).load(SeqCst);
        if k != 0 && tag_of(k) != TOMB {
            let _ = t
                .key(s)
                .compare_exchange(k, key_word(TOMB, gen_of(k) + 1, 0), SeqCst, SeqCst);
        }
    }

    // ----- counters with one cell -------------------------------------------------------------

    fn cell_step(
        rule: &Rule,
        now_ms: u64,
        state: Option<u64>,
        commit: bool,
    ) -> Step<(Quota, Option<Cell>)> {
        let cell = state
            .map(|p| decode_cell(rule, p, now_ms))
            .unwrap_or_default();
        let (quota, next) = check_cell(rule, cell, now_ms);
        if quota.allowed && commit {
            Step::Write(
                (quota, Some(cell)),
                encode_cell(rule, &next),
                u64::from(next.expires_s) * 1000,
            )
        } else {
            Step::Keep((quota, None))
        }
    }

    fn cell_charge(&self, c: &Charge, now_ms: u64, commit: bool) -> Result<Quota, Full> {
        let t = self.counters();
        let owner = self.owner(&c.key, KIND_CELL);
        let init = move |t: &Table<'_>, s: usize, claimed: bool| {
            if claimed {
                t.word(s, 2).store(owner, SeqCst);
            }
        };
        let rule = cell_rule(&c.rule);
        self.update(t, self.slot_hash(&c.key, 0), now_ms, &init, &mut |state| {
            Self::cell_step(&rule, now_ms, state, commit)
        })
        .map(|(q, _)| q)
    }

    /// Takes back one counted hit (a later limit refused the request).
    fn cell_undo(&self, c: &Charge, now_ms: u64) {
        let t = self.counters();
        let rule = cell_rule(&c.rule);
        let _ = self.update(
            t,
            self.slot_hash(&c.key, 0),
            now_ms,
            &|_, _, _| {},
            &mut |state| {
                let Some(p) = state else {
                    return Step::Keep(());
                };
                let mut cell = decode_cell(&rule, p, now_ms);
                match rule.algorithm {
                    Algorithm::FixedWindow => cell.w[1] = cell.w[1].saturating_sub(1),
                    Algorithm::SlidingWindowCounter => cell.w[2] = cell.w[2].saturating_sub(1),
                    _ => {
                        let window_us = rule.window_ms.saturating_mul(1000);
                        let step = (window_us / u64::from(rule.limit)).max(1);
                        cell.set_u64_at(0, cell.u64_at(0).saturating_sub(step));
                    }
                }
                Step::Write(
                    (),
                    encode_cell(&rule, &cell),
                    u64::from(cell.expires_s) * 1000,
                )
            },
        );
    }

    // ----- the exact sliding window: a ring per key --------------------------------------------

    fn entry(&self, key: &Key, n: u32, index: u32, window_ms: u64, now_ms: u64) -> Option<Entry> {
        let (_, p) = Self::read(self.counters(), self.slot_hash(key, 1 + index % n))?;
        let e = Entry::decode(p, self.base_ms);
        (e.seq == seq16(index) && e.ts.saturating_add(window_ms) > now_ms).then_some(e)
    }

    /// The first admission in `[lo, hi)` still in the window (times only grow along the ring).
    fn first_live(
        &self,
        key: &Key,
        n: u32,
        lo: u32,
        hi: u32,
        w: u64,
        now: u64,
    ) -> (u32, Option<Entry>) {
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.entry(key, n, mid, w, now).is_some() {
                b = mid;
            } else {
                a = mid + 1;
            }
        }
        (
            a,
            if a < hi {
                self.entry(key, n, a, w, now)
            } else {
                None
            },
        )
    }

    /// Counts (or, with `commit == false`, only checks) one admission against a ring. With
    /// `always`, the admission is recorded even over the limit (strikes). Returns the quota, the
    /// admission number recorded and the admissions now in the window.
    fn ring(
        &self,
        key: &Key,
        rule: &Rule,
        now_ms: u64,
        commit: bool,
        always: bool,
    ) -> Result<(Quota, Option<u32>, u32), Full> {
        let n = rule.limit.clamp(1, MAX_RING);
        let w = rule.window_ms;
        let t = self.counters();
        let head_hash = self.slot_hash(key, 0);
        let owner_head = self.owner(key, KIND_HEAD);
        let owner_entry = self.owner(key, KIND_ENTRY);
        for _ in 0..RETRIES {
            // Read the head, keeping it alive at least as long as the entry about to be written.
            let head = if commit {
                self.update(
                    t,
                    head_hash,
                    now_ms,
                    &|t, s, claimed| {
                        if claimed {
                            t.word(s, 2).store(owner_head, SeqCst);
                        }
                    },
                    &mut |state| {
                        let p = state.unwrap_or(0);
                        Step::Write(p, p, now_ms.saturating_add(w))
                    },
                )?
            } else {
                Self::read(t, head_hash).map_or(0, |(_, p)| p)
            };
            let (h, since) = head_decode(head);
            let slot_hash = self.slot_hash(key, 1 + h % n);
            let raw = Self::read(t, slot_hash).map(|(_, p)| p);
            let current = raw.map(|p| Entry::decode(p, self.base_ms));
            if let Some(e) = current {
                if e.seq == seq16(h) && e.ts.saturating_add(w) > now_ms {
                    // Admission `h` is written; its writer has not moved the head yet.
                    self.bump_head(head_hash, head, now_ms, w);
                    continue;
                }
            }
            let oldest = current.filter(|e| {
                since >= n && h >= n && e.seq == seq16(h - n) && e.ts.saturating_add(w) > now_ms
            });
            let counted = since.min(n);
            let allowed = oldest.is_none();
            // Admissions in the window before this one.
            let lo = h - counted;
            let (first, first_entry) = self.first_live(key, n, lo, h, w, now_ms);
            let before = h - first;
            if !allowed && !always {
                let wait = oldest.map_or(w, |e| e.ts.saturating_add(w).saturating_sub(now_ms));
                let quota = Quota {
                    allowed: false,
                    limit: rule.limit,
                    remaining: 0,
                    reset_ms: wait,
                    retry_after_ms: wait.max(1),
                };
                return Ok((quota, None, before));
            }
            let reset_ms = first_entry.map_or(w, |e| e.ts.saturating_add(w).saturating_sub(now_ms));
            let in_window = if allowed {
                before + 1
            } else {
                before.min(n - 1) + 1
            };
            let quota = Quota {
                allowed,
                limit: rule.limit,
                remaining: n.saturating_sub(in_window),
                reset_ms,
                retry_after_ms: 0,
            };
            if !commit {
                return Ok((quota, None, in_window));
            }
            let written = Entry {
                seq: seq16(h),
                ts: now_ms,
            }
            .encode(self.base_ms);
            let ok = self.update(
                t,
                slot_hash,
                now_ms,
                &|t, s, claimed| {
                    if claimed {
                        t.word(s, 2).store(owner_entry, SeqCst);
                    }
                },
                &mut |state| {
                    if state == raw {
                        Step::Write(true, written, now_ms.saturating_add(w))
                    } else {
                        Step::Keep(false)
                    }
                },
            )?;
            if !ok {
                continue;
            }
            self.bump_head(head_hash, head, now_ms, w);
            return Ok((quota, Some(h), in_window));
        }
        Err(Full)
    }

    fn bump_head(&self, head_hash: u64, head: u64, now_ms: u64, w: u64) {
        let (h, since) = head_decode(head);
        let next = head_encode(h.wrapping_add(1), since.saturating_add(1));
        let _ = self.update(
            self.counters(),
            head_hash,
            now_ms,
            &|_, _, _| {},
            &mut |state| {
                if state == Some(head) {
                    Step::Write((), next, now_ms.saturating_add(w))
                } else {
                    Step::Keep(())
                }
            },
        );
    }

    /// Voids admission `index` of a ring (a later limit refused the request).
    fn ring_undo(&self, key: &Key, rule: &Rule, index: u32, now_ms: u64) {
        let n = rule.limit.clamp(1, MAX_RING);
        let base = self.base_ms;
        let _ = self.update(
            self.counters(),
            self.slot_hash(key, 1 + index % n),
            now_ms,
            &|_, _, _| {},
            &mut |state| match state.map(|p| Entry::decode(p, base)) {
                Some(e) if e.seq == seq16(index) => {
                    Step::Write((), Entry { seq: e.seq, ts: 0 }.encode(base), now_ms)
                }
                _ => Step::Keep(()),
            },
        );
    }

    /// Starts a ring's count again (its earlier admissions no longer count).
    fn ring_reset(&self, key: &Key, now_ms: u64) {
        let _ = self.update(
            self.counters(),
            self.slot_hash(key, 0),
            now_ms,
            &|_, _, _| {},
            &mut |state| match state {
                Some(p) => {
                    let (h, _) = head_decode(p);
                    Step::Write((), head_encode(h, 0), now_ms)
                }
                None => Step::Keep(()),
            },
        );
    }

    fn charge(&self, c: &Charge, now_ms: u64, commit: bool) -> Result<(Quota, Option<u32>), Full> {
        if uses_ring(&c.rule) {
            self.ring(&c.key, &c.rule, now_ms, commit, false)
                .map(|(q, i, _)| (q, i))
        } else {
            self.cell_charge(c, now_ms, commit).map(|q| (q, None))
        }
    }

    /// Where a charge stands, read without writing anything (see [`Store::peek`]).
    fn standing(&self, c: &Charge, now_ms: u64) -> Quota {
        let t = self.counters();
        if !uses_ring(&c.rule) {
            let rule = cell_rule(&c.rule);
            let cell = Self::read(t, self.slot_hash(&c.key, 0))
                .map(|(_, p)| decode_cell(&rule, p, now_ms))
                .unwrap_or_default();
            return standing_cell(&rule, cell, now_ms);
        }
        let (key, rule) = (&c.key, &c.rule);
        let n = rule.limit.clamp(1, MAX_RING);
        let w = rule.window_ms;
        let head = Self::read(t, self.slot_hash(key, 0)).map_or(0, |(_, p)| p);
        let (mut h, mut since) = head_decode(head);
        if self.entry(key, n, h, w, now_ms).is_some() {
            // Admission `h` is written; its writer has not moved the head yet: it counts.
            h = h.wrapping_add(1);
            since = since.saturating_add(1);
        }
        let lo = h.saturating_sub(since.min(n));
        let (first, first_entry) = self.first_live(key, n, lo, h, w, now_ms);
        sliding_log::standing(rule, h - first, first_entry.map(|e| e.ts), now_ms)
    }

    fn undo(&self, c: &Charge, index: Option<u32>, now_ms: u64) {
        if uses_ring(&c.rule) {
            if let Some(i) = index {
                self.ring_undo(&c.key, &c.rule, i, now_ms);
            }
        } else {
            self.cell_undo(c, now_ms);
        }
    }

    // ----- bans --------------------------------------------------------------------------------

    fn ban_hash(&self, subject: Subject) -> u64 {
        let [lo, hi] = subject.words();
        self.hash([u64::MAX - 1, lo, hi])
    }

    fn ban_subject_at(t: &Table<'_>, s: usize) -> Subject {
        Subject::from_words([t.word(s, 2).load(SeqCst), t.word(s, 3).load(SeqCst)])
    }

    fn ban_reason_at(t: &Table<'_>, s: usize) -> String {
        let mut bytes = Vec::with_capacity(32);
        for i in 0..4 {
            bytes.extend_from_slice(&t.word(s, 4 + i).load(SeqCst).to_le_bytes());
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn live_bans(&self, now_ms: u64) -> Vec<(usize, Subject, Ban)> {
        let t = self.ban_table();
        let mut out = Vec::new();
        for s in 0..=t.mask {
            let k = t.key(s).load(SeqCst);
            if k == 0 || tag_of(k) == TOMB {
                continue;
            }
            let v = t.word(s, 1).load(SeqCst);
            if v >> 60 != gen_of(k) || (v & PAYLOAD_MASK) <= now_ms {
                continue;
            }
            out.push((
                s,
                Self::ban_subject_at(&t, s),
                Ban {
                    until_ms: v & PAYLOAD_MASK,
                    reason: Self::ban_reason_at(&t, s),
                },
            ));
        }
        out
    }
}

/// Whether a rule is counted with a ring here.
fn uses_ring(rule: &Rule) -> bool {
    rule.algorithm.uses_log() && rule.limit <= MAX_RING
}

/// The rule a cell is counted with: sliding windows above [`MAX_RING`] use the counter.
fn cell_rule(rule: &Rule) -> Rule {
    if rule.algorithm.uses_log() {
        Rule {
            algorithm: Algorithm::SlidingWindowCounter,
            ..*rule
        }
    } else {
        *rule
    }
}

/// The window id nearest to `now_id` whose low `bits` bits are `low`.
fn near(now_id: u64, low: u64, bits: u32) -> u64 {
    let m = 1u64 << bits;
    let diff = low.wrapping_sub(now_id) & (m - 1);
    if diff < m / 2 {
        now_id.saturating_add(diff)
    } else {
        now_id.saturating_sub(m - diff)
    }
}

/// A cell in 60 bits: GCRA's arrival time in µs; a fixed window's id (28 low bits) and count;
/// a sliding counter's id (12 low bits) and two 24-bit counts.
fn encode_cell(rule: &Rule, c: &Cell) -> u64 {
    match rule.algorithm {
        Algorithm::FixedWindow => (u64::from(c.w[0]) & ((1 << 28) - 1)) | (u64::from(c.w[1]) << 28),
        Algorithm::SlidingWindowCounter | Algorithm::SlidingWindow => {
            let cap = (1u64 << 24) - 1;
            (u64::from(c.w[0]) & 0xfff)
                | (u64::from(c.w[1]).min(cap) << 12)
                | (u64::from(c.w[2]).min(cap) << 36)
        }
        Algorithm::Gcra => c.u64_at(0) & PAYLOAD_MASK,
    }
}

fn decode_cell(rule: &Rule, p: u64, now_ms: u64) -> Cell {
    let w = rule.window_ms.max(1);
    let now_id = now_ms / w;
    let mut c = Cell::default();
    match rule.algorithm {
        Algorithm::FixedWindow => {
            let id = near(now_id, p & ((1 << 28) - 1), 28);
            #[allow(clippy::cast_possible_truncation)]
            {
                c.w = [id as u32, (p >> 28) as u32, 0];
            }
            c.expires_s = crate::limit::ms_to_secs_ceil(id.saturating_add(1).saturating_mul(w));
        }
        Algorithm::SlidingWindowCounter | Algorithm::SlidingWindow => {
            let id = near(now_id, p & 0xfff, 12);
            #[allow(clippy::cast_possible_truncation)]
            {
                c.w = [
                    id as u32,
                    ((p >> 12) & 0xff_ffff) as u32,
                    ((p >> 36) & 0xff_ffff) as u32,
                ];
            }
            c.expires_s = crate::limit::ms_to_secs_ceil(id.saturating_add(2).saturating_mul(w));
        }
        Algorithm::Gcra => {
            c.set_u64_at(0, p);
            c.expires_s = crate::limit::ms_to_secs_ceil(p.div_ceil(1000));
        }
    }
    c
}

/// A ring head: admissions ever (32 bits), admissions since the last reset (28 bits, capped).
fn head_decode(p: u64) -> (u32, u32) {
    #[allow(clippy::cast_possible_truncation)]
    ((p & 0xffff_ffff) as u32, ((p >> 32) & 0x0fff_ffff) as u32)
}

fn head_encode(h: u32, since: u32) -> u64 {
    u64::from(h) | (u64::from(since.min(0x0fff_ffff)) << 32)
}

fn seq16(index: u32) -> u16 {
    #[allow(clippy::cast_possible_truncation)]
    {
        index.wrapping_add(1) as u16
    }
}

/// A ring entry: the admission's 16-bit sequence number and its time (44 bits of ms after the
/// file's time base, the epoch; 0 = voided).
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u16,
    ts: u64,
}

impl Entry {
    fn decode(p: u64, base_ms: u64) -> Entry {
        let rel = p >> 16;
        #[allow(clippy::cast_possible_truncation)]
        Entry {
            seq: (p & 0xffff) as u16,
            ts: if rel == 0 { 0 } else { base_ms + rel - 1 },
        }
    }

    fn encode(self, base_ms: u64) -> u64 {
        let rel = if self.ts == 0 {
            0
        } else {
            (self.ts.saturating_sub(base_ms) + 1).min((1 << 44) - 1)
        };
        u64::from(self.seq) | (rel << 16)
    }
}

/// The header's layout, when valid: slots, ban slots, seed, time base.
fn read_header(file: &File) -> Option<(usize, usize, (u64, u64), u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64];
    file.read_exact_at(&mut buf, 0).ok()?;
    let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    if word(H_MAGIC) != MAGIC || word(H_VERSION) != VERSION {
        return None;
    }
    let slots = usize::try_from(word(H_SLOTS)).ok()?;
    let ban_slots = usize::try_from(word(H_BAN_SLOTS)).ok()?;
    if !slots.is_power_of_two() || !ban_slots.is_power_of_two() {
        return None;
    }
    let len = (HEADER_WORDS + slots * SLOT_WORDS + ban_slots * BAN_WORDS) * 8;
    if file.metadata().ok()?.len() != len as u64 {
        return None;
    }
    Some((
        slots,
        ban_slots,
        (word(H_SEED0), word(H_SEED1)),
        word(H_BASE_MS),
    ))
}

fn init_file(file: &File, slots: usize, ban_slots: usize) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = (HEADER_WORDS + slots * SLOT_WORDS + ban_slots * BAN_WORDS) * 8;
    file.set_len(0)?;
    file.set_len(len as u64)?;
    let mut seed = [0u8; 16];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut head = [0u8; 64];
    let mut put = |i: usize, v: u64| head[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    put(H_VERSION, VERSION);
    put(H_SLOTS, slots as u64);
    put(H_BAN_SLOTS, ban_slots as u64);
    put(
        H_SEED0,
        u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
    );
    put(
        H_SEED1,
        u64::from_le_bytes(seed[8..].try_into().unwrap_or_default()),
    );
    // Times are kept from the epoch (44 bits of ms reach the year 2527); the field leaves room
    // for another base in a later version.
    put(H_BASE_MS, 0);
    file.write_all_at(&head, 0)?;
    // The magic goes last: a file with it is complete.
    file.write_all_at(&MAGIC.to_le_bytes(), 0)?;
    file.sync_data()
}

/// `SipHash-1-3` of a few words under a 128-bit key.
fn sip13(key: (u64, u64), words: &[u64]) -> u64 {
    let mut v0 = key.0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = key.1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = key.0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = key.1 ^ 0x7465_6462_7974_6573;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    };
    for &m in words {
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let last = (words.len() as u64 * 8) << 56;
    v3 ^= last;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= last;
    v2 ^= 0xff;
    for _ in 0..3 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

impl ShmStore {
    /// [`Store::admit`] itself.
    fn admit_here(
        &self,
        now_ms: u64,
        ban: Option<Subject>,
        charges: &[Charge],
        quotas: &mut Vec<Quota>,
    ) -> Admission {
        quotas.clear();
        if let Some(subject) = ban {
            if let Some(b) = self.ban_of(subject, now_ms) {
                return Admission::Banned(b);
            }
        }
        if let [c] = charges {
            let Ok((q, _)) = self.charge(c, now_ms, true) else {
                self.note_full(now_ms);
                return Admission::Admitted;
            };
            quotas.push(q);
            return if q.allowed {
                Admission::Admitted
            } else {
                Admission::Limited { index: 0 }
            };
        }
        // Check every limit first: a request refused by one is counted by none.
        let mut refused: Option<(usize, u64)> = None;
        for (n, c) in charges.iter().enumerate() {
            let Ok((quota, _)) = self.charge(c, now_ms, false) else {
                self.note_full(now_ms);
                return Admission::Admitted;
            };
            if !quota.allowed && refused.is_none_or(|(_, wait)| quota.retry_after_ms > wait) {
                refused = Some((n, quota.retry_after_ms));
            }
            quotas.push(quota);
        }
        if let Some((index, _)) = refused {
            for q in quotas.iter_mut().filter(|q| q.allowed) {
                // Not counted: the quota is what it was before this request.
                q.remaining = q.remaining.saturating_add(1).min(q.limit);
            }
            return Admission::Limited { index };
        }
        quotas.clear();
        let mut done: Vec<Option<u32>> = Vec::with_capacity(charges.len());
        for (n, c) in charges.iter().enumerate() {
            match self.charge(c, now_ms, true) {
                Ok((q, index)) if q.allowed => {
                    quotas.push(q);
                    done.push(index);
                }
                Ok((q, _)) => {
                    // Another process took the last slot meanwhile: take the earlier counts back.
                    for (m, index) in done.iter().enumerate() {
                        self.undo(&charges[m], *index, now_ms);
                        quotas[m].remaining =
                            quotas[m].remaining.saturating_add(1).min(quotas[m].limit);
                    }
                    quotas.push(q);
                    for later in &charges[n + 1..] {
                        let q = self
                            .charge(later, now_ms, false)
                            .map_or_else(|_| Quota::default(), |(q, _)| q);
                        quotas.push(q);
                    }
                    return Admission::Limited { index: n };
                }
                Err(Full) => {
                    self.note_full(now_ms);
                    return Admission::Admitted;
                }
            }
        }
        Admission::Admitted
    }
}

impl Store for ShmStore {
    fn admit(
        &self,
        now_ms: u64,
        ban: Option<Subject>,
        charges: &[Charge],
        quotas: &mut Vec<Quota>,
    ) -> Admission {
        let admission = self.admit_here(now_ms, ban, charges, quotas);
        self.note_room(now_ms);
        admission
    }

    fn peek(&self, now_ms: u64, charges: &[Charge], quotas: &mut Vec<Quota>) -> bool {
        quotas.clear();
        quotas.extend(charges.iter().map(|c| self.standing(c, now_ms)));
        true
    }

    fn ban(&self, subject: Subject, until_ms: u64, reason: &str) {
        let t = self.ban_table();
        let mut words = [0u64; 6];
        let mut bytes = [0u8; 32];
        let mut end = reason.len().min(32);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        bytes[..end].copy_from_slice(&reason.as_bytes()[..end]);
        [words[0], words[1]] = subject.words();
        for i in 0..4 {
            words[2 + i] =
                u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        }
        // The subject only into a slot just claimed; a re-ban refreshes the reason.
        let init = move |t: &Table<'_>, s: usize, claimed: bool| {
            let from = if claimed { 0 } else { 2 };
            for (i, w) in words.iter().enumerate().skip(from) {
                t.word(s, 2 + i).store(*w, SeqCst);
            }
        };
        let now = Clock::System.now_ms();
        let until = until_ms.min(PAYLOAD_MASK);
        if self
            .update(t, self.ban_hash(subject), now, &init, &mut |_| {
                Step::Write((), until, until)
            })
            .is_err()
        {
            self.note_full(now);
        }
    }

    fn unban(&self, subject: Subject) -> bool {
        let now = Clock::System.now_ms();
        let had = self.ban_of(subject, now).is_some();
        let t = self.ban_table();
        let hash = self.ban_hash(subject);
        #[allow(clippy::cast_possible_truncation)]
        let home = (hash as usize) & t.mask;
        let tag = (tag_of(hash) & TAG_MASK).max(2);
        for _ in 0..RETRIES {
            let Some((s, _)) = Self::find(t, home, tag) else {
                break;
            };
            Self::remove_slot(t, s);
        }
        had
    }

    fn ban_of(&self, subject: Subject, now_ms: u64) -> Option<Ban> {
        let t = self.ban_table();
        let (s, until) = Self::read(t, self.ban_hash(subject))?;
        if until <= now_ms || Self::ban_subject_at(&t, s) != subject {
            return None;
        }
        Some(Ban {
            until_ms: until,
            reason: Self::ban_reason_at(&t, s),
        })
    }

    fn bans(&self, now_ms: u64) -> Vec<(Subject, Ban)> {
        let mut out: Vec<(Subject, Ban)> = self
            .live_bans(now_ms)
            .into_iter()
            .map(|(_, s, b)| (s, b))
            .collect();
        out.sort_by_key(|(s, b)| (b.until_ms, *s));
        out.dedup_by_key(|(s, _)| *s);
        out
    }

    fn strike(
        &self,
        now_ms: u64,
        subject: Subject,
        rule: &Rule,
        ban_for_ms: Option<u64>,
        reason: &str,
    ) -> Strike {
        let key = Key {
            rule: STRIKES,
            subject,
        };
        let threshold = rule.limit.clamp(1, MAX_RING);
        let Ok((_, _, count)) = self.ring(&key, rule, now_ms, true, true) else {
            self.note_full(now_ms);
            return Strike {
                count: 0,
                banned_until_ms: None,
            };
        };
        if count < threshold {
            return Strike {
                count,
                banned_until_ms: None,
            };
        }
        self.ring_reset(&key, now_ms);
        let banned_until_ms = ban_for_ms.map(|d| {
            let until = now_ms.saturating_add(d);
            self.ban(subject, until, reason);
            until
        });
        Strike {
            count,
            banned_until_ms,
        }
    }

    fn reset_subject(&self, subject: Subject) {
        let t = self.counters();
        let want = self.subject_hash(subject) & !0xff;
        for s in 0..=t.mask {
            let owner = t.word(s, 2).load(SeqCst);
            if owner & !0xff != want || owner & OWNER_STRIKES != 0 {
                continue;
            }
            match owner & KIND_MASK {
                KIND_CELL => Self::remove_slot(t, s),
                KIND_HEAD => {
                    let k = t.key(s).load(SeqCst);
                    let v = t.word(s, 1).load(SeqCst);
                    if v >> 60 == gen_of(k) {
                        let (h, _) = head_decode(v & PAYLOAD_MASK);
                        let _ = t.word(s, 1).compare_exchange(
                            v,
                            value_word(gen_of(k), head_encode(h, 0)),
                            SeqCst,
                            SeqCst,
                        );
                    }
                }
                _ => {}
            }
        }
    }

    fn clear(&self) {
        for w in &self.words()[HEADER_WORDS..] {
            w.store(0, SeqCst);
        }
    }

    fn stats(&self) -> StoreStats {
        let now = Clock::System.now_ms();
        let t = self.counters();
        let keys = (0..=t.mask)
            .filter(|&s| {
                let k = t.key(s).load(SeqCst);
                k != 0 && tag_of(k) != TOMB && !self.expired(k, now)
            })
            .count();
        StoreStats {
            keys,
            bans: self.bans(now).len(),
            bytes: self.map.len(),
        }
    }

    fn take_warning(&self) -> Option<StoreNote> {
        if self.warn_pending.swap(false, SeqCst) {
            return Some(StoreNote::degraded(self.full_message()));
        }
        if self.recovered_pending.swap(false, SeqCst) {
            return Some(StoreNote {
                recovered: true,
                message: format!(
                    "shared-memory store {} has room again: no operation found it full for {} s",
                    self.path.display(),
                    RECOVER_AFTER_MS / 1000
                ),
            });
        }
        None
    }

    fn degraded(&self) -> Option<String> {
        self.warned_full.load(SeqCst).then(|| self.full_message())
    }
}

#[cfg(test)]
mod tests;
