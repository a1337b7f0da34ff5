//! Cross-Origin Resource Sharing.
//!
//! Safe by construction: an arbitrary origin is never reflected together with
//! `Access-Control-Allow-Credentials: true`. With `"*"` and credentials both configured, the
//! wildcard wins and credentials are dropped, with a warning at start-up.

use super::{bad_header_name, bad_header_value};
use crate::config::Reader;
use crate::decision::Headers;

/// The validated CORS policy.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    any_origin: bool,
    exact: Vec<String>,
    /// `https://*.example.com` as (`https://`, `.example.com`).
    wildcard: Vec<(String, String)>,
    methods: String,
    method_list: Vec<String>,
    any_header: bool,
    headers: String,
    credentials: bool,
    expose: Option<String>,
    max_age: String,
    /// Precomputed answers for actual requests (see [`CorsAnswer`]).
    sets: Vec<Headers>,
}

/// The CORS headers of an actual request: most answers are one of a few fixed lists, computed at
/// start-up, so adapters can cache their own representation of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAnswer {
    /// The precomputed list [`CorsPolicy::sets`]`[i]`.
    Set(usize),
    /// A list computed for this origin (subdomain-pattern matches).
    Computed(Headers),
}

impl CorsPolicy {
    /// The precomputed set answering a refused origin: only `Vary: Origin`.
    pub const REFUSED: usize = 0;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Option<CorsPolicy> {
        let enabled = r.bool("enable_cors", false);
        let origins = r.string_list("cors_allow_origins", &["*"]);
        let methods = r.string_list(
            "cors_allow_methods",
            &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        );
        let headers = r.string_list("cors_allow_headers", &["*"]);
        let credentials = r.bool("cors_allow_credentials", false);
        let expose = r.string_list("cors_expose_headers", &[]);
        let max_age = r.uint("cors_max_age", 600, 0, 31_536_000);

        let mut any_origin = false;
        let mut exact = Vec::new();
        let mut wildcard = Vec::new();
        for (i, o) in origins.iter().enumerate() {
            let field = format!("cors_allow_origins[{i}]");
            if o == "*" {
                any_origin = true;
            } else if let Some(why) = bad_origin(o) {
                r.err(&field, why);
            } else if let Some((scheme, rest)) = o.split_once("://*.") {
                wildcard.push((
                    format!("{}://", scheme.to_ascii_lowercase()),
                    format!(".{}", rest.to_ascii_lowercase()),
                ));
            } else {
                exact.push(o.clone());
            }
        }
        let mut method_list = Vec::new();
        for (i, m) in methods.iter().enumerate() {
            if m == "*" {
                method_list.push("*".to_owned());
            } else if bad_header_name(m).is_some() {
                r.err(
                    &format!("cors_allow_methods[{i}]"),
                    format!("'{m}' is not an HTTP method"),
                );
            } else {
                method_list.push(m.to_ascii_uppercase());
            }
        }
        let mut any_header = false;
        let mut header_list = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            if h == "*" {
                any_header = true;
            } else if let Some(why) = bad_header_name(h) {
                r.err(&format!("cors_allow_headers[{i}]"), why);
            } else {
                header_list.push(h.clone());
            }
        }
        for (i, h) in expose.iter().enumerate() {
            if h != "*" {
                if let Some(why) = bad_header_name(h) {
                    r.err(&format!("cors_expose_headers[{i}]"), why);
                }
            }
        }
        if !enabled {
            return None;
        }
        let credentials = if credentials && any_origin {
            r.warnings.push(
                "cors_allow_origins contains '*' and cors_allow_credentials is True: Rampart answers '*' \
                 without credentials (an arbitrary origin is never allowed with credentials); list your \
                 origins to use credentials"
                    .into(),
            );
            false
        } else {
            credentials
        };
        let mut policy = CorsPolicy {
            any_origin,
            exact,
            wildcard,
            methods: method_list.join(", "),
            method_list,
            any_header,
            headers: header_list.join(", "),
            credentials,
            expose: (!expose.is_empty()).then(|| expose.join(", ")),
            max_age: max_age.to_string(),
            sets: Vec::new(),
        };
        // Set REFUSED (0): only `Vary`; then one set per fixed answer.
        let mut sets = vec![vec![("Vary".to_owned(), "Origin".to_owned())]];
        if policy.any_origin {
            let mut h = Vec::new();
            policy.actual(ANY, &mut h);
            sets.push(h);
        } else {
            for origin in &policy.exact {
                let mut h = Vec::new();
                policy.actual(origin, &mut h);
                sets.push(h);
            }
        }
        policy.sets = sets;
        Some(policy)
    }

    /// Whether `origin` may read responses.
    #[must_use]
    pub fn allows(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        if self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let lower = origin.to_ascii_lowercase();
        self.wildcard.iter().any(|(scheme, suffix)| {
            lower
                .strip_prefix(scheme.as_str())
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                })
        })
    }

    /// The precomputed header lists [`CorsAnswer::Set`] points into.
    #[must_use]
    pub fn sets(&self) -> &[Headers] {
        &self.sets
    }

    /// The answer to an actual (non-preflight) request carrying `Origin`, preferring the
    /// precomputed lists.
    #[must_use]
    pub fn answer(&self, origin: &str) -> CorsAnswer {
        if self.any_origin {
            if self.credentials {
                let mut h = Vec::new();
                self.actual(origin, &mut h);
                return CorsAnswer::Computed(h);
            }
            return CorsAnswer::Set(1);
        }
        if let Some(i) = self
            .exact
            .iter()
            .position(|o| o.eq_ignore_ascii_case(origin))
        {
            return CorsAnswer::Set(i + 1);
        }
        if self.allows(origin) {
            let mut h = Vec::new();
            self.actual(origin, &mut h);
            return CorsAnswer::Computed(h);
        }
        CorsAnswer::Set(Self::REFUSED)
    }

    /// Headers for an actual (non-preflight) request carrying `Origin`.
    pub fn actual(&self, origin: &str, out: &mut Vec<(String, String)>) {
        if !self.allows(origin) {
            if !self.any_origin {
                out.push(("Vary".into(), "Origin".into()));
            }
            return;
        }
        self.allow_origin(origin, out);
        if let Some(expose) = &self.expose {
            out.push(("Access-Control-Expose-Headers".into(), expose.clone()));
        }
    }

    fn allow_origin(&self, origin: &str, out: &mut Vec<(String, String)>) {
        if self.any_origin && !self.credentials {
            out.push(("Access-Control-Allow-Origin".into(), "*".into()));
        } else {
            out.push(("Access-Control-Allow-Origin".into(), origin.to_owned()));
            out.push(("Vary".into(), "Origin".into()));
        }
        if self.credentials {
            out.push(("Access-Control-Allow-Credentials".into(), "true".into()));
        }
    }

    /// Headers answering a preflight, or `None` when the origin or method is not allowed.
    #[must_use]
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Option<Vec<(String, String)>> {
        if !self.allows(origin) {
            return None;
        }
        let method_ok = self
            .method_list
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method.trim()));
        if !method_ok {
            return None;
        }
        let mut out = Vec::with_capacity(7);
        self.allow_origin(origin, &mut out);
        let methods = if self.method_list.iter().any(|m| m == "*") {
            method.trim().to_ascii_uppercase()
        } else {
            self.methods.clone()
        };
        out.push(("Access-Control-Allow-Methods".into(), methods));
        let requested = request_headers.map(str::trim).filter(|h| !h.is_empty());
        if let Some(req) = requested {
            let allowed = if self.any_header {
                // Echo the request's own list, but only if it is a clean list of tokens.
                req.split(',').all(|h| bad_header_name(h.trim()).is_none())
                    && bad_header_value(req).is_none()
            } else {
                req.split(',').all(|h| {
                    self.headers
                        .split(", ")
                        .any(|a| a.eq_ignore_ascii_case(h.trim()))
                })
            };
            if !allowed {
                return None;
            }
            let value = if self.any_header {
                req.to_owned()
            } else {
                self.headers.clone()
            };
            out.push(("Access-Control-Allow-Headers".into(), value));
        }
        out.push(("Access-Control-Max-Age".into(), self.max_age.clone()));
        if !out.iter().any(|(n, _)| n == "Vary") {
            out.push(("Vary".into(), "Origin".into()));
        }
        Some(out)
    }
}

/// Stands for "any origin" when precomputing the wildcard answer (which never echoes it).
const ANY: &str = "*";

fn bad_origin(o: &str) -> Option<String> {
    let Some((scheme, host)) = o.split_once("://") else {
        return Some(format!(
            "'{o}' is not an origin (scheme://host[:port]) or '*'"
        ));
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if scheme_ok && host_ok {
        None
    } else {
        Some(format!(
            "'{o}' is not an origin (scheme://host[:port], no path) or '*'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn policy(json: &str) -> super::CorsPolicy {
        Config::from_json(json)
            .expect("valid")
            .cors
            .expect("cors on")
    }

    fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn origins() {
        let p = policy(
            r#"{"enable_cors": true, "cors_allow_origins": ["https://app.example.com", "https://*.example.org"]}"#,
        );
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(!p.allows("https://app.example.com.evil.net"));
        assert!(p.allows("https://a.b.example.org"));
        assert!(!p.allows("https://example.org"));
        assert!(!p.allows("https://evil.com/.example.org"));
        assert!(!p.allows("http://a.example.org"));
    }

    #[test]
    fn wildcard_never_with_credentials() {
        let c = Config::from_json(r#"{"enable_cors": true, "cors_allow_credentials": true}"#)
            .expect("valid");
        assert_eq!(c.warnings.len(), 1);
        let mut out = Vec::new();
        c.cors.expect("on").actual("https://evil.example", &mut out);
        assert_eq!(get(&out, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(get(&out, "Access-Control-Allow-Credentials"), None);
    }

    #[test]
    fn answers_use_precomputed_sets() {
        use super::CorsAnswer;
        let p = policy(
            r#"{"enable_cors": true, "cors_allow_origins": ["https://a.test", "https://*.b.test"]}"#,
        );
        assert_eq!(p.answer("https://a.test"), CorsAnswer::Set(1));
        assert_eq!(
            get(&p.sets()[1], "Access-Control-Allow-Origin"),
            Some("https://a.test")
        );
        assert_eq!(p.answer("https://evil.test"), CorsAnswer::Set(0));
        assert_eq!(p.sets()[0], vec![("Vary".to_owned(), "Origin".to_owned())]);
        let CorsAnswer::Computed(h) = p.answer("https://x.b.test") else {
            panic!("pattern matches are computed")
        };
        assert_eq!(
            get(&h, "Access-Control-Allow-Origin"),
            Some("https://x.b.test")
        );
        let any = policy(r#"{"enable_cors": true}"#);
        assert_eq!(any.answer("https://whoever.test"), CorsAnswer::Set(1));
        assert_eq!(
            get(&any.sets()[1], "Access-Control-Allow-Origin"),
            Some("*")
        );
    }

    #[test]
    fn preflight() {
        let p = policy(
            r#"{"enable_cors": true, "cors_allow_origins": ["https://a.test"], "cors_allow_methods": ["GET", "POST"],
                "cors_allow_credentials": true, "cors_max_age": 123}"#,
        );
        let h = p
            .preflight("https://a.test", "POST", Some("X-Token, Content-Type"))
            .expect("allowed");
        assert_eq!(
            get(&h, "Access-Control-Allow-Origin"),
            Some("https://a.test")
        );
        assert_eq!(get(&h, "Access-Control-Allow-Methods"), Some("GET, POST"));
        assert_eq!(
            get(&h, "Access-Control-Allow-Headers"),
            Some("X-Token, Content-Type")
        );
        assert_eq!(get(&h, "Access-Control-Max-Age"), Some("123"));
        assert_eq!(get(&h, "Access-Control-Allow-Credentials"), Some("true"));
        assert!(p.preflight("https://a.test", "DELETE", None).is_none());
        assert!(p.preflight("https://b.test", "GET", None).is_none());
        assert!(p
            .preflight("https://a.test", "GET", Some("X\r\nEvil"))
            .is_none());
    }

    #[test]
    fn bad_config() {
        let e = Config::from_json(
            r#"{"cors_allow_origins": ["example.com", "https://ok.test/path"], "cors_max_age": -1,
                "cors_allow_headers": ["Bad Header"]}"#,
        )
        .expect_err("invalid");
        assert_eq!(e.0.len(), 4, "{e}");
    }
}
