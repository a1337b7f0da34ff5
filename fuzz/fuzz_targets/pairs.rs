//! Query strings and urlencoded bodies on arbitrary bytes: the first byte picks where they go
//! (query string as a WSGI latin-1 string, or form body), the rest through the extractor's
//! `values` (which reads them as Werkzeug does) and `form_decode`. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::extract::{self, form_decode};
use rampart_core::RequestView;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let _ = form_decode(&text);
    // A WSGI server hands the query string over as one character per byte.
    let latin1: String = rest.iter().map(|&b| char::from(b)).collect();
    let req = if selector & 1 == 0 {
        RequestView {
            query: &latin1,
            ..RequestView::default()
        }
    } else {
        RequestView {
            content_type: Some("application/x-www-form-urlencoded"),
            body: rest,
            ..RequestView::default()
        }
    };
    let (values, why) = extract::values(&req);
    assert!(why.is_none());
    let _ = values.len();
});
