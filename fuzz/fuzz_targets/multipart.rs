//! The multipart parser on arbitrary bodies: the first byte picks the boundary's length, the
//! next bytes are the boundary, the rest is the body (raw bytes). Also the header parameter
//! parser on the boundary and on the body read as text. Never panics; every part lies within
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::multipart;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len % 16).min(rest.len());
    let (boundary, body) = rest.split_at(len);
    let boundary = String::from_utf8_lossy(boundary);
    let boundary = if boundary.is_empty() { "B".into() } else { boundary };
    let _ = multipart::each_part(body, &boundary, |part| {
        assert!(part.content.len() <= body.len());
        let _ = part.text();
        true
    });
    let text = String::from_utf8_lossy(body);
    let _ = multipart::options(&text);
    let _ = multipart::boundary(&format!("multipart/form-data; boundary={boundary}; {text}"));
});
