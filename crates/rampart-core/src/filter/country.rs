//! Where a client comes from: country rules (`blocked_countries`, `whitelist_countries`) and cloud
//! provider rules (`block_cloud_providers`), with where their data comes from.

use serde_json::Value;

use crate::config::{describe, Reader};
use crate::net::cloud::{Provider, Providers};
use crate::net::geo::Country;

/// Country rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoPolicy {
    /// `blocked_countries`: refused.
    pub blocked: Vec<Country>,
    /// `whitelist_countries`: when not empty, only these are served.
    pub allowed: Vec<Country>,
    /// A `geo_ip_handler` was configured (the adapter hands the engine its source).
    pub has_handler: bool,
    /// `ipinfo_token` (the reference's older spelling of `geo_ip_handler=IPInfoManager(token)`).
    pub ipinfo_token: Option<String>,
    pub ipinfo_db_path: String,
    /// `geo_auto_ban`: country and cloud blocks count toward the automatic ban.
    pub auto_ban: bool,
}

impl GeoPolicy {
    /// Whether any country rule applies (and so a lookup is needed).
    #[must_use]
    pub fn active(&self) -> bool {
        !self.blocked.is_empty() || !self.allowed.is_empty()
    }

    /// Why a client of `country` is refused, or `None`. An address the source does not place
    /// (`None`) passes `blocked_countries` and fails `whitelist_countries`.
    #[must_use]
    pub fn refusal(&self, country: Option<Country>) -> Option<Refusal> {
        if let Some(c) = country {
            if self.blocked.contains(&c) {
                return Some(Refusal::Blocked(c));
            }
        }
        if self.allowed.is_empty() || country.is_some_and(|c| self.allowed.contains(&c)) {
            return None;
        }
        Some(Refusal::NotAllowed(country))
    }
}

/// Why a country rule refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// In `blocked_countries`.
    Blocked(Country),
    /// Not in `whitelist_countries` (`None`: not placed at all).
    NotAllowed(Option<Country>),
}

/// Cloud provider rules and where the ranges come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudPolicy {
    /// `block_cloud_providers`.
    pub block: Providers,
    /// `cloud_ip_refresh_interval`, seconds.
    pub refresh_secs: u64,
    /// `cloud_ranges_files`: local copies in the providers' formats, used instead of downloading.
    pub files: Vec<(Provider, String)>,
    /// `cloud_ranges_urls`: where to download from instead of the providers' addresses.
    pub urls: Vec<(Provider, String)>,
    /// `cloud_ranges_cache_dir`: where downloaded ranges are kept between runs.
    pub cache_dir: Option<String>,
}

/// Reads the country and cloud fields.
pub(crate) fn parse(r: &mut Reader<'_>) -> (GeoPolicy, CloudPolicy) {
    let blocked = countries(r, "blocked_countries");
    let allowed = countries(r, "whitelist_countries");
    let has_handler = match r.get("geo_ip_handler") {
        None => false,
        Some(Value::Object(o)) if o.contains_key("$object") => true,
        Some(v) => {
            let d = describe(v);
            r.err(
                "geo_ip_handler",
                format!(
                    "must be a geolocation handler (MaxMindDB(path), IPInfoManager(token) or an \
                     object with get_country(ip)), not {d}"
                ),
            );
            true
        }
    };
    let ipinfo_token = r
        .opt_string("ipinfo_token")
        .filter(|t| !t.trim().is_empty());
    let ipinfo_db_path = r
        .opt_string("ipinfo_db_path")
        .unwrap_or_else(|| "data/ipinfo/country_asn.mmdb".to_owned());
    let auto_ban = r.bool("geo_auto_ban", false);
    if (!blocked.is_empty() || !allowed.is_empty()) && !has_handler && ipinfo_token.is_none() {
        let field = if blocked.is_empty() {
            "whitelist_countries"
        } else {
            "blocked_countries"
        };
        r.err(
            field,
            "needs a geo_ip_handler to know where clients are: MaxMindDB(path) for a .mmdb file, \
             IPInfoManager(token) for IPInfo's free database, or your own handler",
        );
    }

    let mut block = Providers::default();
    for (i, name) in r
        .string_list("block_cloud_providers", &[])
        .iter()
        .enumerate()
    {
        match provider(name) {
            Ok(p) => block.insert(p),
            Err(msg) => r.err(&format!("block_cloud_providers[{i}]"), msg),
        }
    }
    let refresh_secs = r.uint("cloud_ip_refresh_interval", 3600, 60, 86_400);
    let files = provider_map(r, "cloud_ranges_files");
    let urls = provider_map(r, "cloud_ranges_urls");
    for (p, url) in &urls {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            r.err(
                &format!("cloud_ranges_urls.{}", p.name()),
                format!("'{url}' is not an http(s) URL"),
            );
        }
    }
    let cache_dir = r.opt_string("cloud_ranges_cache_dir");
    (
        GeoPolicy {
            blocked,
            allowed,
            has_handler,
            ipinfo_token,
            ipinfo_db_path,
            auto_ban,
        },
        CloudPolicy {
            block,
            refresh_secs,
            files,
            urls,
            cache_dir,
        },
    )
}

pub(crate) fn countries(r: &mut Reader<'_>, key: &str) -> Vec<Country> {
    let mut out = Vec::new();
    for (i, code) in r.string_list(key, &[]).iter().enumerate() {
        match Country::parse(code) {
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {}
            None => r.err(
                &format!("{key}[{i}]"),
                format!("'{code}' is not a two-letter ISO 3166 country code"),
            ),
        }
    }
    out
}

pub(crate) fn provider(name: &str) -> Result<Provider, String> {
    Provider::from_name(name).ok_or_else(|| {
        let hint = Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
            .map(|p| format!("; did you mean '{}'?", p.name()))
            .unwrap_or_default();
        format!("unknown cloud provider '{name}' (known: AWS, GCP, Azure){hint}")
    })
}

/// `{provider: text}`, e.g. `cloud_ranges_files={"AWS": "ip-ranges.json"}`.
fn provider_map(r: &mut Reader<'_>, key: &str) -> Vec<(Provider, String)> {
    let Some(v) = r.get(key) else {
        return Vec::new();
    };
    let Value::Object(map) = v else {
        let d = describe(v);
        r.err(
            key,
            format!("must be a mapping of provider name (AWS, GCP, Azure) to a string, not {d}"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in map {
        let p = match provider(name) {
            Ok(p) => p,
            Err(msg) => {
                r.err(&format!("{key}.{name}"), msg);
                continue;
            }
        };
        match value {
            Value::String(s) if !s.trim().is_empty() => out.push((p, s.clone())),
            other => {
                let d = describe(other);
                r.err(
                    &format!("{key}.{name}"),
                    format!("must be a non-empty string, not {d}"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        Country::parse(s).expect("code")
    }

    #[test]
    fn blocked_and_whitelisted_countries_decide_together() {
        let only_block = GeoPolicy {
            blocked: vec![c("CN"), c("RU")],
            ..GeoPolicy::default()
        };
        assert_eq!(
            only_block.refusal(Some(c("CN"))),
            Some(Refusal::Blocked(c("CN")))
        );
        assert_eq!(only_block.refusal(Some(c("US"))), None);
        assert_eq!(
            only_block.refusal(None),
            None,
            "unknown passes a block list"
        );

        let only_allow = GeoPolicy {
            allowed: vec![c("US"), c("CA")],
            ..GeoPolicy::default()
        };
        assert_eq!(only_allow.refusal(Some(c("CA"))), None);
        assert_eq!(
            only_allow.refusal(Some(c("FR"))),
            Some(Refusal::NotAllowed(Some(c("FR"))))
        );
        assert_eq!(
            only_allow.refusal(None),
            Some(Refusal::NotAllowed(None)),
            "unknown fails an allow list"
        );

        let both = GeoPolicy {
            blocked: vec![c("US")],
            allowed: vec![c("US"), c("CA")],
            ..GeoPolicy::default()
        };
        assert_eq!(
            both.refusal(Some(c("US"))),
            Some(Refusal::Blocked(c("US"))),
            "a block wins"
        );
        assert_eq!(both.refusal(Some(c("CA"))), None);
    }
}
