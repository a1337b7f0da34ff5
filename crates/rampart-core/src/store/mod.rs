//! Where limits and bans live: one small synchronous [`Store`] trait, several backends.
//!
//! Every operation is atomic for the keys it touches, so a check and its count are one step and
//! two workers cannot both take the last slot. [`Store::admit`] is the per-request operation: it
//! checks the client's ban and counts one hit against every applicable limit, all or nothing —
//! a request refused by any limit is not counted by the others (so a refused client does not dig
//! itself deeper). The memory backend lives in [`memory`], the shared-memory one (every process of
//! a host) in [`shm`]; the Redis one implements the same trait.

pub mod memory;
pub mod redis;
pub mod shm;

use std::net::IpAddr;

use crate::limit::{Quota, Rule};

pub use self::redis::RedisStore;
pub use memory::MemoryStore;
pub use shm::{ShmOptions, ShmStore};

/// Who a counter or ban is about: a client IP (IPv4 as IPv4-mapped IPv6), a name (an endpoint),
/// the two together, or nobody in particular (one counter for everyone). 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Subject(pub [u8; 16]);

impl Subject {
    /// The subject shared by every client (global limits).
    pub const EVERYONE: Subject = Subject([0; 16]);

    /// The 16 bytes as two little-endian words (for hashing and for stores that keep words).
    #[must_use]
    pub fn words(&self) -> [u64; 2] {
        let [a, b] = [&self.0[..8], &self.0[8..]].map(|half| {
            let mut w = [0u8; 8];
            w.copy_from_slice(half);
            u64::from_le_bytes(w)
        });
        [a, b]
    }

    /// The inverse of [`Subject::words`].
    #[must_use]
    pub fn from_words(words: [u64; 2]) -> Subject {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&words[0].to_le_bytes());
        out[8..].copy_from_slice(&words[1].to_le_bytes());
        Subject(out)
    }

    #[must_use]
    pub fn ip(ip: IpAddr) -> Subject {
        Subject(match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        })
    }

    /// The IP this subject stands for, when it is an IP subject.
    #[must_use]
    pub fn as_ip(&self) -> IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.0);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    }

    /// A name (an endpoint), hashed to 128 bits with a fixed key: the same in every process.
    #[must_use]
    pub fn name(name: &str) -> Subject {
        Subject::hashed(&[name.as_bytes()])
    }

    fn hashed(parts: &[&[u8]]) -> Subject {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut out = [0u8; 16];
        for (half, salt) in [(0usize, 0x5261_6d70_u32), (8, 0x6172_7421)] {
            // `DefaultHasher::new()` is SipHash with fixed keys: the same in every process of a
            // build, and not something a client can aim collisions at through its address.
            let mut h = DefaultHasher::new();
            salt.hash(&mut h);
            for p in parts {
                p.hash(&mut h);
            }
            out[half..half + 8].copy_from_slice(&h.finish().to_le_bytes());
        }
        Subject(out)
    }
}

/// One counter: which rule, about whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub rule: u32,
    pub subject: Subject,
}

/// The rule id under which suspicious events ("strikes") toward an automatic ban are counted.
pub const STRIKES: u32 = u32::MAX;

/// One limit to count a request against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub key: Key,
    pub rule: Rule,
}

/// A ban: until when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until_ms: u64,
    pub reason: String,
}

/// The answer to [`Store::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Counted against every limit; the quotas were written to the caller's list.
    Admitted,
    /// The client is banned; nothing was counted.
    Banned(Ban),
    /// Refused by the limit at `index` (the one with the longest wait); nothing was counted. The
    /// quotas were written to the caller's list.
    Limited { index: usize },
    /// The store cannot answer (Redis unreachable) and is configured to fail closed.
    Unavailable,
}

/// What a strike did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strike {
    /// Strikes in the window, this one included (0 once they turned into a ban).
    pub count: u32,
    /// Set when this strike reached the threshold and a ban was made, until then.
    pub banned_until_ms: Option<u64>,
}

/// Sizes, for `make bench` and status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Tracked counters (keys) right now.
    pub keys: usize,
    pub bans: usize,
    /// Bytes the counters' tables and logs hold (an estimate from capacities).
    pub bytes: usize,
}

/// A place to keep counters and bans. Synchronous and small: each method is one atomic step.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Checks `ban` (when given) and counts one hit against every charge, all or nothing.
    /// `quotas` receives one [`Quota`] per charge, in order (cleared first).
    fn admit(
        &self,
        now_ms: u64,
        ban: Option<Subject>,
        charges: &[Charge],
        quotas: &mut Vec<Quota>,
    ) -> Admission;

    /// Where every charge stands at `now_ms`, counting nothing and changing nothing: `quotas`
    /// receives one quota per charge, in order (cleared first), read as before a request (see
    /// [`crate::limit::standing_cell`]). Each `allowed` is what an [`Store::admit`] right after
    /// would find, and an admission counted then leaves one less `remaining`. Returns `false`
    /// when the store cannot be read (Redis unreachable); `quotas` then hold this process's
    /// own fallback counters.
    fn peek(&self, now_ms: u64, charges: &[Charge], quotas: &mut Vec<Quota>) -> bool;

    /// Bans (or re-bans) `subject` until `until_ms`.
    fn ban(&self, subject: Subject, until_ms: u64, reason: &str);

    /// Lifts a ban; whether there was one.
    fn unban(&self, subject: Subject) -> bool;

    /// The ban of `subject`, if one is in force at `now_ms`.
    fn ban_of(&self, subject: Subject, now_ms: u64) -> Option<Ban>;

    /// Every ban in force at `now_ms`.
    fn bans(&self, now_ms: u64) -> Vec<(Subject, Ban)>;

    /// Counts a suspicious event against `subject` under `rule` (threshold per window). When the
    /// count reaches the threshold and `ban_for_ms` is given, bans the subject for that long and
    /// starts its count again.
    fn strike(
        &self,
        now_ms: u64,
        subject: Subject,
        rule: &Rule,
        ban_for_ms: Option<u64>,
        reason: &str,
    ) -> Strike;

    /// Forgets every rate-limit counter about `subject` (its limits start afresh); its ban and
    /// its strikes are kept.
    fn reset_subject(&self, subject: Subject);

    /// Forgets everything: counters and bans.
    fn clear(&self);

    fn stats(&self) -> StoreStats;

    /// Whether [`Store::blob_get`] and [`Store::blob_set`] reach other hosts (Redis).
    fn shares_blobs(&self) -> bool {
        false
    }

    /// A value shared between hosts under `{prefix}{key}` (a downloaded database, a provider's
    /// ranges); `None` when absent, unreachable, or the store shares nothing.
    fn blob_get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Shares `value` under `{prefix}{key}` for `ttl_ms`; whether it was stored.
    fn blob_set(&self, _key: &str, _value: &[u8], _ttl_ms: u64) -> bool {
        false
    }

    /// Round trips to a server and the errors among them (`(0, 0)` for local stores).
    fn io_counts(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Something the operator should hear about once (a full shared-memory table, an
    /// unreachable Redis, Redis back), taken by the first caller; `None` almost always.
    fn take_warning(&self) -> Option<StoreNote> {
        None
    }

    /// Why the store is not working as configured right now (Redis unreachable, a shared-memory
    /// table this process found full), or `None`. Unlike [`Store::take_warning`] it takes
    /// nothing: asking (a status command, the dashboard) must not swallow the note that becomes
    /// the `storage_degraded` / `storage_recovered` event.
    fn degraded(&self) -> Option<String> {
        None
    }
}

/// What [`Store::take_warning`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNote {
    /// The store works as configured again (Redis reachable after an outage).
    pub recovered: bool,
    pub message: String,
}

impl StoreNote {
    #[must_use]
    pub fn degraded(message: String) -> StoreNote {
        StoreNote {
            recovered: false,
            message,
        }
    }
}

/// Helpers shared by the backends' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::net::IpAddr;

    use super::{Admission, Charge, Key, Store, Subject};
    use crate::limit::{Algorithm, Quota, Rule};

    pub(crate) fn ip(s: &str) -> Subject {
        Subject::ip(s.parse::<IpAddr>().expect("ip"))
    }

    pub(crate) fn charge(
        rule_id: u32,
        who: Subject,
        limit: u32,
        window_s: u64,
        algorithm: Algorithm,
    ) -> Charge {
        Charge {
            key: Key {
                rule: rule_id,
                subject: who,
            },
            rule: Rule::new(limit, window_s, algorithm),
        }
    }

    /// The admission contract every backend keeps: all or nothing, and a refused request counts
    /// nowhere. `t0` is a multiple of 10 s (fixed windows are aligned on them).
    pub(crate) fn all_or_nothing(store: &dyn Store, t0: u64) {
        let a = ip("192.0.2.1");
        let wide = charge(1, a, 5, 60, Algorithm::SlidingWindow);
        let narrow = charge(2, a, 2, 10, Algorithm::FixedWindow);
        let mut q = Vec::new();
        for _ in 0..2 {
            assert_eq!(
                store.admit(t0 + 1_000, Some(a), &[wide, narrow], &mut q),
                Admission::Admitted
            );
        }
        assert_eq!(q[0].remaining, 3);
        assert_eq!(q[1].remaining, 0);
        // The narrow limit refuses; the wide one must not count the refused request.
        for _ in 0..5 {
            assert_eq!(
                store.admit(t0 + 2_000, Some(a), &[wide, narrow], &mut q),
                Admission::Limited { index: 1 }
            );
        }
        assert_eq!(q[0].remaining, 3, "refused requests are not counted");
        // After the narrow window, three more fit under the wide limit, then it refuses.
        for _ in 0..2 {
            assert_eq!(
                store.admit(t0 + 10_000, Some(a), &[wide, narrow], &mut q),
                Admission::Admitted
            );
        }
        assert_eq!(
            store.admit(t0 + 20_000, None, &[wide, narrow], &mut q),
            Admission::Admitted
        );
        assert_eq!(
            store.admit(t0 + 20_000, None, &[wide, narrow], &mut q),
            Admission::Limited { index: 0 }
        );
        assert!(q[0].retry_after_ms > 0 && q[0].retry_after_ms <= 60_000);
    }

    /// The peek contract every backend keeps: a peek counts nothing and changes nothing, reads
    /// the state as before a request, and agrees with the admission that follows it. `t0` is a
    /// multiple of 10 s.
    pub(crate) fn peek_contract(store: &dyn Store, t0: u64) {
        let a = ip("192.0.2.9");
        let algorithms = [
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
            Algorithm::SlidingWindowCounter,
            Algorithm::Gcra,
        ];
        for (id, algorithm) in (100..).zip(algorithms) {
            let own = charge(id, a, 3, 10, algorithm);
            let everyone = charge(id + 10, Subject::EVERYONE, 50, 10, algorithm);
            let (mut q, mut again) = (Vec::new(), Vec::new());
            // Untouched: all of it remains and there is nothing to reset.
            assert!(store.peek(t0 + 1_000, &[own, everyone], &mut q));
            let fresh = |limit| Quota {
                allowed: true,
                limit,
                remaining: limit,
                reset_ms: 0,
                retry_after_ms: 0,
            };
            assert_eq!(q, [fresh(3), fresh(50)], "{algorithm:?}");
            for n in 1..=3u32 {
                let t = t0 + 1_000 + u64::from(n);
                assert_eq!(
                    store.admit(t, Some(a), &[own, everyone], &mut q),
                    Admission::Admitted,
                    "{algorithm:?}: peeks counted nothing, admission {n} fits"
                );
                let admitted = q.clone();
                for _ in 0..5 {
                    assert!(store.peek(t, &[own, everyone], &mut again));
                    assert_eq!(q.len(), again.len());
                }
                assert!(store.peek(t, &[own, everyone], &mut q));
                assert_eq!(q, again, "{algorithm:?}: two peeks, one answer");
                assert_eq!(q[0].remaining, 3 - n, "{algorithm:?}: {n} used");
                assert_eq!(q[1].remaining, 50 - n, "{algorithm:?}: {n} used");
                assert_eq!(q[0].allowed, n < 3, "{algorithm:?}");
                assert_eq!(q[0].remaining, admitted[0].remaining, "{algorithm:?}");
                assert!(
                    q[0].reset_ms > 0 && q[0].reset_ms <= 10_000,
                    "{algorithm:?}"
                );
            }
            // Full: the peek says refused, with the wait the refusal that follows gives.
            let t = t0 + 2_000;
            assert!(store.peek(t, &[own, everyone], &mut q));
            let (peeked, wait, shared) = (q[0], q[0].retry_after_ms, q[1]);
            assert!(
                !peeked.allowed && peeked.remaining == 0 && wait > 0,
                "{algorithm:?}"
            );
            assert_eq!(
                store.admit(t, Some(a), &[own, everyone], &mut q),
                Admission::Limited { index: 0 },
                "{algorithm:?}"
            );
            assert_eq!(q[0].retry_after_ms, wait, "{algorithm:?}");
            // The refused request was counted nowhere, as the peek shows.
            assert!(store.peek(t, &[everyone], &mut q));
            assert_eq!(q[0], shared, "{algorithm:?}");
            // Reset, the client's limits read as untouched; the shared one keeps its count.
            store.reset_subject(a);
            assert!(store.peek(t, &[own, everyone], &mut q));
            assert_eq!(q[0], fresh(3), "{algorithm:?}");
            assert_eq!(q[1], shared, "{algorithm:?}");
        }
    }
}
