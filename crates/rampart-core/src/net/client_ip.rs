//! Client IP resolution behind reverse proxies.
//!
//! `X-Forwarded-For` is client-controlled except for the entries appended by proxies we trust. So
//! the header is read only when the direct peer is a trusted proxy, and then from the right: with
//! `depth` proxies in front of the app, the client is the `depth`-th entry from the right. A spoofed
//! header from an untrusted peer changes nothing; a malformed entry falls back to the peer.

use std::net::IpAddr;

use super::cidr::{parse_peer, IpSet};

/// Which proxies to believe, and how many of them stand in front of the app.
#[derive(Debug, Clone)]
pub struct ProxyPolicy {
    pub trusted: IpSet,
    pub depth: usize,
    pub trust_forwarded_proto: bool,
    /// The header carrying the client address (`X-Forwarded-For` unless configured).
    pub header: String,
    /// Believe `header` from any peer, not only trusted proxies (explicit opt-in).
    pub trust_any_peer: bool,
}

impl Default for ProxyPolicy {
    fn default() -> Self {
        Self {
            trusted: IpSet::default(),
            depth: 1,
            trust_forwarded_proto: true,
            header: "X-Forwarded-For".to_owned(),
            trust_any_peer: false,
        }
    }
}

/// The outcome of resolution: the client address (if any could be read) and whether the peer is
/// one of our trusted proxies (which decides whether other `X-Forwarded-*` headers count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: Option<IpAddr>,
    pub peer_trusted: bool,
}

impl ProxyPolicy {
    /// The WSGI environ key of the client-address header (`HTTP_X_FORWARDED_FOR`).
    #[must_use]
    pub fn environ_key(&self) -> String {
        let mut key = String::with_capacity(5 + self.header.len());
        key.push_str("HTTP_");
        for ch in self.header.chars() {
            key.push(if ch == '-' {
                '_'
            } else {
                ch.to_ascii_uppercase()
            });
        }
        key
    }

    /// Whether the client-address header is ever read.
    #[must_use]
    pub fn reads_header(&self) -> bool {
        self.trust_any_peer || !self.trusted.is_empty()
    }

    /// Resolves the client from the peer address (`REMOTE_ADDR`) and `X-Forwarded-For`.
    #[must_use]
    pub fn resolve(&self, peer: Option<&str>, forwarded_for: Option<&str>) -> ClientAddr {
        let peer_ip = peer.and_then(parse_peer);
        let peer_trusted =
            !self.trusted.is_empty() && peer_ip.is_some_and(|p| self.trusted.contains(p));
        if !peer_trusted && !self.trust_any_peer {
            return ClientAddr {
                ip: peer_ip,
                peer_trusted,
            };
        }
        let ip = forwarded_for.and_then(|xff| self.pick(xff)).or(peer_ip);
        ClientAddr { ip, peer_trusted }
    }

    fn pick(&self, xff: &str) -> Option<IpAddr> {
        let entries = || xff.split(',').map(str::trim).filter(|e| !e.is_empty());
        let n = entries().count();
        if n == 0 {
            return None;
        }
        let index = n.saturating_sub(self.depth);
        entries().nth(index).and_then(parse_peer)
    }

    /// Whether the request is HTTPS, from the WSGI scheme and, if allowed, a trusted proxy's
    /// `X-Forwarded-Proto` (its last value, as written by the nearest proxy).
    #[must_use]
    pub fn is_https(
        &self,
        scheme: &str,
        client: ClientAddr,
        forwarded_proto: Option<&str>,
    ) -> bool {
        if scheme.eq_ignore_ascii_case("https") {
            return true;
        }
        if self.trust_forwarded_proto && client.peer_trusted {
            if let Some(proto) = forwarded_proto {
                let last = proto.rsplit(',').next().unwrap_or("").trim();
                return last.eq_ignore_ascii_case("https");
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cidr::parse_entry;

    fn policy(trusted: &[&str], depth: usize) -> ProxyPolicy {
        let nets: Vec<_> = trusted
            .iter()
            .map(|e| parse_entry(e).expect("valid"))
            .collect();
        ProxyPolicy {
            trusted: IpSet::from_nets(&nets),
            depth,
            trust_forwarded_proto: true,
            ..ProxyPolicy::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn resolution_table() {
        let p1 = policy(&["10.0.0.0/8"], 1);
        let p2 = policy(&["10.0.0.0/8"], 2);
        let none = policy(&[], 1);
        type Case<'a> = (
            &'a ProxyPolicy,
            Option<&'a str>,
            Option<&'a str>,
            Option<IpAddr>,
        );
        let cases: &[Case<'_>] = &[
            (
                &none,
                Some("203.0.113.5"),
                Some("1.1.1.1"),
                ip("203.0.113.5"),
            ),
            (&p1, Some("203.0.113.5"), Some("1.1.1.1"), ip("203.0.113.5")),
            (
                &p1,
                Some("10.0.0.2"),
                Some("1.1.1.1, 203.0.113.9"),
                ip("203.0.113.9"),
            ),
            (
                &p2,
                Some("10.0.0.2"),
                Some("1.1.1.1, 203.0.113.9, 10.0.0.3"),
                ip("203.0.113.9"),
            ),
            (
                &p2,
                Some("10.0.0.2"),
                Some("203.0.113.9"),
                ip("203.0.113.9"),
            ),
            (&p1, Some("10.0.0.2"), Some("garbage"), ip("10.0.0.2")),
            (&p1, Some("10.0.0.2"), Some(" , "), ip("10.0.0.2")),
            (&p1, Some("10.0.0.2"), None, ip("10.0.0.2")),
            (
                &p1,
                Some("10.0.0.2"),
                Some("[2001:db8::1]:443"),
                ip("2001:db8::1"),
            ),
            (&p1, None, Some("1.1.1.1"), None),
            (&p1, Some("nonsense"), Some("1.1.1.1"), None),
        ];
        for (policy, peer, xff, want) in cases {
            assert_eq!(
                policy.resolve(*peer, *xff).ip,
                *want,
                "peer {peer:?} xff {xff:?}"
            );
        }
    }

    #[test]
    fn forwarded_proto_only_from_trusted_peers() {
        let p = policy(&["10.0.0.0/8"], 1);
        let trusted = p.resolve(Some("10.0.0.2"), None);
        let untrusted = p.resolve(Some("203.0.113.1"), None);
        assert!(p.is_https("http", trusted, Some("https")));
        assert!(p.is_https("http", trusted, Some("http, https")));
        assert!(!p.is_https("http", untrusted, Some("https")));
        assert!(p.is_https("https", untrusted, None));
        let mut off = p.clone();
        off.trust_forwarded_proto = false;
        assert!(!off.is_https("http", trusted, Some("https")));
    }
}
