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
//!
//! Each is read the way Werkzeug (what a Flask view gets) reads it, so a payload cannot hide
//! where the two would disagree: see [`pairs`], [`super::cookie`], [`super::multipart`] and
//! [`json::decode`]. Where a request can be read two ways, the [`Sink`] is told
//! ([`Sink::uninspectable`], [`Uninspectable::Ambiguous`]).

use std::borrow::Cow;

use super::json::{self, Item};
use super::normalize::Profile;
use super::{cookie, multipart, Kind, ScanState, Uninspectable};
use crate::request::RequestView;

/// What the extractor feeds values to: the scan ([`ScanState`]), or [`Collect`], which lists
/// them (for differential tests against Werkzeug).
pub trait Sink {
    /// One value; `location` renders where it came from (`query:q`), called only when needed.
    fn value(&mut self, kind: Kind, name: &str, location: &dyn Fn() -> String, raw: &str);
    /// [`Sink::value`] with the value's profile already known.
    fn value_profiled(
        &mut self,
        kind: Kind,
        name: &str,
        location: &dyn Fn() -> String,
        raw: &str,
        profile: Profile,
    );
    /// A header value, by its environ name without `HTTP_` (`USER_AGENT`).
    fn header(&mut self, env_name: &str, raw: &str);
    /// Whether a value with this profile needs no inspection whatever its name.
    fn skips(&self, raw: &str, profile: Profile) -> bool;
    /// Whether more values are worth reading.
    fn wants_more(&self) -> bool;
    /// Bytes that could not be inspected (a body over the limit).
    fn truncated(&mut self, location: String, bytes: u64);
    /// Part of the request cannot be inspected as the application will read it.
    fn uninspectable(&mut self, reason: Uninspectable, why: String);
    /// Whether JSON values need their path as their name (exclusions name parameters).
    fn names_json_paths(&self) -> bool;
    /// The most bytes of multipart text parts a request may hold (`0`: no limit).
    fn body_limit(&self) -> usize {
        0
    }
}

impl Sink for ScanState<'_> {
    fn body_limit(&self) -> usize {
        ScanState::body_limit(self)
    }
    #[inline]
    fn value(&mut self, kind: Kind, name: &str, location: &dyn Fn() -> String, raw: &str) {
        ScanState::value(self, kind, name, location, raw);
    }
    #[inline]
    fn value_profiled(
        &mut self,
        kind: Kind,
        name: &str,
        location: &dyn Fn() -> String,
        raw: &str,
        profile: Profile,
    ) {
        ScanState::value_profiled(self, kind, name, location, raw, profile);
    }
    #[inline]
    fn header(&mut self, env_name: &str, raw: &str) {
        ScanState::header(self, env_name, raw);
    }
    #[inline]
    fn skips(&self, raw: &str, profile: Profile) -> bool {
        ScanState::skips(self, raw, profile)
    }
    #[inline]
    fn wants_more(&self) -> bool {
        ScanState::wants_more(self)
    }
    fn truncated(&mut self, location: String, bytes: u64) {
        ScanState::truncated(self, location, bytes);
    }
    fn uninspectable(&mut self, reason: Uninspectable, why: String) {
        ScanState::uninspectable(self, reason, why);
    }
    #[inline]
    fn names_json_paths(&self) -> bool {
        ScanState::names_json_paths(self)
    }
}

/// A [`Sink`] that records every value with its location, skipping none.
#[derive(Debug, Default)]
pub struct Collect {
    /// `(location, value)`, in the order the extractor met them.
    pub values: Vec<(String, String)>,
    /// The first report of a part that cannot be inspected.
    pub uninspectable: Option<(Uninspectable, String)>,
}

impl Sink for Collect {
    fn value(&mut self, _kind: Kind, _name: &str, location: &dyn Fn() -> String, raw: &str) {
        self.values.push((location(), raw.to_owned()));
    }
    fn value_profiled(
        &mut self,
        kind: Kind,
        name: &str,
        location: &dyn Fn() -> String,
        raw: &str,
        _profile: Profile,
    ) {
        self.value(kind, name, location, raw);
    }
    fn header(&mut self, env_name: &str, raw: &str) {
        self.values
            .push((format!("header:{}", header_name(env_name)), raw.to_owned()));
    }
    fn skips(&self, _raw: &str, _profile: Profile) -> bool {
        false
    }
    fn wants_more(&self) -> bool {
        true
    }
    fn truncated(&mut self, _location: String, _bytes: u64) {}
    fn uninspectable(&mut self, reason: Uninspectable, why: String) {
        if self.uninspectable.is_none() {
            self.uninspectable = Some((reason, why));
        }
    }
    fn names_json_paths(&self) -> bool {
        false
    }
}

/// What [`values`] lists: `(location, value)` pairs, and the first uninspectable report.
pub type Listed = (Vec<(String, String)>, Option<(Uninspectable, String)>);

/// Every value the extractor yields for `req`, with its location, and the first report of a
/// part that cannot be inspected as the application reads it.
#[must_use]
pub fn values(req: &RequestView<'_>) -> Listed {
    let mut sink = Collect::default();
    walk(req, &mut sink);
    (sink.values, sink.uninspectable)
}

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
pub fn walk<S: Sink>(req: &RequestView<'_>, state: &mut S) {
    if !req.path.is_empty() && req.path != "/" {
        let path = req.path.strip_prefix('/').unwrap_or(req.path);
        // Werkzeug reads `PATH_INFO`'s bytes as UTF-8 too.
        state.value(Kind::Path, "", &|| "path".to_owned(), &wsgi_text(path));
    }
    if !req.query.is_empty() {
        pairs(&wsgi_text(req.query), "query", Kind::Query, state);
    }
    if let Some(header) = req.cookie {
        cookie::each(header, |name, value| {
            if !state.wants_more() {
                return false;
            }
            state.value(Kind::Key, name, &|| format!("cookie-key:{name}"), name);
            state.value(Kind::Cookie, name, &|| format!("cookie:{name}"), &value);
            true
        });
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
    let content_type = req.content_type.unwrap_or("");
    let Some(body_kind) = body_kind(content_type) else {
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
    match body_kind {
        BodyKind::Form => pairs(
            &String::from_utf8_lossy(req.body),
            "form",
            Kind::Form,
            state,
        ),
        BodyKind::Multipart => {
            let boundary = multipart::boundary(content_type);
            if boundary.ambiguous {
                state.uninspectable(
                    Uninspectable::Ambiguous,
                    "multipart: two boundary parameters".to_owned(),
                );
            }
            if let Some(b) = boundary.value {
                multipart_body(req.body, &b, state);
            }
        }
        BodyKind::Json => json_body(&json::decode(req.body), state),
        BodyKind::Text => state.value(
            Kind::Body,
            "",
            &|| "body".to_owned(),
            &String::from_utf8_lossy(req.body),
        ),
        BodyKind::Sniff => sniffed(req.body, state),
        // A file is not text, and nothing reads it as such.
        BodyKind::Binary if binary => {}
        BodyKind::Binary => sniffed(req.body, state),
    }
}

/// A WSGI environ string (each byte of the request as one character, U+0000 to U+00FF) as the
/// UTF-8 text Werkzeug reads from it; lossy where the bytes are not UTF-8, unchanged when it
/// holds characters past U+00FF (not from a WSGI server).
#[must_use]
pub fn wsgi_text(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
    match bytes {
        Some(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        None => Cow::Borrowed(s),
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
fn sniffed<S: Sink>(raw: &[u8], state: &mut S) {
    // `get_json(force=True)` reads UTF-16 and UTF-32 too.
    let decoded = json::decode(raw);
    let t = decoded.trim_ascii_start();
    if t.starts_with(['{', '[', '"'])
        && json::walk_profiled(&decoded, &mut |_, _, _, _| true).is_ok()
    {
        json_body(&decoded, state);
        return;
    }
    let body = String::from_utf8_lossy(raw);
    state.value(Kind::Body, "", &|| "body".to_owned(), &body);
    if body.contains('=') && !body.contains(['\n', '\r']) {
        pairs(&body, "form", Kind::Form, state);
    }
}

/// `a=1&b=2` pairs as Werkzeug's `request.args` and `request.form` read them (Python's
/// `parse_qsl` with blank values kept): split on `&` only, empty pieces skipped, a piece without
/// `=` a name with an empty value; each name and value [`form_decode`]d once.
fn pairs<S: Sink>(s: &str, prefix: &'static str, kind: Kind, state: &mut S) {
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

/// One round of `application/x-www-form-urlencoded` decoding, as Werkzeug does it: `+` is a
/// space, `%XX` escapes are decoded within runs of ASCII characters (each run on its own), and
/// bytes of a run that are not UTF-8 stay escaped (`%FF`, upper case).
#[must_use]
pub fn form_decode(s: &str) -> Cow<'_, str> {
    let plus = s.contains('+');
    if !s.contains('%') {
        return if plus {
            Cow::Owned(s.replace('+', " "))
        } else {
            Cow::Borrowed(s)
        };
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut run: Vec<u8> = Vec::new();
    let flush = |run: &mut Vec<u8>, out: &mut String| {
        for chunk in run.utf8_chunks() {
            out.push_str(chunk.valid());
            for byte in chunk.invalid() {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
            }
        }
        run.clear();
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => run.push(b' '),
            b'%' => {
                if let Some(v) = multipart::hex_pair(b, i + 1) {
                    run.push(v);
                    i += 3;
                    continue;
                }
                run.push(b'%');
            }
            c if c.is_ascii() => run.push(c),
            _ => {
                flush(&mut run, &mut out);
                let len = s[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&s[i..i + len]);
                i += len;
                continue;
            }
        }
        i += 1;
    }
    flush(&mut run, &mut out);
    Cow::Owned(out)
}

/// JSON paths deeper than this are not rendered as names (see [`json_body`]).
const MAX_NAMED_DEPTH: usize = 256;

fn json_body<S: Sink>(body: &str, state: &mut S) {
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
                    // Rendering costs the depth: past a bound (no exclusion names so deep a
                    // path) the name is one no exclusion matches.
                    rendered = if path.depth() <= MAX_NAMED_DEPTH {
                        path.render()
                    } else {
                        "$…".to_owned()
                    };
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

/// Multipart text parts (and every part's file name). File contents are not inspected, but for
/// text-like media types.
fn multipart_body<S: Sink>(body: &[u8], boundary: &str, state: &mut S) {
    // Text read from the parts; file contents do not count toward the limit.
    let mut text_bytes = 0usize;
    let ambiguous = multipart::each_part(body, boundary, |part| {
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
        state.value(Kind::Key, name, &|| format!("multipart-key:{name}"), name);
        let ct = part.content_type;
        let texty =
            ct.is_empty() || ct.starts_with("text/") || ct.contains("json") || ct.contains("xml");
        if part.filename.is_none() || (texty && !ct.is_empty()) {
            text_bytes = text_bytes.saturating_add(part.content.len());
            state.value(
                Kind::Form,
                name,
                &|| format!("multipart:{name}"),
                &part.text(),
            );
        }
        true
    });
    if let Some(why) = ambiguous {
        state.uninspectable(Uninspectable::Ambiguous, why);
    }
    let limit = state.body_limit();
    if limit > 0 && text_bytes > limit {
        state.uninspectable(
            Uninspectable::TooLarge,
            format!("multipart: {text_bytes} bytes of text fields, over detection_max_body_size"),
        );
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
        assert_eq!(form_decode("%2B+"), "+ ");
        // Invalid UTF-8 stays escaped, as Werkzeug leaves it.
        assert_eq!(form_decode("%ff%e2%82x"), "%FF%E2%82x");
        assert_eq!(form_decode("%C3%A9"), "é");
        // Escapes are decoded per run of ASCII: a raw character splits a sequence.
        assert_eq!(form_decode("%C3é%A9"), "%C3é%A9");
    }

    #[test]
    fn wsgi_strings_are_utf8_bytes() {
        assert_eq!(wsgi_text("q=\u{c3}\u{a9}"), "q=é");
        assert_eq!(wsgi_text("plain"), "plain");
        assert_eq!(wsgi_text("\u{ff}"), "\u{fffd}");
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
}
