//! Sets of IP addresses and CIDR ranges.
//!
//! A set is stored as sorted, merged, non-overlapping inclusive ranges per family, so a lookup is a
//! binary search: O(log n) whatever the number of entries, no allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A set of IPv4 and IPv6 addresses built from addresses and CIDR ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// For large IPv4 sets (cloud ranges): for each top-16-bit prefix `k`, the first range that
    /// ends at or after `k << 16`, so a lookup searches only its prefix's few ranges instead of
    /// the whole set (whose binary search misses the CPU cache at every step).
    v4_index: Option<Box<[u32]>>,
}

/// Sets with more IPv4 ranges than this get a [`IpSet::v4_index`] (256 KB).
const INDEX_FROM: usize = 4096;

/// Why an entry is not an address or a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry(pub String);

/// Parses one entry: `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`, `::ffff:192.0.2.1`.
/// Host bits in a CIDR are allowed and dropped (`10.0.0.1/8` is `10.0.0.0/8`).
///
/// # Errors
/// The entry is neither an address nor a range.
pub fn parse_entry(entry: &str) -> Result<IpNet, BadEntry> {
    let s = entry.trim();
    if s.contains('/') {
        match s.parse::<IpNet>() {
            Ok(net) => Ok(canonical_net(net.trunc())),
            Err(_) => Err(BadEntry(format!(
                "'{entry}' is not an IP address or CIDR range"
            ))),
        }
    } else {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(IpNet::from(canonical(ip))),
            Err(_) => Err(BadEntry(format!(
                "'{entry}' is not an IP address or CIDR range"
            ))),
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(_) => ip,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.network().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

impl IpSet {
    /// Builds a set from parsed networks.
    #[must_use]
    pub fn from_nets(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        let v4 = merge(v4);
        let v4_index = (v4.len() > INDEX_FROM).then(|| index_v4(&v4));
        Self {
            v4,
            v6: merge(v6),
            v4_index,
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                match &self.v4_index {
                    Some(index) => {
                        let k = (a >> 16) as usize;
                        let lo = index.get(k).map_or(0, |&i| i as usize);
                        let hi = index.get(k + 1).map_or(self.v4.len(), |&i| i as usize);
                        // The range at `hi` may start inside this prefix: include it.
                        let end = (hi + 1).min(self.v4.len());
                        self.v4.get(lo..end).is_some_and(|slice| lookup(slice, a))
                    }
                    None => lookup(&self.v4, a),
                }
            }
            IpAddr::V6(a) => lookup(&self.v6, u128::from(a)),
        }
    }

    /// Number of merged ranges (for diagnostics).
    #[must_use]
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The set as the fewest CIDR blocks that cover exactly its addresses, IPv4 first, each
    /// family in address order. Parsing them back gives the same set.
    #[must_use]
    pub fn to_cidrs(&self) -> Vec<IpNet> {
        let mut out = Vec::with_capacity(self.ranges());
        for &(s, e) in &self.v4 {
            for (start, len) in blocks(u128::from(s), u128::from(e), 32) {
                // `start` came from a u32; the block length is at most 32.
                if let (Ok(a), Ok(n)) = (u32::try_from(start), u8::try_from(len)) {
                    if let Ok(net) = ipnet::Ipv4Net::new(Ipv4Addr::from(a), n) {
                        out.push(IpNet::V4(net));
                    }
                }
            }
        }
        for &(s, e) in &self.v6 {
            for (start, len) in blocks(s, e, 128) {
                if let Ok(n) = u8::try_from(len) {
                    if let Ok(net) = ipnet::Ipv6Net::new(Ipv6Addr::from(start), n) {
                        out.push(IpNet::V6(net));
                    }
                }
            }
        }
        out
    }
}

/// The CIDR blocks `(start, prefix length)` that cover `start..=end` exactly, in an address
/// space of `width` bits (32 or 128).
fn blocks(mut start: u128, end: u128, width: u32) -> Vec<(u128, u32)> {
    let mask = |bits: u32| {
        if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    };
    let mut out = Vec::new();
    loop {
        // The largest aligned block starting at `start` that ends by `end`.
        let mut bits = if start == 0 {
            width
        } else {
            start.trailing_zeros().min(width)
        };
        while bits > 0 && start | mask(bits) > end {
            bits -= 1;
        }
        let last = start | mask(bits);
        out.push((start, width - bits));
        if last >= end {
            return out;
        }
        start = last + 1;
    }
}

fn merge<T: Ord + Copy + Bump>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut() {
            if start <= last.1.bump() {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    out
}

/// `index[k]`: the first range whose end is at or after `k << 16`, for `k` in `0..=65536`.
fn index_v4(ranges: &[(u32, u32)]) -> Box<[u32]> {
    let mut index = Vec::with_capacity(65_537);
    let mut i = 0usize;
    for k in 0..=65_536u64 {
        while i < ranges.len() && u64::from(ranges[i].1) < (k << 16) {
            i += 1;
        }
        index.push(u32::try_from(i).unwrap_or(u32::MAX));
    }
    index.into_boxed_slice()
}

fn lookup<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < x);
    ranges.get(i).is_some_and(|r| r.0 <= x)
}

trait Bump {
    fn bump(self) -> Self;
}
impl Bump for u32 {
    fn bump(self) -> Self {
        self.saturating_add(1)
    }
}
impl Bump for u128 {
    fn bump(self) -> Self {
        self.saturating_add(1)
    }
}

/// Whether a network covers the whole address family (`0.0.0.0/0`, `::/0`).
#[must_use]
pub fn is_everything(net: &IpNet) -> bool {
    net.prefix_len() == 0
}

/// Parses a peer address as WSGI servers give it, leniently: `192.0.2.1`, `::1`, `[::1]:8080`,
/// `192.0.2.1:1234`.
#[must_use]
pub fn parse_peer(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| canonical(IpAddr::V6(a)));
    }
    let (host, port) = s.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> IpSet {
        let nets: Vec<IpNet> = entries
            .iter()
            .map(|e| parse_entry(e).expect("valid"))
            .collect();
        IpSet::from_nets(&nets)
    }

    #[test]
    fn membership_table() {
        let s = set(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.0.0/16"]);
        let cases = [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("::ffff:10.2.3.4", true),
            ("::ffff:11.2.3.4", false),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(s.contains(ip), want, "{ip}");
        }
        assert_eq!(s.ranges(), 3, "10.1/16 merges into 10/8");
    }

    #[test]
    fn entries_are_validated() {
        assert!(parse_entry("10.0.0.300").is_err());
        assert!(parse_entry("10.0.0.0/33").is_err());
        assert!(parse_entry("example.com").is_err());
        assert!(parse_entry("").is_err());
        assert_eq!(
            parse_entry("10.0.0.1/8").expect("ok").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_entry("::ffff:1.2.3.4").expect("ok").to_string(),
            "1.2.3.4/32"
        );
        assert_eq!(
            parse_entry("::ffff:1.2.3.0/120").expect("ok").to_string(),
            "1.2.3.0/24"
        );
    }

    #[test]
    fn adjacent_ranges_merge() {
        let s = set(&["10.0.0.0/25", "10.0.0.128/25"]);
        assert_eq!(s.ranges(), 1);
        let s = set(&["0.0.0.0/0", "255.255.255.255"]);
        assert!(s.contains("255.255.255.255".parse().expect("ip")));
    }

    #[test]
    fn a_set_written_as_cidrs_reads_back_the_same() {
        let cases: &[&[&str]] = &[
            &["10.0.0.0/8"],
            &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
            &["0.0.0.0/0"],
            &["::/0"],
            &["2001:db8::/33", "2001:db8:8000::/33", "2001:db8:1::5"],
            &["1.2.3.4/32", "1.2.3.5/32", "200.0.0.0/7", "255.255.255.255"],
        ];
        for entries in cases {
            let s = set(entries);
            let cidrs = s.to_cidrs();
            assert_eq!(IpSet::from_nets(&cidrs), s, "{entries:?} -> {cidrs:?}");
        }
        let odd = set(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]).to_cidrs();
        let names: Vec<String> = odd.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/32"]);
        assert_eq!(set(&["0.0.0.0/0"]).to_cidrs()[0].to_string(), "0.0.0.0/0");
    }

    #[test]
    fn a_large_set_answers_as_a_plain_search_would() {
        // 20,000 ranges of varied sizes, some crossing /16 boundaries.
        let mut nets = Vec::new();
        let mut x: u32 = 12_345;
        let mut start: u32 = 0;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            start = start.wrapping_add(70_000 + (x >> 20));
            let len = 16 + (x >> 28);
            if let Ok(n) =
                ipnet::Ipv4Net::new(Ipv4Addr::from(start), u8::try_from(len).unwrap_or(32))
            {
                nets.push(IpNet::V4(n.trunc()));
            }
        }
        let set = IpSet::from_nets(&nets);
        assert!(set.v4_index.is_some());
        let plain = |a: u32| lookup(&set.v4, a);
        let mut probe: u32 = 7;
        for _ in 0..200_000 {
            probe = probe.wrapping_mul(2_654_435_761).wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(probe));
            assert_eq!(set.contains(ip), plain(probe), "{ip}");
        }
        for &(s, e) in set.v4.iter().take(500) {
            for a in [s, e, s.wrapping_sub(1), e.wrapping_add(1)] {
                assert_eq!(set.contains(IpAddr::V4(Ipv4Addr::from(a))), plain(a), "{a}");
            }
        }
        let edge = IpSet::from_nets(&[parse_entry("255.255.255.255").expect("ip")]);
        assert!(edge.contains("255.255.255.255".parse().expect("ip")));
    }

    #[test]
    fn peers_parse_leniently() {
        assert_eq!(parse_peer("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(parse_peer("192.0.2.1:5000"), "192.0.2.1".parse().ok());
        assert_eq!(parse_peer("[::1]:80"), "::1".parse().ok());
        assert_eq!(parse_peer(" ::ffff:192.0.2.1 "), "192.0.2.1".parse().ok());
        assert_eq!(parse_peer("unknown"), None);
        assert_eq!(parse_peer(""), None);
        assert_eq!(parse_peer("[::1"), None);
    }
}
