//! Route-level request checks: content types, referrers, credentials and honeypot fields.
//!
//! Each is a plain function of header values and the buffered body, so it is tested here without
//! a web framework. The engine turns their answers into responses ([`crate::engine`]).

use serde_json::Value;

use crate::detect::extract::{body_kind, form_decode, BodyKind};
use crate::detect::multipart::{boundary, each_part};
use crate::request::media_type;

/// The media types a route accepts: `application/json`, `text/*`, `*/*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentTypes(Vec<String>);

impl ContentTypes {
    /// `None` (with the bad entries) when one is not `type/subtype`.
    ///
    /// # Errors
    /// The index and text of each entry that is not a media type.
    pub fn new(types: &[String]) -> Result<ContentTypes, Vec<(usize, String)>> {
        each_or_bad(types, |t| {
            let m = media_type(t);
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&c))
            };
            let ok = m
                .split_once('/')
                .is_some_and(|(a, b)| token(a) && token(b) && (a != "*" || b == "*"));
            ok.then_some(m)
        })
        .map(ContentTypes)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a body of this `Content-Type` is accepted.
    #[must_use]
    pub fn allows(&self, content_type: &str) -> bool {
        let m = media_type(content_type);
        let (kind, _) = m.split_once('/').unwrap_or((m.as_str(), ""));
        self.0
            .iter()
            .any(|allowed| match allowed.strip_suffix("/*") {
                Some("*") => true,
                Some(prefix) => prefix == kind,
                None => *allowed == m,
            })
    }
}

/// Each entry through `f`; or every entry `f` refuses, with its index.
fn each_or_bad(
    items: &[String],
    f: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Vec<(usize, String)>> {
    let mut out = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match f(item) {
            Some(v) => out.push(v),
            None => bad.push((i, item.clone())),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

/// The domains a `Referer` must come from: a domain covers itself and its subdomains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Referrers(Vec<String>);

impl Referrers {
    /// Entries are domains (`example.com`) or URLs (`https://example.com/`), either case.
    ///
    /// # Errors
    /// The index and text of each entry without a usable host.
    pub fn new(domains: &[String]) -> Result<Referrers, Vec<(usize, String)>> {
        each_or_bad(domains, |d| {
            if d.contains("://") {
                url_host(d)
            } else {
                host_of(d.trim())
            }
        })
        .map(Referrers)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request with this `Referer` header value may pass.
    #[must_use]
    pub fn allows(&self, referer: &str) -> bool {
        let Some(host) = url_host(referer) else {
            return false;
        };
        self.0.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// The host of an absolute `http(s)://` URL, lower-cased, without user info, port or trailing
/// dot; `None` when there is none.
#[must_use]
pub fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_of(host_port)
}

/// `host[:port]` (or `[v6]:port`) to a lower-case host; `None` when empty or malformed.
fn host_of(host_port: &str) -> Option<String> {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    ok.then(|| host.to_ascii_lowercase())
}

/// What a credential check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialCheck {
    /// Present and (when a list is configured) one of the accepted values.
    Accepted,
    /// Absent or empty, or of another scheme.
    Missing,
    /// Present but not an accepted value.
    Rejected,
}

/// `require_auth(type=…)`: an `Authorization` header of a scheme, optionally with one of a list of
/// accepted credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRule {
    /// Lower-case scheme (`bearer`, `basic`, …); `None` accepts any non-empty header.
    pub scheme: Option<String>,
    /// Accepted credentials (after the scheme); empty: any.
    pub accepted: Vec<String>,
}

impl AuthRule {
    /// Checks an `Authorization` header value.
    #[must_use]
    pub fn check(&self, header: Option<&str>) -> CredentialCheck {
        let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else {
            return CredentialCheck::Missing;
        };
        let credential = match &self.scheme {
            None => value,
            Some(scheme) => match value.split_once(' ') {
                Some((s, rest)) if s.eq_ignore_ascii_case(scheme) && !rest.trim().is_empty() => {
                    rest.trim()
                }
                _ => return CredentialCheck::Missing,
            },
        };
        accepted(&self.accepted, credential)
    }

    /// The scheme named in `WWW-Authenticate`, as written conventionally (`Bearer`).
    #[must_use]
    pub fn challenge(&self) -> Option<String> {
        let s = self.scheme.as_deref()?;
        let mut c = s.chars();
        let first = c.next()?.to_ascii_uppercase();
        Some(format!("{first}{}", c.as_str()))
    }
}

/// Whether `value` is one of `accepted` (any value when the list is empty). Every entry is
/// compared in full, in time that depends only on the lengths, so the comparison does not tell
/// an attacker how much of a key was right.
#[must_use]
pub fn accepted(accepted: &[String], value: &str) -> CredentialCheck {
    if value.is_empty() {
        return CredentialCheck::Missing;
    }
    if accepted.is_empty() {
        return CredentialCheck::Accepted;
    }
    let mut found = false;
    for a in accepted {
        found |= constant_time_eq(a.as_bytes(), value.as_bytes());
    }
    if found {
        CredentialCheck::Accepted
    } else {
        CredentialCheck::Rejected
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The first of `traps` that a form or JSON body fills in (a non-empty value), if any: a field
/// people never see, so only a bot fills it. Bodies of other media types have no fields.
#[must_use]
pub fn honeypot_field<'t>(traps: &'t [String], content_type: &str, body: &[u8]) -> Option<&'t str> {
    let is_trap = |name: &str| traps.iter().find(|t| t.as_str() == name);
    match body_kind(content_type)? {
        BodyKind::Form => {
            let text = String::from_utf8_lossy(body);
            text.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let trap = is_trap(&form_decode(name))?;
                (!form_decode(value).trim().is_empty()).then_some(trap.as_str())
            })
        }
        BodyKind::Multipart => {
            let b = boundary(content_type).value?;
            let mut found = None;
            // A body that can be read two ways is refused by detection; here, the parts as
            // Werkzeug reads them.
            let _ambiguous = each_part(body, &b, |part| {
                if let Some(trap) = is_trap(part.name) {
                    let filled = part.filename.is_some_and(|f| !f.is_empty())
                        || !part.text().trim().is_empty();
                    if filled {
                        found = Some(trap.as_str());
                        return false;
                    }
                }
                true
            });
            found
        }
        BodyKind::Json => {
            // Most bodies do not name a trap at all (a JSON client never saw the form): that
            // is one substring search per trap, instead of parsing the document. A key written
            // with `\u` escapes may name one without showing it: those are parsed.
            let named = traps
                .iter()
                .any(|t| memchr::memmem::find(body, t.as_bytes()).is_some())
                || memchr::memmem::find(body, b"\\u").is_some();
            if !named {
                return None;
            }
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
                return None;
            };
            map.iter().find_map(|(k, v)| {
                let trap = is_trap(k)?;
                let filled = match v {
                    Value::Null | Value::Bool(false) => false,
                    Value::String(s) => !s.trim().is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                };
                filled.then_some(trap.as_str())
            })
        }
        BodyKind::Text | BodyKind::Sniff | BodyKind::Binary => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn content_types_match_exactly_or_by_wildcard() {
        let t = ContentTypes::new(&strings(&["application/json", "text/*"])).expect("valid");
        assert!(t.allows("application/json"));
        assert!(t.allows("Application/JSON; charset=utf-8"));
        assert!(t.allows("text/plain"));
        assert!(!t.allows("application/xml"));
        assert!(!t.allows(""));
        assert!(!t.allows("application/jsonx"));
        let any = ContentTypes::new(&strings(&["*/*"])).expect("valid");
        assert!(any.allows("image/png"));
        let bad = ContentTypes::new(&strings(&["json", "*/json", "a/b c"])).expect_err("bad");
        assert_eq!(bad.len(), 3);
    }

    #[test]
    fn referrers_match_domain_and_subdomains_whatever_the_port() {
        let r = Referrers::new(&strings(&["myapp.com", "https://Partner.org/x"])).expect("ok");
        assert!(r.allows("https://myapp.com/page"));
        assert!(r.allows("https://www.myapp.com:8443/page?x=1"));
        assert!(r.allows("http://user@partner.org/"));
        assert!(!r.allows("https://evilmyapp.com/"));
        assert!(!r.allows("https://myapp.com.evil.net/"));
        assert!(!r.allows("myapp.com"));
        assert!(!r.allows("javascript://myapp.com"));
        assert!(!r.allows(""));
        assert!(Referrers::new(&strings(&["", "https:///"])).is_err());
    }

    #[test]
    fn auth_scheme_and_accepted_tokens() {
        let any = AuthRule {
            scheme: Some("bearer".into()),
            accepted: vec![],
        };
        assert_eq!(any.check(Some("Bearer abc")), CredentialCheck::Accepted);
        assert_eq!(any.check(Some("bearer  abc ")), CredentialCheck::Accepted);
        assert_eq!(any.check(Some("Bearer ")), CredentialCheck::Missing);
        assert_eq!(any.check(Some("Basic abc")), CredentialCheck::Missing);
        assert_eq!(any.check(None), CredentialCheck::Missing);
        assert_eq!(any.challenge().as_deref(), Some("Bearer"));
        let listed = AuthRule {
            scheme: Some("bearer".into()),
            accepted: strings(&["s3cret"]),
        };
        assert_eq!(
            listed.check(Some("Bearer s3cret")),
            CredentialCheck::Accepted
        );
        assert_eq!(
            listed.check(Some("Bearer s3cre")),
            CredentialCheck::Rejected
        );
        let schemeless = AuthRule {
            scheme: None,
            accepted: vec![],
        };
        assert_eq!(schemeless.check(Some("Token x")), CredentialCheck::Accepted);
    }

    #[test]
    fn honeypot_fields_in_each_body_kind() {
        let traps = strings(&["website", "fax"]);
        let form = "application/x-www-form-urlencoded";
        assert_eq!(
            honeypot_field(&traps, form, b"name=a&website=x"),
            Some("website")
        );
        assert_eq!(honeypot_field(&traps, form, b"name=a&website=&fax=+"), None);
        assert_eq!(
            honeypot_field(&traps, form, b"web%73ite=1"),
            Some("website")
        );
        let json = "application/json";
        assert_eq!(
            honeypot_field(&traps, json, br#"{"fax": "1"}"#),
            Some("fax")
        );
        assert_eq!(
            honeypot_field(&traps, json, br#"{"fax": "", "website": null}"#),
            None
        );
        assert_eq!(
            honeypot_field(&traps, json, br#"{"a": {"fax": "1"}}"#),
            None
        );
        assert_eq!(honeypot_field(&traps, json, b"not json"), None);
        assert_eq!(
            honeypot_field(&traps, json, br#"{"\u0066ax": "1"}"#),
            Some("fax")
        );
        let mp = "multipart/form-data; boundary=XX";
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"fax\"\r\n\r\n123\r\n--XX--\r\n";
        assert_eq!(honeypot_field(&traps, mp, body), Some("fax"));
        let empty = b"--XX\r\nContent-Disposition: form-data; name=\"fax\"\r\n\r\n\r\n--XX--\r\n";
        assert_eq!(honeypot_field(&traps, mp, empty), None);
        assert_eq!(honeypot_field(&traps, "image/png", b"website=1"), None);
        // Parts as Werkzeug reads them: LF line breaks, a quoted `;` in another field's name.
        let lf = b"--XX\nContent-Disposition: form-data; name=\"fax\"\n\n123\n--XX--\n";
        assert_eq!(honeypot_field(&traps, mp, lf), Some("fax"));
        let quoted =
            b"--XX\r\nContent-Disposition: form-data; name=\"fax;filename=x\"\r\n\r\n1\r\n--XX--";
        assert_eq!(honeypot_field(&traps, mp, quoted), None);
    }
}
