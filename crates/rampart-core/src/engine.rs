//! The request pipeline: the one place that says which checks run, in which order.
//!
//! Each check is a small function returning `Some(Hit)` when it would block. In enforcing mode the
//! first hit becomes the response; in passive mode every hit becomes an event and the request goes
//! on. The plain allow path allocates nothing and returns `None`: the adapter then appends the
//! precomputed [`Engine::static_headers`].

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::config::Config;
use crate::decision::{Event, Headers, Outcome, Response, Verdict};
use crate::error::ConfigErrors;
use crate::net::client_ip::ClientAddr;
use crate::request::RequestView;
use crate::respond::cors::{CorsAnswer, CorsPolicy};

/// The compiled policy. Built once at start-up; `inspect` takes `&self` and is lock-free.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
}

/// Which request headers the engine will look at, so an adapter reads only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Needs {
    pub user_agent: bool,
    pub forwarded_for: bool,
    pub forwarded_proto: bool,
    pub origin: bool,
    pub host: bool,
}

/// Everything a check may look at.
struct Ctx<'r, 'a> {
    req: &'r RequestView<'a>,
    client: ClientAddr,
}

/// A check's finding: what would be sent, and why.
struct Hit {
    status: u16,
    body: &'static str,
    action: &'static str,
    rule: String,
    message: String,
    location: Option<String>,
}

type Check = fn(&Engine, &Ctx<'_, '_>) -> Option<Hit>;

/// The global checks, in order. Excluded paths are decided before this list runs; the CORS
/// preflight answer and the Python-side `custom_request_check` come after it.
const PIPELINE: &[Check] = &[
    emergency_mode,
    enforce_https,
    blacklist,
    whitelist,
    user_agent,
];

impl Engine {
    /// Builds an engine from a validated config.
    #[must_use]
    pub fn new(config: Config) -> Engine {
        Engine { config }
    }

    /// Validates and builds in one step, reporting every problem at once.
    ///
    /// # Errors
    /// Every bad field.
    pub fn from_json(json: &str) -> Result<Engine, ConfigErrors> {
        Config::from_json(json).map(Engine::new)
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Headers for every allowed response when `inspect` returned `None`.
    #[must_use]
    pub fn static_headers(&self) -> &Headers {
        &self.config.headers.static_headers
    }

    #[must_use]
    pub fn needs(&self) -> Needs {
        let c = &self.config;
        let proxies = !c.proxies.trusted.is_empty();
        Needs {
            user_agent: c.user_agents.is_some(),
            forwarded_for: proxies,
            forwarded_proto: proxies && c.proxies.trust_forwarded_proto,
            origin: c.cors.is_some(),
            host: c.enforce_https,
        }
    }

    /// The client address after trusted-proxy resolution.
    #[must_use]
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.config.proxies.resolve(req.peer, req.forwarded_for).ip
    }

    /// Decides a request. `None` means: allow, with [`Engine::static_headers`], nothing to log.
    #[must_use]
    pub fn inspect(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let ctx = Ctx {
            req,
            client: self.config.proxies.resolve(req.peer, req.forwarded_for),
        };
        let mut events = Vec::new();
        if !self.is_excluded(req.path) {
            for check in PIPELINE {
                let Some(hit) = check(self, &ctx) else {
                    continue;
                };
                if self.config.passive_mode {
                    events.push(Self::event(&hit, Outcome::Passive, &ctx));
                    continue;
                }
                events.push(Self::event(&hit, Outcome::Blocked, &ctx));
                return Some(Verdict {
                    respond: Some(self.block_response(&hit, req)),
                    events,
                    ..Verdict::default()
                });
            }
        }
        self.allow(req, events)
    }

    fn allow(&self, req: &RequestView<'_>, events: Vec<Event>) -> Option<Verdict> {
        let mut verdict = Verdict {
            events,
            ..Verdict::default()
        };
        if let (Some(cors), Some(origin)) = (&self.config.cors, req.origin) {
            let preflight_method = req
                .access_control_request_method
                .filter(|_| req.method.eq_ignore_ascii_case("OPTIONS"));
            let answer = match preflight_method {
                Some(method) => {
                    if let Some(cors_headers) =
                        cors.preflight(origin, method, req.access_control_request_headers)
                    {
                        let mut headers = self.response_headers(None);
                        headers.extend(cors_headers);
                        headers.push(("Content-Length".into(), "0".into()));
                        verdict.respond = Some(Response {
                            status: 204,
                            body: String::new(),
                            headers,
                        });
                        return Some(verdict);
                    }
                    // A refused preflight gets no CORS headers; the app answers it.
                    CorsAnswer::Set(CorsPolicy::REFUSED)
                }
                None => cors.answer(origin),
            };
            match answer {
                CorsAnswer::Set(i) => verdict.cors_set = Some(i),
                CorsAnswer::Computed(h) => verdict.headers = Some(h),
            }
        }
        if let Some(csp) = &self.config.headers.nonce_csp {
            if let Some(nonce) = new_nonce() {
                if let Some(i) = verdict.cors_set.take() {
                    verdict.headers = Some(self.cors_sets()[i].clone());
                }
                verdict
                    .headers
                    .get_or_insert_with(Vec::new)
                    .push((csp.header.to_owned(), csp.render(&nonce)));
                verdict.nonce = Some(nonce);
            }
        }
        if verdict.events.is_empty()
            && verdict.headers.is_none()
            && verdict.cors_set.is_none()
            && verdict.respond.is_none()
        {
            None
        } else {
            Some(verdict)
        }
    }

    /// The precomputed CORS header lists `Verdict::cors_set` points into (empty without CORS).
    #[must_use]
    pub fn cors_sets(&self) -> &[Headers] {
        self.config.cors.as_ref().map_or(&[], |c| c.sets())
    }

    /// Whether `path` is under one of `exclude_paths` (the path itself or below it).
    #[must_use]
    pub fn is_excluded(&self, path: &str) -> bool {
        self.config.exclude_paths.iter().any(|p| {
            let p = p.strip_suffix('/').unwrap_or(p);
            p.is_empty()
                || path == p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Security headers for a response Rampart builds itself, CORS added for an allowed origin.
    fn response_headers(&self, origin: Option<&str>) -> Headers {
        let mut headers = self.config.headers.static_headers.clone();
        if let Some(csp) = &self.config.headers.nonce_csp {
            headers.push((csp.header.to_owned(), csp.render_without_nonce()));
        }
        if let (Some(cors), Some(origin)) = (&self.config.cors, origin) {
            cors.actual(origin, &mut headers);
        }
        headers
    }

    /// Builds the response for a blocking hit (also used for status codes the adapter blocks with).
    fn block_response(&self, hit: &Hit, req: &RequestView<'_>) -> Response {
        let body = self
            .config
            .custom_error_responses
            .iter()
            .find(|(s, _)| *s == hit.status)
            .map_or_else(|| hit.body.to_owned(), |(_, b)| b.clone());
        let mut headers = Vec::with_capacity(self.config.headers.static_headers.len() + 5);
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        headers.push(("Content-Length".into(), body.len().to_string()));
        if let Some(location) = &hit.location {
            headers.push(("Location".into(), location.clone()));
        }
        headers.extend(self.response_headers(req.origin));
        Response {
            status: hit.status,
            body,
            headers,
        }
    }

    /// A block response for a status decided outside the pipeline (e.g. a failing custom check
    /// with `fail_secure`), with the configured body override, security and CORS headers.
    #[must_use]
    pub fn error_response(
        &self,
        status: u16,
        default_body: &'static str,
        req: &RequestView<'_>,
    ) -> Response {
        let hit = Hit {
            status,
            body: default_body,
            action: "error",
            rule: String::new(),
            message: String::new(),
            location: None,
        };
        self.block_response(&hit, req)
    }

    fn event(hit: &Hit, outcome: Outcome, ctx: &Ctx<'_, '_>) -> Event {
        Event {
            action: hit.action,
            outcome,
            rule: hit.rule.clone(),
            message: hit.message.clone(),
            status: hit.status,
            client_ip: ctx.client.ip,
            method: ctx.req.method.to_owned(),
            path: ctx.req.path.to_owned(),
        }
    }
}

fn emergency_mode(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    let c = &e.config;
    if !c.emergency_mode
        || ctx
            .client
            .ip
            .is_some_and(|ip| c.emergency_whitelist.contains(ip))
    {
        return None;
    }
    Some(Hit {
        status: 503,
        body: "Service temporarily unavailable",
        action: "emergency_mode",
        rule: "emergency_mode".into(),
        message: "emergency mode: only the emergency whitelist is served".into(),
        location: None,
    })
}

fn enforce_https(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    let c = &e.config;
    if !c.enforce_https
        || c.proxies
            .is_https(ctx.req.scheme, ctx.client, ctx.req.forwarded_proto)
    {
        return None;
    }
    match https_url(ctx.req) {
        Some(url) => Some(Hit {
            status: 301,
            body: "",
            action: "https_redirect",
            rule: "enforce_https".into(),
            message: "plain HTTP redirected to HTTPS".into(),
            location: Some(url),
        }),
        None => Some(Hit {
            status: 400,
            body: "Bad Request",
            action: "https_redirect",
            rule: "enforce_https".into(),
            message: "plain HTTP request without a usable Host header cannot be redirected".into(),
            location: None,
        }),
    }
}

fn blacklist(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    let ip = ctx.client.ip?;
    if !e.config.blacklist.contains(ip) {
        return None;
    }
    Some(Hit {
        status: 403,
        body: "Forbidden",
        action: "ip_blacklisted",
        rule: "ip.blacklist".into(),
        message: format!("IP address {ip} is blacklisted"),
        location: None,
    })
}

fn whitelist(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    let list = e.config.whitelist.as_ref()?;
    if ctx.client.ip.is_some_and(|ip| list.contains(ip)) {
        return None;
    }
    let who = ctx
        .client
        .ip
        .map_or_else(|| "unknown address".to_owned(), |ip| ip.to_string());
    Some(Hit {
        status: 403,
        body: "Forbidden",
        action: "ip_not_whitelisted",
        rule: "ip.whitelist".into(),
        message: format!("IP address {who} is not whitelisted"),
        location: None,
    })
}

fn user_agent(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    let filter = e.config.user_agents.as_ref()?;
    let ua = ctx.req.user_agent?;
    let pattern = filter.matching(ua)?;
    Some(Hit {
        status: 403,
        body: "User-Agent not allowed",
        action: "user_agent_blocked",
        rule: format!("user_agent:{pattern}"),
        message: format!("User-Agent matches blocked pattern '{pattern}'"),
        location: None,
    })
}

/// The `https://` URL of a request, or `None` when its host is unusable. The path (decoded, as
/// WSGI gives it) is percent-encoded again; nothing from the request can inject a header.
fn https_url(req: &RequestView<'_>) -> Option<String> {
    let host = req.host?.trim();
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if !host_ok {
        return None;
    }
    let host = host.strip_suffix(":80").unwrap_or(host);
    let mut url = String::with_capacity(16 + host.len() + req.path.len() + req.query.len());
    url.push_str("https://");
    url.push_str(host);
    let full_path = [req.script_name, req.path];
    if req.script_name.is_empty() && req.path.is_empty() {
        url.push('/');
    }
    for part in full_path {
        for ch in part.chars() {
            push_encoded(&mut url, ch, b"/-._~!$&'()*+,;=:@");
        }
    }
    if !req.query.is_empty() {
        url.push('?');
        for ch in req.query.chars() {
            push_encoded(&mut url, ch, b"/-._~!$&'()*+,;=:@?%");
        }
    }
    Some(url)
}

/// Appends `ch`, percent-encoded unless it is alphanumeric ASCII or in `safe`. Characters up to
/// U+00FF stand for the byte of the same value (WSGI's latin-1 strings); others are UTF-8 encoded.
fn push_encoded(out: &mut String, ch: char, safe: &[u8]) {
    if ch.is_ascii_alphanumeric() || (ch.is_ascii() && safe.contains(&(ch as u8))) {
        out.push(ch);
        return;
    }
    let code = u32::from(ch);
    if let Ok(byte) = u8::try_from(code) {
        let _ = write!(out, "%{byte:02X}");
    } else {
        let mut buf = [0u8; 4];
        for b in ch.encode_utf8(&mut buf).bytes() {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A fresh CSP nonce: 16 random bytes, base64. `None` only if the OS has no randomness to give.
fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64(&bytes))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
