//! What Rampart adds to responses: security headers, CSP, CORS.

pub mod cors;
pub mod headers;

/// Longest header value we accept in configuration.
pub const MAX_HEADER_VALUE: usize = 8192;

/// Why a header name is not an HTTP token (RFC 9110 §5.6.2), if it is not.
#[must_use]
pub fn bad_header_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("header name is empty".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    (!ok).then(|| format!("'{}' is not a valid header name", name.escape_debug()))
}

/// Why a header value would be unsafe to send, if it would: CR/LF/NUL (header injection), other
/// control characters, or excessive length.
#[must_use]
pub fn bad_header_value(value: &str) -> Option<String> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Some("header value contains CR, LF or NUL (header injection)".into());
    }
    if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Some("header value contains a control character".into());
    }
    if value.len() > MAX_HEADER_VALUE {
        return Some(format!(
            "header value is longer than {MAX_HEADER_VALUE} bytes"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_validation() {
        assert!(bad_header_name("X-Custom").is_none());
        assert!(bad_header_name("X Custom").is_some());
        assert!(bad_header_name("X-A:b").is_some());
        assert!(bad_header_name("").is_some());
        assert!(bad_header_value("a; b=c").is_none());
        assert!(bad_header_value("a\r\nSet-Cookie: x").is_some());
        assert!(bad_header_value("a\0").is_some());
        assert!(bad_header_value(&"x".repeat(MAX_HEADER_VALUE + 1)).is_some());
    }
}
