use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;
use crate::store::test_support::{all_or_nothing, charge, ip, peek_contract};
use crate::store::MemoryStore;

/// A fresh directory under the system temp dir, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("random");
        let p =
            std::env::temp_dir().join(format!("rampart-shm-{name}-{}", u64::from_le_bytes(seed)));
        std::fs::create_dir_all(&p).expect("mkdir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Dir, slots: usize) -> ShmStore {
    ShmStore::open(&ShmOptions {
        path: dir.0.clone(),
        slots,
        ban_slots: 64,
    })
    .expect("open")
}

const T0: u64 = 1_790_000_000_000;

#[test]
fn each_algorithm_answers_as_the_memory_store_does() {
    let dir = Dir::new("same");
    let shm = open(&dir, 1 << 12);
    let mem = MemoryStore::new(10_000);
    let a = ip("192.0.2.1");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for (id, algorithm) in [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowCounter,
        Algorithm::Gcra,
    ]
    .into_iter()
    .enumerate()
    {
        let c = charge(u32::try_from(id).expect("id"), a, 7, 10, algorithm);
        let mut now = T0;
        let (mut qs, mut qm) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            now += rng % 1_500;
            // Where the key stands first (read only), then the admission.
            assert!(shm.peek(now, &[c], &mut qs) && mem.peek(now, &[c], &mut qm));
            assert_eq!(qs, qm, "{algorithm:?} peeked at {now}");
            let s = shm.admit(now, None, &[c], &mut qs);
            let m = mem.admit(now, None, &[c], &mut qm);
            assert_eq!(s, m, "{algorithm:?} at {now}");
            assert_eq!(qs, qm, "{algorithm:?} at {now}");
        }
    }
}

#[test]
fn two_mappings_share_limits_and_bans() {
    let dir = Dir::new("share");
    let one = open(&dir, 1 << 12);
    let two = open(&dir, 1 << 12);
    let a = ip("192.0.2.7");
    let c = charge(1, a, 3, 60, Algorithm::SlidingWindow);
    let mut q = Vec::new();
    assert_eq!(one.admit(T0, Some(a), &[c], &mut q), Admission::Admitted);
    // The other mapping reads the count without adding to it.
    assert!(two.peek(T0 + 1, &[c], &mut q));
    assert_eq!((q[0].remaining, q[0].reset_ms), (2, 60_000 - 1));
    assert_eq!(
        two.admit(T0 + 1, Some(a), &[c], &mut q),
        Admission::Admitted
    );
    assert_eq!(q[0].remaining, 1);
    assert_eq!(
        one.admit(T0 + 2, Some(a), &[c], &mut q),
        Admission::Admitted
    );
    assert_eq!(
        two.admit(T0 + 3, Some(a), &[c], &mut q),
        Admission::Limited { index: 0 }
    );
    assert_eq!(q[0].retry_after_ms, 60_000 - 3);
    // The window slides: the first hit leaves it at T0 + 60 s.
    assert_eq!(
        two.admit(T0 + 60_000, Some(a), &[c], &mut q),
        Admission::Admitted
    );

    let now = Clock::System.now_ms();
    one.ban(
        a,
        now + 60_000,
        "too many strikes, with a reason longer than the slot",
    );
    let ban = two.ban_of(a, now).expect("banned everywhere");
    assert_eq!(ban.until_ms, now + 60_000);
    assert_eq!(ban.reason, "too many strikes, with a reason ");
    assert!(matches!(
        two.admit(now, Some(a), &[], &mut q),
        Admission::Banned(_)
    ));
    assert_eq!(two.bans(now).len(), 1);
    assert!(two.unban(a));
    assert!(one.ban_of(a, now).is_none());
    assert!(!one.unban(a));
}

#[test]
fn four_threads_on_four_mappings_lose_no_update() {
    let dir = Dir::new("race");
    let stores: Vec<Arc<ShmStore>> = (0..4).map(|_| Arc::new(open(&dir, 1 << 14))).collect();
    let a = ip("198.51.100.1");
    // A counter nobody can fill: every hit must be counted.
    let big = charge(1, a, 1_000_000, 3600, Algorithm::FixedWindow);
    // A ring: exactly its limit of many attempts gets through.
    let ring = charge(2, a, 50, 3600, Algorithm::SlidingWindow);
    let gcra = charge(3, a, 40, 3600, Algorithm::Gcra);
    let admitted = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
    let threads: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = Arc::clone(s);
            let admitted = Arc::clone(&admitted);
            std::thread::spawn(move || {
                let mut q = Vec::new();
                for i in 0..5_000u64 {
                    let now = T0 + i / 100;
                    for (n, c) in [big, ring, gcra].iter().enumerate() {
                        if i >= 400 && n > 0 {
                            continue;
                        }
                        if s.admit(now, None, &[*c], &mut q) == Admission::Admitted {
                            admitted[n].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(admitted[0].load(Ordering::Relaxed), 20_000);
    assert_eq!(admitted[1].load(Ordering::Relaxed), 50);
    assert_eq!(admitted[2].load(Ordering::Relaxed), 40);
    let mut q = Vec::new();
    stores[0].admit(T0 + 60, None, &[big], &mut q);
    assert_eq!(q[0].remaining, 1_000_000 - 20_001);
    assert_eq!(stores[0].full_events(), 0);
}

#[test]
fn admission_is_all_or_nothing() {
    let dir = Dir::new("all");
    all_or_nothing(&open(&dir, 1 << 12), T0);
}

#[test]
fn peeking_counts_nothing_and_agrees_with_admission() {
    let dir = Dir::new("peek");
    peek_contract(&open(&dir, 1 << 12), T0);
}

#[test]
fn strikes_ban_at_the_threshold_and_start_again() {
    let dir = Dir::new("strike");
    let store = open(&dir, 1 << 12);
    let a = ip("203.0.113.9");
    let rule = Rule::new(3, 60, Algorithm::SlidingWindow);
    let now = Clock::System.now_ms();
    assert_eq!(store.strike(now, a, &rule, Some(1000), "r").count, 1);
    assert_eq!(store.strike(now + 1, a, &rule, Some(1000), "r").count, 2);
    let s = store.strike(now + 2, a, &rule, Some(1000), "three strikes");
    assert_eq!(
        s,
        Strike {
            count: 3,
            banned_until_ms: Some(now + 1002)
        }
    );
    assert_eq!(
        store.ban_of(a, now + 3).expect("ban").reason,
        "three strikes"
    );
    // The count started again.
    assert_eq!(store.strike(now + 2000, a, &rule, None, "r").count, 1);
    // Strikes leave the window.
    assert_eq!(store.strike(now + 2001, a, &rule, None, "r").count, 2);
    assert_eq!(store.strike(now + 70_000, a, &rule, None, "r").count, 1);
}

#[test]
fn reset_subject_forgets_limits_but_keeps_bans_and_strikes() {
    let dir = Dir::new("reset");
    let store = open(&dir, 1 << 12);
    let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
    let rule = Rule::new(3, 60, Algorithm::SlidingWindow);
    let now = Clock::System.now_ms();
    let mut q = Vec::new();
    for who in [a, b] {
        for (id, alg) in [(1, Algorithm::SlidingWindow), (2, Algorithm::Gcra)] {
            let c = charge(id, who, 1, 60, alg);
            assert_eq!(store.admit(now, None, &[c], &mut q), Admission::Admitted);
            assert_eq!(
                store.admit(now, None, &[c], &mut q),
                Admission::Limited { index: 0 }
            );
        }
    }
    store.strike(now, a, &rule, None, "r");
    store.ban(a, now + 10_000, "kept");
    store.reset_subject(a);
    for (id, alg) in [(1, Algorithm::SlidingWindow), (2, Algorithm::Gcra)] {
        let ca = charge(id, a, 1, 60, alg);
        let cb = charge(id, b, 1, 60, alg);
        assert_eq!(
            store.admit(now + 1, None, &[ca], &mut q),
            Admission::Admitted,
            "{alg:?}"
        );
        assert_eq!(
            store.admit(now + 1, None, &[cb], &mut q),
            Admission::Limited { index: 0 }
        );
    }
    assert!(store.ban_of(a, now).is_some());
    assert_eq!(store.strike(now + 1, a, &rule, None, "r").count, 2);
}

#[test]
fn expired_slots_are_reclaimed_and_a_full_table_fails_open_once() {
    let dir = Dir::new("full");
    let store = open(&dir, 64);
    let mut q = Vec::new();
    // Thousands of clients over time in a 64-slot table: each minute's keys expire and their
    // slots are taken by the next minute's.
    for minute in 0..50u64 {
        for n in 0..20u8 {
            let c = charge(1, ip(&format!("10.0.{minute}.{n}")), 1, 1, Algorithm::Gcra);
            let now = T0 + minute * 180_000;
            assert_eq!(store.admit(now, None, &[c], &mut q), Admission::Admitted);
            assert_eq!(
                store.admit(now, None, &[c], &mut q),
                Admission::Limited { index: 0 }
            );
        }
    }
    assert_eq!(store.full_events(), 0);
    assert!(store.take_warning().is_none());
    // Now more live keys than slots: the extra ones are admitted uncounted, and said so once.
    let mut uncounted = 0;
    for n in 0..200u8 {
        let c = charge(1, ip(&format!("10.9.0.{n}")), 1, 3600, Algorithm::Gcra);
        store.admit(T0 * 2, None, &[c], &mut q);
        if store.admit(T0 * 2, None, &[c], &mut q) == Admission::Admitted {
            uncounted += 1;
        }
    }
    assert!(uncounted >= 200 - 64, "{uncounted}");
    assert!(store.full_events() > 0);
    let warning = store.take_warning().expect("warned");
    assert!(
        !warning.recovered && warning.message.contains("full"),
        "{warning:?}"
    );
    assert!(store.take_warning().is_none());
    assert!(store.degraded().is_some(), "asking takes nothing");
    assert!(store.degraded().is_some());
    // A minute later with no operation finding it full (an existing client counted): room
    // again, said once. Until then it stays degraded.
    let known = charge(1, ip("10.9.0.0"), 1000, 3600, Algorithm::Gcra);
    store.admit(T0 * 2 + 59_000, None, &[known], &mut q);
    assert!(store.take_warning().is_none());
    assert!(store.degraded().is_some());
    store.admit(T0 * 2 + 60_000, None, &[known], &mut q);
    let back = store.take_warning().expect("room again");
    assert!(
        back.recovered && back.message.contains("room again"),
        "{back:?}"
    );
    assert!(store.take_warning().is_none());
    assert!(store.degraded().is_none());
    // Full again: degraded again, said once more.
    for n in 0..200u8 {
        let c = charge(2, ip(&format!("10.8.0.{n}")), 1, 3600, Algorithm::Gcra);
        store.admit(T0 * 2 + 61_000, None, &[c], &mut q);
    }
    assert!(!store.take_warning().expect("full again").recovered);
    assert!(store.degraded().is_some());
}

#[test]
fn state_survives_reopening_and_a_bad_header_is_rebuilt_when_alone() {
    let dir = Dir::new("reopen");
    let a = ip("192.0.2.1");
    let c = charge(1, a, 2, 60, Algorithm::SlidingWindow);
    let mut q = Vec::new();
    {
        let store = open(&dir, 1 << 10);
        store.admit(T0, None, &[c], &mut q);
        store.admit(T0, None, &[c], &mut q);
    }
    // A restarted worker (a new mapping, asking for another size) sees the same state.
    let store = open(&dir, 1 << 16);
    assert_eq!(
        store.admit(T0 + 1, None, &[c], &mut q),
        Admission::Limited { index: 0 }
    );
    assert_eq!(store.stats().bytes, (64 + 1024 * 4 + 64 * 8) * 8);
    let path = store.path().to_path_buf();
    drop(store);
    std::fs::write(&path, b"not a rampart file").expect("write");
    let store = open(&dir, 1 << 10);
    assert_eq!(store.admit(T0 + 2, None, &[c], &mut q), Admission::Admitted);
    // While a process holds the file, another layout cannot take it over.
    let err = ShmStore::open(&ShmOptions {
        path: dir.0.join("missing-dir").join("x"),
        slots: 64,
        ban_slots: 64,
    })
    .expect_err("no such directory");
    assert!(err.contains("missing-dir"), "{err}");
}

#[test]
fn cells_round_trip_through_sixty_bits() {
    let now = T0;
    for algorithm in [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowCounter,
        Algorithm::Gcra,
    ] {
        let rule = Rule::new(1000, 60, algorithm);
        let mut cell = Cell::default();
        for i in 0..50 {
            let (_, next) = check_cell(&rule, cell, now + i * 997);
            let back = decode_cell(&rule, encode_cell(&rule, &next), now + i * 997);
            assert_eq!(back, next, "{algorithm:?}");
            cell = next;
        }
    }
    assert_eq!(near(0x3e8, 0x3e8 & 0xfff, 12), 0x3e8);
    assert_eq!(near(0x3e8, 0x3e9 & 0xfff, 12), 0x3e9);
    assert_eq!(near(4096, 4095, 12), 4095);
}
