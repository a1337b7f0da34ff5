//! Development aid: runs a labelled JSONL corpus through the detector (no web framework) and
//! prints true-positive rates per attack category, false-positive rates per benign category, and
//! the misses. `make detect-eval` is the measurement of record (through a real Flask app).
//!
//! `cargo run --release -p rampart-core --example detect_eval -- CORPUS.jsonl [--misses]`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

use rampart_core::detect::{Detector, Settings};
use rampart_core::RequestView;

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map_or("../shared/corpus/dev.jsonl", String::as_str);
    let show = args.iter().any(|a| a == "--misses");
    let d = Detector::new(Settings::default()).unwrap();
    let f = std::fs::File::open(path).unwrap();
    let mut stats: BTreeMap<(String, String), (u32, u32)> = BTreeMap::new();
    let mut misses = Vec::new();
    let start = std::time::Instant::now();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let label = v["label"].as_str().unwrap().to_owned();
        let cat = v["category"].as_str().unwrap().to_owned();
        let loc = v["location"].as_str().unwrap();
        let field = v["field"].as_str().unwrap_or("q");
        let payload = v["payload"].as_str().unwrap();
        let query;
        let body;
        let headers;
        let mut req = RequestView {
            method: "GET",
            path: "/search",
            ..RequestView::default()
        };
        match loc {
            "query" => {
                query = format!("{}={}", encode(field), encode(payload));
                req.query = &query;
            }
            "body" => {
                body = format!("{}={}", encode(field), encode(payload));
                req.method = "POST";
                req.body = body.as_bytes();
                req.content_type = Some("application/x-www-form-urlencoded");
            }
            "json_body" => {
                req.method = "POST";
                req.body = payload.as_bytes();
                req.content_type = Some("application/json");
            }
            "path" => {
                body = format!("/{payload}");
                req.path = &body;
            }
            _ => {
                let name = field.to_ascii_uppercase().replace('-', "_");
                headers = [(name, payload)];
                let refs: Vec<(&str, &str)> =
                    headers.iter().map(|(a, b)| (a.as_str(), *b)).collect();
                let scan = d.scan_request(&RequestView {
                    headers: &refs,
                    cookie: (name_is_cookie(field)).then_some(payload),
                    ..req
                });
                record(&mut stats, &mut misses, &label, &cat, loc, payload, &scan);
                continue;
            }
        }
        let scan = d.scan_request(&req);
        record(&mut stats, &mut misses, &label, &cat, loc, payload, &scan);
    }
    let elapsed = start.elapsed();
    let (mut tp, mut na, mut fp, mut nb) = (0, 0, 0, 0);
    for ((label, cat), (n, hit)) in &stats {
        let rate = f64::from(*hit) / f64::from(*n) * 100.0;
        println!("{label:7} {cat:20} {hit:5}/{n:5} {rate:6.2}%");
        if label == "attack" {
            tp += hit;
            na += n;
        } else {
            fp += hit;
            nb += n;
        }
    }
    println!(
        "TPR {:.2}%  FPR {:.3}%  ({:?})",
        f64::from(tp) / f64::from(na) * 100.0,
        f64::from(fp) / f64::from(nb) * 100.0,
        elapsed
    );
    if show {
        for m in &misses {
            println!("{m}");
        }
    }
}

fn name_is_cookie(field: &str) -> bool {
    field.eq_ignore_ascii_case("cookie")
}

fn record(
    stats: &mut BTreeMap<(String, String), (u32, u32)>,
    misses: &mut Vec<String>,
    label: &str,
    cat: &str,
    loc: &str,
    payload: &str,
    scan: &rampart_core::detect::Scan,
) {
    let e = stats.entry((label.to_owned(), cat.to_owned())).or_default();
    e.0 += 1;
    if scan.attack {
        e.1 += 1;
    }
    let wrong = (label == "attack") != scan.attack;
    if wrong {
        let why: Vec<String> = scan
            .findings
            .iter()
            .map(|f| format!("{}:{}", f.rule, f.score))
            .collect();
        let p: String = payload.chars().take(160).collect();
        misses.push(format!(
            "{} {cat:18} {loc:9} {:?} [{}]",
            if label == "attack" { "MISS" } else { "FP  " },
            p,
            why.join(",")
        ));
    }
}
