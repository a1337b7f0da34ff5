//! Security headers and the Content-Security-Policy builder.
//!
//! Everything is validated and rendered once, at start-up: the per-request work is appending a
//! prebuilt list, plus — only with `csp_nonce_in` — joining a fresh nonce into the CSP.

use serde_json::{Map, Value};

use super::{bad_header_name, bad_header_value};
use crate::config::{describe, Reader};

/// The rendered header policy.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// Headers identical on every response (CSP included when it carries no nonce).
    pub static_headers: Vec<(String, String)>,
    /// With a per-request nonce: the CSP header name and the policy split where nonces go.
    pub nonce_csp: Option<NonceCsp>,
}

/// A CSP whose directives get a fresh `'nonce-…'` each request.
#[derive(Debug, Clone)]
pub struct NonceCsp {
    pub header: &'static str,
    /// `parts.len() - 1` insertion points; the policy is `parts.join(nonce_source)`.
    pub parts: Vec<String>,
}

impl NonceCsp {
    #[must_use]
    pub fn render(&self, nonce: &str) -> String {
        let source = format!(" 'nonce-{nonce}'");
        self.parts.join(&source)
    }

    /// The policy with the nonce slots left empty (for responses no template renders into).
    #[must_use]
    pub fn render_without_nonce(&self) -> String {
        self.parts.concat()
    }
}

const KEYS: &[&str] = &[
    "enabled",
    "hsts",
    "csp",
    "csp_report_only",
    "csp_nonce_in",
    "frame_options",
    "content_type_options",
    "xss_protection",
    "referrer_policy",
    "permissions_policy",
    "cross_origin_opener_policy",
    "cross_origin_resource_policy",
    "cross_origin_embedder_policy",
    "permitted_cross_domain_policies",
    "custom",
];

/// Simple string-valued keys: (key, header, default).
const SIMPLE: &[(&str, &str, Option<&str>)] = &[
    (
        "content_type_options",
        "X-Content-Type-Options",
        Some("nosniff"),
    ),
    ("xss_protection", "X-XSS-Protection", Some("0")),
    (
        "referrer_policy",
        "Referrer-Policy",
        Some("strict-origin-when-cross-origin"),
    ),
    (
        "permissions_policy",
        "Permissions-Policy",
        Some("geolocation=(), microphone=(), camera=()"),
    ),
    (
        "cross_origin_opener_policy",
        "Cross-Origin-Opener-Policy",
        Some("same-origin"),
    ),
    (
        "cross_origin_resource_policy",
        "Cross-Origin-Resource-Policy",
        Some("same-origin"),
    ),
    (
        "cross_origin_embedder_policy",
        "Cross-Origin-Embedder-Policy",
        None,
    ),
    (
        "permitted_cross_domain_policies",
        "X-Permitted-Cross-Domain-Policies",
        Some("none"),
    ),
];

const ONE_YEAR: u64 = 31_536_000;

impl HeaderPolicy {
    pub const DEFAULT_JSON: &'static str = r#"{"enabled": true,
        "hsts": {"max_age": 31536000, "include_subdomains": true, "preload": false},
        "csp": null, "csp_report_only": false, "csp_nonce_in": [],
        "frame_options": "SAMEORIGIN", "content_type_options": "nosniff", "xss_protection": "0",
        "referrer_policy": "strict-origin-when-cross-origin",
        "permissions_policy": "geolocation=(), microphone=(), camera=()",
        "cross_origin_opener_policy": "same-origin", "cross_origin_resource_policy": "same-origin",
        "cross_origin_embedder_policy": null, "permitted_cross_domain_policies": "none",
        "custom": null}"#;

    pub(crate) fn parse(r: &mut Reader<'_>, key: &str) -> HeaderPolicy {
        let empty = Map::new();
        let map = match r.get(key) {
            None if r.has(key) => return HeaderPolicy::default(),
            None => &empty,
            Some(Value::Bool(false)) => return HeaderPolicy::default(),
            Some(Value::Bool(true)) => &empty,
            Some(Value::Object(m)) => m,
            Some(v) => {
                let d = describe(v);
                r.err(key, format!("must be a dict, True, False or None, not {d}"));
                return HeaderPolicy::default();
            }
        };
        let mut n = r.nested(map, key);
        let policy = Self::parse_map(&mut n);
        r.absorb(n);
        policy
    }

    fn parse_map(r: &mut Reader<'_>) -> HeaderPolicy {
        r.reject_unknown(KEYS);
        let mut out = HeaderPolicy::default();
        let enabled = r.bool("enabled", true);
        let hsts = hsts(r);
        let frame = match (r.has("frame_options"), r.opt_string("frame_options")) {
            (false, _) => Some("SAMEORIGIN".to_owned()),
            (true, None) => None,
            (true, Some(v)) => {
                let up = v.to_ascii_uppercase();
                if up == "DENY" || up == "SAMEORIGIN" {
                    Some(up)
                } else {
                    r.err(
                        "frame_options",
                        format!("must be 'DENY', 'SAMEORIGIN' or None, not '{v}'"),
                    );
                    None
                }
            }
        };
        let csp = csp(r);
        let report_only = r.bool("csp_report_only", false);
        let nonce_in = r.string_list("csp_nonce_in", &[]);

        let headers = &mut out.static_headers;
        if let Some(v) = hsts {
            headers.push(("Strict-Transport-Security".into(), v));
        }
        if let Some(v) = frame {
            headers.push(("X-Frame-Options".into(), v));
        }
        for (k, header, default) in SIMPLE {
            let value = if r.has(k) {
                r.opt_string(k)
            } else {
                default.map(str::to_owned)
            };
            if let Some(v) = value {
                if let Some(why) = bad_header_value(&v) {
                    r.err(k, why);
                } else if !v.is_empty() {
                    headers.push(((*header).to_owned(), v));
                }
            }
        }
        let csp_header = if report_only {
            "Content-Security-Policy-Report-Only"
        } else {
            "Content-Security-Policy"
        };
        if let Some(directives) = csp {
            for (i, d) in nonce_in.iter().enumerate() {
                if !directives
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case(d))
                {
                    r.err(
                        &format!("csp_nonce_in[{i}]"),
                        format!("'{d}' is not a directive of the csp; add it to csp first"),
                    );
                }
            }
            if nonce_in.is_empty() {
                headers.push((csp_header.to_owned(), render_csp(&directives, &[]).join("")));
            } else {
                out.nonce_csp = Some(NonceCsp {
                    header: csp_header,
                    parts: render_csp(&directives, &nonce_in),
                });
            }
        } else if !nonce_in.is_empty() {
            r.err("csp_nonce_in", "needs a csp to add the nonce to");
        }
        custom(r, headers);
        if !enabled {
            return HeaderPolicy::default();
        }
        out
    }
}

fn hsts(r: &mut Reader<'_>) -> Option<String> {
    let empty = Map::new();
    let map = match r.get("hsts") {
        None if r.has("hsts") => return None,
        None => &empty,
        Some(Value::Bool(false)) => return None,
        Some(Value::Object(m)) => m,
        Some(v) => {
            let d = describe(v);
            r.err("hsts", format!("must be a dict or None, not {d}"));
            return None;
        }
    };
    let mut n = r.nested(map, "hsts");
    n.reject_unknown(&["max_age", "include_subdomains", "preload"]);
    let max_age = n.uint("max_age", ONE_YEAR, 0, 10 * ONE_YEAR);
    let subdomains = n.bool("include_subdomains", true);
    let preload = n.bool("preload", false);
    if preload && (max_age < ONE_YEAR || !subdomains) {
        n.err(
            "preload",
            "HSTS preload needs include_subdomains=True and max_age of at least 31536000 (one year)",
        );
    }
    r.absorb(n);
    let mut v = format!("max-age={max_age}");
    if subdomains {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    Some(v)
}

type Directives = Vec<(String, Vec<String>)>;

fn csp(r: &mut Reader<'_>) -> Option<Directives> {
    let mut out: Directives = Vec::new();
    match r.get("csp")? {
        Value::String(s) => {
            if let Some(why) = bad_header_value(s) {
                r.err("csp", why);
                return None;
            }
            for part in s.split(';') {
                let mut words = part.split_whitespace();
                if let Some(name) = words.next() {
                    out.push((
                        name.to_ascii_lowercase(),
                        words.map(str::to_owned).collect(),
                    ));
                }
            }
        }
        Value::Object(m) => {
            for (name, sources) in m {
                let path = format!("csp.{name}");
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    r.err(&path, "is not a CSP directive name");
                    continue;
                }
                let list: Vec<String> = match sources {
                    Value::Null => Vec::new(),
                    Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
                    Value::Array(items) => {
                        let mut l = Vec::new();
                        for (i, it) in items.iter().enumerate() {
                            match it {
                                Value::String(s) => l.push(s.clone()),
                                other => {
                                    let d = describe(other);
                                    r.err(
                                        &format!("{path}[{i}]"),
                                        format!("must be a string, not {d}"),
                                    );
                                }
                            }
                        }
                        l
                    }
                    other => {
                        let d = describe(other);
                        r.err(&path, format!("must be a list of sources, not {d}"));
                        continue;
                    }
                };
                for (i, s) in list.iter().enumerate() {
                    if s.contains(';') || s.contains(',') || s.chars().any(char::is_whitespace) {
                        r.err(
                            &format!("{path}[{i}]"),
                            format!("'{s}' is not a single CSP source"),
                        );
                    } else if let Some(why) = bad_header_value(s) {
                        r.err(&format!("{path}[{i}]"), why);
                    }
                }
                out.push((name.to_ascii_lowercase(), list));
            }
        }
        other => {
            let d = describe(other);
            r.err(
                "csp",
                format!("must be a dict of directive to sources, a string or None, not {d}"),
            );
            return None;
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// Renders directives as `name src src; name src`, split after each directive listed in
/// `nonce_in` (so a nonce source can be inserted there).
fn render_csp(directives: &Directives, nonce_in: &[String]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for (i, (name, sources)) in directives.iter().enumerate() {
        if i > 0 {
            cur.push_str("; ");
        }
        cur.push_str(name);
        for s in sources {
            cur.push(' ');
            cur.push_str(s);
        }
        if nonce_in.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            parts.push(std::mem::take(&mut cur));
        }
    }
    parts.push(cur);
    parts
}

fn custom(r: &mut Reader<'_>, headers: &mut Vec<(String, String)>) {
    let Some(v) = r.get("custom") else { return };
    let Value::Object(m) = v else {
        let d = describe(v);
        r.err(
            "custom",
            format!("must be a dict of header name to value, not {d}"),
        );
        return;
    };
    for (name, value) in m {
        let path = format!("custom.{name}");
        if let Some(why) = bad_header_name(name) {
            r.err(&path, why);
            continue;
        }
        match value {
            Value::Null => headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name)),
            Value::String(s) => {
                if let Some(why) = bad_header_value(s) {
                    r.err(&path, why);
                } else {
                    headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name));
                    headers.push((name.clone(), s.clone()));
                }
            }
            other => {
                let d = describe(other);
                r.err(&path, format!("must be a string, not {d}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn headers(json: &str) -> Vec<(String, String)> {
        Config::from_json(json)
            .expect("valid")
            .headers
            .static_headers
    }

    fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn defaults() {
        let h = headers("{}");
        assert_eq!(
            get(&h, "Strict-Transport-Security"),
            Some("max-age=31536000; includeSubDomains")
        );
        assert_eq!(get(&h, "X-Frame-Options"), Some("SAMEORIGIN"));
        assert_eq!(get(&h, "X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(get(&h, "X-XSS-Protection"), Some("0"));
        assert_eq!(get(&h, "Cross-Origin-Embedder-Policy"), None);
        assert_eq!(get(&h, "Content-Security-Policy"), None);
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn csp_builder_and_overrides() {
        let h = headers(
            r#"{"security_headers": {"csp": {"default-src": ["'self'"], "script-src": ["'self'", "https://cdn.example.com"]},
                "frame_options": "deny", "xss_protection": null, "hsts": {"max_age": 60, "include_subdomains": false},
                "custom": {"X-Custom": "v"}}}"#,
        );
        assert_eq!(
            get(&h, "Content-Security-Policy"),
            Some("default-src 'self'; script-src 'self' https://cdn.example.com")
        );
        assert_eq!(get(&h, "X-Frame-Options"), Some("DENY"));
        assert_eq!(get(&h, "X-XSS-Protection"), None);
        assert_eq!(get(&h, "Strict-Transport-Security"), Some("max-age=60"));
        assert_eq!(get(&h, "X-Custom"), Some("v"));
        assert!(headers(r#"{"security_headers": {"enabled": false}}"#).is_empty());
        assert!(headers(r#"{"security_headers": null}"#).is_empty());
    }

    #[test]
    fn nonce_csp() {
        let c = Config::from_json(
            r#"{"security_headers": {"csp": "default-src 'self'; script-src 'self'; img-src *", "csp_nonce_in": ["script-src"]}}"#,
        )
        .expect("valid");
        let n = c.headers.nonce_csp.expect("nonce csp");
        assert_eq!(
            n.render("abc"),
            "default-src 'self'; script-src 'self' 'nonce-abc'; img-src *"
        );
        assert!(get(&c.headers.static_headers, "Content-Security-Policy").is_none());
    }

    #[test]
    fn injection_and_bad_values_are_errors() {
        let e = Config::from_json(
            r#"{"security_headers": {"custom": {"X-Evil": "a\r\nSet-Cookie: x", "Bad Name": "v"},
                "frame_options": "ALLOWALL", "hsts": {"max_age": 10, "preload": true},
                "csp": {"script-src": ["'self'; evil"]}, "csp_nonce_in": ["style-src"], "xss": "1"}}"#,
        )
        .expect_err("invalid");
        let fields: Vec<&str> = e.0.iter().map(|x| x.field.as_str()).collect();
        for want in [
            "security_headers.custom.X-Evil",
            "security_headers.custom.Bad Name",
            "security_headers.frame_options",
            "security_headers.hsts.preload",
            "security_headers.csp.script-src[0]",
            "security_headers.csp_nonce_in[0]",
            "security_headers.xss",
        ] {
            assert!(fields.contains(&want), "{want} missing from {fields:?}");
        }
        let typo =
            Config::from_json(r#"{"security_headers": {"xss_protecton": "0"}}"#).expect_err("typo");
        assert!(
            typo.0[0].message.contains("did you mean 'xss_protection'?"),
            "{typo}"
        );
    }
}
