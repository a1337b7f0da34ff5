//! The `Cookie` header parser on arbitrary text (lossy UTF-8): never panics; and any value,
//! quoted with `cookie::quote`, reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::cookie;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    cookie::each(&text, |name, value| {
        assert!(!name.is_empty());
        let _ = value.len();
        true
    });
    let header = format!("k={}", cookie::quote(&text));
    let mut got = None;
    cookie::each(&header, |_, value| {
        got = Some(value.into_owned());
        false
    });
    assert_eq!(got.as_deref(), Some(text.as_ref()));
});
