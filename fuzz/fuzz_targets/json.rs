//! The streaming JSON walker on arbitrary bytes, decoded as Python's `json.loads(bytes)` would
//! (`json::decode`: UTF-8, UTF-16 or UTF-32, with or without a byte order mark): syntax errors
//! are errors, never panics, at any depth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::json;

fuzz_target!(|data: &[u8]| {
    let text = json::decode(data);
    let _ = json::walk(&text, &mut |_item, path, _text| {
        // Rendering the path is part of what a scan does with a match (bounded there, as here:
        // rendering every path of a deep document would cost its depth each time).
        if path.depth() <= 256 {
            let _ = path.render();
        }
        let _ = path.last_key();
        true
    });
});
