//! Property tests for detection: normalisation, the JSON walker, and the detector never panic on
//! arbitrary input, normalised text keeps its documented shape, the walker reports exactly the
//! keys and strings of a document, and scanning is deterministic.
//!
//! The deep end (coverage-guided fuzzing) is in `fuzz/`, outside CI; these run in CI and are kept
//! small enough to finish in seconds in a debug build.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::OnceLock;

use proptest::prelude::*;
use rampart_core::detect::json::{self, Item};
use rampart_core::detect::normalize::normalize;
use rampart_core::detect::{Detector, Kind, Scan, Settings};
use rampart_core::RequestView;
use serde_json::{Map, Number, Value};

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::new(Settings::default()).expect("built-in rules compile"))
}

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

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Pieces the normaliser reacts to: escapes of every layer, comment markers, overlong UTF-8
/// halves, white space and null bytes, between digits and hex letters that complete them.
const ENCODING_PIECES: &[&str] = &[
    "%", "%", "%", "&#", "&#x", "&", ";", "\\x", "\\u", "\\u{", "}", "\\", "/*", "*/", "/*!", "<",
    "..", "/", "c0", "af", "e0", "80", "%u", "%25", "%00", "00", "lt", "amp", "lpar", " ", "  ",
    "\t", "\n", "\r", "\0", "\u{1}", "\u{3000}", "＜", "A", "z",
];

/// Tokens that reach the rules and tokenisers: SQL, markup, traversal, templates, shells.
const ATTACK_PIECES: &[&str] = &[
    "'",
    "\"",
    "`",
    "#",
    "--",
    ";",
    "(",
    ")",
    "=",
    "<",
    ">",
    "<script>",
    "</script>",
    "<svg ",
    "onload=",
    "javascript:",
    "union select",
    " or 1=1",
    "sleep(",
    "../",
    "..\\",
    "/etc/passwd",
    "${",
    "{{",
    "}}",
    "$(",
    "|",
    "&&",
    "http://",
    "127.0.0.1",
    "file:",
    "<!ENTITY",
    "SYSTEM",
    "$ne",
    "*)(",
    "\r\nSet-Cookie:",
    "%0d%0a",
    "%27",
    "%3c",
    "&lt;",
];

/// Text made of `pieces`, hex digits and arbitrary characters, biased towards the pieces.
fn biased(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(pieces).prop_map(str::to_owned),
        2 => "[0-9a-fA-F]{1,4}",
        1 => any::<char>().prop_map(String::from),
        1 => "[a-z ]{1,6}",
    ];
    prop::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}

/// Any text: arbitrary Unicode, or built from the pieces above.
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    let pieces = max_chars / 3;
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max_chars)
            .prop_map(|v| v.into_iter().collect::<String>()),
        biased(ENCODING_PIECES, pieces),
        biased(ATTACK_PIECES, pieces),
    ]
}

/// A JSON document (nesting well under the walker's depth cap).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        biased(ATTACK_PIECES, 8).prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The keys and string leaves of `v`.
fn leaves(v: &Value, keys: &mut Vec<String>, strings: &mut Vec<String>) {
    match v {
        Value::String(s) => strings.push(s.clone()),
        Value::Array(items) => {
            for item in items {
                leaves(item, keys, strings);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                keys.push(k.clone());
                leaves(item, keys, strings);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/json",
    "application/json; charset=utf-8",
    "application/problem+json",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data; boundary=\"XyZ\"",
    "multipart/form-data",
    "text/xml",
    "application/soap+xml",
    "text/plain",
    "image/png",
    "",
];

/// A multipart body with boundary `XyZ`: text parts, file parts, and junk between them.
fn multipart_body() -> impl Strategy<Value = Vec<u8>> {
    let part = (
        "[a-z]{0,6}",
        prop::option::of(text(40)),
        prop::sample::select(&["", "text/plain", "application/json", "image/png"][..]),
        text(200),
    )
        .prop_map(|(name, filename, ctype, content)| {
            let mut head = format!("Content-Disposition: form-data; name=\"{name}\"");
            if let Some(f) = filename {
                let _ = write!(head, "; filename=\"{f}\"");
            }
            if !ctype.is_empty() {
                let _ = write!(head, "\r\nContent-Type: {ctype}");
            }
            format!("--XyZ\r\n{head}\r\n\r\n{content}\r\n")
        });
    (prop::collection::vec(part, 0..4), any::<bool>()).prop_map(|(parts, closed)| {
        let mut body = parts.concat();
        if closed {
            body.push_str("--XyZ--\r\n");
        }
        body.into_bytes()
    })
}

/// A body: form pairs, a JSON document, a multipart body, text, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec((text(20), text(60)), 0..6).prop_map(|pairs| pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        multipart_body(),
        text(400).prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..400),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// What normalised text looks like: no null byte, no run of two spaces.
fn check_normalized_shape(input: &str) -> Result<(), TestCaseError> {
    let out = normalize(input);
    prop_assert!(
        !out.text.contains('\0'),
        "null byte in {:?} (from {:?})",
        out.text,
        input
    );
    prop_assert!(
        !out.text.contains("  "),
        "two spaces in {:?} (from {:?})",
        out.text,
        input
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Never panics; the output holds no null byte and no two spaces in a row.
    #[test]
    fn normalize_shape_on_arbitrary_unicode(s in any::<String>()) {
        check_normalized_shape(&s)?;
    }

    #[test]
    fn normalize_shape_on_encoding_soup(s in biased(ENCODING_PIECES, 48)) {
        check_normalized_shape(&s)?;
    }

    /// (b) The walker never panics on arbitrary text.
    #[test]
    fn json_walk_never_panics(s in text(400)) {
        let mut n = 0usize;
        let _ = json::walk(&s, &mut |_, path, _| {
            n += path.render().len();
            true
        });
    }

    /// (b) On a serialised document it succeeds and reports exactly its keys and strings.
    #[test]
    fn json_walk_reports_every_key_and_string(v in json_value(), pretty in any::<bool>()) {
        let doc = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        let (mut want_keys, mut want_strings) = (Vec::new(), Vec::new());
        leaves(&v, &mut want_keys, &mut want_strings);
        let (mut keys, mut strings) = (Vec::new(), Vec::new());
        let result = json::walk(&doc, &mut |item, _, text| {
            match item {
                Item::Key => keys.push(text.to_owned()),
                Item::String => strings.push(text.to_owned()),
            }
            true
        });
        prop_assert_eq!(result, Ok(()), "walk failed on {}", doc);
        for list in [&mut want_keys, &mut want_strings, &mut keys, &mut strings] {
            list.sort();
        }
        prop_assert_eq!(keys, want_keys);
        prop_assert_eq!(strings, want_strings);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// (c) Every kind, arbitrary text up to ~2000 characters: no panic, and the same scan twice.
    #[test]
    fn scan_text_is_total_and_deterministic(s in text(2000), name in "[a-z_]{0,8}") {
        let d = detector();
        for kind in KINDS {
            let first = d.scan_text(&s, kind, &name);
            let second = d.scan_text(&s, kind, &name);
            prop_assert_eq!(&first, &second, "kind {:?}", kind);
            prop_assert_eq!(first.attack, first.score >= d.settings().threshold);
        }
    }

    /// (d) Whole requests: arbitrary path, query, cookie, header, media type and body.
    #[test]
    fn scan_request_is_total(
        path in text(200),
        query in prop_oneof![
            text(200),
            prop::collection::vec((text(20), text(60)), 0..6).prop_map(|pairs| pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")),
        ],
        cookie in prop::option::of(text(100)),
        header in text(100),
        content_type in prop_oneof![
            4 => prop::sample::select(CONTENT_TYPES).prop_map(str::to_owned),
            1 => text(60),
        ],
        body in body(),
        truncated in prop_oneof![Just(0u64), any::<u64>()],
    ) {
        let headers = [("USER_AGENT", header.as_str()), ("ACCEPT", header.as_str())];
        let req = RequestView {
            method: "POST",
            path: &path,
            query: &query,
            cookie: cookie.as_deref(),
            headers: &headers,
            content_type: Some(&content_type),
            body: &body,
            body_truncated: truncated,
            ..RequestView::default()
        };
        let d = detector();
        let first = d.scan_request(&req);
        prop_assert_eq!(&first, &d.scan_request(&req));
        prop_assert_eq!(first.attack, first.score >= d.settings().threshold);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs
// ---------------------------------------------------------------------------------------------

fn scan_body(content_type: &str, body: &str) -> Scan {
    detector().scan_request(&RequestView {
        method: "POST",
        path: "/submit",
        content_type: Some(content_type),
        body: body.as_bytes(),
        ..RequestView::default()
    })
}

/// Inputs built to make a careless matcher or parser go quadratic (or recurse): they must come
/// back with a scan. How long they take is measured by the benchmarks, not asserted here.
#[test]
fn hostile_inputs_complete() {
    let d = detector();
    for n in [10_000, 100_000] {
        let texts = [
            format!("{}!", "a".repeat(n)),
            "<".repeat(n),
            format!("{}{}", "(".repeat(n), ")".repeat(n)),
            "%".repeat(n),
        ];
        for t in &texts {
            for kind in [Kind::Query, Kind::Json, Kind::Body] {
                let _: Scan = d.scan_text(t, kind, "q");
            }
        }
        let _: Scan = scan_body("application/x-www-form-urlencoded", &"a=".repeat(n));
        let _: Scan = scan_body("application/json", &"[".repeat(n));
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the properties above found
// ---------------------------------------------------------------------------------------------

/// A character reference or a JavaScript escape followed by a non-ASCII character: the decoders
/// resumed copying one byte into that character (`s[i + 1..]`) and panicked on the char boundary.
/// Reachable from any request value (`?q=%26lt%3B%C3%A9`).
#[test]
fn escapes_before_non_ascii_do_not_panic() {
    for s in [
        "&lt;\u{e9}",
        "&lt\u{c9}",
        "&#60\u{e9}",
        "a&amp;\u{3000}",
        "\\x41\u{e9}",
        "\\u0041\u{e9}",
        "\\u{41}\u{e9}",
    ] {
        let _ = normalize(s);
    }
    let _: Scan = detector().scan_request(&RequestView {
        method: "GET",
        path: "/",
        query: "q=%26lt%3B%C3%A9",
        ..RequestView::default()
    });
}

/// Runs of spaces are one space in every normalised value: a value of only "plain" bytes (the
/// fast path, only lower-cased) kept its runs, and the content of a `MySQL` `/*!…*/` comment was
/// copied without squeezing spaces or dropping null bytes.
#[test]
fn normalized_shape_regressions() {
    for s in [
        "a  b",
        "UNION  SELECT",
        "/*! ",
        "/*! a*/",
        "/*!a  b*/",
        "/*!a\0b*/",
        "%2f*!%20x",
    ] {
        let out = normalize(s).text;
        assert!(
            !out.contains("  ") && !out.contains('\0'),
            "{s:?} -> {out:?}"
        );
    }
}
