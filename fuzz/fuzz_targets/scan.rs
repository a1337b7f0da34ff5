//! One value through the whole detector (normalisation, rule sets, tokenisers, excerpts) as each
//! kind of value. The first byte picks the kind; the rest is the value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::{Detector, Kind, Settings};

const KINDS: [Kind; 8] = [
    Kind::Path,
    Kind::Query,
    Kind::Form,
    Kind::Json,
    Kind::Key,
    Kind::Cookie,
    Kind::Header,
    Kind::Body,
];

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::new(Settings::default()).expect("built-in rules compile"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let d = detector();
    // The low bits pick one kind; the top bit scans the value as every kind.
    if selector & 0x80 == 0 {
        let kind = KINDS[usize::from(selector) % KINDS.len()];
        let _ = d.scan_text(&text, kind, "q");
    } else {
        for kind in KINDS {
            let _ = d.scan_text(&text, kind, "");
        }
    }
});
