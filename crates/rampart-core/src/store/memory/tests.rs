use std::net::IpAddr;

use super::*;
use crate::limit::Algorithm;
use crate::store::test_support::{all_or_nothing, charge, ip, peek_contract};

#[test]
fn admission_is_all_or_nothing() {
    all_or_nothing(&MemoryStore::new(10_000), 0);
}

#[test]
fn peeking_counts_nothing_and_agrees_with_admission() {
    peek_contract(&MemoryStore::new(10_000), 0);
}

#[test]
fn bans_block_admission_and_expire() {
    let store = MemoryStore::new(10_000);
    let a = ip("2001:db8::1");
    let mut q = Vec::new();
    store.ban(a, 5_000, "test");
    match store.admit(1_000, Some(a), &[], &mut q) {
        Admission::Banned(b) => {
            assert_eq!(b.until_ms, 5_000);
            assert_eq!(b.reason, "test");
        }
        other => panic!("expected a ban, got {other:?}"),
    }
    assert_eq!(store.bans(1_000).len(), 1);
    assert_eq!(
        store.admit(5_000, Some(a), &[], &mut q),
        Admission::Admitted
    );
    assert!(store.bans(5_000).is_empty());
    store.ban(a, 9_000, "again");
    assert!(store.unban(a));
    assert!(!store.unban(a));
    assert_eq!(
        store.admit(6_000, Some(a), &[], &mut q),
        Admission::Admitted
    );
}

#[test]
fn strikes_ban_at_the_threshold_and_start_again() {
    let store = MemoryStore::new(10_000);
    let a = ip("198.51.100.7");
    let rule = Rule::new(3, 60, Algorithm::SlidingWindow);
    assert_eq!(store.strike(0, a, &rule, Some(1000), "r").count, 1);
    assert_eq!(store.strike(1, a, &rule, Some(1000), "r").count, 2);
    let third = store.strike(2, a, &rule, Some(1000), "r");
    assert_eq!(third.banned_until_ms, Some(1002));
    assert!(store.ban_of(a, 500).is_some());
    assert!(store.ban_of(a, 1002).is_none());
    // The count started again: two more strikes do not ban.
    assert_eq!(store.strike(2000, a, &rule, Some(1000), "r").count, 1);
    // Strikes older than the window do not count.
    assert_eq!(store.strike(70_000, a, &rule, Some(1000), "r").count, 1);
    // Without a ban duration (passive mode) the threshold is reported but nothing is banned.
    store.strike(70_001, a, &rule, None, "r");
    let passive = store.strike(70_002, a, &rule, None, "r");
    assert_eq!(passive.count, 3);
    assert_eq!(passive.banned_until_ms, None);
    assert!(store.ban_of(a, 70_003).is_none());
}

#[test]
fn memory_stays_bounded_and_idle_keys_go() {
    let store = MemoryStore::new(64 * 100);
    let mut q = Vec::new();
    for i in 0..50_000u32 {
        let who = Subject::ip(IpAddr::from(i.to_be_bytes()));
        let c = charge(7, who, 10, 60, Algorithm::Gcra);
        assert_eq!(store.admit(1_000, None, &[c], &mut q), Admission::Admitted);
    }
    let stats = store.stats();
    assert!(stats.keys <= 64 * (100 + 10 + 16), "{stats:?}");
    // Long after every window, new traffic sweeps the idle keys out.
    for i in 0..64 * SWEEP_EVERY {
        let who = Subject::ip(IpAddr::from((i + 1_000_000).to_be_bytes()));
        let c = charge(7, who, 10, 1, Algorithm::FixedWindow);
        store.admit(10_000_000 + u64::from(i) * 10, None, &[c], &mut q);
    }
    assert!(store.stats().keys <= 64 * (100 + 10 + 16));
}

#[test]
fn reset_subject_forgets_only_that_client() {
    let store = MemoryStore::new(10_000);
    let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
    let mut q = Vec::new();
    for who in [a, b] {
        let c = charge(1, who, 1, 60, Algorithm::SlidingWindow);
        assert_eq!(store.admit(0, None, &[c], &mut q), Admission::Admitted);
        assert_eq!(
            store.admit(0, None, &[c], &mut q),
            Admission::Limited { index: 0 }
        );
    }
    let strikes = Rule::new(2, 60, Algorithm::SlidingWindow);
    assert_eq!(store.strike(0, a, &strikes, Some(1000), "r").count, 1);
    store.reset_subject(a);
    assert!(
        store
            .strike(1, a, &strikes, Some(1000), "r")
            .banned_until_ms
            .is_some(),
        "strikes survive a reset of the limits"
    );
    let ca = charge(1, a, 1, 60, Algorithm::SlidingWindow);
    let cb = charge(1, b, 1, 60, Algorithm::SlidingWindow);
    assert_eq!(store.admit(1, None, &[ca], &mut q), Admission::Admitted);
    assert_eq!(
        store.admit(1, None, &[cb], &mut q),
        Admission::Limited { index: 0 }
    );
}

#[test]
fn subjects_round_trip_and_names_are_stable() {
    let v4: IpAddr = "192.0.2.9".parse().expect("ip");
    let v6: IpAddr = "2001:db8::9".parse().expect("ip");
    assert_eq!(Subject::ip(v4).as_ip(), v4);
    assert_eq!(Subject::ip(v6).as_ip(), v6);
    assert_eq!(Subject::name("login"), Subject::name("login"));
    assert_ne!(Subject::name("login"), Subject::name("logout"));
}
