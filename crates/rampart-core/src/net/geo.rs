//! IP geolocation: the country (and network operator) of an address.
//!
//! [`GeoDb`] reads MaxMind-format databases: MaxMind's GeoIP2/GeoLite2 (`country.iso_code`) and
//! IPInfo's (`country` or `country_code`), with a bounded cache in front so a repeated client
//! costs a hash lookup. A [`GeoSlot`] holds the database a handler serves and swaps in a new
//! one whole when it is refreshed. Anything else that can name a country (a user's own handler,
//! in the adapter) implements [`CountrySource`].

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use maxminddb::{PathElement, Reader};
use quick_cache::sync::Cache;

use crate::net::cidr::canonical;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, either case; `None` otherwise.
    #[must_use]
    pub fn parse(code: &str) -> Option<Country> {
        match code.trim().as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Two ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that names the country of an address.
pub trait CountrySource: Send + Sync + fmt::Debug {
    /// `Ok(None)`: the address is not placed (private, unknown to the source).
    ///
    /// # Errors
    /// The source failed (a handler raised); the message is logged and the country is unknown.
    fn country(&self, ip: IpAddr) -> Result<Option<Country>, String>;
}

/// Where a database keeps the country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `country.iso_code` (MaxMind), else `registered_country.iso_code`.
    MaxMind,
    /// `country` as a code, or `country_code` (IPInfo).
    IpInfo,
}

const CACHE_ENTRIES: usize = 65_536;

/// An open MaxMind-format database, read into memory, with a lookup cache.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
    layout: Layout,
    cache: Cache<IpAddr, Option<Country>>,
    bytes: usize,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("type", &self.reader.metadata().database_type)
            .field("layout", &self.layout)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What a database says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoInfo {
    pub database_type: String,
    /// When it was built, seconds since the epoch.
    pub build_epoch: u64,
    pub ip_version: u16,
    pub node_count: u32,
    pub bytes: usize,
}

impl GeoDb {
    /// Reads a database file.
    ///
    /// # Errors
    /// The file cannot be read or is not a MaxMind-format database.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        GeoDb::from_bytes(bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A database from its bytes.
    ///
    /// # Errors
    /// The bytes are not a MaxMind-format database.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        let len = bytes.len();
        let reader = Reader::from_source(bytes)
            .map_err(|e| format!("not a MaxMind-format (.mmdb) database: {e}"))?;
        let kind = reader.metadata().database_type.to_ascii_lowercase();
        let layout = if kind.contains("ipinfo") {
            Layout::IpInfo
        } else {
            Layout::MaxMind
        };
        Ok(GeoDb {
            reader,
            layout,
            cache: Cache::new(CACHE_ENTRIES),
            bytes: len,
        })
    }

    #[must_use]
    pub fn info(&self) -> GeoInfo {
        let m = self.reader.metadata();
        GeoInfo {
            database_type: m.database_type.clone(),
            build_epoch: m.build_epoch,
            ip_version: m.ip_version,
            node_count: m.node_count,
            bytes: self.bytes,
        }
    }

    /// The country of `ip`, from the cache after the first lookup.
    #[must_use]
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let ip = canonical(ip);
        if let Some(hit) = self.cache.get(&ip) {
            return hit;
        }
        let found = self.lookup_country(ip);
        self.cache.insert(ip, found);
        found
    }

    fn lookup_country(&self, ip: IpAddr) -> Option<Country> {
        let result = self.reader.lookup(ip).ok()?;
        let code = |path: &[PathElement<'_>]| -> Option<Country> {
            let s: String = result.decode_path(path).ok()??;
            Country::parse(&s)
        };
        let maxmind = || {
            code(&[PathElement::Key("country"), PathElement::Key("iso_code")]).or_else(|| {
                code(&[
                    PathElement::Key("registered_country"),
                    PathElement::Key("iso_code"),
                ])
            })
        };
        let ipinfo = || {
            code(&[PathElement::Key("country")])
                .or_else(|| code(&[PathElement::Key("country_code")]))
        };
        match self.layout {
            Layout::MaxMind => maxmind().or_else(ipinfo),
            Layout::IpInfo => ipinfo().or_else(maxmind),
        }
    }

    /// The autonomous system number of `ip`, where the database has one (MaxMind's ASN
    /// databases: `autonomous_system_number`; IPInfo's: `asn` as `"AS15169"`).
    #[must_use]
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let result = self.reader.lookup(canonical(ip)).ok()?;
        if let Ok(Some(n)) =
            result.decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
        {
            return Some(n);
        }
        let s: String = result.decode_path(&[PathElement::Key("asn")]).ok()??;
        let digits = s
            .strip_prefix("AS")
            .or_else(|| s.strip_prefix("as"))
            .unwrap_or(&s);
        digits.parse().ok()
    }
}

/// The database a handler currently serves; empty until one is loaded. Replacing it is one
/// pointer swap: lookups in flight finish on the old database.
#[derive(Debug, Default)]
pub struct GeoSlot {
    db: RwLock<Option<Arc<GeoDb>>>,
}

impl GeoSlot {
    pub fn replace(&self, db: Option<GeoDb>) {
        let mut guard = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = db.map(Arc::new);
    }

    #[must_use]
    pub fn get(&self) -> Option<Arc<GeoDb>> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl CountrySource for GeoSlot {
    fn country(&self, ip: IpAddr) -> Result<Option<Country>, String> {
        let guard = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(guard.as_ref().and_then(|db| db.country(ip)))
    }
}

/// Whether an address is one no geolocation database places: loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast and unique-local addresses. Country rules
/// never apply to them (the documentation ranges are not among them: tests place them).
#[must_use]
pub fn is_unplaceable(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mmdb::{build, Data};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn a_maxmind_layout_database_places_addresses_and_more_specific_networks_win() {
        let bytes = build(
            "GeoLite2-Country",
            &[
                (net("81.2.69.0/24"), Data::maxmind_country("GB")),
                (net("81.2.0.0/16"), Data::maxmind_country("FR")),
                (net("2a02:c7f::/32"), Data::maxmind_country("DE")),
                (
                    net("175.16.199.0/24"),
                    Data::Map(vec![(
                        "registered_country".into(),
                        Data::Map(vec![("iso_code".into(), Data::Str("CN".into()))]),
                    )]),
                ),
            ],
        );
        let db = GeoDb::from_bytes(bytes).expect("opens");
        let c = |s: &str| db.country(ip(s)).map(|c| c.to_string());
        assert_eq!(c("81.2.69.160").as_deref(), Some("GB"));
        assert_eq!(c("81.2.70.1").as_deref(), Some("FR"));
        assert_eq!(c("::ffff:81.2.69.1").as_deref(), Some("GB"), "IPv4-mapped");
        assert_eq!(c("2a02:c7f:1::1").as_deref(), Some("DE"));
        assert_eq!(
            c("175.16.199.4").as_deref(),
            Some("CN"),
            "registered country"
        );
        assert_eq!(c("8.8.8.8"), None);
        assert_eq!(c("2001:4860::1"), None);
        // The second answer comes from the cache and is the same.
        assert_eq!(c("81.2.69.160").as_deref(), Some("GB"));
        let info = db.info();
        assert_eq!(info.database_type, "GeoLite2-Country");
        assert_eq!(info.ip_version, 6);
    }

    #[test]
    fn an_ipinfo_layout_database_gives_country_and_asn() {
        let bytes = build(
            "ipinfo country_asn.mmdb",
            &[
                (net("8.8.8.0/24"), Data::ipinfo_country("US", Some(15169))),
                (net("1.0.0.0/24"), Data::ipinfo_country("au", None)),
                (
                    net("5.5.0.0/16"),
                    Data::Map(vec![("country_code".into(), Data::Str("NL".into()))]),
                ),
            ],
        );
        let db = GeoDb::from_bytes(bytes).expect("opens");
        assert_eq!(db.country(ip("8.8.8.8")), Country::parse("US"));
        assert_eq!(
            db.country(ip("1.0.0.1")),
            Country::parse("AU"),
            "upper-cased"
        );
        assert_eq!(db.country(ip("5.5.1.1")), Country::parse("NL"));
        assert_eq!(db.asn(ip("8.8.8.8")), Some(15169));
        assert_eq!(db.asn(ip("1.0.0.1")), None);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let err = GeoDb::from_bytes(b"not a database".to_vec()).expect_err("refused");
        assert!(err.contains("MaxMind"), "{err}");
        let err = GeoDb::open(Path::new("/nonexistent/x.mmdb")).expect_err("missing");
        assert!(err.contains("cannot read"), "{err}");
        // A database whose country value is not a code places nothing.
        let bytes = build(
            "GeoLite2-Country",
            &[(net("9.0.0.0/8"), Data::maxmind_country("Narnia"))],
        );
        let db = GeoDb::from_bytes(bytes).expect("opens");
        assert_eq!(db.country(ip("9.1.1.1")), None);
    }

    #[test]
    fn a_slot_swaps_databases_whole() {
        let slot = GeoSlot::default();
        assert_eq!(slot.country(ip("81.2.69.1")), Ok(None));
        let one = build(
            "GeoLite2-Country",
            &[(net("81.2.69.0/24"), Data::maxmind_country("GB"))],
        );
        slot.replace(Some(GeoDb::from_bytes(one).expect("db")));
        assert_eq!(slot.country(ip("81.2.69.1")), Ok(Country::parse("GB")));
        let two = build(
            "GeoLite2-Country",
            &[(net("81.2.69.0/24"), Data::maxmind_country("IE"))],
        );
        slot.replace(Some(GeoDb::from_bytes(two).expect("db")));
        assert_eq!(
            slot.country(ip("81.2.69.1")),
            Ok(Country::parse("IE")),
            "a new database brings a new cache"
        );
    }

    #[test]
    fn private_and_special_addresses_are_never_placed() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_unplaceable(ip(s)), "{s}");
        }
        for s in [
            "8.8.8.8",
            "100.128.0.1",
            "2a00:1450::1",
            "81.2.69.160",
            "203.0.113.9",
            "2001:db8::1",
        ] {
            assert!(!is_unplaceable(ip(s)), "{s}");
        }
    }

    #[test]
    fn country_codes_parse_strictly() {
        assert_eq!(
            Country::parse("us").map(|c| c.to_string()).as_deref(),
            Some("US")
        );
        for bad in ["", "U", "USA", "1A", "é"] {
            assert_eq!(Country::parse(bad), None, "{bad}");
        }
    }
}
