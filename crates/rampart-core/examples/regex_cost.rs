#![allow(clippy::print_stdout, clippy::unwrap_used)]
use rampart_core::detect::rules::{Target, RULES};
use std::time::Instant;
fn main() {
    let desc = b"a durable, dishwasher-safe widget with a brushed stainless finish, suitable for everyday use in home and professional kitchens. batch 0001, inspected twice before shipping; see the care sheet.";
    let pats: Vec<&str> = RULES
        .iter()
        .filter(|r| r.target == Target::Normalized && r.paranoia == 1)
        .map(|r| r.pattern)
        .collect();
    for lim in [2usize << 20, 32 << 20, 256 << 20] {
        let set = regex::bytes::RegexSetBuilder::new(&pats)
            .unicode(false)
            .size_limit(64 << 20)
            .dfa_size_limit(lim)
            .build()
            .unwrap();
        for _ in 0..100 {
            let _ = set.matches(desc);
        }
        let t = Instant::now();
        for _ in 0..2000 {
            let _ = set.matches(desc);
        }
        println!(
            "all set dfa={lim}: {:.2} µs",
            t.elapsed().as_secs_f64() * 1e6 / 2000.0
        );
    }
    // per rule individually
    let mut costs = vec![];
    for r in RULES.iter().filter(|r| r.target == Target::Normalized) {
        let re = regex::bytes::RegexBuilder::new(r.pattern)
            .unicode(false)
            .size_limit(64 << 20)
            .dfa_size_limit(32 << 20)
            .build()
            .unwrap();
        for _ in 0..50 {
            let _ = re.is_match(desc);
        }
        let t = Instant::now();
        for _ in 0..500 {
            let _ = re.find(desc);
        }
        costs.push((t.elapsed().as_secs_f64() * 1e6 / 500.0, r.id));
    }
    costs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    for c in costs.iter().take(12) {
        println!("rule {} {:.2} µs", c.1, c.0);
    }
}
