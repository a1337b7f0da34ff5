//! Route policies: what the decorators (`SecurityDecorator`, `GateKeeper.specific`/`bypass`) set
//! for one Flask endpoint, compiled once when the adapter hands the routes over.
//!
//! A policy adds checks to its route (its own IP lists, countries, clouds, user agents,
//! credentials, content rules, time window, honeypot fields, limits and monitors) and can skip
//! global ones (`bypass`). Decorator settings win over the global configuration: a route's rate
//! limits replace the global limits on that route, its detection switch replaces the global one.
//! Requests find their policy by endpoint name in one hash lookup; nothing is merged per request.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{describe, did_you_mean, Reader};
use crate::detect::{Detector, Settings};
use crate::error::ConfigErrors;
use crate::filter::country::{countries, provider, GeoPolicy};
use crate::filter::request::{AuthRule, ContentTypes, Referrers};
use crate::filter::time_window::TimeWindow;
use crate::filter::user_agent::UserAgentFilter;
use crate::limit::monitor::{Action, Pattern};
use crate::limit::policy::{limit_spec, Limit, Scope};
use crate::limit::{Algorithm, Rule};
use crate::net::cidr::IpSet;
use crate::net::cloud::Providers;
use crate::net::geo::Country;

/// A set of checks, for `bypass` and for which global checks wait for the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skips(u16);

impl Skips {
    pub const NONE: Skips = Skips(0);
    pub const HTTPS: Skips = Skips(1);
    /// The IP blacklist and whitelist (global and the route's).
    pub const IP: Skips = Skips(1 << 1);
    pub const COUNTRIES: Skips = Skips(1 << 2);
    pub const CLOUDS: Skips = Skips(1 << 3);
    pub const USER_AGENT: Skips = Skips(1 << 4);
    pub const IP_BAN: Skips = Skips(1 << 5);
    pub const RATE_LIMIT: Skips = Skips(1 << 6);
    pub const DETECTION: Skips = Skips(1 << 7);
    /// Every check but emergency mode.
    pub const ALL: Skips = Skips(0xff);

    /// The names `bypass` accepts (the reference's and ours).
    pub const NAMES: [(&'static str, Skips); 11] = [
        ("all", Skips::ALL),
        ("https", Skips::HTTPS),
        ("ip", Skips::IP),
        ("countries", Skips::COUNTRIES),
        ("clouds", Skips::CLOUDS),
        ("user_agent", Skips::USER_AGENT),
        ("ip_ban", Skips::IP_BAN),
        ("rate_limit", Skips::RATE_LIMIT),
        ("penetration", Skips::DETECTION),
        ("detection", Skips::DETECTION),
        ("suspicious_detection", Skips::DETECTION),
    ];

    #[must_use]
    pub fn has(self, other: Skips) -> bool {
        self.0 & other.0 != 0
    }

    #[must_use]
    pub fn union(self, other: Skips) -> Skips {
        Skips(self.0 | other.0)
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a behavioural monitor counts.
#[derive(Debug, Clone)]
pub enum MonitorKind {
    /// Calls to the route (`usage_monitor`).
    Usage,
    /// Calls to the route, as a rate per second (`suspicious_frequency`).
    Frequency,
    /// Responses matching a pattern (`return_monitor`).
    Return(Pattern),
}

impl MonitorKind {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            MonitorKind::Usage => "usage_monitor",
            MonitorKind::Frequency => "suspicious_frequency",
            MonitorKind::Return(_) => "return_monitor",
        }
    }
}

/// A behavioural monitor: more than `limit.rule.limit` events in its window triggers `action`.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub kind: MonitorKind,
    /// The counter (a sliding window per client and route).
    pub limit: Limit,
    pub action: Action,
    /// `more than 50 calls in 3600s`, for events.
    pub describe: String,
}

/// A header a route requires: `HTTP_X_CUSTOM` in the WSGI environ, `X-Custom` to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredHeader {
    pub env_key: String,
    pub name: String,
    /// The exact value required; `None`: any non-empty value.
    pub value: Option<String>,
}

/// `api_key_auth(header_name=…, keys=…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub env_key: String,
    pub name: String,
    /// Accepted keys; empty: any non-empty value.
    pub accepted: Vec<String>,
}

/// One endpoint's policy.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    /// Global (and route) checks this route skips.
    pub skips: Skips,
    /// The global rate limits do not apply here (set by `rate_limit` and `geo_rate_limit`, and by
    /// `GateKeeper.specific(standalone=True)`).
    pub standalone: bool,
    pub limits: Vec<Limit>,
    /// `geo_rate_limit`: by the client's country; `None` is the default for other countries.
    pub geo_limits: Vec<(Option<Country>, Limit)>,
    pub require_https: bool,
    pub blacklist: Option<IpSet>,
    pub whitelist: Option<IpSet>,
    /// `block_countries` / `allow_countries` (only `blocked` and `allowed` are used).
    pub countries: GeoPolicy,
    pub clouds: Providers,
    pub user_agents: Option<UserAgentFilter>,
    pub time_window: Option<TimeWindow>,
    pub max_body: Option<u64>,
    pub content_types: ContentTypes,
    pub headers: Vec<RequiredHeader>,
    pub auth: Option<AuthRule>,
    pub api_key: Option<ApiKey>,
    pub referrers: Referrers,
    pub honeypot: Vec<String>,
    /// `suspicious_detection(enabled=…)`: replaces the global switch on this route.
    pub detection: Option<bool>,
    /// Usage and frequency monitors (counted when a request is admitted).
    pub monitors: Vec<Monitor>,
    /// Return monitors (counted when the response is known).
    pub returns: Vec<Monitor>,
}

impl RoutePolicy {
    /// Whether a check needs the request body (honeypot fields, or detection switched on here).
    #[must_use]
    pub fn needs_body(&self) -> bool {
        !self.honeypot.is_empty() || self.detection == Some(true)
    }
}

/// Every route's policy, and what they need from requests.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub by_endpoint: HashMap<String, RoutePolicy>,
    /// Global checks some route skips: they run once the route is known, not before.
    pub deferred: Skips,
    /// WSGI environ keys the route checks read (`HTTP_AUTHORIZATION`, `CONTENT_LENGTH`, …).
    pub env_keys: Vec<String>,
    pub user_agent: bool,
    pub host: bool,
    pub body: bool,
    /// A detector for routes that switch detection on when it is off globally.
    pub detector: Option<Arc<Detector>>,
}

impl Routes {
    #[must_use]
    pub fn get(&self, endpoint: Option<&str>) -> Option<&RoutePolicy> {
        self.by_endpoint.get(endpoint?)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_endpoint.is_empty()
    }
}

/// What parsing needs to know about the global configuration.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub default_algorithm: Algorithm,
    /// A geolocation source is configured (country rules can work).
    pub has_geo_source: bool,
    /// The global detector, when detection is on.
    pub detector: Option<&'a Arc<Detector>>,
    /// The detection settings to build a detector with, when detection is off globally.
    pub dormant_detection: Option<&'a Settings>,
}

/// The keys a route policy may have.
const KEYS: &[&str] = &[
    "bypass",
    "standalone",
    "limits",
    "geo_limits",
    "geo_window",
    "require_https",
    "whitelist",
    "blacklist",
    "blocked_countries",
    "allowed_countries",
    "blocked_clouds",
    "blocked_user_agents",
    "time_window",
    "max_request_size",
    "content_types",
    "required_headers",
    "auth",
    "api_key",
    "referrers",
    "honeypot_fields",
    "detection",
    "monitors",
];

/// Reads route policies: JSON `{endpoint: policy}`.
///
/// # Errors
/// Every bad entry, named `endpoint.field`.
pub fn parse_routes(json: &str, cx: &Context<'_>) -> Result<Routes, ConfigErrors> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        let mut errs = ConfigErrors::default();
        errs.push("<routes>", format!("not valid JSON: {e}"));
        errs
    })?;
    let mut errors = ConfigErrors::default();
    let Value::Object(map) = value else {
        errors.push("<routes>", "must be a mapping of endpoint to policy");
        return Err(errors);
    };
    let mut routes = Routes::default();
    for (endpoint, policy) in &map {
        let Value::Object(pmap) = policy else {
            errors.push(endpoint.clone(), "a route policy must be a dict");
            continue;
        };
        let mut r = Reader::new(pmap, endpoint);
        let p = parse_one(&mut r, endpoint, cx);
        errors.0.extend(r.errors.0);
        let pipeline = Skips::HTTPS
            .union(Skips::IP)
            .union(Skips::COUNTRIES)
            .union(Skips::CLOUDS)
            .union(Skips::USER_AGENT);
        routes.deferred = routes.deferred.union(Skips(p.skips.0 & pipeline.0));
        let mut keys: Vec<&str> = Vec::new();
        if p.max_body.is_some() || !p.content_types.is_empty() {
            keys.extend(["CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_TRANSFER_ENCODING"]);
        }
        if p.auth.is_some() {
            keys.push("HTTP_AUTHORIZATION");
        }
        if !p.referrers.is_empty() {
            keys.push("HTTP_REFERER");
        }
        keys.extend(p.headers.iter().map(|h| h.env_key.as_str()));
        keys.extend(p.api_key.iter().map(|k| k.env_key.as_str()));
        for k in keys {
            if !routes.env_keys.iter().any(|e| e == k) {
                routes.env_keys.push(k.to_owned());
            }
        }
        routes.user_agent |= p.user_agents.is_some();
        routes.host |= p.require_https;
        routes.body |= p.needs_body();
        if p.detection == Some(true) && cx.detector.is_none() && routes.detector.is_none() {
            if let Some(settings) = cx.dormant_detection {
                match Detector::new(settings.clone()) {
                    Ok(d) => routes.detector = Some(Arc::new(d)),
                    Err(e) => errors.push(format!("{endpoint}.detection"), e),
                }
            }
        }
        routes.by_endpoint.insert(endpoint.clone(), p);
    }
    if errors.is_empty() {
        Ok(routes)
    } else {
        Err(errors)
    }
}

fn parse_one(r: &mut Reader<'_>, endpoint: &str, cx: &Context<'_>) -> RoutePolicy {
    r.reject_unknown(KEYS);
    let mut p = RoutePolicy::default();
    let names: Vec<&str> = Skips::NAMES.iter().map(|(n, _)| *n).collect();
    for (i, check) in r.string_list("bypass", &[]).iter().enumerate() {
        let lower = check.trim().to_ascii_lowercase();
        if let Some((_, s)) = Skips::NAMES.iter().find(|(n, _)| *n == lower) {
            p.skips = p.skips.union(*s);
        } else {
            let hint = did_you_mean(&lower, &names)
                .map(|s| format!("; did you mean '{s}'?"))
                .unwrap_or_default();
            r.err(
                &format!("bypass[{i}]"),
                format!(
                    "unknown check '{check}' (known: {}){hint}",
                    names.join(", ")
                ),
            );
        }
    }
    p.standalone = r.bool("standalone", false);
    if let Some(v) = r.get("limits") {
        if let Value::Array(items) = v {
            for (i, item) in items.iter().enumerate() {
                let key = format!("limits[{i}]");
                if let Some((rule, scope)) =
                    limit_spec(r, &key, item, cx.default_algorithm, Scope::Ip)
                {
                    let name = format!("route:{endpoint}#{}", p.limits.len() + 1);
                    p.limits.push(Limit::new(name, rule, scope));
                }
            }
        } else {
            let d = describe(v);
            r.err("limits", format!("must be a list of limits, not {d}"));
        }
    }
    p.geo_limits = geo_limits(r, endpoint, cx);
    p.require_https = r.bool("require_https", false);
    p.whitelist = r
        .optional_ip_list("whitelist")
        .filter(|n| !n.is_empty())
        .map(|n| IpSet::from_nets(&n));
    p.blacklist = r
        .optional_ip_list("blacklist")
        .filter(|n| !n.is_empty())
        .map(|n| IpSet::from_nets(&n));
    p.countries.blocked = countries(r, "blocked_countries");
    p.countries.allowed = countries(r, "allowed_countries");
    if p.countries.active() && !cx.has_geo_source {
        let field = if p.countries.blocked.is_empty() {
            "allowed_countries"
        } else {
            "blocked_countries"
        };
        r.err(field, NEEDS_GEO);
    }
    for (i, name) in r.string_list("blocked_clouds", &[]).iter().enumerate() {
        match provider(name) {
            Ok(pr) => p.clouds.insert(pr),
            Err(msg) => r.err(&format!("blocked_clouds[{i}]"), msg),
        }
    }
    let agents = r.string_list("blocked_user_agents", &[]);
    match UserAgentFilter::new(&r.path("blocked_user_agents"), &agents) {
        Ok(f) => p.user_agents = f,
        Err(e) => r.errors.0.extend(e.0),
    }
    if let Some(v) = r.get("time_window") {
        p.time_window = time_window(r, v);
    }
    if r.get("max_request_size").is_some() {
        p.max_body = Some(r.uint("max_request_size", 0, 0, u64::MAX));
    }
    let types = r.string_list("content_types", &[]);
    match ContentTypes::new(&types) {
        Ok(t) => p.content_types = t,
        Err(bad) => {
            for (i, t) in bad {
                r.err(
                    &format!("content_types[{i}]"),
                    format!("'{t}' is not a media type (type/subtype, e.g. application/json)"),
                );
            }
        }
    }
    p.headers = required_headers(r);
    p.auth = auth(r);
    p.api_key = api_key(r);
    let referrers = r.string_list("referrers", &[]);
    match Referrers::new(&referrers) {
        Ok(refs) => p.referrers = refs,
        Err(bad) => {
            for (i, d) in bad {
                r.err(
                    &format!("referrers[{i}]"),
                    format!("'{d}' is not a domain or http(s) URL"),
                );
            }
        }
    }
    p.honeypot = r.string_list("honeypot_fields", &[]);
    if p.honeypot.iter().any(String::is_empty) {
        r.err("honeypot_fields", "field names must not be empty");
    }
    if r.get("detection").is_some() {
        let on = r.bool("detection", true);
        if on && cx.detector.is_none() && cx.dormant_detection.is_none() {
            r.err(
                "detection",
                "detection cannot be switched on for this route: the detection settings are invalid",
            );
        }
        p.detection = Some(on);
    }
    let (monitors, returns) = monitors(r, endpoint);
    p.monitors = monitors;
    p.returns = returns;
    p
}

const NEEDS_GEO: &str = "needs a geo_ip_handler to know where clients are: set \
     SecurityConfig(geo_ip_handler=MaxMindDB(path)) or IPInfoManager(token), or your own handler";

/// `{"US": 100 | [100, 60] | {"limit": 100, "window": 60}, "default" | "*": …}`.
fn geo_limits(
    r: &mut Reader<'_>,
    endpoint: &str,
    cx: &Context<'_>,
) -> Vec<(Option<Country>, Limit)> {
    let Some(v) = r.get("geo_limits") else {
        return Vec::new();
    };
    let window = r.uint("geo_window", 60, 1, u64::from(u32::MAX));
    let Value::Object(map) = v else {
        let d = describe(v);
        r.err(
            "geo_limits",
            format!("must be a dict of country code to limit, not {d}"),
        );
        return Vec::new();
    };
    if !cx.has_geo_source {
        r.err("geo_limits", NEEDS_GEO);
    }
    let mut out = Vec::new();
    for (code, spec) in map {
        let key = format!("geo_limits.{code}");
        let country = match code.as_str() {
            "default" | "*" => None,
            c => {
                if let Some(c) = Country::parse(c) {
                    Some(c)
                } else {
                    r.err(
                        &key,
                        format!("'{code}' is not a two-letter country code, 'default' or '*'"),
                    );
                    continue;
                }
            }
        };
        let spec = match spec {
            Value::Number(_) => Value::Array(vec![spec.clone(), Value::from(window)]),
            other => other.clone(),
        };
        if let Some((rule, scope)) = limit_spec(r, &key, &spec, cx.default_algorithm, Scope::Ip) {
            let label = country.as_ref().map_or("default", Country::as_str);
            let name = format!("route:{endpoint}:geo:{label}");
            out.push((country, Limit::new(name, rule, scope)));
        }
    }
    out
}

fn time_window(r: &mut Reader<'_>, v: &Value) -> Option<TimeWindow> {
    let Value::Object(m) = v else {
        let d = describe(v);
        r.err(
            "time_window",
            format!("must be a dict with start, end and timezone, not {d}"),
        );
        return None;
    };
    let mut n = r.nested(m, "time_window");
    n.reject_unknown(&["start", "end", "timezone"]);
    let start = n.opt_string("start").unwrap_or_default();
    let end = n.opt_string("end").unwrap_or_default();
    let tz = n.opt_string("timezone").unwrap_or_else(|| "UTC".to_owned());
    let out = match TimeWindow::new(&start, &end, &tz) {
        Ok(w) => Some(w),
        Err(errs) => {
            for (field, msg) in errs {
                n.err(field, msg);
            }
            None
        }
    };
    r.absorb(n);
    out
}

/// A header name as its WSGI environ key, or `None` when it is not a header name.
fn env_key(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return None;
    }
    let upper = name.to_ascii_uppercase().replace('-', "_");
    Some(match upper.as_str() {
        "CONTENT_TYPE" | "CONTENT_LENGTH" => upper,
        _ => format!("HTTP_{upper}"),
    })
}

/// `{"X-Custom": "required" | "exact value"}`.
fn required_headers(r: &mut Reader<'_>) -> Vec<RequiredHeader> {
    let Some(v) = r.get("required_headers") else {
        return Vec::new();
    };
    let Value::Object(map) = v else {
        let d = describe(v);
        r.err(
            "required_headers",
            format!("must be a dict of header name to 'required' or a value, not {d}"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in map {
        let key = format!("required_headers.{name}");
        let Some(env_key) = env_key(name) else {
            r.err(&key, format!("'{name}' is not a header name"));
            continue;
        };
        let value = match value {
            Value::String(s) if s == "required" || s == "*" => None,
            Value::String(s) => Some(s.clone()),
            Value::Null | Value::Bool(true) => None,
            other => {
                let d = describe(other);
                r.err(
                    &key,
                    format!("must be 'required' or the value to require, not {d}"),
                );
                continue;
            }
        };
        out.push(RequiredHeader {
            env_key,
            name: name.clone(),
            value,
        });
    }
    out
}

/// `{"type": "bearer", "accepted": [...]}`.
fn auth(r: &mut Reader<'_>) -> Option<AuthRule> {
    let v = r.get("auth")?;
    let Value::Object(m) = v else {
        let d = describe(v);
        r.err(
            "auth",
            format!("must be a dict with type (and accepted), not {d}"),
        );
        return None;
    };
    let mut n = r.nested(m, "auth");
    n.reject_unknown(&["type", "accepted"]);
    let kind = n.opt_string("type").unwrap_or_else(|| "bearer".to_owned());
    let scheme = kind.trim().to_ascii_lowercase();
    let scheme_ok = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !scheme_ok {
        n.err(
            "type",
            format!("'{kind}' is not an authentication scheme (bearer, basic, …)"),
        );
    }
    let accepted = secrets(&mut n, "accepted");
    let out = AuthRule {
        scheme: (!scheme.is_empty() && scheme != "any").then_some(scheme),
        accepted,
    };
    let ok = n.errors.is_empty();
    r.absorb(n);
    ok.then_some(out)
}

/// `{"header": "X-API-Key", "accepted": [...]}`.
fn api_key(r: &mut Reader<'_>) -> Option<ApiKey> {
    let v = r.get("api_key")?;
    let Value::Object(m) = v else {
        let d = describe(v);
        r.err(
            "api_key",
            format!("must be a dict with header (and accepted), not {d}"),
        );
        return None;
    };
    let mut n = r.nested(m, "api_key");
    n.reject_unknown(&["header", "accepted"]);
    let name = n
        .opt_string("header")
        .unwrap_or_else(|| "X-API-Key".to_owned());
    let env = env_key(name.trim());
    if env.is_none() {
        n.err("header", format!("'{name}' is not a header name"));
    }
    let accepted = secrets(&mut n, "accepted");
    let ok = n.errors.is_empty();
    r.absorb(n);
    Some(ApiKey {
        env_key: env?,
        name: name.trim().to_owned(),
        accepted,
    })
    .filter(|_| ok)
}

/// A list of accepted secrets: no empty ones (they would accept a missing credential).
fn secrets(r: &mut Reader<'_>, key: &str) -> Vec<String> {
    let list = r.string_list(key, &[]);
    if list.iter().any(|s| s.trim().is_empty()) {
        r.err(key, "must not contain empty values");
    }
    list
}

/// `[{"type": "usage" | "frequency" | "return", …}]`: usage/frequency monitors, then return monitors.
fn monitors(r: &mut Reader<'_>, endpoint: &str) -> (Vec<Monitor>, Vec<Monitor>) {
    let (mut counted, mut returns) = (Vec::new(), Vec::new());
    let Some(v) = r.get("monitors") else {
        return (counted, returns);
    };
    let Value::Array(items) = v else {
        let d = describe(v);
        r.err("monitors", format!("must be a list of monitors, not {d}"));
        return (counted, returns);
    };
    for (i, item) in items.iter().enumerate() {
        let key = format!("monitors[{i}]");
        let Value::Object(m) = item else {
            let d = describe(item);
            r.err(&key, format!("must be a dict, not {d}"));
            continue;
        };
        let mut n = r.nested(m, &key);
        if let Some(mon) = monitor(&mut n, m, endpoint, i) {
            if matches!(mon.kind, MonitorKind::Return(_)) {
                returns.push(mon);
            } else {
                counted.push(mon);
            }
        }
        r.absorb(n);
    }
    (counted, returns)
}

fn monitor(
    n: &mut Reader<'_>,
    m: &Map<String, Value>,
    endpoint: &str,
    i: usize,
) -> Option<Monitor> {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    let (kind, max, window) = match kind {
        "usage" => {
            n.reject_unknown(&["type", "max_calls", "window", "action"]);
            let max = n.uint("max_calls", 1, 1, u64::from(u32::MAX));
            let window = n.uint("window", 3600, 1, u64::from(u32::MAX));
            (MonitorKind::Usage, max, window)
        }
        "frequency" => {
            n.reject_unknown(&["type", "max_frequency", "window", "action"]);
            let freq = n.float("max_frequency", 0.1, 0.0, 1e9);
            let window = n.uint("window", 300, 1, u64::from(u32::MAX));
            // A rate per second over the window is a count over the window.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let max = (freq * window as f64).floor() as u64;
            if max < 1 {
                n.err(
                    "max_frequency",
                    format!(
                        "{freq}/s over {window}s allows less than one request; raise max_frequency or window"
                    ),
                );
            }
            (
                MonitorKind::Frequency,
                max.clamp(1, u64::from(u32::MAX)),
                window,
            )
        }
        "return" => {
            n.reject_unknown(&["type", "pattern", "max_occurrences", "window", "action"]);
            let pattern = n.opt_string("pattern").unwrap_or_default();
            let pattern = match Pattern::parse(&pattern) {
                Ok(p) => Some(p),
                Err(e) => {
                    n.err("pattern", e);
                    None
                }
            };
            let max = n.uint("max_occurrences", 1, 1, u64::from(u32::MAX));
            let window = n.uint("window", 86_400, 1, u64::from(u32::MAX));
            (MonitorKind::Return(pattern?), max, window)
        }
        other => {
            n.err(
                "type",
                format!("'{other}' is not a monitor (usage, frequency, return)"),
            );
            return None;
        }
    };
    let action = match n.opt_string("action") {
        None => Action::Ban,
        Some(a) => Action::parse(&a).unwrap_or_else(|| {
            n.err(
                "action",
                format!(
                    "'{a}' is not an action (known: {})",
                    Action::NAMES.join(", ")
                ),
            );
            Action::Log
        }),
    };
    let limit = u32::try_from(max).unwrap_or(u32::MAX);
    let rule = Rule::new(limit, window, Algorithm::SlidingWindow);
    let name = format!("monitor:{endpoint}:{}#{i}", kind.name());
    let what = match &kind {
        MonitorKind::Return(_) => "matching responses",
        _ => "calls",
    };
    Some(Monitor {
        describe: format!("more than {limit} {what} in {window}s"),
        kind,
        limit: Limit::new(name, rule, Scope::Ip),
        action,
    })
}
