//! A whole request through the extractor and the detector: path, query, cookie, one header and a
//! body of a media type picked by a selector byte.
//!
//! Layout: one selector byte, then six fields separated by 0xFF bytes (which never occur in
//! UTF-8): path, query, cookie, header value, boundary (multipart only), body. Missing fields are
//! empty.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::{Detector, Settings};
use rampart_core::RequestView;

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::new(Settings::default()).expect("built-in rules compile"))
}

const HEADERS: [&str; 4] = ["USER_AGENT", "REFERER", "X_FORWARDED_HOST", "X_CUSTOM"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.splitn(6, |&b| b == 0xff);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let path = next();
    let query = next();
    let cookie = next();
    let header = next();
    let boundary = next();
    // The body keeps its raw bytes: the extractor reads multipart bodies as bytes.
    let body: Vec<u8> = fields.next().unwrap_or_default().to_vec();

    let content_type = match selector % 8 {
        0 => "application/x-www-form-urlencoded".to_owned(),
        1 => "application/json".to_owned(),
        2 => "multipart/form-data; boundary=XyZ".to_owned(),
        3 => format!("multipart/form-data; boundary=\"{boundary}\""),
        4 => "text/xml".to_owned(),
        5 => "text/plain; charset=utf-8".to_owned(),
        6 => "application/vnd.api+json".to_owned(),
        _ => boundary.clone(),
    };
    let headers = [(
        HEADERS[usize::from(selector >> 3) % HEADERS.len()],
        header.as_str(),
    )];
    let req = RequestView {
        method: "POST",
        path: &path,
        query: &query,
        cookie: (selector & 0x40 != 0).then_some(cookie.as_str()),
        headers: &headers,
        content_type: (selector & 0x80 == 0 || selector % 8 != 7).then_some(content_type.as_str()),
        body: &body,
        body_truncated: u64::from(selector & 0x20),
        ..RequestView::default()
    };
    let _ = detector().scan_request(&req);
});
