//! From a request to the values detection inspects, each with its location.
//!
//! - the path (whole: traversal spans segments), as `path`;
//! - each query parameter: its value as `query:NAME`, its name as `query-key:NAME`;
//! - cookies, as `cookie:NAME`;
//! - the headers that carry user data (everything but the protocol's own fields, see
//!   [`inspects_header`]), as `header:NAME`;
//! - the body, by media type: urlencoded fields as `form:NAME`, multipart text parts as
//!   `multipart:NAME` (and their file names), JSON keys and strings as `json:$.path`, XML and
//!   text as `body`. Other media types (files, images) are not inspected. A body that claims
//!   JSON but does not parse is inspected whole.

use std::borrow::Cow;

use super::json::{self, Item};
use super::{Kind, ScanState};
use crate::request::RequestView;

/// Whether the header with this environ name (`USER_AGENT`, without `HTTP_`) is inspected.
/// Protocol fields are not: their syntax is fixed and browsers fill them (`Accept`, `Cookie`
/// (inspected per cookie instead), `Authorization`, caching, tracing and CORS preflight fields).
/// `Sec-Fetch-*` and client hints (`Sec-CH-*`) are browser-generated and skipped too.
/// Everything else is user data.
#[must_use]
pub fn inspects_header(env_name: &str) -> bool {
    !(env_name.starts_with("SEC_")
        || matches!(
            env_name,
            "ACCEPT"
                | "ACCEPT_ENCODING"
                | "ACCEPT_LANGUAGE"
                | "ACCEPT_CHARSET"
                | "ACCEPT_DATETIME"
                | "AUTHORIZATION"
                | "PROXY_AUTHORIZATION"
                | "CACHE_CONTROL"
                | "CONNECTION"
                | "CONTENT_LENGTH"
                | "CONTENT_TYPE"
                | "COOKIE"
                | "DNT"
                | "IF_MATCH"
                | "IF_NONE_MATCH"
                | "IF_MODIFIED_SINCE"
                | "IF_UNMODIFIED_SINCE"
                | "IF_RANGE"
                | "KEEP_ALIVE"
                | "PRAGMA"
                | "PRIORITY"
                | "RANGE"
                | "TE"
                | "TRAILER"
                | "TRANSFER_ENCODING"
                | "UPGRADE"
                | "UPGRADE_INSECURE_REQUESTS"
                | "TRACEPARENT"
                | "TRACESTATE"
                | "BAGGAGE"
                | "X_REQUEST_ID"
                | "X_CORRELATION_ID"
                | "X_AMZN_TRACE_ID"
                | "X_CLOUD_TRACE_CONTEXT"
                | "ACCESS_CONTROL_REQUEST_METHOD"
                | "ACCESS_CONTROL_REQUEST_HEADERS"
        ))
}

/// `USER_AGENT` → `user-agent`.
pub(super) fn header_name(env_name: &str) -> String {
    env_name
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Feeds every value of `req` to `state`.
pub fn walk(req: &RequestView<'_>, state: &mut ScanState<'_>) {
    if !req.path.is_empty() && req.path != "/" {
        let path = req.path.strip_prefix('/').unwrap_or(req.path);
        state.value(Kind::Path, "", &|| "path".to_owned(), path);
    }
    if !req.query.is_empty() {
        pairs(req.query, "query", Kind::Query, state);
    }
    if let Some(cookie) = req.cookie {
        for part in cookie.split(';') {
            if !state.wants_more() {
                return;
            }
            let part = part.trim();
            let (name, value) = part.split_once('=').unwrap_or(("", part));
            state.value(Kind::Cookie, name, &|| format!("cookie:{name}"), value);
        }
    }
    for (env_name, value) in req.headers {
        if !state.wants_more() {
            return;
        }
        if inspects_header(env_name) {
            state.header(env_name, value);
        }
    }
    if req.body.is_empty() || !state.wants_more() {
        return;
    }
    let Some(body_kind) = body_kind(req.content_type.unwrap_or("")) else {
        return;
    };
    let binary = body_kind == BodyKind::Binary && !is_text(req.body);
    if req.body_truncated > 0 && !binary {
        if body_kind == BodyKind::Multipart {
            // File parts may make up the rest; the text parts that could be read are.
            state.truncated("body".to_owned(), req.body_truncated);
        } else {
            state.uninspectable(
                super::Uninspectable::TooLarge,
                format!(
                    "body: {} bytes past detection_max_body_size ({} read)",
                    req.body_truncated,
                    req.body.len()
                ),
            );
        }
    }
    let body = match std::str::from_utf8(req.body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(req.body),
    };
    match body_kind {
        BodyKind::Form => pairs(&body, "form", Kind::Form, state),
        BodyKind::Multipart => {
            if let Some(boundary) = boundary(req.content_type.unwrap_or("")) {
                multipart(req.body, &boundary, state);
            }
        }
        BodyKind::Json => json_body(&body, state),
        BodyKind::Text => state.value(Kind::Body, "", &|| "body".to_owned(), &body),
        BodyKind::Sniff => sniffed(&body, state),
        // A file is not text, and nothing reads it as such.
        BodyKind::Binary if binary => {}
        BodyKind::Binary => sniffed(&body, state),
    }
}

/// How a body is inspected, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`: field by field.
    Form,
    /// `multipart/form-data`: text parts and file names.
    Multipart,
    /// `application/json`, `*+json`, `text/json`: keys and strings.
    Json,
    /// XML, `text/*`, or no content type: whole.
    Text,
    /// A media type the engine has no parser for (`application/octet-stream`,
    /// `application/x-json`, a list of two types, …), which a view can still read with
    /// `get_data()` or `get_json(force=True)`: walked as JSON when it parses as JSON, else
    /// inspected whole, and field by field when it looks like a form.
    Sniff,
    /// Declared binary (images, audio, video, fonts, archives): skipped when it is not UTF-8
    /// text, sniffed when it is (a view can read it as text all the same).
    Binary,
}

/// How a body with this `Content-Type` is inspected. Every body is: a declared binary one only
/// when it turns out to be text. `None` only for bodies a route check has no use for (kept
/// `Option` for the callers that ask "is there a parser for it").
#[must_use]
pub fn body_kind(content_type: &str) -> Option<BodyKind> {
    let media = crate::request::media_type(content_type);
    Some(match media.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" => BodyKind::Multipart,
        m if m == "application/json" || m.ends_with("+json") || m == "text/json" => BodyKind::Json,
        m if m.contains(',') => BodyKind::Sniff,
        m if m.ends_with("/xml")
            || m.ends_with("+xml")
            || m.starts_with("text/")
            || m.is_empty() =>
        {
            BodyKind::Text
        }
        m if is_binary_type(m) => BodyKind::Binary,
        _ => BodyKind::Sniff,
    })
}

/// Media types that are files by nature: images, audio, video, fonts, archives and compressed
/// streams, PDF and WebAssembly.
fn is_binary_type(media: &str) -> bool {
    let (top, sub) = media.split_once('/').unwrap_or((media, ""));
    matches!(top, "image" | "audio" | "video" | "font")
        || matches!(
            sub,
            "zip"
                | "gzip"
                | "x-gzip"
                | "x-tar"
                | "x-bzip2"
                | "x-xz"
                | "zstd"
                | "x-7z-compressed"
                | "x-rar-compressed"
                | "vnd.rar"
                | "java-archive"
                | "pdf"
                | "wasm"
        )
}

/// Whether `body` is UTF-8 text (a sequence cut at the end of what was read counts as text).
fn is_text(body: &[u8]) -> bool {
    match std::str::from_utf8(body) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// A body of a media type the engine has no parser for: as JSON when it is JSON; otherwise
/// whole, and also field by field when it reads as a urlencoded form.
fn sniffed(body: &str, state: &mut ScanState<'_>) {
    let t = body.trim_ascii_start();
    let jsonish = t.starts_with(['{', '[', '"']);
    if jsonish && json::walk_profiled(body, &mut |_, _, _, _| true).is_ok() {
        json_body(body, state);
        return;
    }
    state.value(Kind::Body, "", &|| "body".to_owned(), body);
    if body.contains('=') && !body.contains(['\n', '\r']) {
        pairs(body, "form", Kind::Form, state);
    }
}

/// `a=1&b=2` pairs, each name and value URL-decoded once (`+` is a space), as the application
/// sees them.
fn pairs(s: &str, prefix: &'static str, kind: Kind, state: &mut ScanState<'_>) {
    for pair in s.split('&') {
        if !state.wants_more() {
            return;
        }
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name);
        let value = form_decode(value);
        state.value(Kind::Key, &name, &|| format!("{prefix}-key:{name}"), &name);
        state.value(kind, &name, &|| format!("{prefix}:{name}"), &value);
    }
}

/// One round of `application/x-www-form-urlencoded` decoding; invalid UTF-8 becomes U+FFFD.
#[must_use]
pub fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = b.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
                let lo = b.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    #[allow(clippy::cast_possible_truncation)]
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn json_body(body: &str, state: &mut ScanState<'_>) {
    // Exclusions by JSON path need the path as the name; render it only then. Otherwise the
    // innermost key names the value (redaction of `password`, …).
    let by_path = state.names_json_paths();
    let result = json::walk_profiled(body, &mut |item, path, text, profile| {
        // Most keys and many values are plain tokens: decided here, without a call.
        if state.skips(text, profile) {
            return true;
        }
        match item {
            Item::Key => {
                state.value_profiled(
                    Kind::Key,
                    text,
                    &|| format!("json-key:{}", path.render()),
                    text,
                    profile,
                );
            }
            Item::String => {
                let rendered;
                let name: &str = if by_path {
                    rendered = path.render();
                    &rendered
                } else {
                    path.last_key()
                };
                state.value_profiled(
                    Kind::Json,
                    name,
                    &|| format!("json:{}", path.render()),
                    text,
                    profile,
                );
            }
        }
        state.wants_more()
    });
    if result.is_err() && state.wants_more() {
        // Not JSON after all: inspect it as text, and say the application cannot read it as
        // JSON either.
        state.value(Kind::Body, "", &|| "body".to_owned(), body);
        state.uninspectable(
            super::Uninspectable::Malformed,
            "body: declared JSON, does not parse as JSON".to_owned(),
        );
    }
}

/// The `boundary` parameter of a multipart content type.
#[must_use]
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

/// Multipart text parts (and every part's file name). File contents are not inspected.
fn multipart(body: &[u8], boundary: &str, state: &mut ScanState<'_>) {
    each_part(body, boundary, |part| {
        if !state.wants_more() {
            return false;
        }
        let name = part.name;
        if let Some(f) = part.filename {
            state.value(
                Kind::Form,
                name,
                &|| format!("multipart:{name}.filename"),
                f,
            );
        }
        let ct = part.content_type;
        let texty =
            ct.is_empty() || ct.starts_with("text/") || ct.contains("json") || ct.contains("xml");
        if part.filename.is_none() || (texty && !ct.is_empty()) {
            let text = String::from_utf8_lossy(part.content);
            state.value(Kind::Form, name, &|| format!("multipart:{name}"), &text);
        }
        true
    });
}

/// One part of a `multipart/form-data` body.
pub struct Part<'a> {
    /// The form field's name (`name=` of `Content-Disposition`).
    pub name: &'a str,
    pub filename: Option<&'a str>,
    /// The part's media type, lower-cased (empty when absent).
    pub content_type: &'a str,
    pub content: &'a [u8],
}

/// Calls `f` on each part of a multipart body, in order, until it returns `false`.
pub fn each_part(body: &[u8], boundary: &str, mut f: impl FnMut(&Part<'_>) -> bool) {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    for w in starts.windows(2) {
        let part = &body[w[0] + delimiter.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = memchr::memmem::find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut name = String::new();
        let mut filename: Option<String> = None;
        let mut content_type = String::new();
        for line in head.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            if h.trim().eq_ignore_ascii_case("content-disposition") {
                for param in v.split(';').skip(1) {
                    if let Some((k, val)) = param.trim().split_once('=') {
                        let val = val.trim().trim_matches('"').to_owned();
                        match k.trim().to_ascii_lowercase().as_str() {
                            "name" => name = val,
                            "filename" => filename = Some(val),
                            _ => {}
                        }
                    }
                }
            } else if h.trim().eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_ascii_lowercase();
            }
        }
        let part = Part {
            name: &name,
            filename: filename.as_deref(),
            content_type: &content_type,
            content: &part[split + 4..],
        };
        if !f(&part) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c"), "a b c");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
        assert_eq!(form_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn protocol_headers_are_skipped() {
        assert!(inspects_header("USER_AGENT"));
        assert!(inspects_header("REFERER"));
        assert!(inspects_header("X_FORWARDED_HOST"));
        assert!(!inspects_header("ACCEPT"));
        assert!(!inspects_header("SEC_CH_UA"));
        assert!(!inspects_header("AUTHORIZATION"));
        assert_eq!(header_name("X_FORWARDED_HOST"), "x-forwarded-host");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("multipart/form-data"), None);
    }
}
