//! Normalisation of arbitrary text: every decoding layer, the UTF-8 repair, NFKC, squeezing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::normalize::normalize;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = normalize(&text);
});
