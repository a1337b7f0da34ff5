//! The in-process store: sharded hash maps behind short mutexes.
//!
//! Bounded: at most about `max_keys` counters (each of the 64 shards holds its share plus 10 %,
//! since keys spread unevenly). Keys whose state has expired (the window passed, the
//! theoretical arrival time is behind us) are swept out as new keys arrive, a shard at a time;
//! when a shard is full of live keys, an arbitrary eighth of it is dropped (those clients start
//! afresh) rather than letting memory grow. A counter-algorithm key costs 40 bytes of table
//! (20-byte key, 20-byte cell) plus the hash table's slack: 68 bytes per tracked client measured
//! at a million (`make bench`).
//!
//! Multi-key admission locks the shards it needs in ascending order, so it is atomic and cannot
//! deadlock. Every lock is held for a few hundred nanoseconds at most, and a poisoned lock (a
//! panic elsewhere) is recovered, never propagated.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Admission, Ban, Charge, Key, Store, StoreStats, Strike, Subject, STRIKES};
use crate::limit::sliding_log::Log;
use crate::limit::{cell_expired, check_cell, ms_to_secs_ceil, standing_cell, Cell, Quota, Rule};

const SHARDS: usize = 64;
/// A shard sweeps its expired keys after this many new keys.
const SWEEP_EVERY: u32 = 4096;

#[derive(Debug, Default)]
struct LogSlot {
    log: Log,
    expires_s: u32,
}

#[derive(Debug, Default)]
struct Shard {
    cells: HashMap<Key, Cell>,
    logs: HashMap<Key, LogSlot>,
    new_keys: u32,
}

impl Shard {
    fn len(&self) -> usize {
        self.cells.len() + self.logs.len()
    }

    fn sweep(&mut self, now_ms: u64) {
        self.cells.retain(|_, c| !cell_expired(c, now_ms));
        self.logs
            .retain(|_, s| u64::from(s.expires_s) * 1000 > now_ms);
        self.new_keys = 0;
        if self.cells.capacity() > 64 && self.cells.len() < self.cells.capacity() / 4 {
            self.cells.shrink_to_fit();
        }
        if self.logs.capacity() > 64 && self.logs.len() < self.logs.capacity() / 4 {
            self.logs.shrink_to_fit();
        }
    }

    /// Called before a new key goes in: keeps the shard within `max` keys.
    fn make_room(&mut self, now_ms: u64, max: usize) {
        self.new_keys += 1;
        if self.new_keys >= SWEEP_EVERY || self.len() >= max {
            self.sweep(now_ms);
        }
        if self.len() >= max {
            let drop_n = (max / 8).max(1);
            let victims: Vec<Key> = self.cells.keys().take(drop_n).copied().collect();
            for k in victims {
                self.cells.remove(&k);
            }
            let left = drop_n.saturating_sub(self.cells.len().min(drop_n));
            let victims: Vec<Key> = self.logs.keys().take(left).copied().collect();
            for k in victims {
                self.logs.remove(&k);
            }
        }
    }

    fn bytes(&self) -> usize {
        let cell = std::mem::size_of::<(Key, Cell)>() + 1;
        let log = std::mem::size_of::<(Key, LogSlot)>() + 1;
        self.cells.capacity() * cell
            + self.logs.capacity() * log
            + self
                .logs
                .values()
                .map(|s| s.log.heap_bytes())
                .sum::<usize>()
    }
}

/// The in-process [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    bans: Mutex<HashMap<Subject, Ban>>,
    hasher: RandomState,
    max_keys_per_shard: usize,
    max_bans: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// A store holding at most `max_keys` counters (and as many bans).
    #[must_use]
    pub fn new(max_keys: usize) -> MemoryStore {
        let max_keys = max_keys.max(SHARDS);
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            bans: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
            // Keys spread over the shards unevenly (± a few per cent at a million keys): the
            // slack keeps a store sized for N clients from evicting before it holds N.
            max_keys_per_shard: max_keys.div_ceil(SHARDS) + max_keys / SHARDS / 10 + 16,
            max_bans: max_keys,
        }
    }

    fn shard_of(&self, key: &Key) -> usize {
        // Truncation is the point: the low bits pick the shard.
        #[allow(clippy::cast_possible_truncation)]
        let h = self.hasher.hash_one(key) as usize;
        h % SHARDS
    }

    /// Phase one of admission for one charge: the quota it would leave (expired log entries are
    /// dropped on the way, which changes nothing observable).
    fn try_charge(shard: &mut Shard, c: &Charge, now_ms: u64) -> (Quota, Option<Cell>) {
        if c.rule.algorithm.uses_log() {
            let quota = match shard.logs.get_mut(&c.key) {
                Some(slot) => slot.log.peek(&c.rule, now_ms),
                None => Log::default().peek(&c.rule, now_ms),
            };
            (quota, None)
        } else {
            let cell = shard.cells.get(&c.key).copied().unwrap_or_default();
            let (quota, next) = check_cell(&c.rule, cell, now_ms);
            (quota, Some(next))
        }
    }

    /// Phase two: records the hit.
    fn commit(&self, shard: &mut Shard, c: &Charge, next: Option<Cell>, now_ms: u64) {
        let max = self.max_keys_per_shard;
        if let Some(cell) = next {
            if !shard.cells.contains_key(&c.key) {
                shard.make_room(now_ms, max);
            }
            shard.cells.insert(c.key, cell);
        } else {
            if !shard.logs.contains_key(&c.key) {
                shard.make_room(now_ms, max);
            }
            let slot = shard.logs.entry(c.key).or_default();
            slot.log.commit(&c.rule, now_ms);
            slot.expires_s = ms_to_secs_ceil(slot.log.expires_ms(&c.rule));
        }
    }

    fn check_ban(&self, subject: Subject, now_ms: u64) -> Option<Ban> {
        let mut bans = lock(&self.bans);
        match bans.get(&subject) {
            Some(b) if b.until_ms > now_ms => Some(b.clone()),
            Some(_) => {
                bans.remove(&subject);
                None
            }
            None => None,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(1_000_000)
    }
}

impl Store for MemoryStore {
    fn admit(
        &self,
        now_ms: u64,
        ban: Option<Subject>,
        charges: &[Charge],
        quotas: &mut Vec<Quota>,
    ) -> Admission {
        quotas.clear();
        if let Some(subject) = ban {
            if let Some(b) = self.check_ban(subject, now_ms) {
                return Admission::Banned(b);
            }
        }
        if charges.is_empty() {
            return Admission::Admitted;
        }
        // Lock every shard involved, in ascending order.
        let idx: Vec<usize> = charges.iter().map(|c| self.shard_of(&c.key)).collect();
        let mut order = idx.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> =
            order.iter().map(|&i| (i, lock(&self.shards[i]))).collect();
        let mut nexts = Vec::with_capacity(charges.len());
        let mut refused: Option<(usize, u64)> = None;
        for (n, c) in charges.iter().enumerate() {
            let g = guards
                .iter_mut()
                .find(|(i, _)| *i == idx[n])
                .map(|(_, g)| g);
            let Some(shard) = g else { continue };
            let (quota, next) = Self::try_charge(shard, c, now_ms);
            if !quota.allowed && refused.is_none_or(|(_, wait)| quota.retry_after_ms > wait) {
                refused = Some((n, quota.retry_after_ms));
            }
            quotas.push(quota);
            nexts.push(next);
        }
        if let Some((index, _)) = refused {
            for q in quotas.iter_mut().filter(|q| q.allowed) {
                // Not counted: the quota is what it was before this request.
                q.remaining = q.remaining.saturating_add(1).min(q.limit);
            }
            return Admission::Limited { index };
        }
        for (n, c) in charges.iter().enumerate() {
            let shard_index = idx[n];
            if let Some((_, shard)) = guards.iter_mut().find(|(i, _)| *i == shard_index) {
                self.commit(shard, c, nexts[n], now_ms);
            }
        }
        Admission::Admitted
    }

    fn peek(&self, now_ms: u64, charges: &[Charge], quotas: &mut Vec<Quota>) -> bool {
        quotas.clear();
        for c in charges {
            let shard = lock(&self.shards[self.shard_of(&c.key)]);
            quotas.push(if c.rule.algorithm.uses_log() {
                shard.logs.get(&c.key).map_or_else(
                    || Log::default().standing(&c.rule, now_ms),
                    |slot| slot.log.standing(&c.rule, now_ms),
                )
            } else {
                let cell = shard.cells.get(&c.key).copied().unwrap_or_default();
                standing_cell(&c.rule, cell, now_ms)
            });
        }
        true
    }

    fn ban(&self, subject: Subject, until_ms: u64, reason: &str) {
        let mut bans = lock(&self.bans);
        if bans.len() >= self.max_bans && !bans.contains_key(&subject) {
            // Full: make room by dropping the ban that ends first.
            if let Some(first) = bans.iter().min_by_key(|(_, b)| b.until_ms).map(|(s, _)| *s) {
                bans.remove(&first);
            }
        }
        bans.insert(
            subject,
            Ban {
                until_ms,
                reason: reason.to_owned(),
            },
        );
    }

    fn unban(&self, subject: Subject) -> bool {
        lock(&self.bans).remove(&subject).is_some()
    }

    fn ban_of(&self, subject: Subject, now_ms: u64) -> Option<Ban> {
        self.check_ban(subject, now_ms)
    }

    fn bans(&self, now_ms: u64) -> Vec<(Subject, Ban)> {
        let mut bans = lock(&self.bans);
        bans.retain(|_, b| b.until_ms > now_ms);
        let mut out: Vec<(Subject, Ban)> = bans.iter().map(|(s, b)| (*s, b.clone())).collect();
        out.sort_by_key(|(s, b)| (b.until_ms, *s));
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
        let charge = Charge { key, rule: *rule };
        let threshold = usize::try_from(rule.limit).unwrap_or(usize::MAX);
        let mut shard = lock(&self.shards[self.shard_of(&key)]);
        let before = match shard.logs.get_mut(&key) {
            Some(slot) => {
                slot.log.prune(rule, now_ms);
                slot.log.len()
            }
            None => 0,
        };
        let count = u32::try_from(before + 1).unwrap_or(u32::MAX);
        if before + 1 >= threshold {
            // The threshold is reached: the count starts again, whether or not a ban follows.
            shard.logs.remove(&key);
            drop(shard);
            let banned_until_ms = ban_for_ms.map(|duration| {
                let until = now_ms.saturating_add(duration);
                self.ban(subject, until, reason);
                until
            });
            return Strike {
                count,
                banned_until_ms,
            };
        }
        self.commit(&mut shard, &charge, None, now_ms);
        Strike {
            count,
            banned_until_ms: None,
        }
    }

    fn reset_subject(&self, subject: Subject) {
        for shard in &*self.shards {
            let mut s = lock(shard);
            s.cells.retain(|k, _| k.subject != subject);
            s.logs
                .retain(|k, _| k.subject != subject || k.rule == STRIKES);
        }
    }

    fn clear(&self) {
        for shard in &*self.shards {
            *lock(shard) = Shard::default();
        }
        lock(&self.bans).clear();
    }

    fn stats(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        for shard in &*self.shards {
            let s = lock(shard);
            stats.keys += s.len();
            stats.bytes += s.bytes();
        }
        stats.bans = lock(&self.bans).len();
        stats
    }
}

#[cfg(test)]
mod tests;
