//! Config parsing and validation of arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Config::from_json(&text);
});
