//! Cloud providers' published address ranges.
//!
//! Each provider publishes its ranges in its own JSON format: AWS `ip-ranges.json`, Google Cloud
//! `cloud.json`, Azure's Service Tags file. [`parse`] reads any of them (or Rampart's cache
//! format: CIDRs separated by commas or lines) into one merged [`IpSet`] per provider, so a
//! lookup is a binary search however many ranges there are. A [`CloudTable`] holds the current
//! set of each provider and swaps a new one in whole when a refresh arrives.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::net::cidr::{parse_entry, IpSet};

/// A cloud provider Rampart knows the ranges of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Aws, Provider::Gcp, Provider::Azure];

    /// The name used in configuration: `AWS`, `GCP`, `Azure`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Provider::Aws => "AWS",
            Provider::Gcp => "GCP",
            Provider::Azure => "Azure",
        }
    }

    /// The provider of a configuration name (exact spelling).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Provider::Aws => 0,
            Provider::Gcp => 1,
            Provider::Azure => 2,
        }
    }

    fn bit(self) -> u8 {
        1 << self.index()
    }
}

/// A set of providers (which ones to block).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Providers(u8);

impl Providers {
    #[must_use]
    pub fn all() -> Providers {
        Provider::ALL.into_iter().collect()
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub fn contains(self, p: Provider) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Provider) {
        self.0 |= p.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Provider> {
        Provider::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Provider> for Providers {
    fn from_iter<I: IntoIterator<Item = Provider>>(iter: I) -> Self {
        let mut set = Providers::default();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

/// What a provider's file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub set: IpSet,
    /// Entries read (before merging).
    pub entries: usize,
    /// Entries that were not a CIDR range and were left out.
    pub skipped: usize,
}

/// Reads a provider's ranges from its own published format, or from Rampart's cache format
/// (CIDRs separated by commas, spaces or lines; `#` starts a comment line).
///
/// # Errors
/// The data is neither, is a JSON document of another provider's shape, or holds no range.
pub fn parse(provider: Provider, data: &[u8]) -> Result<Ranges, String> {
    let text = std::str::from_utf8(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data))
        .map_err(|_| format!("{} ranges: not UTF-8 text", provider.name()))?;
    let trimmed = text.trim_start();
    let doc: Option<Value> = if trimmed.starts_with('{') {
        Some(
            serde_json::from_str(trimmed)
                .map_err(|e| format!("{} ranges: not valid JSON: {e}", provider.name()))?,
        )
    } else {
        None
    };
    let mut entries: Vec<&str> = Vec::new();
    if let Some(doc) = &doc {
        json_entries(provider, doc, &mut entries)?;
    } else {
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            entries.extend(
                line.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|e| !e.is_empty()),
            );
        }
    }
    let mut nets = Vec::with_capacity(entries.len());
    let mut skipped = 0;
    for e in &entries {
        match parse_entry(e) {
            Ok(net) => nets.push(net),
            Err(_) => skipped += 1,
        }
    }
    if nets.is_empty() {
        return Err(format!(
            "{} ranges: no CIDR range found ({} entries not understood)",
            provider.name(),
            skipped
        ));
    }
    Ok(Ranges {
        set: IpSet::from_nets(&nets),
        entries: entries.len(),
        skipped,
    })
}

/// The CIDR strings of a provider's JSON document.
fn json_entries<'v>(
    provider: Provider,
    doc: &'v Value,
    out: &mut Vec<&'v str>,
) -> Result<(), String> {
    let list = |key: &str| doc.get(key).and_then(Value::as_array);
    let shape = match provider {
        Provider::Aws => "AWS ip-ranges.json ('prefixes' with 'ip_prefix')",
        Provider::Gcp => "Google Cloud cloud.json ('prefixes' with 'ipv4Prefix'/'ipv6Prefix')",
        Provider::Azure => "Azure Service Tags JSON ('values' with 'addressPrefixes')",
    };
    let before = out.len();
    match provider {
        // Every service's prefixes: `AMAZON` is meant to hold them all, but the union is the
        // same set and does not depend on that.
        Provider::Aws => {
            for (key, field) in [("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")] {
                for p in list(key).into_iter().flatten() {
                    out.extend(p.get(field).and_then(Value::as_str));
                }
            }
        }
        Provider::Gcp => {
            for p in list("prefixes").into_iter().flatten() {
                for field in ["ipv4Prefix", "ipv6Prefix"] {
                    out.extend(p.get(field).and_then(Value::as_str));
                }
            }
        }
        // Every service tag's prefixes (`AzureCloud` and the regional and service tags are all
        // Microsoft's addresses), not whichever tag happens to come first.
        Provider::Azure => {
            for tag in list("values").into_iter().flatten() {
                let prefixes = tag
                    .get("properties")
                    .and_then(|p| p.get("addressPrefixes"))
                    .and_then(Value::as_array);
                for p in prefixes.into_iter().flatten() {
                    out.extend(p.as_str());
                }
            }
        }
    }
    if out.len() == before {
        return Err(format!(
            "{} ranges: the JSON is not in the {shape} format",
            provider.name()
        ));
    }
    Ok(())
}

/// The current ranges of each provider, replaced whole on refresh. Lookups take a read lock
/// for a few nanoseconds; a refresh never makes a lookup wait for parsing.
#[derive(Debug, Default)]
pub struct CloudTable {
    sets: [RwLock<Option<Arc<IpSet>>>; 3],
}

impl CloudTable {
    /// Puts in a provider's new ranges.
    pub fn replace(&self, provider: Provider, set: IpSet) {
        let slot = &self.sets[provider.index()];
        let mut guard = slot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Some(Arc::new(set));
    }

    /// A provider's current ranges (`None` until loaded).
    #[must_use]
    pub fn get(&self, provider: Provider) -> Option<Arc<IpSet>> {
        self.sets[provider.index()]
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first provider among `among` whose ranges hold `ip`.
    #[must_use]
    pub fn provider_of(&self, ip: IpAddr, among: Providers) -> Option<Provider> {
        among.iter().find(|&p| {
            self.sets[p.index()]
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .is_some_and(|set| set.contains(ip))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    const AWS: &str = r#"{
      "syncToken": "1700000000", "createDate": "2026-11-01-00-00-00",
      "prefixes": [
        {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"},
        {"ip_prefix": "3.5.140.0/23", "region": "ap-northeast-2", "service": "S3", "network_border_group": "ap-northeast-2"},
        {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "EC2", "network_border_group": "us-west-2"}
      ],
      "ipv6_prefixes": [
        {"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"}
      ]
    }"#;

    const GCP: &str = r#"{
      "syncToken": "1700000000", "creationTime": "2026-11-01T00:00:00",
      "prefixes": [
        {"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"},
        {"ipv6Prefix": "2600:1900:4000::/44", "service": "Google Cloud", "scope": "us-central1"}
      ]
    }"#;

    const AZURE: &str = r#"{
      "changeNumber": 300, "cloud": "Public",
      "values": [
        {"name": "ActionGroup", "id": "ActionGroup", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "ActionGroup", "addressPrefixes": ["13.66.60.119/32"], "networkFeatures": ["API"]}},
        {"name": "AzureCloud", "id": "AzureCloud", "properties": {"changeNumber": 9, "region": "", "platform": "Azure", "systemService": "", "addressPrefixes": ["13.64.0.0/11", "20.33.0.0/16", "2603:1000::/25"]}}
      ]
    }"#;

    #[test]
    fn each_provider_format_is_read_whole() {
        let aws = parse(Provider::Aws, AWS.as_bytes()).expect("aws");
        assert_eq!(aws.entries, 4);
        assert!(aws.set.contains(ip("3.5.141.9")));
        assert!(
            aws.set.contains(ip("52.94.77.1")),
            "services other than AMAZON"
        );
        assert!(aws.set.contains(ip("2600:1f14::1")), "IPv6 too");
        assert!(!aws.set.contains(ip("3.5.144.0")));

        let gcp = parse(Provider::Gcp, GCP.as_bytes()).expect("gcp");
        assert!(gcp.set.contains(ip("34.81.255.255")));
        assert!(gcp.set.contains(ip("2600:1900:4000::5")));
        assert!(!gcp.set.contains(ip("34.82.0.0")));

        let azure = parse(Provider::Azure, AZURE.as_bytes()).expect("azure");
        assert!(azure.set.contains(ip("13.66.60.119")));
        assert!(
            azure.set.contains(ip("20.33.4.4")),
            "not only the first tag"
        );
        assert!(azure.set.contains(ip("2603:1000::1")));
        assert!(!azure.set.contains(ip("8.8.8.8")));
    }

    #[test]
    fn the_cache_format_reads_back_what_was_written() {
        let aws = parse(Provider::Aws, AWS.as_bytes()).expect("aws");
        let text: Vec<String> = aws.set.to_cidrs().iter().map(ToString::to_string).collect();
        let again = parse(Provider::Aws, text.join(",").as_bytes()).expect("comma-joined");
        assert_eq!(again.set, aws.set);
        let lines = format!("# cached\n{}\n", text.join("\n"));
        assert_eq!(
            parse(Provider::Aws, lines.as_bytes()).expect("lines").set,
            aws.set
        );
    }

    #[test]
    fn a_wrong_or_empty_file_is_an_error_and_bad_entries_are_skipped() {
        let err = parse(Provider::Aws, GCP.as_bytes()).expect_err("gcp shape as aws");
        assert!(err.contains("AWS ip-ranges.json"), "{err}");
        let err = parse(Provider::Azure, b"{\"values\": []}").expect_err("empty");
        assert!(err.contains("Azure Service Tags"), "{err}");
        assert!(parse(Provider::Gcp, b"{ not json").is_err());
        assert!(parse(Provider::Gcp, b"").is_err());
        assert!(parse(Provider::Gcp, b"\xff\xfe").is_err());
        let some = parse(Provider::Gcp, b"10.0.0.0/8, nonsense, 10.0.0.300").expect("one good");
        assert_eq!((some.entries, some.skipped), (3, 2));
        let bom = parse(
            Provider::Gcp,
            b"\xef\xbb\xbf{\"prefixes\":[{\"ipv4Prefix\":\"1.0.0.0/8\"}]}",
        );
        assert!(bom.expect("BOM is skipped").set.contains(ip("1.2.3.4")));
    }

    #[test]
    fn the_table_answers_for_the_providers_asked_about() {
        let table = CloudTable::default();
        assert_eq!(table.provider_of(ip("3.5.141.9"), Providers::all()), None);
        table.replace(
            Provider::Aws,
            parse(Provider::Aws, AWS.as_bytes()).expect("aws").set,
        );
        table.replace(
            Provider::Gcp,
            parse(Provider::Gcp, GCP.as_bytes()).expect("gcp").set,
        );
        assert_eq!(
            table.provider_of(ip("3.5.141.9"), Providers::all()),
            Some(Provider::Aws)
        );
        let only_gcp: Providers = [Provider::Gcp].into_iter().collect();
        assert_eq!(table.provider_of(ip("3.5.141.9"), only_gcp), None);
        assert_eq!(
            table.provider_of(ip("::ffff:34.80.1.1"), only_gcp),
            Some(Provider::Gcp)
        );
        table.replace(Provider::Aws, IpSet::default());
        assert_eq!(table.provider_of(ip("3.5.141.9"), Providers::all()), None);
    }
}
