//! What the engine tells the adapter to do.

use std::net::IpAddr;

use crate::detect::Finding;
use crate::net::cloud::Provider;
use crate::net::geo::Country;

/// A list of response headers.
pub type Headers = Vec<(String, String)>;

/// Whether a response header may appear several times, so Rampart appends it even when the
/// application set it too (`Vary`). Other headers the application set win over Rampart's.
#[must_use]
pub fn is_repeatable(name: &str) -> bool {
    name.eq_ignore_ascii_case("vary")
}

/// A response the adapter sends instead of calling the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// Every header of the response, security and CORS headers included.
    pub headers: Headers,
}

impl Response {
    /// `"403 Forbidden"`, as a WSGI status line.
    #[must_use]
    pub fn status_line(&self) -> String {
        format!("{} {}", self.status, reason_phrase(self.status))
    }
}

/// The standard reason phrase of a status code.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Whether an event's block was carried out or only logged (passive mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Blocked,
    Passive,
    /// Nothing was blocked; worth recording (a value too long to inspect whole).
    Noted,
    /// A behavioural monitor's threshold was passed (`action="log"` or `"ban"`).
    Detected,
    /// The same, with `action="alert"`: logged at error level.
    Alert,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Blocked => "blocked",
            Outcome::Passive => "passive",
            Outcome::Noted => "noted",
            Outcome::Detected => "detected",
            Outcome::Alert => "alert",
        }
    }
}

/// One security event: structured, ready to be logged as JSON (ECS-style keys on the Python side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened: `ip_blacklisted`, `user_agent_blocked`, …
    pub action: &'static str,
    pub outcome: Outcome,
    /// The rule that fired: `ip.blacklist`, `user_agent:sqlmap`, …
    pub rule: String,
    /// Human-readable explanation.
    pub message: String,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    pub method: String,
    pub path: String,
    /// Detection findings (rule, category, location, excerpt) for `penetration_attempt`.
    pub findings: Vec<Finding>,
    /// The client's country, when a country rule looked it up.
    pub country: Option<Country>,
    /// The cloud provider whose ranges hold the client, when a cloud rule found one.
    pub cloud: Option<Provider>,
}

/// The engine's answer for a request that is not on the plain allow path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Send this instead of calling the application.
    pub respond: Option<Response>,
    /// Headers for the application's response on top of the static list (CORS, CSP nonce).
    pub headers: Option<Headers>,
    /// Instead of `headers`: the precomputed CORS list `Engine::cors_sets()[i]` to add on top of
    /// the static list (the common CORS answer, so adapters can cache it).
    pub cors_set: Option<usize>,
    /// Rate-limit state headers (`X-RateLimit-*`) for the application's response, kept apart
    /// from `headers` so adapters can append them to a cached list.
    pub limit_headers: Option<Headers>,
    /// The CSP nonce of this request, when the policy uses one.
    pub nonce: Option<String>,
    pub events: Vec<Event>,
}
