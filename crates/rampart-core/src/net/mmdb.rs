//! Writes small MaxMind-format (`.mmdb`) databases: for tests, benchmarks and users who want a
//! country database of their own (an internal network map, or a fixture for their app's tests).
//!
//! The format: a binary search tree over the address bits (IPv6, with IPv4 at `::/96`), 32-bit
//! records, a 16-byte separator, a data section of typed values, then the metadata map after the
//! `\xAB\xCD\xEFMaxMind.com` marker. Only the types these databases need are written.

use std::collections::HashMap;

use ipnet::IpNet;

/// A value in the data section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    Str(String),
    U32(u32),
    U64(u64),
    Map(Vec<(String, Data)>),
    Array(Vec<Data>),
}

impl Data {
    /// `{"country": {"iso_code": code}}`: the layout of MaxMind's GeoIP2/GeoLite2 databases.
    #[must_use]
    pub fn maxmind_country(code: &str) -> Data {
        Data::Map(vec![(
            "country".into(),
            Data::Map(vec![("iso_code".into(), Data::Str(code.into()))]),
        )])
    }

    /// `{"country": code, "asn": "AS…"}`: the layout of IPInfo's country databases.
    #[must_use]
    pub fn ipinfo_country(code: &str, asn: Option<u32>) -> Data {
        let mut fields = vec![("country".into(), Data::Str(code.into()))];
        if let Some(n) = asn {
            fields.push(("asn".into(), Data::Str(format!("AS{n}"))));
        }
        Data::Map(fields)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds a database from `(network, value)` pairs. Where networks overlap, the more specific one
/// wins. `database_type` goes into the metadata (`GeoLite2-Country`, `ipinfo country_asn.mmdb`).
#[must_use]
pub fn build(database_type: &str, entries: &[(IpNet, Data)]) -> Vec<u8> {
    let mut values: Vec<&Data> = Vec::new();
    let mut index: HashMap<&Data, usize> = HashMap::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    let mut sorted: Vec<&(IpNet, Data)> = entries.iter().collect();
    sorted.sort_by_key(|(net, _)| tree_prefix(net).1);
    for (net, data) in sorted {
        let k = *index.entry(data).or_insert_with(|| {
            values.push(data);
            values.len() - 1
        });
        let (bits, len) = tree_prefix(net);
        insert(&mut nodes, bits, len, k);
    }

    let mut data_section = Vec::new();
    let mut offsets = Vec::with_capacity(values.len());
    for v in &values {
        offsets.push(data_section.len());
        encode(v, &mut data_section);
    }
    let node_count = nodes.len();
    let record = |r: Record| -> u32 {
        let n = match r {
            Record::Empty => node_count,
            Record::Node(i) => i,
            Record::Data(k) => node_count + 16 + offsets[k],
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let mut out = Vec::with_capacity(node_count * 8 + 16 + data_section.len() + 256);
    for node in &nodes {
        out.extend_from_slice(&record(node[0]).to_be_bytes());
        out.extend_from_slice(&record(node[1]).to_be_bytes());
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data_section);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let build_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let metadata = Data::Map(vec![
        (
            "node_count".into(),
            Data::U32(u32::try_from(node_count).unwrap_or(u32::MAX)),
        ),
        ("record_size".into(), Data::U32(32)),
        ("ip_version".into(), Data::U32(6)),
        ("database_type".into(), Data::Str(database_type.into())),
        (
            "languages".into(),
            Data::Array(vec![Data::Str("en".into())]),
        ),
        ("binary_format_major_version".into(), Data::U32(2)),
        ("binary_format_minor_version".into(), Data::U32(0)),
        ("build_epoch".into(), Data::U64(build_epoch)),
        (
            "description".into(),
            Data::Map(vec![(
                "en".into(),
                Data::Str(format!("{database_type} (written by Rampart)")),
            )]),
        ),
    ]);
    encode_metadata(&metadata, &mut out);
    out
}

/// A network as a path in the IPv6 tree: IPv4 lives under `::/96`.
fn tree_prefix(net: &IpNet) -> (u128, u32) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            96 + u32::from(n.prefix_len()),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u32::from(n.prefix_len())),
    }
}

fn insert(nodes: &mut Vec<[Record; 2]>, bits: u128, len: u32, value: usize) {
    if len == 0 {
        return;
    }
    let mut node = 0;
    for depth in 0..len {
        let bit = usize::from((bits >> (127 - depth)) & 1 == 1);
        if depth + 1 == len {
            nodes[node][bit] = Record::Data(value);
            return;
        }
        node = match nodes[node][bit] {
            Record::Node(i) => i,
            other => {
                // Empty, or a broader network's value that this one splits.
                nodes.push([other; 2]);
                let i = nodes.len() - 1;
                nodes[node][bit] = Record::Node(i);
                i
            }
        };
    }
}

fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (u8::try_from(size).unwrap_or(0), Vec::new()),
        29..=284 => (29, vec![u8::try_from(size - 29).unwrap_or(0)]),
        285..=65_820 => (
            30,
            u16::try_from(size - 285)
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec(),
        ),
        _ => (31, (size - 65_821).to_be_bytes()[5..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn encode(v: &Data, out: &mut Vec<u8>) {
    match v {
        Data::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Data::U32(n) => uint(6, u64::from(*n), out),
        Data::U64(n) => uint(9, *n, out),
        Data::Map(fields) => {
            control(7, fields.len(), out);
            for (k, v) in fields {
                encode(&Data::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Data::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
    }
}

fn uint(kind: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

/// The metadata map; `record_size`, `ip_version` and the format versions are uint16 there.
fn encode_metadata(v: &Data, out: &mut Vec<u8>) {
    let Data::Map(fields) = v else {
        return;
    };
    control(7, fields.len(), out);
    for (k, v) in fields {
        encode(&Data::Str(k.clone()), out);
        match (k.as_str(), v) {
            (
                "record_size"
                | "ip_version"
                | "binary_format_major_version"
                | "binary_format_minor_version",
                Data::U32(n),
            ) => uint(5, u64::from(*n), out),
            _ => encode(v, out),
        }
    }
}
