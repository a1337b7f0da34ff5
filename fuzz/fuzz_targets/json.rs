//! The streaming JSON walker on arbitrary text: syntax errors and depth are errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::detect::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = json::walk(&text, &mut |_item, path, _text| {
        // Rendering the path is part of what a scan does with a match.
        let _ = path.render();
        true
    });
});
