//! The rate-limit and ban policy, as configured: which limits apply to a request, keyed how,
//! and when repeated suspicious events turn into a ban.
//!
//! Limits come from four places: `rate_limit` / `rate_limit_window` (the seed's single global
//! limit), `rate_limits` (more global limits), `endpoint_rate_limits` (by exact path, as the
//! reference documents) and route policies (per Flask endpoint, set by decorators). Each limit
//! has a stable id derived from its definition, so every process with the same configuration
//! counts under the same keys.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

use super::{Algorithm, Rule};
use crate::config::{describe, Reader};
use crate::store::{Key, Subject, STRIKES};

/// Whose requests a limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Each client IP separately (the default).
    #[default]
    Ip,
    /// All clients together, per Flask endpoint.
    Endpoint,
    /// Each client IP separately, per Flask endpoint.
    IpEndpoint,
    /// All clients of the application together.
    Global,
}

impl Scope {
    pub const NAMES: [&'static str; 4] = ["ip", "endpoint", "ip_endpoint", "global"];

    #[must_use]
    pub fn parse(s: &str) -> Option<Scope> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "ip" => Some(Scope::Ip),
            "endpoint" => Some(Scope::Endpoint),
            "ip_endpoint" | "ip+endpoint" => Some(Scope::IpEndpoint),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::Endpoint => "endpoint",
            Scope::IpEndpoint => "ip_endpoint",
            Scope::Global => "global",
        }
    }

    /// Whether counting needs the Flask endpoint (known only after routing).
    #[must_use]
    pub fn needs_endpoint(self) -> bool {
        matches!(self, Scope::Endpoint | Scope::IpEndpoint)
    }

    /// The store key a request is counted under for the limit `rule_id`. Keys about one client
    /// keep its IP as the subject (so its counters can be found and reset); a per-endpoint
    /// limit folds the endpoint into the rule part instead. An unknown client IP counts as one
    /// shared client.
    #[must_use]
    pub fn key(self, rule_id: u32, ip: Option<IpAddr>, endpoint: &str) -> Key {
        let per_endpoint = || {
            fnv1a(
                fnv1a(FNV_START, &rule_id.to_le_bytes()),
                endpoint.as_bytes(),
            )
        };
        match (self, ip) {
            (Scope::Ip, Some(ip)) => Key {
                rule: rule_id,
                subject: Subject::ip(ip),
            },
            (Scope::IpEndpoint, Some(ip)) => Key {
                rule: per_endpoint(),
                subject: Subject::ip(ip),
            },
            (Scope::Endpoint | Scope::IpEndpoint, _) => Key {
                rule: rule_id,
                subject: Subject::name(endpoint),
            },
            (Scope::Ip | Scope::Global, _) => Key {
                rule: rule_id,
                subject: Subject::EVERYONE,
            },
        }
    }
}

/// One configured limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Stable id (the store key's rule part).
    pub id: u32,
    /// Policy name for headers and events: `global`, `path:/login`, `route:admin`.
    pub name: String,
    pub rule: Rule,
    pub scope: Scope,
}

impl Limit {
    #[must_use]
    pub fn new(name: String, rule: Rule, scope: Scope) -> Limit {
        let mut def = String::new();
        let _ = write!(
            def,
            "{name}|{}|{}|{}|{}",
            rule.limit,
            rule.window_ms,
            rule.algorithm.as_str(),
            scope.as_str()
        );
        Limit {
            id: stable_id(&def),
            name,
            rule,
            scope,
        }
    }
}

const FNV_START: u32 = 0x811c_9dc5;

/// FNV-1a, 32 bits, continued from `h` over `bytes`.
fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    if h == STRIKES {
        h - 1
    } else {
        h
    }
}

/// A stable id for a limit's definition (never the strike id).
fn stable_id(s: &str) -> u32 {
    fnv1a(FNV_START, s.as_bytes())
}

/// The rate-limit part of the configuration.
#[derive(Debug, Clone, Default)]
pub struct RateLimitPolicy {
    pub enabled: bool,
    pub global: Vec<Limit>,
    /// `endpoint_rate_limits`: by exact request path.
    pub by_path: HashMap<String, Vec<Limit>>,
    /// `X-RateLimit-*` on every response a limit applies to.
    pub headers: bool,
    /// The IETF draft's `RateLimit-Policy` / `RateLimit` headers too.
    pub draft_headers: bool,
    pub default_algorithm: Algorithm,
}

impl RateLimitPolicy {
    /// Whether any configured limit needs the Flask endpoint.
    #[must_use]
    pub fn needs_endpoint(&self) -> bool {
        self.global
            .iter()
            .chain(self.by_path.values().flatten())
            .any(|l| l.scope.needs_endpoint())
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.by_path.is_empty()
    }
}

/// Automatic banning: `threshold` strikes within `window_ms` ban for `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    pub enabled: bool,
    pub threshold: u32,
    pub window_ms: u64,
    pub duration_ms: u64,
}

impl BanPolicy {
    /// The strike counter as a sliding-window rule.
    #[must_use]
    pub fn strike_rule(&self) -> Rule {
        Rule {
            limit: self.threshold.max(1),
            window_ms: self.window_ms.max(1000),
            algorithm: Algorithm::SlidingWindow,
        }
    }
}

/// How Rampart words its 403/429 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Messages {
    /// The reference's texts: "Too many requests", "IP address banned".
    #[default]
    Short,
    /// Says which rule applied and for how long (flask-gatekeeper's texts).
    Detailed,
}

/// Reads the rate-limit and ban fields.
pub(crate) fn parse(r: &mut Reader<'_>) -> (RateLimitPolicy, BanPolicy, Messages) {
    let enabled = r.bool("enable_rate_limiting", true);
    let default_algorithm = read_algorithm(r, "rate_limit_algorithm", Algorithm::SlidingWindow);
    let default_scope = read_scope(r, "rate_limit_key", Scope::Ip);
    let window = r.uint("rate_limit_window", 60, 1, u64::from(u32::MAX));
    let mut global = Vec::new();
    if r.get("rate_limit").is_some() {
        let n = r.uint("rate_limit", 1, 1, u64::from(u32::MAX));
        let limit = u32::try_from(n).unwrap_or(u32::MAX);
        global.push(Limit::new(
            "global".into(),
            Rule::new(limit, window, default_algorithm),
            default_scope,
        ));
    }
    if let Some(v) = r.get("rate_limits") {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let key = format!("rate_limits[{i}]");
                    if let Some(spec) = limit_spec(r, &key, item, default_algorithm, default_scope)
                    {
                        let name = if global.is_empty() && i == 0 {
                            "global".to_owned()
                        } else {
                            format!("global-{}", global.len() + 1)
                        };
                        global.push(Limit::new(name, spec.0, spec.1));
                    }
                }
            }
            other => {
                let d = describe(other);
                r.err("rate_limits", format!("must be a list of limits, not {d}"));
            }
        }
    }
    let mut by_path: HashMap<String, Vec<Limit>> = HashMap::new();
    if let Some(v) = r.get("endpoint_rate_limits") {
        match v {
            Value::Object(map) => {
                for (path, spec) in map {
                    let field = format!("endpoint_rate_limits[{path}]");
                    if !path.starts_with('/') {
                        r.err(&field, format!("'{path}' must be a path starting with '/'"));
                        continue;
                    }
                    if let Some((rule, scope)) =
                        limit_spec(r, &field, spec, default_algorithm, Scope::Ip)
                    {
                        by_path.entry(path.clone()).or_default().push(Limit::new(
                            format!("path:{path}"),
                            rule,
                            scope,
                        ));
                    }
                }
            }
            other => {
                let d = describe(other);
                r.err(
                    "endpoint_rate_limits",
                    format!("must be a dict of path to (limit, window), not {d}"),
                );
            }
        }
    }
    let headers = r.bool("rate_limit_headers", true);
    let draft_headers = r.bool("rate_limit_draft_headers", false);

    let ban_enabled = r.bool("enable_ip_banning", true);
    let threshold = r.uint("auto_ban_threshold", 10, 1, u64::from(u32::MAX));
    let ban_window = r.uint("auto_ban_window", 3600, 1, u64::from(u32::MAX));
    let duration = r.uint("auto_ban_duration", 3600, 1, u64::from(u32::MAX));
    let messages = match r.opt_string("block_messages").as_deref() {
        None | Some("short") => Messages::Short,
        Some("detailed") => Messages::Detailed,
        Some(other) => {
            r.err(
                "block_messages",
                format!("must be 'short' or 'detailed', not '{other}'"),
            );
            Messages::Short
        }
    };
    (
        RateLimitPolicy {
            enabled,
            global,
            by_path,
            headers,
            draft_headers,
            default_algorithm,
        },
        BanPolicy {
            enabled: ban_enabled,
            threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
            window_ms: ban_window * 1000,
            duration_ms: duration * 1000,
        },
        messages,
    )
}

/// An algorithm name (field `key`), or `default` when absent.
fn read_algorithm(r: &mut Reader<'_>, key: &str, default: Algorithm) -> Algorithm {
    let Some(name) = r.opt_string(key) else {
        return default;
    };
    Algorithm::parse(&name).unwrap_or_else(|| {
        let known = Algorithm::NAMES.join(", ");
        r.err(
            key,
            format!("'{name}' is not an algorithm (known: {known})"),
        );
        default
    })
}

/// A key (scope) name (field `key`), or `default` when absent.
fn read_scope(r: &mut Reader<'_>, key: &str, default: Scope) -> Scope {
    let Some(name) = r.opt_string(key) else {
        return default;
    };
    Scope::parse(&name).unwrap_or_else(|| {
        let known = Scope::NAMES.join(", ");
        r.err(key, format!("'{name}' is not a key (known: {known})"));
        default
    })
}

/// One limit (the field `key` of `r`) written as `(limit, window)` / `[limit, window]` or as a dict
/// `{"limit" | "count" | "requests": n, "window": s, "algorithm": ..., "key": ...}`.
pub(crate) fn limit_spec(
    r: &mut Reader<'_>,
    key: &str,
    v: &Value,
    default_algorithm: Algorithm,
    default_scope: Scope,
) -> Option<(Rule, Scope)> {
    const MAX: u64 = u32::MAX as u64;
    let whole = |v: &Value| v.as_u64().filter(|n| (1..=MAX).contains(n));
    match v {
        Value::Array(items) => {
            let [limit, window] = items.as_slice() else {
                r.err(
                    key,
                    format!("must be (limit, window), not a list of {}", items.len()),
                );
                return None;
            };
            if let (Some(l), Some(w)) = (whole(limit), whole(window)) {
                Some((
                    Rule::new(u32::try_from(l).unwrap_or(u32::MAX), w, default_algorithm),
                    default_scope,
                ))
            } else {
                r.err(
                    key,
                    format!(
                        "limit and window must be whole numbers from 1 to {MAX}, not {limit} and {window}"
                    ),
                );
                None
            }
        }
        Value::Object(map) => {
            let mut nested = r.nested(map, key);
            nested.reject_unknown(&["limit", "count", "requests", "window", "algorithm", "key"]);
            let names: Vec<&str> = ["limit", "count", "requests"]
                .into_iter()
                .filter(|k| nested.get(k).is_some())
                .collect();
            let limit = match names.as_slice() {
                [one] => Some(nested.uint(one, 1, 1, MAX)),
                [] => {
                    nested.err("limit", "is required (the number of requests allowed)");
                    None
                }
                _ => {
                    nested.err(names[1], format!("give only one of {}", names.join(", ")));
                    None
                }
            };
            let window = if nested.get("window").is_some() {
                Some(nested.uint("window", 60, 1, MAX))
            } else {
                nested.err("window", "is required (seconds)");
                None
            };
            let algorithm = read_algorithm(&mut nested, "algorithm", default_algorithm);
            let scope = read_scope(&mut nested, "key", default_scope);
            let ok = nested.errors.is_empty();
            r.absorb(nested);
            match (ok, limit, window) {
                (true, Some(l), Some(w)) => Some((
                    Rule::new(u32::try_from(l).unwrap_or(u32::MAX), w, algorithm),
                    scope,
                )),
                _ => None,
            }
        }
        other => {
            let d = describe(other);
            r.err(
                key,
                format!("must be (limit, window) or a dict with limit and window, not {d}"),
            );
            None
        }
    }
}
