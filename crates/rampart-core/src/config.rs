//! The typed policy and its validation.
//!
//! The Python package hands over a JSON object holding only the fields the user set (through
//! `SecurityConfig(...)` or `RAMPART_*` keys). [`Config::from_json`] checks every field, fills in
//! defaults and reports **every** problem at once in [`ConfigErrors`]. Field names are those of
//! flaskapi-guard's `SecurityConfig`; [`FIELDS`] is the one list of them, with their defaults.

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::detect::policy::DetectPolicy;
use crate::error::ConfigErrors;
use crate::filter::country::{self, CloudPolicy, GeoPolicy};
use crate::filter::user_agent::UserAgentFilter;
use crate::limit::policy::{self, BanPolicy, Messages, RateLimitPolicy};
use crate::net::cidr::{self, IpSet};
use crate::net::client_ip::ProxyPolicy;
use crate::respond::cors::CorsPolicy;
use crate::respond::headers::HeaderPolicy;
use crate::store::ShmOptions;

/// Whether a field works in this release, or belongs to a feature still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// Accepted only with its default or an "off" value; names the feature it belongs to.
    Later(&'static str),
    /// Part of the reference's API but not of Rampart; accepted only when off.
    Never(&'static str),
}

/// A configuration field: name, default (as JSON), support status.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub support: Support,
}

const AGENT: Support = Support::Never("the reference's telemetry agent is not part of Rampart");

const fn f(name: &'static str, default: &'static str, support: Support) -> FieldSpec {
    FieldSpec {
        name,
        default,
        support,
    }
}

/// Every configuration field, in documentation order.
pub const FIELDS: &[FieldSpec] = &[
    f("trusted_proxies", "[]", Support::Yes),
    f("trusted_proxy_depth", "1", Support::Yes),
    f("trust_x_forwarded_proto", "true", Support::Yes),
    f("client_ip_header", r#""X-Forwarded-For""#, Support::Yes),
    f("whitelist", "null", Support::Yes),
    f("blacklist", "[]", Support::Yes),
    f("blocked_user_agents", "[]", Support::Yes),
    f(
        "exclude_paths",
        r#"["/docs", "/redoc", "/openapi.json", "/openapi.yaml", "/favicon.ico", "/static"]"#,
        Support::Yes,
    ),
    f("exclude_methods", "[]", Support::Yes),
    f("emergency_mode", "false", Support::Yes),
    f("emergency_whitelist", "[]", Support::Yes),
    f("passive_mode", "false", Support::Yes),
    f("enforce_https", "false", Support::Yes),
    f("custom_request_check", "null", Support::Yes),
    f("custom_response_modifier", "null", Support::Yes),
    f("custom_error_responses", "{}", Support::Yes),
    f("fail_secure", "true", Support::Yes),
    f("security_headers", HeaderPolicy::DEFAULT_JSON, Support::Yes),
    f("enable_cors", "false", Support::Yes),
    f("cors_allow_origins", r#"["*"]"#, Support::Yes),
    f(
        "cors_allow_methods",
        r#"["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]"#,
        Support::Yes,
    ),
    f("cors_allow_headers", r#"["*"]"#, Support::Yes),
    f("cors_allow_credentials", "false", Support::Yes),
    f("cors_expose_headers", "[]", Support::Yes),
    f("cors_max_age", "600", Support::Yes),
    f("custom_log_file", "null", Support::Yes),
    f("log_suspicious_level", r#""WARNING""#, Support::Yes),
    f("log_request_level", "null", Support::Yes),
    f("log_format", r#""text""#, Support::Yes),
    f("enable_rate_limiting", "true", Support::Yes),
    f("rate_limit", "null", Support::Yes),
    f("rate_limit_window", "60", Support::Yes),
    f("endpoint_rate_limits", "{}", Support::Yes),
    f("rate_limits", "[]", Support::Yes),
    f("rate_limit_algorithm", r#""sliding_window""#, Support::Yes),
    f("rate_limit_key", r#""ip""#, Support::Yes),
    f("rate_limit_headers", "true", Support::Yes),
    f("rate_limit_draft_headers", "false", Support::Yes),
    f("enable_ip_banning", "true", Support::Yes),
    f("auto_ban_threshold", "10", Support::Yes),
    f("auto_ban_window", "3600", Support::Yes),
    f("auto_ban_duration", "3600", Support::Yes),
    f("block_messages", r#""short""#, Support::Yes),
    f("max_tracked_keys", "1000000", Support::Yes),
    f("enable_penetration_detection", "true", Support::Yes),
    f("detection_compiler_timeout", "2.0", Support::Yes),
    f("detection_max_content_length", "10000", Support::Yes),
    f("detection_preserve_attack_patterns", "true", Support::Yes),
    f("detection_semantic_threshold", "0.7", Support::Yes),
    f("detection_anomaly_threshold", "3.0", Support::Yes),
    f("detection_slow_pattern_threshold", "0.1", Support::Yes),
    f("detection_monitor_history_size", "1000", Support::Yes),
    f("detection_max_tracked_patterns", "1000", Support::Yes),
    f("detection_threshold", "5", Support::Yes),
    f("detection_paranoia_level", "1", Support::Yes),
    f("detection_action", r#""block""#, Support::Yes),
    f("detection_status_code", "403", Support::Yes),
    f("detection_max_body_size", "1048576", Support::Yes),
    f("detection_uninspectable", r#""block""#, Support::Yes),
    f("detection_auto_ban", "true", Support::Yes),
    f("detection_exclude_rules", "[]", Support::Yes),
    f("detection_exclude_params", "[]", Support::Yes),
    f("detection_exclude_paths", "[]", Support::Yes),
    f("detection_exclusions", "[]", Support::Yes),
    f("detection_custom_patterns", "[]", Support::Yes),
    f("storage_uri", "null", Support::Yes),
    f("storage_outage", r#""local""#, Support::Yes),
    f("enable_redis", "false", Support::Yes),
    f("redis_url", "null", Support::Yes),
    f("redis_prefix", r#""rampart:""#, Support::Yes),
    f("geo_ip_handler", "null", Support::Yes),
    f("blocked_countries", "[]", Support::Yes),
    f("whitelist_countries", "[]", Support::Yes),
    f("geo_auto_ban", "false", Support::Yes),
    f("ipinfo_token", "null", Support::Yes),
    f(
        "ipinfo_db_path",
        r#""data/ipinfo/country_asn.mmdb""#,
        Support::Yes,
    ),
    f("block_cloud_providers", "[]", Support::Yes),
    f("cloud_ip_refresh_interval", "3600", Support::Yes),
    f("cloud_ranges_files", "{}", Support::Yes),
    f("cloud_ranges_urls", "{}", Support::Yes),
    f("cloud_ranges_cache_dir", "null", Support::Yes),
    f("enable_agent", "false", AGENT),
    f("agent_api_key", "null", AGENT),
    f("agent_endpoint", "null", AGENT),
    f("agent_project_id", "null", AGENT),
    f("agent_buffer_size", "100", AGENT),
    f("agent_flush_interval", "30", AGENT),
    f("agent_enable_events", "true", AGENT),
    f("agent_enable_metrics", "true", AGENT),
    f("agent_timeout", "30", AGENT),
    f("agent_retry_attempts", "3", AGENT),
    f("agent_guard_version", "null", AGENT),
    f("enable_dynamic_rules", "false", AGENT),
    f("dynamic_rule_interval", "300", AGENT),
];

/// The defaults of every field, as one JSON object (for the Python side's attribute access).
#[must_use]
pub fn defaults_json() -> String {
    let mut map = Map::new();
    for spec in FIELDS {
        let value = serde_json::from_str(spec.default).unwrap_or(Value::Null);
        map.insert(spec.name.to_owned(), value);
    }
    Value::Object(map).to_string()
}

/// Log levels accepted by the logging fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Where counters and bans live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `memory://`: this process only.
    Memory,
    /// `shm:///path`: every process of the host that opens the same file.
    Shm(ShmOptions),
    /// `redis://…` and friends: every host using the same server.
    Redis(RedisOptions),
}

/// Redis settings: the URL as given, the key prefix, and what to do while Redis is away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    pub url: String,
    pub prefix: String,
    /// `storage_outage="block"`: answer 503 while Redis is unreachable, instead of carrying on
    /// with this process's own counters.
    pub fail_closed: bool,
}

impl Storage {
    /// The URI schemes `storage_uri` accepts.
    pub const SCHEMES: &'static str =
        "memory://, shm:///path, redis://, rediss://, redis+unix://, redis+sentinel://, redis+cluster://, valkey://, valkeys://";

    fn parse(r: &mut Reader<'_>, max_keys: usize) -> Storage {
        let prefix = r
            .opt_string("redis_prefix")
            .unwrap_or_else(|| "rampart:".to_owned());
        if prefix.is_empty() {
            r.err(
                "redis_prefix",
                "must not be empty: keys would collide with other users of the server",
            );
        } else if prefix.contains(['{', '}']) {
            r.err(
                "redis_prefix",
                "must not contain { or }: Rampart's keys use braces to keep each client's keys \
                 in one Redis Cluster slot",
            );
        }
        let fail_closed = match r.opt_string("storage_outage").as_deref() {
            None | Some("local") => false,
            Some("block") => true,
            Some(other) => {
                r.err(
                    "storage_outage",
                    format!("must be 'local' (carry on with this process's counters) or 'block' (answer 503), not '{other}'"),
                );
                false
            }
        };
        let enable_redis = r.bool("enable_redis", false);
        let redis_url = r.opt_string("redis_url");
        let (field, uri) = match r.opt_string("storage_uri") {
            Some(uri) => {
                if enable_redis && redis_url.as_deref().is_some_and(|u| u != uri) {
                    r.err("redis_url", "conflicts with storage_uri: set one of them");
                }
                ("storage_uri", uri)
            }
            None if enable_redis => (
                "redis_url",
                redis_url.unwrap_or_else(|| "redis://localhost:6379".to_owned()),
            ),
            None => return Storage::Memory,
        };
        let (scheme, rest) = uri.split_once("://").unwrap_or(("", ""));
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() => Storage::Memory,
            "shm" => match shm_options(rest, max_keys) {
                Ok(o) => Storage::Shm(o),
                Err(why) => {
                    r.err(field, format!("'{uri}': {why}"));
                    Storage::Memory
                }
            },
            "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys" | "valkey+unix"
            | "redis+sentinel" | "valkey+sentinel" | "redis+cluster" | "valkey+cluster"
                if !rest.is_empty() =>
            {
                Storage::Redis(RedisOptions {
                    // The scheme in lower case: the client library matches it exactly.
                    url: format!("{}://{rest}", scheme.to_ascii_lowercase()),
                    prefix,
                    fail_closed,
                })
            }
            _ => {
                r.err(
                    field,
                    format!(
                        "'{uri}' is not a storage URI; use one of {}",
                        Storage::SCHEMES
                    ),
                );
                Storage::Memory
            }
        }
    }
}

/// `shm:///abs/path?slots=N&ban_slots=M`.
fn shm_options(rest: &str, max_keys: usize) -> Result<ShmOptions, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err("needs an absolute path: shm:///dev/shm/myapp (three slashes)".into());
    }
    let mut o = ShmOptions::for_keys(path, max_keys);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n: usize = v
            .parse()
            .ok()
            .filter(|n| (64..=1 << 30).contains(n))
            .ok_or_else(|| format!("{k} must be a whole number from 64 to 2**30, not '{v}'"))?;
        match k {
            "slots" => o.slots = n,
            "ban_slots" => o.ban_slots = n,
            _ => return Err(format!("unknown option '{k}' (slots, ban_slots)")),
        }
    }
    Ok(o)
}

/// Where and how security events are logged (carried out by the Python side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    pub custom_log_file: Option<String>,
    pub suspicious_level: Option<Level>,
    pub request_level: Option<Level>,
    pub json: bool,
}

/// The validated policy the engine runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxies: ProxyPolicy,
    pub whitelist: Option<IpSet>,
    pub blacklist: IpSet,
    /// `blocked_user_agents`, compiled (`None` when the list is empty).
    pub user_agents: Option<UserAgentFilter>,
    pub exclude_paths: Vec<String>,
    /// Methods no check applies to, upper-case.
    pub exclude_methods: Vec<String>,
    pub emergency_mode: bool,
    pub emergency_whitelist: IpSet,
    pub passive_mode: bool,
    pub enforce_https: bool,
    pub custom_error_responses: Vec<(u16, String)>,
    pub custom_request_check: bool,
    pub custom_response_modifier: bool,
    pub fail_secure: bool,
    pub headers: HeaderPolicy,
    pub cors: Option<CorsPolicy>,
    pub logging: LoggingConfig,
    pub rate_limits: RateLimitPolicy,
    pub bans: BanPolicy,
    pub messages: Messages,
    /// Bound on the counters the memory store keeps.
    pub max_tracked_keys: usize,
    /// Where counters and bans live (`storage_uri`, or the seed's `enable_redis` / `redis_url`).
    pub storage: Storage,
    pub detection: DetectPolicy,
    /// Country rules (`blocked_countries`, `whitelist_countries`, `geo_ip_handler`).
    pub geo: GeoPolicy,
    /// Cloud provider rules (`block_cloud_providers`) and where their ranges come from.
    pub clouds: CloudPolicy,
    /// Things that are allowed but probably not what the user meant, logged at start-up.
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates a JSON object of explicitly set fields; absent fields take their defaults.
    ///
    /// # Errors
    /// Every bad field, at once.
    pub fn from_json(json: &str) -> Result<Config, ConfigErrors> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            let mut errs = ConfigErrors::default();
            errs.push("<config>", format!("not valid JSON: {e}"));
            errs
        })?;
        let Value::Object(map) = value else {
            let mut errs = ConfigErrors::default();
            errs.push("<config>", "must be a mapping of field names to values");
            return Err(errs);
        };
        Self::from_map(&map)
    }

    /// Validates a map of explicitly set fields.
    ///
    /// # Errors
    /// Every bad field, at once.
    pub fn from_map(map: &Map<String, Value>) -> Result<Config, ConfigErrors> {
        let mut r = Reader::new(map, "");
        r.reject_unknown(&FIELDS.iter().map(|s| s.name).collect::<Vec<_>>());
        for spec in FIELDS {
            r.check_support(spec);
        }

        let trusted = r.ip_list("trusted_proxies");
        for (i, net) in trusted.iter().enumerate() {
            if cidr::is_everything(net) {
                r.errors.push(
                    format!("trusted_proxies[{i}]"),
                    format!("'{net}' would trust every address; list your proxies instead"),
                );
            }
        }
        let depth = r.uint("trusted_proxy_depth", 1, 1, 64);
        let trust_proto = r.bool("trust_x_forwarded_proto", true);
        let ip_header = r.opt_string("client_ip_header");
        if let Some(h) = &ip_header {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                r.err("client_ip_header", format!("'{h}' is not a header name"));
            }
        }
        // Named explicitly with no proxies listed: the header is believed from any peer (what
        // flask-gatekeeper's `ip_header` does). Say so, since a client can then pick its address.
        let trust_any_peer = ip_header.is_some() && trusted.is_empty();
        if trust_any_peer {
            r.warnings.push(format!(
                "client_ip_header '{}' is believed from any peer because trusted_proxies is empty; \
                 list your proxies so clients cannot choose their own address",
                ip_header.as_deref().unwrap_or_default()
            ));
        }
        let ip_header = ip_header.unwrap_or_else(|| "X-Forwarded-For".to_owned());
        let whitelist = r.optional_ip_list("whitelist");
        let blacklist = r.ip_list("blacklist");
        let patterns = r.string_list("blocked_user_agents", &[]);
        let user_agents =
            UserAgentFilter::new("blocked_user_agents", &patterns).unwrap_or_else(|e| {
                r.errors.0.extend(e.0);
                None
            });
        let exclude_paths = r.string_list(
            "exclude_paths",
            &[
                "/docs",
                "/redoc",
                "/openapi.json",
                "/openapi.yaml",
                "/favicon.ico",
                "/static",
            ],
        );
        for (i, p) in exclude_paths.iter().enumerate() {
            if !p.starts_with('/') {
                r.errors.push(
                    format!("exclude_paths[{i}]"),
                    format!("'{p}' must start with '/'"),
                );
            }
        }
        let exclude_methods: Vec<String> = r
            .string_list("exclude_methods", &[])
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        for (i, m) in exclude_methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                r.errors.push(
                    format!("exclude_methods[{i}]"),
                    format!("'{m}' is not an HTTP method"),
                );
            }
        }
        let emergency_mode = r.bool("emergency_mode", false);
        let emergency_whitelist = r.ip_list("emergency_whitelist");
        let passive_mode = r.bool("passive_mode", false);
        let enforce_https = r.bool("enforce_https", false);
        let custom_request_check = r.callable("custom_request_check");
        let custom_response_modifier = r.callable("custom_response_modifier");
        let custom_error_responses = r.error_responses("custom_error_responses");
        let fail_secure = r.bool("fail_secure", true);
        let headers = HeaderPolicy::parse(&mut r, "security_headers");
        let cors = CorsPolicy::parse(&mut r);
        let (rate_limits, bans, messages) = policy::parse(&mut r);
        let max_tracked_keys = r.uint("max_tracked_keys", 1_000_000, 1000, 1 << 32);
        let storage = Storage::parse(
            &mut r,
            usize::try_from(max_tracked_keys).unwrap_or(usize::MAX),
        );
        let detection = DetectPolicy::parse(&mut r);
        let (geo, clouds) = country::parse(&mut r);
        let logging = LoggingConfig {
            custom_log_file: r.opt_string("custom_log_file"),
            suspicious_level: r.level("log_suspicious_level", Some(Level::Warning)),
            request_level: r.level("log_request_level", None),
            json: match r.opt_string("log_format").as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    r.errors.push(
                        "log_format",
                        format!("must be 'text' or 'json', not '{other}'"),
                    );
                    false
                }
            },
        };
        let mut warnings = std::mem::take(&mut r.warnings);
        if passive_mode {
            warnings.push(
                "passive_mode is on: Rampart logs what it would block and blocks nothing".into(),
            );
        }

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        Ok(Config {
            proxies: ProxyPolicy {
                trusted: IpSet::from_nets(&trusted),
                depth: usize::try_from(depth).unwrap_or(1),
                trust_forwarded_proto: trust_proto,
                header: ip_header,
                trust_any_peer,
            },
            whitelist: whitelist
                .filter(|w| !w.is_empty())
                .map(|w| IpSet::from_nets(&w)),
            blacklist: IpSet::from_nets(&blacklist),
            user_agents,
            exclude_paths,
            exclude_methods,
            emergency_mode,
            emergency_whitelist: IpSet::from_nets(&emergency_whitelist),
            passive_mode,
            enforce_https,
            custom_error_responses,
            custom_request_check,
            custom_response_modifier,
            fail_secure,
            headers,
            cors,
            logging,
            rate_limits,
            bans,
            messages,
            max_tracked_keys: usize::try_from(max_tracked_keys).unwrap_or(usize::MAX),
            storage,
            detection,
            geo,
            clouds,
            warnings,
        })
    }
}

/// Reads fields out of a JSON object, recording every problem instead of stopping.
pub(crate) struct Reader<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    pub(crate) errors: ConfigErrors,
    pub(crate) warnings: Vec<String>,
}

/// How a JSON value reads in an error message. The Python side marks values JSON cannot carry as
/// `{"$callable": name}` or `{"$object": type}`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(_) => "a bool".into(),
        Value::Number(n) if n.is_i64() || n.is_u64() => "an int".into(),
        Value::Number(_) => "a float".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(o) => {
            if let Some(Value::String(name)) = o.get("$callable") {
                format!("the callable {name}")
            } else if let Some(Value::String(t)) = o.get("$object") {
                format!("a {t} object")
            } else {
                "a dict".into()
            }
        }
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>, prefix: &str) -> Self {
        Self {
            map,
            prefix: prefix.to_owned(),
            errors: ConfigErrors::default(),
            warnings: Vec::new(),
        }
    }

    /// A reader over a nested mapping; its errors must be merged back with [`Reader::absorb`].
    pub(crate) fn nested(&self, map: &'a Map<String, Value>, key: &str) -> Reader<'a> {
        Reader::new(map, &self.path(key))
    }

    pub(crate) fn absorb(&mut self, other: Reader<'_>) {
        self.errors.0.extend(other.errors.0);
        self.warnings.extend(other.warnings);
    }

    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(crate) fn err(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(path, message);
    }

    /// The value of a field, `None` when absent or JSON null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn reject_unknown(&mut self, known: &[&str]) {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            let msg = match did_you_mean(key, known) {
                Some(s) => format!("unknown field; did you mean '{s}'?"),
                None => "unknown field".to_owned(),
            };
            self.err(key, msg);
        }
    }

    fn check_support(&mut self, spec: &FieldSpec) {
        let (feature, later) = match spec.support {
            Support::Yes => return,
            Support::Later(feature) => (feature, true),
            Support::Never(why) => (why, false),
        };
        let Some(v) = self.map.get(spec.name) else {
            return;
        };
        // A value of the wrong shape gets the specific reason, not "not supported".
        let before = self.errors.0.len();
        self.check_shape(spec.name);
        if self.errors.0.len() > before {
            return;
        }
        let default: Value = serde_json::from_str(spec.default).unwrap_or(Value::Null);
        if is_off(v) || *v == default || numbers_equal(v, &default) {
            return;
        }
        let msg = if later {
            format!(
                "{} is not supported in this release of Rampart ({feature} comes in a later release); \
                 remove it or set it to {}",
                spec.name, spec.default
            )
        } else {
            format!(
                "not supported: {feature}; remove it or set it to {}",
                spec.default
            )
        };
        self.err(spec.name, msg);
    }

    /// Type and range checks of the fields whose features come later, so that a value that could
    /// never work is named as such today.
    fn check_shape(&mut self, name: &str) {
        match name {
            n if n.starts_with("enable_") => {
                self.bool(name, false);
            }
            _ => {}
        }
    }

    pub(crate) fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be True or False, not {d}"));
                default
            }
        }
    }

    pub(crate) fn uint(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => x,
                _ => {
                    self.err(
                        key,
                        format!("must be a whole number from {min} to {max}, not {n}"),
                    );
                    default
                }
            },
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a whole number, not {d}"));
                default
            }
        }
    }

    /// A number (int or float) from `min` to `max`.
    pub(crate) fn float(&mut self, key: &str, default: f64, min: f64, max: f64) -> f64 {
        match self.get(key) {
            None => default,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if (min..=max).contains(&x) => x,
                _ => {
                    self.err(
                        key,
                        format!("must be a number from {min} to {max}, not {n}"),
                    );
                    default
                }
            },
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a number, not {d}"));
                default
            }
        }
    }

    pub(crate) fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a string or None, not {d}"));
                None
            }
        }
    }

    /// A list of strings (a Python list, tuple or set); a lone string is refused, since
    /// `["curl"]` written as `"curl"` would otherwise mean four one-letter entries.
    pub(crate) fn string_list(&mut self, key: &str, default: &[&str]) -> Vec<String> {
        match self.get(key) {
            None => default.iter().map(|s| (*s).to_owned()).collect(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            let d = describe(other);
                            self.err(&format!("{key}[{i}]"), format!("must be a string, not {d}"));
                        }
                    }
                }
                out
            }
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a list of strings, not {d}"));
                default.iter().map(|s| (*s).to_owned()).collect()
            }
        }
    }

    pub(crate) fn ip_list(&mut self, key: &str) -> Vec<IpNet> {
        self.optional_ip_list(key).unwrap_or_default()
    }

    pub(crate) fn optional_ip_list(&mut self, key: &str) -> Option<Vec<IpNet>> {
        self.get(key)?;
        let entries = self.string_list(key, &[]);
        let mut nets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            match cidr::parse_entry(e) {
                Ok(net) => nets.push(net),
                Err(bad) => self.err(&format!("{key}[{i}]"), bad.0),
            }
        }
        Some(nets)
    }

    fn callable(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(Value::Object(o)) if o.contains_key("$callable") => true,
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a callable or None, not {d}"));
                false
            }
        }
    }

    fn level(&mut self, key: &str, default: Option<Level>) -> Option<Level> {
        if !self.has(key) {
            return default;
        }
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
                "DEBUG" => Some(Level::Debug),
                "INFO" => Some(Level::Info),
                "WARNING" | "WARN" => Some(Level::Warning),
                "ERROR" => Some(Level::Error),
                "CRITICAL" => Some(Level::Critical),
                _ => {
                    self.err(
                        key,
                        format!("'{s}' is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL or None)"),
                    );
                    default
                }
            },
            Some(v) => {
                let d = describe(v);
                self.err(key, format!("must be a log level name or None, not {d}"));
                default
            }
        }
    }

    fn error_responses(&mut self, key: &str) -> Vec<(u16, String)> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Object(o)) => {
                let mut out = Vec::new();
                for (k, v) in o {
                    let status = k
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|s| (100..=599).contains(s));
                    let Some(status) = status else {
                        self.err(
                            &format!("{key}[{k}]"),
                            "the key must be an HTTP status code from 100 to 599",
                        );
                        continue;
                    };
                    match v {
                        Value::String(body) => out.push((status, body.clone())),
                        other => {
                            let d = describe(other);
                            self.err(
                                &format!("{key}[{k}]"),
                                format!("the body must be a string, not {d}"),
                            );
                        }
                    }
                }
                out
            }
            Some(v) => {
                let d = describe(v);
                self.err(
                    key,
                    format!("must be a dict of status code to body text, not {d}"),
                );
                Vec::new()
            }
        }
    }
}

fn is_off(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < f64::EPSILON,
        _ => false,
    }
}

/// The closest known name to a misspelt one, if it is close enough to be a typo.
#[must_use]
pub fn did_you_mean<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    let best = known
        .iter()
        .map(|k| (levenshtein(&lower, k), *k))
        .min_by_key(|(d, _)| *d)?;
    let limit = (name.chars().count() / 3).max(2);
    (best.0 <= limit).then_some(best.1)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<(String, String)> {
        match Config::from_json(json) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_json("{}").expect("defaults are valid");
        assert!(c.whitelist.is_none());
        assert_eq!(c.exclude_paths.len(), 6);
        assert_eq!(c.proxies.depth, 1);
        assert!(c.cors.is_none());
        assert_eq!(c.logging.suspicious_level, Some(Level::Warning));
        let all: Value = serde_json::from_str(&defaults_json()).expect("json");
        assert_eq!(all.as_object().map(Map::len), Some(FIELDS.len()));
        assert!(
            Config::from_json(&defaults_json()).is_ok(),
            "the defaults, passed explicitly, validate"
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errs = errors(
            r#"{"blacklist": ["10.0.0.1", "10.0.0.300"], "trusted_proxy_depth": 0,
                "trusted_proxies": ["0.0.0.0/0"], "rate_limt": 5, "passive_mode": "yes",
                "log_request_level": "LOUD", "custom_request_check": 3}"#,
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rate_limt",
                "trusted_proxies[0]",
                "trusted_proxy_depth",
                "blacklist[1]",
                "passive_mode",
                "custom_request_check",
                "log_request_level"
            ]
        );
        assert!(
            errs[0].1.contains("did you mean 'rate_limit'?"),
            "{}",
            errs[0].1
        );
    }

    #[test]
    fn later_fields_accept_only_off_or_default() {
        assert!(
            errors(r#"{"rate_limit": null, "enable_redis": false, "enable_agent": false}"#)
                .is_empty()
        );
        assert!(errors(r#"{"rate_limit_window": 60, "auto_ban_threshold": 10, "detection_compiler_timeout": 2}"#)
            .is_empty());
        let errs = errors(
            r#"{"enable_penetration_detection": true, "enable_redis": true, "enable_agent": true}"#,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs
            .iter()
            .any(|(f, m)| f == "enable_agent" && m.contains("not supported")));
    }

    #[test]
    fn detection_fields_are_validated_together() {
        let errs = errors(
            r#"{"detection_max_content_length": 5, "detection_semantic_threshold": 2,
                "detection_action": "drop", "detection_paranoia_level": 9,
                "detection_exclude_rules": ["sqlx", 1110], "detection_exclude_paths": ["admin"],
                "detection_exclusions": [{"rules": ["xss"], "bogus": 1}, {}],
                "detection_custom_patterns": ["(", {"pattern": "a*"}, {"category": "nope"}]}"#,
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "detection_max_content_length",
            "detection_semantic_threshold",
            "detection_action",
            "detection_paranoia_level",
            "detection_exclude_rules[0]",
            "detection_exclude_paths[0]",
            "detection_exclusions[0].bogus",
            "detection_exclusions[1].path",
            "detection_custom_patterns[0].pattern",
            "detection_custom_patterns[1].pattern",
            "detection_custom_patterns[2].pattern",
            "detection_custom_patterns[2].category",
        ] {
            assert!(fields.contains(&want), "{want} missing from {fields:?}");
        }
        let ok = Config::from_json(
            r#"{"detection_custom_patterns": ["acme", {"pattern": "zz+top", "category": "sqli", "score": 3}],
                "detection_exclusions": [{"path": "/cms", "rules": ["xss", 1210], "params": ["body"]}]}"#,
        )
        .expect("valid");
        let d = ok.detection.detector.expect("on by default");
        assert_eq!(d.custom_rules().len(), 2);
        let errs = errors(r#"{"detection_custom_patterns": ["(", {"pattern": "a*"}]}"#);
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "detection_custom_patterns[0].pattern",
                "detection_custom_patterns[1].pattern"
            ]
        );
    }

    fn storage(json: &str) -> Storage {
        Config::from_json(json).expect("valid").storage
    }

    #[test]
    fn storage_comes_from_the_uri_or_the_seed_redis_fields() {
        assert_eq!(storage("{}"), Storage::Memory);
        assert_eq!(storage(r#"{"storage_uri": "memory://"}"#), Storage::Memory);
        let Storage::Shm(o) = storage(r#"{"storage_uri": "shm:///dev/shm/app?slots=4096"}"#) else {
            panic!("shm expected")
        };
        assert_eq!((o.path.to_str(), o.slots), (Some("/dev/shm/app"), 4096));
        let redis = |url: &str, prefix: &str, fail_closed: bool| {
            Storage::Redis(RedisOptions {
                url: url.to_owned(),
                prefix: prefix.to_owned(),
                fail_closed,
            })
        };
        assert_eq!(
            storage(r#"{"enable_redis": true}"#),
            redis("redis://localhost:6379", "rampart:", false)
        );
        assert_eq!(
            storage(
                r#"{"enable_redis": true, "redis_url": "redis://cache:6380/2", "redis_prefix": "app:",
                    "storage_outage": "block"}"#
            ),
            redis("redis://cache:6380/2", "app:", true)
        );
        // A URL without enable_redis is ignored, as in the reference.
        assert_eq!(
            storage(r#"{"redis_url": "redis://cache"}"#),
            Storage::Memory
        );
        assert_eq!(
            storage(r#"{"storage_uri": "VALKEY://v:6379"}"#),
            redis("valkey://v:6379", "rampart:", false)
        );
        let errs = errors(
            r#"{"storage_uri": "shm://relative", "storage_outage": "later", "redis_prefix": ""}"#,
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["redis_prefix", "storage_outage", "storage_uri"],
            "{errs:?}"
        );
        for bad in [
            "ftp://x",
            "redis+sentinel://",
            "shm:///x?slots=1",
            "shm:///x?size=9",
            "memory://x",
        ] {
            let errs = errors(&format!(r#"{{"storage_uri": "{bad}"}}"#));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].0, "storage_uri");
        }
    }

    #[test]
    fn country_and_cloud_fields_are_validated_with_the_rest() {
        let errs = errors(
            r#"{"rate_limit_window": -5, "block_cloud_providers": ["AWS", "DigitalOcean", "aws"],
                "blocked_countries": ["USA"], "enable_redis": "yes", "cloud_ip_refresh_interval": 5,
                "geo_ip_handler": {"$object": "MaxMindDB"},
                "cloud_ranges_files": {"AWS": "ip-ranges.json", "Oracle": "x.json", "GCP": 3},
                "cloud_ranges_urls": {"Azure": "ftp://example.com/tags.json"}}"#,
        );
        let mut fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "block_cloud_providers[1]",
                "block_cloud_providers[2]",
                "blocked_countries[0]",
                "cloud_ip_refresh_interval",
                "cloud_ranges_files.GCP",
                "cloud_ranges_files.Oracle",
                "cloud_ranges_urls.Azure",
                "enable_redis",
                "rate_limit_window",
            ],
            "{errs:?}"
        );
        let msg = |field: &str| {
            errs.iter()
                .find(|(f, _)| f == field)
                .map(|(_, m)| m.clone())
                .unwrap_or_default()
        };
        assert!(msg("block_cloud_providers[1]").contains("unknown cloud provider 'DigitalOcean'"));
        assert!(msg("block_cloud_providers[2]").contains("did you mean 'AWS'"));
    }

    #[test]
    fn country_rules_need_a_source() {
        let errs = errors(r#"{"blocked_countries": ["CN"]}"#);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "blocked_countries");
        assert!(errs[0].1.contains("geo_ip_handler"), "{errs:?}");
        let errs = errors(r#"{"whitelist_countries": ["US"]}"#);
        assert_eq!(errs[0].0, "whitelist_countries");
        assert!(errors(r#"{"blocked_countries": ["cn"], "ipinfo_token": "t"}"#).is_empty());
        let config = Config::from_json(
            r#"{"blocked_countries": ["cn", "CN"], "whitelist_countries": ["us"],
                "geo_ip_handler": {"$object": "MaxMindDB"}}"#,
        )
        .expect("valid");
        let codes: Vec<String> = config.geo.blocked.iter().map(ToString::to_string).collect();
        assert_eq!(codes, ["CN"], "upper-cased, once");
        assert_eq!(config.geo.allowed.len(), 1);
        let errs = errors(r#"{"geo_ip_handler": "ipinfo"}"#);
        assert_eq!(errs[0].0, "geo_ip_handler");
    }

    #[test]
    fn typos_get_suggestions() {
        let known = ["blacklist", "whitelist", "rate_limit"];
        assert_eq!(did_you_mean("blacklst", &known), Some("blacklist"));
        assert_eq!(did_you_mean("BLACKLIST", &known), Some("blacklist"));
        assert_eq!(did_you_mean("zzzzzzzz", &known), None);
    }
}
