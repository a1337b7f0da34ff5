//! Development aid: time the detector on typical and hostile inputs.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]
use rampart_core::detect::{Detector, Kind, Settings};
use rampart_core::RequestView;
use std::time::Instant;

fn time(label: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{label:40} {:>10.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

fn main() {
    let d = Detector::new(Settings::default()).unwrap();
    if std::env::var_os("PERF_JSON").is_some() {
        let body = std::fs::read_to_string("/tmp/order.json").unwrap();
        let p = RequestView {
            method: "POST",
            path: "/submit",
            content_type: Some("application/json"),
            body: body.as_bytes(),
            ..RequestView::default()
        };
        for _ in 0..20000 {
            let _ = d.scan_request(&p);
        }
        return;
    }
    let body = std::fs::read_to_string(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/order.json".into()),
    )
    .unwrap_or_default();
    time("text 'wireless headphones'", 20000, || {
        let _ = d.scan_text("wireless headphones", Kind::Query, "q");
    });
    time("text 'price'", 20000, || {
        let _ = d.scan_text("price", Kind::Query, "q");
    });
    let desc = "A durable, dishwasher-safe widget with a brushed stainless finish, suitable for everyday use in home and professional kitchens. Batch 0001, inspected twice before shipping; see the care sheet.";
    time("text description 190B", 20000, || {
        let _ = d.scan_text(desc, Kind::Json, "q");
    });
    let q = RequestView {
        method: "GET",
        path: "/hello",
        query: "q=wireless+headphones&page=2&sort=price",
        ..RequestView::default()
    };
    println!("{:?}", d.scan_text(desc, Kind::Json, "q").findings);
    time("normalize desc", 20000, || {
        let _ = rampart_core::detect::normalize::normalize(desc);
    });
    let a1000 = format!("{}!", "a".repeat(1000));
    time("normalize a*1000", 20000, || {
        let _ = rampart_core::detect::normalize::normalize(&a1000);
    });
    time("scan a*1000", 20000, || {
        let _ = d.scan_text(&a1000, Kind::Json, "q");
    });
    let prose = "a durable, dishwasher-safe widget with a brushed stainless finish, suitable for everyday use in home and professional kitchens. batch 0001, inspected twice before shipping; see the care sheet.";
    let raw_set = regex::bytes::RegexSetBuilder::new(
        rampart_core::detect::rules::RULES
            .iter()
            .filter(|r| {
                r.target == rampart_core::detect::rules::Target::Normalized && r.paranoia == 1
            })
            .map(|r| r.pattern),
    )
    .unicode(false)
    .size_limit(64 << 20)
    .dfa_size_limit(32 << 20)
    .build()
    .unwrap();
    time("set on prose", 20000, || {
        let _ = raw_set.matches(prose.as_bytes());
    });
    time("set is_match prose", 20000, || {
        let _ = raw_set.is_match(prose.as_bytes());
    });
    time("GET 3 params", 20000, || {
        let _ = d.scan_request(&q);
    });
    let ua = [("USER_AGENT", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"), ("ORIGIN", "https://app.example.com"), ("X_FORWARDED_PROTO", "https"), ("HOST", "api.example.com")];
    let qh = RequestView { headers: &ua, ..q };
    time("GET 3 params + headers", 20000, || {
        let _ = d.scan_request(&qh);
    });
    if !body.is_empty() {
        let p = RequestView {
            method: "POST",
            path: "/submit",
            content_type: Some("application/json"),
            body: body.as_bytes(),
            ..RequestView::default()
        };
        time("POST json", 2000, || {
            let _ = d.scan_request(&p);
        });
    }
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let inputs: Vec<(&str, String, Option<&str>)> = vec![
            ("a*N+!", format!("{}!", "a".repeat(n)), Some("text/plain")),
            ("<*N", "<".repeat(n), Some("text/plain")),
            (
                "(*N )*N",
                format!("{}{}", "(".repeat(n / 2), ")".repeat(n / 2)),
                Some("text/plain"),
            ),
            ("%*N", "%".repeat(n), Some("text/plain")),
            (
                "a=*N form",
                "a=".repeat(n / 2),
                Some("application/x-www-form-urlencoded"),
            ),
            ("[*N json", "[".repeat(n), Some("application/json")),
        ];
        for (label, b, ct) in &inputs {
            let r = RequestView {
                method: "POST",
                path: "/x",
                content_type: *ct,
                body: b.as_bytes(),
                ..RequestView::default()
            };
            time(
                &format!("{label} n={n}"),
                if n >= 100_000 { 5 } else { 50 },
                || {
                    let _ = d.scan_request(&r);
                },
            );
        }
    }
}

#[allow(dead_code)]
fn parts() {}
