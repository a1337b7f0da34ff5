//! Property tests for the request parsers that must read requests as Werkzeug does (multipart,
//! header parameters, cookies, urlencoded pairs, JSON decoding): they never panic on arbitrary
//! input, what we build from random fields parses back to exactly those fields, and adversarial
//! shapes stay linear. The comparison with Werkzeug itself is in
//! `tests/test_parsers_differential.py`; the deep end (coverage-guided fuzzing) in `fuzz/`.

#![allow(
    clippy::unwrap_used,
    clippy::format_collect,
    clippy::format_push_string
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rampart_core::detect::extract::{self, form_decode};
use rampart_core::detect::{cookie, json, multipart};
use rampart_core::RequestView;

/// Text made of the characters the parsers react to, and some that they do not.
fn tricky(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just(";".to_owned()),
            Just("=".to_owned()),
            Just("%".to_owned()),
            Just("%22".to_owned()),
            Just("*".to_owned()),
            Just("'".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just("--".to_owned()),
            Just("é".to_owned()),
            "[a-z0-9]{1,4}",
            any::<char>().prop_map(String::from),
        ],
        0..max,
    )
    .prop_map(|v| v.concat())
}

/// A multipart field: name, optional file name, content. Names and file names avoid line
/// breaks (a header line cannot hold them); contents avoid the boundary.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    filename: Option<String>,
    content: Vec<u8>,
}

fn field() -> impl Strategy<Value = Field> {
    let plain = || tricky(8).prop_map(|s| s.replace(['\r', '\n'], ""));
    (
        plain(),
        prop::option::of(plain()),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(name, filename, content)| Field {
            name,
            filename,
            content,
        })
}

/// `s` as a quoted parameter value Werkzeug reads back as `s`: `\` and `"` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Every byte of `s` as `%XX`.
fn percent(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "%{b:02X}");
        out
    })
}

const BOUNDARY: &str = "xYz-0'9_+";

fn build(fields: &[Field], line_break: &str, rfc2231: bool) -> Vec<u8> {
    let lb = line_break.as_bytes();
    let mut body = b"preamble".to_vec();
    for f in fields {
        body.extend_from_slice(lb);
        body.extend_from_slice(format!("--{BOUNDARY}").as_bytes());
        body.extend_from_slice(lb);
        let mut disposition = format!("Content-Disposition: form-data; name={}", quoted(&f.name));
        if let Some(name) = &f.filename {
            // (RFC 2231 needs at least one character: `filename*=UTF-8''` is not of that form.)
            if rfc2231 && !name.is_empty() {
                let _ = write!(disposition, "; filename*=UTF-8''{}", percent(name));
            } else {
                let _ = write!(disposition, "; filename={}", quoted(name));
            }
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(lb);
        body.extend_from_slice(lb);
        body.extend_from_slice(&f.content);
    }
    body.extend_from_slice(lb);
    body.extend_from_slice(format!("--{BOUNDARY}--").as_bytes());
    body.extend_from_slice(lb);
    body.extend_from_slice(b"epilogue");
    body
}

fn elapsed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bodies and boundaries: no panic; parts lie within the body.
    #[test]
    fn multipart_never_panics(body in prop::collection::vec(any::<u8>(), 0..400),
                              boundary in "[a-z-]{1,4}") {
        let mut n = 0;
        let _ = multipart::each_part(&body, &boundary, |p| {
            n += 1;
            assert!(p.content.len() <= body.len());
            let _ = p.text();
            true
        });
        prop_assert!(n <= body.len());
    }

    /// Bodies built from random fields, with any of the three line breaks, parse back to
    /// exactly those fields (whatever bytes the contents hold, but the delimiter).
    #[test]
    fn multipart_round_trips(fields in prop::collection::vec(field(), 0..5),
                             lb in prop::sample::select(vec!["\r\n", "\n", "\r"]),
                             rfc2231 in any::<bool>()) {
        let delimiter = format!("--{BOUNDARY}");
        let mut fields = fields;
        for f in &mut fields {
            // A content holding the delimiter, or ending in a line break that makes a longer
            // one, is not what was meant: drop those bytes.
            while let Some(at) = f.content.windows(delimiter.len()).position(|w| w == delimiter.as_bytes()) {
                f.content.remove(at);
            }
            // CR then the LF of the delimiter line is one line break; the CR of a blank line
            // then an LF of the content too.
            if lb == "\n" && f.content.last() == Some(&b'\r') {
                f.content.pop();
            }
            if lb == "\r" && f.content.first() == Some(&b'\n') {
                f.content.remove(0);
            }
        }
        let body = build(&fields, lb, rfc2231);
        let mut got = Vec::new();
        let why = multipart::each_part(&body, BOUNDARY, |p| {
            got.push((p.name.to_owned(), p.filename.map(str::to_owned), p.content.to_vec()));
            true
        });
        prop_assert_eq!(why, None);
        // `%22` in a quoted value is a quote (what browsers send for one).
        let want: Vec<_> = fields
            .iter()
            .map(|f| {
                let filename = f.filename.as_ref().map(|n| {
                    if rfc2231 {
                        n.clone()
                    } else {
                        n.replace("%22", "\"")
                    }
                });
                (f.name.replace("%22", "\""), filename, f.content.clone())
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Header parameters: no panic on anything; a quoted value reads back as itself.
    #[test]
    fn options_quoted_values_round_trip(junk in tricky(20), value in tricky(12)) {
        let _ = multipart::options(&junk);
        let value = value.replace(['\r', '\n'], "");
        let o = multipart::options(&format!("form-data; x=1; name={}; y=2", quoted(&value)));
        let want = value.replace("%22", "\"");
        prop_assert_eq!(o.get("name"), Some(want.as_str()));
        prop_assert_eq!(o.get("y"), Some("2"));
    }

    /// Cookies: no panic; a value quoted with [`cookie::quote`] reads back as itself, between
    /// other cookies.
    #[test]
    fn cookies_round_trip(junk in tricky(30), value in any::<String>()) {
        cookie::each(&junk, |_, _| true);
        let header = format!("a=1; k={}; z=\"2\"", cookie::quote(&value));
        let mut got = Vec::new();
        cookie::each(&header, |n, v| {
            got.push((n.to_owned(), v.into_owned()));
            true
        });
        prop_assert_eq!(got, vec![
            ("a".to_owned(), "1".to_owned()),
            ("k".to_owned(), value),
            ("z".to_owned(), "2".to_owned()),
        ]);
    }

    /// Urlencoded values: text percent-encoded byte by byte decodes back to itself; anything
    /// decodes without a panic.
    #[test]
    fn form_decoding_round_trips(text in any::<String>(), junk in tricky(30)) {
        let encoded = percent(&text).to_ascii_lowercase();
        prop_assert_eq!(form_decode(&encoded), text.as_str());
        let _ = form_decode(&junk);
    }

    /// JSON bodies in any encoding Python's `json.loads(bytes)` detects decode to the text.
    #[test]
    fn json_decoding_round_trips(inner in any::<String>(), enc in 0..6u8) {
        let text = format!("[{}]", serde_json::to_string(&inner).unwrap());
        let body: Vec<u8> = match enc {
            0 => text.as_bytes().to_vec(),
            1 => [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat(),
            2 => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            3 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            4 => text.chars().flat_map(|c| u32::from(c).to_le_bytes()).collect(),
            _ => text.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect(),
        };
        let got = json::decode(&body);
        prop_assert_eq!(got.as_ref(), text.as_str());
    }

    /// The whole extractor on an arbitrary request: no panic, and the request's query values are
    /// among what it yields.
    #[test]
    fn extractor_never_panics(query in tricky(20), cookie in tricky(20),
                              ct in prop::sample::select(vec![
                                  "multipart/form-data; boundary=b",
                                  "multipart/form-data; boundary=\"b\"; boundary=c",
                                  "application/x-www-form-urlencoded",
                                  "application/json",
                                  "text/plain",
                              ]),
                              body in prop::collection::vec(any::<u8>(), 0..200)) {
        let req = RequestView {
            query: &query,
            cookie: Some(&cookie),
            content_type: Some(ct),
            body: &body,
            ..RequestView::default()
        };
        let (values, _) = extract::values(&req);
        // (A WSGI query string is bytes as latin-1 characters: only ASCII reads as written.)
        let ascii = if query.is_ascii() { query.as_str() } else { "" };
        for pair in ascii.split('&').filter(|p| !p.is_empty()) {
            let (_, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = form_decode(v);
            prop_assert!(values.iter().any(|(_, got)| *got == v), "{v:?} in {values:?}");
        }
    }
}

/// Adversarial shapes, 1 MB each, finish in time linear in their size (a quadratic parser
/// would take hours here).
#[test]
fn adversarial_inputs_stay_linear() {
    const N: usize = 1 << 20;
    let limit = Duration::from_secs(20);
    let bodies: [Vec<u8>; 5] = [
        b"\r\n--B".repeat(N / 5),
        b"--B\r\n".repeat(N / 5),
        [&b"--B\r\nX"[..], &b"\rX".repeat(N / 2)].concat(),
        [
            &b"--B\r\nContent-Disposition: form-data; name=a"[..],
            &b"; a=\"x".repeat(N / 6),
        ]
        .concat(),
        [&b"--B\r\n\r\n"[..], &b"\r\n--".repeat(N / 4)].concat(),
    ];
    for body in &bodies {
        let t = elapsed(|| {
            let _ = multipart::each_part(body, "B", |p| {
                let _ = p.text();
                true
            });
        });
        assert!(t < limit, "multipart took {t:?}");
    }
    for header in [
        "a=\"x;".repeat(N / 5),
        "a=\"\\\"".repeat(N / 5),
        "a=\"x\"y;".repeat(N / 6),
    ] {
        let t = elapsed(|| cookie::each(&header, |_, _| true));
        assert!(t < limit, "cookie took {t:?}");
    }
    let params = format!("form-data{}", "; n*0=x; n=\"a;".repeat(N / 12));
    let t = elapsed(|| {
        let _ = multipart::options(&params);
    });
    assert!(t < limit, "options took {t:?}");
    let deep = format!("{}\"x\"{}", "[".repeat(N / 2), "]".repeat(N / 2));
    let t = elapsed(|| {
        let _ = json::walk(&deep, &mut |_, p, _| {
            let _ = p.last_key();
            true
        });
    });
    assert!(t < limit, "json took {t:?}");
}
