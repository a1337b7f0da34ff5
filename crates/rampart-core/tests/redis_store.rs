//! The Redis store against a real `redis-server`, started on a free loopback port by each test
//! (`make test` installs it). Same answers as the memory store, one round trip per admission,
//! and the outage behaviour: fail open onto local counters or closed, bans written back.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rampart_core::config::RedisOptions;
use rampart_core::limit::{Algorithm, Quota, Rule};
use rampart_core::store::{Admission, Charge, Key, MemoryStore, RedisStore, Store, Subject};

struct Server {
    child: Option<Child>,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Server { child: None, port };
        server.run();
        server
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn store(&self, prefix: &str, fail_closed: bool) -> RedisStore {
        let options = RedisOptions {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            prefix: prefix.to_owned(),
            fail_closed,
        };
        RedisStore::open(&options, 10_000).unwrap()
    }
}

/// Three primaries joined into a cluster with `redis-cli --cluster create`.
struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                // The cluster bus needs a port of its own (by default port + 10000, which may
                // not exist).
                let bus = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let dir = std::env::temp_dir().join(format!("rampart-cluster-{port}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-enabled",
                        "yes",
                    ])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .args(["--cluster-port", &bus.to_string()])
                    .arg("--dir")
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                while TcpStream::connect(("127.0.0.1", port)).is_err() {
                    assert!(Instant::now() < deadline, "cluster node did not start");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Server {
                    child: Some(child),
                    port,
                }
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        for n in &nodes {
            let client = redis::Client::open(format!("redis://127.0.0.1:{}", n.port)).unwrap();
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut client.get_connection().unwrap())
                    .unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not settle");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Cluster { nodes }
    }

    fn store(&self) -> RedisStore {
        let hosts: Vec<String> = self.nodes[..2]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let options = RedisOptions {
            url: format!("redis+cluster://{}", hosts.join(",")),
            prefix: "k:".to_owned(),
            fail_closed: false,
        };
        RedisStore::open(&options, 10_000).unwrap()
    }

    fn keys_per_node(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                let client = redis::Client::open(format!("redis://127.0.0.1:{}", n.port)).unwrap();
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg("k:*")
                    .query(&mut client.get_connection().unwrap())
                    .unwrap();
                keys.len()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ip(s: &str) -> Subject {
    Subject::ip(s.parse::<IpAddr>().unwrap())
}

fn charge(rule: u32, who: Subject, limit: u32, algorithm: Algorithm) -> Charge {
    Charge {
        key: Key { rule, subject: who },
        rule: Rule::new(limit, 60, algorithm),
    }
}

fn now() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn admissions_match_the_memory_store_and_are_all_or_nothing() {
    let server = Server::start();
    let redis = server.store("a:", false);
    let memory = MemoryStore::new(1000);
    let who = ip("192.0.2.1");
    for (id, algorithm) in [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowCounter,
        Algorithm::Gcra,
    ]
    .into_iter()
    .enumerate()
    {
        let c = charge(u32::try_from(id).unwrap(), who, 3, algorithm);
        let (mut qr, mut qm): (Vec<Quota>, Vec<Quota>) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = now();
            let r = redis.admit(t, Some(who), &[c], &mut qr);
            let m = memory.admit(t, Some(who), &[c], &mut qm);
            assert_eq!(r, m, "{algorithm:?}");
            assert_eq!(qr[0].allowed, qm[0].allowed, "{algorithm:?}");
            assert_eq!(qr[0].remaining, qm[0].remaining, "{algorithm:?}");
        }
    }
    // A request refused by one limit is counted by none.
    let other = ip("192.0.2.2");
    let wide = charge(10, other, 5, Algorithm::SlidingWindow);
    let narrow = charge(11, other, 1, Algorithm::FixedWindow);
    let mut q = Vec::new();
    assert_eq!(
        redis.admit(now(), None, &[wide, narrow], &mut q),
        Admission::Admitted
    );
    for _ in 0..3 {
        assert_eq!(
            redis.admit(now(), None, &[wide, narrow], &mut q),
            Admission::Limited { index: 1 }
        );
    }
    assert_eq!(q[0].remaining, 4);
    redis.admit(now(), None, &[wide], &mut q);
    assert_eq!(q[0].remaining, 3);
}

#[test]
fn a_window_longer_than_the_epoch_counts_like_any_other() {
    // The longest window the config accepts (2^32 - 1 s) is still in its window 0. Its sliding
    // counter has no previous window; reading "window -1" as window 0 counted each request twice.
    let server = Server::start();
    let redis = server.store("e:", false);
    let memory = MemoryStore::new(1000);
    let who = ip("192.0.2.60");
    for (id, algorithm) in [Algorithm::FixedWindow, Algorithm::SlidingWindowCounter]
        .into_iter()
        .enumerate()
    {
        let c = Charge {
            key: Key {
                rule: u32::try_from(id).unwrap(),
                subject: who,
            },
            rule: Rule::new(4, u64::from(u32::MAX), algorithm),
        };
        let (mut qr, mut qm) = (Vec::new(), Vec::new());
        let mut admitted = Vec::new();
        for _ in 0..5 {
            let t = now();
            let r = redis.admit(t, Some(who), &[c], &mut qr);
            assert_eq!(
                r,
                memory.admit(t, Some(who), &[c], &mut qm),
                "{algorithm:?}"
            );
            assert_eq!(qr[0].remaining, qm[0].remaining, "{algorithm:?}");
            admitted.push(r == Admission::Admitted);
        }
        assert_eq!(admitted, [true, true, true, true, false], "{algorithm:?}");
    }
}

#[test]
fn windows_count_in_one_place_whether_or_not_a_gcra_limit_comes_along() {
    // A request that also meets a GCRA limit goes through the script; one that does not goes
    // through the plain pipeline. Both must count a fixed window or sliding counter in the same
    // keys, or the limit lets through what it counted in each place (here 2 + 2 for 2).
    let server = Server::start();
    let store = server.store("g:", false);
    let who = ip("192.0.2.70");
    for (id, algorithm) in [
        (20, Algorithm::FixedWindow),
        (21, Algorithm::SlidingWindowCounter),
    ] {
        let shared = Charge {
            key: Key {
                rule: id,
                subject: who,
            },
            rule: Rule::new(2, 3600, algorithm),
        };
        let gcra = charge(id + 10, who, 1000, Algorithm::Gcra);
        let mut q = Vec::new();
        let t = now();
        assert_eq!(
            store.admit(t, Some(who), &[shared], &mut q),
            Admission::Admitted
        );
        assert_eq!(
            store.admit(t, Some(who), &[shared, gcra], &mut q),
            Admission::Admitted,
            "{algorithm:?}"
        );
        assert_eq!(
            q[0].remaining, 0,
            "{algorithm:?}: the script saw the plain count"
        );
        assert_eq!(
            store.admit(t, Some(who), &[shared], &mut q),
            Admission::Limited { index: 0 },
            "{algorithm:?}: the plain pipeline saw the script's count"
        );
        assert_eq!(
            store.admit(t, Some(who), &[shared, gcra], &mut q),
            Admission::Limited { index: 0 },
            "{algorithm:?}"
        );
        let mut peeked = Vec::new();
        assert!(store.peek(now(), &[shared], &mut peeked));
        assert_eq!(peeked[0].remaining, 0, "{algorithm:?}");
    }
}

#[test]
fn a_rule_may_change_algorithm_and_replies_stay_in_step_after_refusals() {
    let server = Server::start();
    let store = server.store("d:", false);
    let who = ip("192.0.2.50");
    let mut q = Vec::new();
    // The same rule under every algorithm in turn (a redeployment): each starts afresh instead
    // of meeting the previous one's state (of another Redis type).
    for algorithm in [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowCounter,
        Algorithm::Gcra,
    ] {
        let c = charge(7, who, 1, algorithm);
        assert_eq!(
            store.admit(now(), Some(who), &[c], &mut q),
            Admission::Admitted,
            "{algorithm:?}"
        );
        // A refusal takes its count back without waiting for the answer; the commands after it
        // still get their own answers.
        assert_eq!(
            store.admit(now(), Some(who), &[c], &mut q),
            Admission::Limited { index: 0 },
            "{algorithm:?}"
        );
        assert!(store.ban_of(who, now()).is_none());
        assert!(store.bans(now()).is_empty());
    }
    assert!(store.take_warning().is_none());
}

/// A limit whose window never rolls over during a test: window 0 of the longest window the
/// config accepts (a fixed window crossing a minute boundary would restart its count).
fn lasting(rule: u32, who: Subject, limit: u32, algorithm: Algorithm) -> Charge {
    Charge {
        key: Key { rule, subject: who },
        rule: Rule::new(limit, u64::from(u32::MAX), algorithm),
    }
}

#[test]
fn peeking_reads_what_admission_counted_and_counts_nothing() {
    let server = Server::start();
    let (one, two) = (server.store("p:", false), server.store("p:", false));
    let who = ip("192.0.2.70");
    let mut q = Vec::new();
    for (algorithm, id) in [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowCounter,
        Algorithm::Gcra,
    ]
    .into_iter()
    .zip(1..)
    {
        let c = lasting(id, who, 3, algorithm);
        assert!(two.peek(now(), &[c], &mut q));
        assert_eq!((q[0].remaining, q[0].reset_ms), (3, 0), "{algorithm:?}");
        for n in 1..=3 {
            assert_eq!(
                one.admit(now(), Some(who), &[c], &mut q),
                Admission::Admitted,
                "{algorithm:?}: the peeks counted nothing"
            );
            let mut peeked = Vec::new();
            for _ in 0..3 {
                // Another store (host) reads what this one counted.
                assert!(two.peek(now(), &[c], &mut peeked));
                assert_eq!(peeked[0].remaining, 3 - n, "{algorithm:?}: {n} used");
                assert_eq!(peeked[0].allowed, n < 3, "{algorithm:?}");
                assert!(peeked[0].reset_ms > 0, "{algorithm:?}");
            }
        }
        assert!(two.peek(now(), &[c], &mut q));
        assert!(!q[0].allowed && q[0].retry_after_ms > 0, "{algorithm:?}");
        assert_eq!(
            one.admit(now(), Some(who), &[c], &mut q),
            Admission::Limited { index: 0 },
            "{algorithm:?}"
        );
        two.reset_subject(who);
        assert!(one.peek(now(), &[c], &mut q));
        assert_eq!(q[0].remaining, 3, "{algorithm:?}: reset");
    }
    // A fixed or counter window admitted alongside a GCRA limit goes through the script (a
    // hash), alone through plain keys: the peek reads both.
    let other = ip("192.0.2.71");
    for (algorithm, id) in [Algorithm::FixedWindow, Algorithm::SlidingWindowCounter]
        .into_iter()
        .zip(10..)
    {
        let c = lasting(id, other, 5, algorithm);
        let gcra = lasting(id + 10, other, 5, Algorithm::Gcra);
        assert_eq!(
            one.admit(now(), None, &[c, gcra], &mut q),
            Admission::Admitted
        );
        assert_eq!(one.admit(now(), None, &[c], &mut q), Admission::Admitted);
        assert!(two.peek(now(), &[c, gcra], &mut q));
        assert_eq!((q[0].remaining, q[1].remaining), (3, 4), "{algorithm:?}");
    }
    assert!(one.take_warning().is_none() && two.take_warning().is_none());
}

#[test]
fn bans_strikes_and_resets_are_shared() {
    let server = Server::start();
    let (one, two) = (server.store("b:", false), server.store("b:", false));
    let who = ip("198.51.100.1");
    let t = now();
    // Listing no bans is a listing, not an error (which would read as an outage).
    assert!(one.bans(t).is_empty());
    assert!(one.take_warning().is_none());
    one.ban(who, t + 60_000, "by hand");
    let mut q = Vec::new();
    assert!(
        matches!(two.admit(t, Some(who), &[], &mut q), Admission::Banned(b) if b.reason == "by hand")
    );
    assert_eq!(two.bans(t).len(), 1);
    assert!(two.unban(who));
    assert!(one.ban_of(who, t).is_none());

    let rule = Rule::new(2, 60, Algorithm::SlidingWindow);
    let striker = ip("198.51.100.2");
    assert_eq!(
        one.strike(t, striker, &rule, Some(5_000), "strikes").count,
        1
    );
    let s = two.strike(t, striker, &rule, Some(5_000), "strikes");
    assert_eq!((s.count, s.banned_until_ms), (2, Some(t + 5_000)));
    assert!(one.ban_of(striker, t).is_some());

    let c = charge(1, who, 1, Algorithm::Gcra);
    assert_eq!(one.admit(t, None, &[c], &mut q), Admission::Admitted);
    assert_eq!(
        two.admit(t, None, &[c], &mut q),
        Admission::Limited { index: 0 }
    );
    two.reset_subject(who);
    assert_eq!(one.admit(t, None, &[c], &mut q), Admission::Admitted);
    one.clear();
    assert!(two.ban_of(striker, t).is_none());
}

#[test]
fn an_outage_fails_open_or_closed_and_bans_are_written_back() {
    let mut server = Server::start();
    let open = server.store("c:", false);
    let closed = server.store("c:", true);
    let who = ip("203.0.113.1");
    let c = charge(1, who, 2, Algorithm::SlidingWindow);
    let mut q = Vec::new();
    assert_eq!(open.admit(now(), None, &[c], &mut q), Admission::Admitted);
    assert_eq!(closed.admit(now(), None, &[c], &mut q), Admission::Admitted);
    server.kill();
    // Open: local counters (a fresh window here); closed: unavailable.
    assert_eq!(open.admit(now(), None, &[c], &mut q), Admission::Admitted);
    assert_eq!(open.admit(now(), None, &[c], &mut q), Admission::Admitted);
    assert_eq!(
        open.admit(now(), None, &[c], &mut q),
        Admission::Limited { index: 0 }
    );
    assert_eq!(
        closed.admit(now(), None, &[c], &mut q),
        Admission::Unavailable
    );
    let warning = open.take_warning().unwrap().message;
    assert!(warning.contains("unreachable"), "{warning}");
    assert!(open.take_warning().is_none());
    // A peek says it could not read the shared counters, and shows this process's own.
    assert!(!open.peek(now(), &[c], &mut q));
    assert_eq!(q[0].remaining, 0);
    let banned = ip("203.0.113.9");
    open.ban(banned, now() + 60_000, "during the outage");
    assert!(open.ban_of(banned, now()).is_some());

    server.run();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(open.admit(now(), None, &[], &mut q), Admission::Admitted);
    let back = open.take_warning().unwrap();
    assert!(back.recovered && back.message.contains("1 bans"));
    // Written back: another store on the same server sees the ban.
    let later = server.store("c:", false);
    assert_eq!(
        later.ban_of(banned, now()).unwrap().reason,
        "during the outage"
    );
}

#[test]
fn a_cluster_counts_across_slots_all_or_nothing() {
    let cluster = Cluster::start();
    let (one, two) = (cluster.store(), cluster.store());
    let mut q = Vec::new();
    // Many clients, one global limit and a per-client limit: keys in many slots.
    let global = Charge {
        key: Key {
            rule: 1,
            subject: Subject::EVERYONE,
        },
        rule: Rule::new(20, 60, Algorithm::SlidingWindow),
    };
    let mut admitted = 0;
    for n in 0..40u8 {
        let who = ip(&format!("10.0.0.{n}"));
        let own = charge(2, who, 1, Algorithm::Gcra);
        let store = if n % 2 == 0 { &one } else { &two };
        for _ in 0..2 {
            if store.admit(now(), Some(who), &[own, global], &mut q) == Admission::Admitted {
                admitted += 1;
            }
        }
    }
    // 40 clients allowed one each, the global limit 20: exactly 20, and the clients refused by
    // the global limit were not counted by their own (they pass once it has room).
    assert_eq!(admitted, 20, "{:?}", one.take_warning());
    let nodes_used = cluster.keys_per_node().iter().filter(|&&k| k > 0).count();
    assert!(nodes_used >= 2, "keys should spread over the nodes");
    // A peek reads every node: the global limit is used up, client 0 used its one request,
    // client 39 (refused by the global limit) none.
    let first = charge(2, ip("10.0.0.0"), 1, Algorithm::Gcra);
    let last = charge(2, ip("10.0.0.39"), 1, Algorithm::Gcra);
    assert!(
        two.peek(now(), &[last, global, first], &mut q),
        "{:?}",
        two.take_warning()
    );
    let remaining: Vec<u32> = q.iter().map(|q| q.remaining).collect();
    assert_eq!(remaining, [1, 0, 0]);
    let late = ip("10.0.0.39");
    let own = charge(2, late, 1, Algorithm::Gcra);
    assert_eq!(
        one.admit(now(), Some(late), &[own], &mut q),
        Admission::Admitted
    );

    // Bans, strikes, listing, reset and clear work across nodes.
    let t = now();
    let banned = ip("198.51.100.3");
    one.ban(banned, t + 60_000, "cluster");
    assert!(matches!(
        two.admit(t, Some(banned), &[], &mut q),
        Admission::Banned(_)
    ));
    let rule = Rule::new(2, 60, Algorithm::SlidingWindow);
    let striker = ip("198.51.100.4");
    one.strike(t, striker, &rule, Some(60_000), "strikes");
    two.strike(t, striker, &rule, Some(60_000), "strikes");
    let listed: Vec<Subject> = two.bans(t).into_iter().map(|(s, _)| s).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&banned) && listed.contains(&striker));
    assert!(two.unban(banned));
    assert!(one.ban_of(banned, t).is_none());
    let limited = charge(2, ip("10.0.0.1"), 1, Algorithm::Gcra);
    assert_eq!(
        one.admit(now(), None, &[limited], &mut q),
        Admission::Limited { index: 0 }
    );
    two.reset_subject(ip("10.0.0.1"));
    assert_eq!(
        one.admit(now(), None, &[limited], &mut q),
        Admission::Admitted
    );
    one.clear();
    assert_eq!(cluster.keys_per_node().iter().sum::<usize>(), 0);
    assert!(one.take_warning().is_none(), "no outage on the way");
}

#[test]
fn shared_values_reach_other_stores_and_expire() {
    let server = Server::start();
    let (one, two) = (server.store("v:", false), server.store("v:", false));
    assert!(one.shares_blobs());
    assert_eq!(two.blob_get("cloud_ranges:AWS"), None);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert!(one.blob_set("ipinfo:database", &bytes, 60_000));
    assert_eq!(
        two.blob_get("ipinfo:database").as_deref(),
        Some(&bytes[..]),
        "binary-safe"
    );
    assert!(one.blob_set("short", b"x", 50));
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert_eq!(two.blob_get("short"), None, "expired");
}
