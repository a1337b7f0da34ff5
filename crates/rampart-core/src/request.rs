//! The engine's view of a request: borrowed strings, nothing copied.
//!
//! The web adapter fills in what it has; header fields are `None` when the header is absent. Only
//! the headers the engine needs are read (see [`crate::engine::Engine::needs`]).

/// A request, as the checks see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The path below the application root (WSGI `PATH_INFO`).
    pub path: &'a str,
    /// Where the application is mounted (WSGI `SCRIPT_NAME`), for building redirect URLs.
    pub script_name: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// `http` or `https` as the server saw it.
    pub scheme: &'a str,
    /// The direct peer address (WSGI `REMOTE_ADDR`).
    pub peer: Option<&'a str>,
    /// `Host` header, or the server name when absent.
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub forwarded_for: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub access_control_request_method: Option<&'a str>,
    pub access_control_request_headers: Option<&'a str>,
    /// For detection: the `Cookie` header.
    pub cookie: Option<&'a str>,
    /// For detection: the other request headers, by WSGI environ name without `HTTP_`
    /// (`USER_AGENT`); the extractor picks those carrying user data.
    pub headers: &'a [(&'a str, &'a str)],
    /// For detection: the body's media type and its first bytes (up to the body limit).
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Body bytes past the limit, not read.
    pub body_truncated: u64,
    /// For route checks: the WSGI environ keys they read ([`crate::route::Routes::env_keys`],
    /// e.g. `HTTP_AUTHORIZATION`, `CONTENT_LENGTH`) with their values, when present.
    pub named: &'a [(&'a str, &'a str)],
}

impl<'a> RequestView<'a> {
    /// The value of one of the [`RequestView::named`] environ keys.
    #[must_use]
    pub fn env(&self, key: &str) -> Option<&'a str> {
        self.named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A `Content-Type` without its parameters, trimmed and lower-cased: `application/json`.
#[must_use]
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `path` is `prefix` or below it, segment-wise (`/static` covers `/static/app.js`, not
/// `/staticfoo`). A path with `.` or `..` segments is under nothing: once a server or proxy
/// resolves `/static/../admin`, it is not under `/static`.
#[must_use]
pub fn path_is_under(path: &str, prefix: &str) -> bool {
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    let under = p.is_empty()
        || path == p
        || path
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'));
    // The segment check only for paths that are under the prefix: most are not.
    under && !path.split('/').any(|seg| seg == ".." || seg == ".")
}
