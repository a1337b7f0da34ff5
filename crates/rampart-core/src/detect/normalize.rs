//! Turning a value into the form the rules match: every layer of encoding an attacker can hide
//! behind, peeled off in one bounded pass per layer.
//!
//! The steps, in order (each linear in the input, each bounded):
//! 1. percent-decoding, repeated while it changes something (at most [`MAX_LAYERS`] rounds),
//!    including IIS-style `%uXXXX`; overlong UTF-8 forms (`%c0%af` for `/`) become the ASCII
//!    character they disguise, other invalid UTF-8 becomes U+FFFD;
//! 2. HTML character references, named (the ones that matter in markup and scripts) and numeric,
//!    with or without the closing `;`, repeated up to twice;
//! 3. JavaScript-style escapes `\xHH` and `\uHHHH` that stand for ASCII;
//! 4. Unicode NFKC (only when the text is not ASCII), so full-width `＜` is `<`;
//! 5. lower case;
//! 6. null bytes dropped, control characters and runs of white space turned into one space (one
//!    `\n` when the run holds a line break),
//!    SQL block comments (`/*…*/`) turned into one space (`MySQL`'s `/*!…*/` keeps its content).
//!
//! What was peeled is recorded in [`Traits`], because some encodings are evidence on their own
//! (an overlong UTF-8 sequence or a null byte never occurs in honest input).

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;

use unicode_normalization::UnicodeNormalization;

/// Rounds of percent-decoding at most (attackers rarely go past double encoding).
pub const MAX_LAYERS: u8 = 3;

/// Facts about the raw value found while normalising it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    /// Percent-decoding rounds that changed something.
    pub layers: u8,
    /// An overlong or otherwise invalid UTF-8 sequence was decoded.
    pub overlong: bool,
    /// A null byte (raw or encoded).
    pub null_byte: bool,
    /// A carriage return or line feed (raw or encoded).
    pub newline: bool,
}

/// The normalised text and what was learnt producing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub text: String,
    pub traits: Traits,
}

/// A byte outside `[A-Za-z0-9_,-]`: the value is not an inert token.
pub const NOT_TOKEN: u8 = 1;
/// `%`, `&`, `\\`, a control character or a non-ASCII byte: there may be something to decode.
pub const ENCODED: u8 = 2;
/// A byte outside prose (letters, digits, spaces, line breaks, `,.;!?-`, non-ASCII).
pub const NOT_PROSE: u8 = 4;
/// `x` or `X`: a token may still spell hex-encoded bytes (`0x2e0x2e…`).
pub const HEX_MARK: u8 = 8;
/// `"` or `\\`: where the plain run of a JSON string stops (see [`scan_string`]).
const STOP: u8 = 0x80;

const fn class_of(b: u8) -> u8 {
    let mut c = 0;
    if !(b.is_ascii_alphanumeric() || b == b'_' || b == b',' || b == b'-') {
        c |= NOT_TOKEN;
    }
    if matches!(b, b'%' | b'&' | b'\\' | 0..=0x1f | 0x7f..=0xff) {
        c |= ENCODED;
    }
    if !(b.is_ascii_alphanumeric()
        || b >= 0x80
        || matches!(b, b' ' | b'\n' | b',' | b'.' | b';' | b'!' | b'?' | b'-'))
    {
        c |= NOT_PROSE;
    }
    if b == b'x' || b == b'X' {
        c |= HEX_MARK;
    }
    c
}

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)]
        {
            t[i] = class_of(i as u8);
        }
        i += 1;
    }
    t
};

static DOUBLE_SPACE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"  "));
static COMMENT_CLOSE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"*/"));
static COMMENT_OPEN: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"/*"));

/// What one pass over a value tells about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The union of the classes ([`NOT_TOKEN`], [`ENCODED`], [`NOT_PROSE`]) of its bytes.
    pub classes: u8,
    /// Two spaces in a row, or `/*`.
    pub squeezable: bool,
}

/// [`CLASSES`] plus [`STOP`].
static STRING_SCAN: [u8; 256] = {
    let mut t = CLASSES;
    t[b'"' as usize] |= STOP;
    t[b'\\' as usize] |= STOP;
    t
};

/// From `start`, the union of the classes of the bytes before the first `"` or `\\`, and that
/// byte's index (`b.len()` if there is none): a JSON string's end and profile in one pass,
/// eight bytes at a time while no stop byte is among them.
#[must_use]
pub fn scan_string(b: &[u8], start: usize) -> (u8, usize) {
    let mut classes = 0;
    let mut i = start;
    while let Some(chunk) = b.get(i..i + 8) {
        let k = chunk
            .iter()
            .fold(0, |acc, &c| acc | STRING_SCAN[usize::from(c)]);
        if k & STOP != 0 {
            break;
        }
        classes |= k;
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        let k = STRING_SCAN[usize::from(c)];
        if k & STOP != 0 {
            break;
        }
        classes |= k;
        i += 1;
    }
    (classes, i)
}

impl Profile {
    /// Every class, nothing learnt: for a value profiled later, piece by piece.
    pub const UNKNOWN: Profile = Profile {
        classes: NOT_TOKEN | ENCODED | NOT_PROSE | HEX_MARK,
        squeezable: true,
    };

    /// One pass over `s`; the squeeze check runs only on values with a space or a `/`.
    #[must_use]
    pub fn of(s: &[u8]) -> Profile {
        Profile::with_classes(s, classes(s))
    }

    /// The profile of `s` whose classes are already known.
    #[must_use]
    pub fn with_classes(s: &[u8], classes: u8) -> Profile {
        // Both need a byte outside tokens; `/` is outside prose too.
        let squeezable = classes & NOT_TOKEN != 0
            && (DOUBLE_SPACE.find(s).is_some()
                || (classes & NOT_PROSE != 0 && COMMENT_OPEN.find(s).is_some()));
        Profile {
            classes,
            squeezable,
        }
    }
}

/// The union of the classes of `s`'s bytes ([`Profile::classes`]). Four independent
/// accumulators over eight bytes at a time keep the loads in flight.
#[must_use]
pub fn classes(s: &[u8]) -> u8 {
    let mut acc = [0u8; 4];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        acc[0] |= CLASSES[usize::from(c[0])] | CLASSES[usize::from(c[4])];
        acc[1] |= CLASSES[usize::from(c[1])] | CLASSES[usize::from(c[5])];
        acc[2] |= CLASSES[usize::from(c[2])] | CLASSES[usize::from(c[6])];
        acc[3] |= CLASSES[usize::from(c[3])] | CLASSES[usize::from(c[7])];
    }
    chunks
        .remainder()
        .iter()
        .fold(acc[0] | acc[1] | acc[2] | acc[3], |a, &b| {
            a | CLASSES[usize::from(b)]
        })
}

impl Profile {
    /// Whether normalising would only lower-case the value: ASCII with nothing to decode, no
    /// control characters, no white space but single spaces, no `/*` comment. Most honest values
    /// are; they skip every other step.
    #[must_use]
    pub fn clean(self) -> bool {
        self.classes & ENCODED == 0 && !self.squeezable
    }
}

/// Whether normalised text is prose: letters (any script), digits, spaces, line breaks and
/// `,.;!?-` (no [`NOT_PROSE`] byte). Only [`super::rules::PROSE_RULES`] can match it.
#[must_use]
pub fn is_prose(text: &[u8]) -> bool {
    text.iter()
        .all(|&b| CLASSES[usize::from(b)] & NOT_PROSE == 0)
}

/// Normalises `raw` (see the module doc).
#[must_use]
pub fn normalize(raw: &str) -> Normalized {
    normalize_profiled(raw, Profile::of(raw.as_bytes()))
}

/// [`normalize`] when the caller already has the value's [`Profile`].
#[must_use]
pub fn normalize_profiled(raw: &str, profile: Profile) -> Normalized {
    let mut traits = Traits::default();
    if profile.clean() {
        return Normalized {
            text: raw.to_ascii_lowercase(),
            traits,
        };
    }
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(raw.as_bytes());
    for _ in 0..MAX_LAYERS {
        match percent_decode(&bytes) {
            Some(decoded) => {
                traits.layers += 1;
                bytes = Cow::Owned(decoded);
            }
            None => break,
        }
    }
    let mut text: Cow<'_, str> = utf8_repair(&bytes, &mut traits);
    for _ in 0..2 {
        match decode_entities(&text) {
            Some(decoded) => text = Cow::Owned(decoded),
            None => break,
        }
    }
    if let Some(decoded) = decode_js_escapes(&text) {
        text = Cow::Owned(decoded);
    }
    if let Some(stripped) = strip_comments(&text) {
        text = Cow::Owned(stripped);
    }
    let text = if text.is_ascii() {
        squeeze_ascii(text.as_bytes(), &mut traits)
    } else {
        let folded = nfkc(&text);
        if folded.is_ascii() {
            squeeze_ascii(folded.as_bytes(), &mut traits)
        } else {
            squeeze(&folded, &mut traits)
        }
    };
    Normalized { text, traits }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_at(s: &[u8], i: usize, n: usize) -> Option<u32> {
    let digits = s.get(i..i + n)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc * 16 + u32::from(hex(b)?)))
}

/// One round of percent-decoding (`%XX` and `%uXXXX`), or `None` when there was nothing to do.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let first = memchr_percent(s)?;
    // Most `%` signs in text are not escapes: when none is, nothing is copied.
    let escape = |w: &[u8]| {
        w[0] == b'%'
            && ((w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit()) || w[1] | 0x20 == b'u')
    };
    if !s[first..].windows(3).any(escape) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len());
    out.extend_from_slice(&s[..first]);
    let mut i = first;
    let mut changed = false;
    while i < s.len() {
        if s[i] == b'%' {
            if let Some(v) = hex_at(s, i + 1, 2) {
                #[allow(clippy::cast_possible_truncation)]
                out.push(v as u8);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(s.get(i + 1), Some(b'u' | b'U')) {
                if let Some(v) = hex_at(s, i + 2, 4) {
                    let c = char::from_u32(v).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    changed = true;
                    continue;
                }
            }
        }
        // This byte, then up to the next `%`.
        let next = next_byte(s, i + 1, b'%');
        copy_run(&mut out, &s[i..next]);
        i = next;
    }
    changed.then_some(out)
}

fn memchr_percent(s: &[u8]) -> Option<usize> {
    memchr::memchr(b'%', s)
}

/// Appends `run` to `out`: short runs byte by byte (a call to copy two bytes costs more than
/// the bytes), long ones in one copy.
#[inline]
fn copy_run(out: &mut Vec<u8>, run: &[u8]) {
    if run.len() <= 16 {
        for &c in run {
            out.push(c);
        }
    } else {
        out.extend_from_slice(run);
    }
}

/// The index of the next `byte` in `b` from `from` (`b.len()` when none): the next few bytes
/// are looked at one by one, then `memchr` takes over. A flood of `byte` costs a byte-sized
/// step per occurrence instead of a search each.
fn next_byte(b: &[u8], from: usize, byte: u8) -> usize {
    let near = b.len().min(from + 16);
    match b
        .get(from..near)
        .and_then(|w| w.iter().position(|&c| c == byte))
    {
        Some(p) => from + p,
        None => b
            .get(near..)
            .and_then(|rest| memchr::memchr(byte, rest))
            .map_or(b.len(), |p| near + p),
    }
}

/// Bytes to text: valid UTF-8 as is, overlong encodings of ASCII as that ASCII character,
/// anything else invalid as U+FFFD.
fn utf8_repair<'a>(s: &'a [u8], traits: &mut Traits) -> Cow<'a, str> {
    if let Ok(text) = std::str::from_utf8(s) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match std::str::from_utf8(&s[i..]) {
            Ok(rest) => {
                out.push_str(rest);
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // `valid` bytes from `i` are UTF-8 by the error's own account.
                out.push_str(&String::from_utf8_lossy(&s[i..i + valid]));
                i += valid;
                let (c, used) = overlong(&s[i..]);
                if used > 1 {
                    traits.overlong = true;
                }
                out.push(c);
                i += used.max(1);
            }
        }
    }
    Cow::Owned(out)
}

/// Decodes an overlong encoding of an ASCII character at the start of `s` (two to six bytes
/// whose payload is under 0x80, as old IIS and some Java decoders accepted); anything else is one
/// replacement character for one byte. Lenient on the continuation bytes' top bits, like the
/// decoders these tricks target.
fn overlong(s: &[u8]) -> (char, usize) {
    let Some(&lead) = s.first() else {
        return ('\u{fffd}', 1);
    };
    let (len, payload_bits) = match lead {
        0xc0 | 0xc1 => (2, lead & 0x1f),
        0xe0 => (3, 0),
        0xf0 => (4, 0),
        0xf8 => (5, 0),
        0xfc => (6, 0),
        _ => return ('\u{fffd}', 1),
    };
    let Some(tail) = s.get(1..len) else {
        return ('\u{fffd}', 1);
    };
    // Every continuation byte but the last must carry no bits for an ASCII result.
    let (last, middle) = tail.split_last().unwrap_or((&0, &[]));
    let high_clear = middle.iter().all(|&b| b.trailing_zeros() >= 6 || len == 2);
    let v = (u32::from(payload_bits) << 6) | u32::from(last & 0x3f);
    if !high_clear || v >= 0x80 || tail.iter().any(|&b| b & 0xc0 != 0x80 && b & 0xc0 != 0x00) {
        return ('\u{fffd}', 1);
    }
    (char::from_u32(v).unwrap_or('\u{fffd}'), len)
}

/// The named references worth decoding: everything that is markup or script syntax. `name` is
/// lower case.
/// The names decoded, lower case (the character references that matter in markup and scripts).
const NAMED: [(&[u8], char); 37] = [
    (b"lt", '<'),
    (b"gt", '>'),
    (b"amp", '&'),
    (b"quot", '"'),
    (b"apos", '\''),
    (b"sol", '/'),
    (b"bsol", '\\'),
    (b"lpar", '('),
    (b"rpar", ')'),
    (b"lsqb", '['),
    (b"rsqb", ']'),
    (b"lbrack", '['),
    (b"rbrack", ']'),
    (b"lcub", '{'),
    (b"rcub", '}'),
    (b"lbrace", '{'),
    (b"rbrace", '}'),
    (b"colon", ':'),
    (b"semi", ';'),
    (b"comma", ','),
    (b"period", '.'),
    (b"excl", '!'),
    (b"quest", '?'),
    (b"equals", '='),
    (b"plus", '+'),
    (b"num", '#'),
    (b"dollar", '$'),
    (b"percnt", '%'),
    (b"ast", '*'),
    (b"grave", '`'),
    (b"verbar", '|'),
    (b"vert", '|'),
    (b"hyphen", '-'),
    (b"lowbar", '_'),
    (b"tab", '\t'),
    (b"newline", '\n'),
    (b"nbsp", ' '),
];

/// A name of at most eight ASCII bytes as a number: compared in one instruction.
fn entity_key(name: &[u8]) -> u64 {
    name.iter()
        .take(8)
        .enumerate()
        .fold(0, |k, (i, &b)| k | (u64::from(b) << (8 * i)))
}

/// The character a reference name stands for (`name` lower case, 2 to 8 bytes).
fn named_entity(name: &[u8]) -> Option<char> {
    static KEYS: LazyLock<Vec<(u64, char)>> = LazyLock::new(|| {
        let mut keys: Vec<(u64, char)> = NAMED.iter().map(|&(n, c)| (entity_key(n), c)).collect();
        keys.sort_unstable();
        keys
    });
    let key = entity_key(name);
    KEYS.binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| KEYS[i].1)
}

/// One round of HTML character-reference decoding, or `None` when nothing was decoded.
fn decode_entities(s: &str) -> Option<String> {
    let first = memchr::memchr(b'&', s.as_bytes())?;
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'&' {
            if let Some((c, used)) = entity_at(&b[i + 1..]) {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1 + used;
                changed = true;
                continue;
            }
        }
        // This byte, then up to the next `&` (ASCII: runs keep whole characters).
        let next = next_byte(b, i + 1, b'&');
        copy_run(&mut out, &b[i..next]);
        i = next;
    }
    if !changed {
        return None;
    }
    // Whole characters copied, decoded references pushed as UTF-8: valid.
    String::from_utf8(out).ok()
}

/// The reference after a `&`: the character and the bytes it used (`;` included when present).
fn entity_at(s: &[u8]) -> Option<(char, usize)> {
    let first = *s.first()?;
    if !(first == b'#' || first.is_ascii_alphabetic()) {
        return None;
    }
    if first == b'#' {
        let (radix, start) = match s.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let mut v: u32 = 0;
        let mut n = start;
        // Leading zeros are free (attackers pad with them); seven significant digits at most.
        let mut significant = 0;
        while let Some(d) = s.get(n).and_then(|&c| char::from(c).to_digit(radix)) {
            if v > 0 || d > 0 {
                significant += 1;
            }
            if significant > 7 {
                return None;
            }
            v = v * radix + d;
            n += 1;
        }
        if n == start {
            return None;
        }
        if s.get(n) == Some(&b';') {
            n += 1;
        }
        return Some((char::from_u32(v).unwrap_or('\u{fffd}'), n));
    }
    let len = s
        .iter()
        .take(8)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if len < 2 {
        return None;
    }
    let mut name = [0u8; 8];
    for (d, c) in name.iter_mut().zip(&s[..len]) {
        *d = c.to_ascii_lowercase();
    }
    // Longest name first, so `&lbrack;` is not read as `&lb…`; names are matched case-insensitively
    // (browsers do not, but `&LT;` is a classic filter dodge some of them accepted).
    for end in (2..=len).rev() {
        if let Some(c) = named_entity(&name[..end]) {
            let used = if s.get(end) == Some(&b';') {
                end + 1
            } else {
                end
            };
            return Some((c, used));
        }
    }
    None
}

/// `\xHH` and `\uHHHH` (also `\u{HH}`) escapes that stand for ASCII, as JavaScript and many
/// template languages read them. Others are left alone (`C:\xampp` stays a path).
fn decode_js_escapes(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let first = memchr::memchr(b'\\', b)?;
    // Most backslashes are not `\x`/`\u` escapes: when none is, nothing is copied.
    if !b[first..]
        .windows(2)
        .any(|w| w[0] == b'\\' && matches!(w[1], b'x' | b'u'))
    {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'\\' {
            let escaped = match b.get(i + 1) {
                Some(b'x') => hex_at(b, i + 2, 2).map(|v| (v, 4)),
                Some(b'u') if b.get(i + 2) == Some(&b'{') => {
                    let close = b[i + 3..].iter().take(7).position(|&c| c == b'}');
                    close.and_then(|n| hex_at(b, i + 3, n).map(|v| (v, n + 4)))
                }
                Some(b'u') => hex_at(b, i + 2, 4).map(|v| (v, 6)),
                _ => None,
            };
            if let Some((v, used)) = escaped.filter(|&(v, _)| v > 0 && v < 0x80) {
                #[allow(clippy::cast_possible_truncation)]
                out.push(v as u8);
                i += used;
                changed = true;
                continue;
            }
        }
        // This byte, then up to the next backslash.
        let next = next_byte(b, i + 1, b'\\');
        copy_run(&mut out, &b[i..next]);
        i = next;
    }
    if !changed {
        return None;
    }
    // Only ASCII escapes were replaced, by ASCII bytes, in valid UTF-8: still valid.
    String::from_utf8(out).ok()
}

/// SQL block comments to one space; `MySQL`'s `/*!50000 … */` keeps its content (`MySQL` runs
/// it).
/// `None` when there is no comment.
fn strip_comments(s: &str) -> Option<String> {
    let first = COMMENT_OPEN.find(s.as_bytes())?;
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while let Some(pos) = COMMENT_OPEN.find(rest.as_bytes()) {
        out.push_str(&rest[..pos]);
        let body = &rest[pos + 2..];
        let (inner, after) = match COMMENT_CLOSE.find(body.as_bytes()) {
            Some(e) => (&body[..e], &body[e + 2..]),
            None => (body, ""),
        };
        out.push(' ');
        if let Some(kept) = inner.strip_prefix('!') {
            out.push_str(kept.trim_start_matches(|c: char| c.is_ascii_digit()));
            out.push(' ');
        }
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

/// [`squeeze`] for ASCII text, lower-casing on the way: one pass over bytes.
fn squeeze_ascii(s: &[u8], traits: &mut Traits) -> String {
    // Bytes that are kept, lower-cased: everything but white space and control characters.
    let plain = |b: u8| b > b' ' && b != 0x7f;
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut space = false;
    let mut i = 0;
    while i < s.len() {
        let run = s[i..]
            .iter()
            .position(|&b| !plain(b))
            .map_or(s.len(), |p| i + p);
        if run > i {
            out.extend(s[i..run].iter().map(u8::to_ascii_lowercase));
            space = false;
            i = run;
            continue;
        }
        match s[i] {
            0 => traits.null_byte = true,
            b'\r' | b'\n' => {
                traits.newline = true;
                if space && out.last() == Some(&b' ') {
                    out.pop();
                }
                if out.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
                space = true;
            }
            b' ' | b'\t' | 0x0b | 0x0c if !space => {
                out.push(b' ');
                space = true;
            }
            _ => {}
        }
        i += 1;
    }
    // Only ASCII bytes were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Null bytes out, white space and control characters squeezed to one space, SQL block comments
/// to one space. Records null bytes and line breaks in `traits`.
fn squeeze(s: &str, traits: &mut Traits) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c == '\0' {
            traits.null_byte = true;
            continue;
        }
        if c == '\r' || c == '\n' {
            traits.newline = true;
            // A run of white space holding a line break is one `\n` (header injection needs it).
            if space && out.ends_with(' ') {
                out.pop();
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
            space = true;
        } else if c.is_control() && !c.is_whitespace() {
            // Other control characters split nothing for the targets (`..\x01/` is `../`).
        } else if c.is_whitespace() {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else if char_flags(c) & LOWERS != 0 {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
            space = false;
        }
    }
    out
}

/// [`char_flags`]: the character may read differently in NFKC (it has a compatibility or
/// canonical mapping, or may combine with the character before it).
const NFKC_CHANGES: u8 = 1;
/// [`char_flags`]: the character has a lower-case form other than itself.
const LOWERS: u8 = 2;
/// Characters below this have their flags in a table; above, both flags are assumed.
const FLAGGED_BELOW: u32 = 0x2_0000;

/// What normalisation can do to `c` ([`NFKC_CHANGES`], [`LOWERS`]), from a table made once
/// from the Unicode data itself: one look-up per character instead of running the NFKC
/// algorithm (about 30 ns a character) over text it would leave as it is.
fn char_flags(c: char) -> u8 {
    static TABLE: LazyLock<Box<[u8]>> = LazyLock::new(|| {
        (0..FLAGGED_BELOW)
            .map(|u| {
                let Some(c) = char::from_u32(u) else {
                    return 0;
                };
                let mut f = 0;
                let stable = c.is_ascii()
                    || (std::iter::once(c).nfkc().eq(std::iter::once(c))
                        && unicode_normalization::is_nfkc_quick(std::iter::once(c))
                            == unicode_normalization::IsNormalized::Yes
                        && !unicode_normalization::char::is_combining_mark(c));
                if !stable {
                    f |= NFKC_CHANGES;
                }
                if !c.to_lowercase().eq(std::iter::once(c)) {
                    f |= LOWERS;
                }
                f
            })
            .collect()
    });
    usize::try_from(u32::from(c))
        .ok()
        .and_then(|i| TABLE.get(i).copied())
        .unwrap_or(NFKC_CHANGES | LOWERS)
}

/// NFKC, applied only where it can change something: around each run of characters it may
/// change (from the starter before the run, which the run may combine with, to the run's end).
/// Everything between is NFKC already and is copied.
fn nfkc(s: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    // Bytes of `s` already in `out`; where the last character NFKC leaves alone starts.
    let mut copied = 0;
    let mut starter = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_ascii() || char_flags(c) & NFKC_CHANGES == 0 {
            starter = i;
            continue;
        }
        let start = starter.max(copied);
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_ascii() || char_flags(d) & NFKC_CHANGES == 0 {
                break;
            }
            end = j + d.len_utf8();
            chars.next();
        }
        let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(&s[copied..start]);
        o.extend(s[start..end].nfkc());
        copied = end;
        starter = end;
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).text
    }

    #[test]
    fn plain_values_are_only_lowercased() {
        assert_eq!(n("Hello World"), "hello world");
        assert_eq!(normalize("abc").traits, Traits::default());
    }

    #[test]
    fn percent_decoding_is_repeated_and_bounded() {
        assert_eq!(n("%253Cscript%253E"), "<script>");
        let t = normalize("%2525252e").traits;
        assert_eq!(t.layers, MAX_LAYERS);
        assert_eq!(n("%u003cSVG%u003e"), "<svg>");
        assert_eq!(n("100%"), "100%");
        assert_eq!(n("%zz%4"), "%zz%4");
    }

    #[test]
    fn overlong_utf8_becomes_the_ascii_it_hides() {
        let r = normalize("..%c0%af..%c0%afetc");
        assert_eq!(r.text, "../../etc");
        assert!(r.traits.overlong);
        assert_eq!(n("%e0%80%ae%e0%80%ae/"), "../");
        assert_eq!(n("..%f0%80%80%af..%f8%80%80%80%afetc"), "../../etc");
        assert_eq!(n("%ff"), "\u{fffd}");
        assert!(!normalize("H%d5DJe").traits.overlong);
    }

    #[test]
    fn every_named_reference_decodes_in_any_case() {
        for (name, c) in NAMED {
            let name = std::str::from_utf8(name).unwrap_or_default();
            for spelled in [
                format!("&{name};"),
                format!("&{};", name.to_ascii_uppercase()),
            ] {
                assert_eq!(decode_entities(&spelled), Some(c.to_string()), "{spelled}");
            }
        }
        assert_eq!(decode_entities("&ampx"), Some("&x".to_owned()));
        assert_eq!(decode_entities("&zz;"), None);
    }

    #[test]
    fn html_references_named_and_numeric() {
        assert_eq!(
            n("&lt;img src=x onerror=alert&lpar;1&rpar;&gt;"),
            "<img src=x onerror=alert(1)>"
        );
        assert_eq!(n("&#x6A;&#0000097;vascript&colon;"), "javascript:");
        assert_eq!(n("&#106&#97"), "ja");
        assert_eq!(n("&amp;lt;"), "<");
        assert_eq!(n("Tom & Jerry"), "tom & jerry");
        assert_eq!(n("&#99999999999;x"), "&#99999999999;x");
    }

    #[test]
    fn decoded_references_before_multibyte_characters() {
        for s in [
            "&lt;é",
            "&ltÉ",
            "&#60é",
            "a&amp;\u{3000}",
            "\\x41é",
            "\\u0041é",
            "\\u{41}é",
        ] {
            let _ = normalize(s);
        }
        assert_eq!(n("&lt;é"), "<é");
        assert_eq!(n("\\x41é"), "aé");
        assert_eq!(n("/*!a\0b  c*/"), " ab c ");
    }

    #[test]
    fn js_escapes_only_for_ascii() {
        assert_eq!(n("\\x3cscript\\u003e"), "<script>");
        assert_eq!(n("C:\\xampp\\htdocs"), "c:\\xampp\\htdocs");
        assert_eq!(n("\\u{3c}a"), "<a");
    }

    #[test]
    fn nfkc_and_case() {
        assert_eq!(n("＜ＳＣＲＩＰＴ＞"), "<script>");
        assert_eq!(n("ÉCOLE"), "école");
    }

    #[test]
    fn whitespace_nulls_and_comments() {
        let r = normalize("UNION/**/SELECT\t\n 1%00");
        assert_eq!(r.text, "union select\n1");
        assert!(r.traits.null_byte && r.traits.newline);
        assert_eq!(n("/*!50000union*/ select"), " union select");
        assert_eq!(n("a /* unterminated"), "a ");
    }
}

#[cfg(test)]
mod nfkc_props {
    use proptest::prelude::*;
    use unicode_normalization::UnicodeNormalization;

    /// Characters that exercise NFKC: ASCII, Latin with and without marks, combining marks,
    /// Hangul syllables and jamo, full-width and compatibility forms, ligatures, math letters.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range(' ', '~'),
            proptest::char::range('\u{c0}', '\u{24f}'),
            proptest::char::range('\u{300}', '\u{36f}'),
            proptest::char::range('\u{1100}', '\u{11ff}'),
            proptest::char::range('\u{ac00}', '\u{ac40}'),
            proptest::char::range('\u{ff01}', '\u{ff5e}'),
            proptest::char::range('\u{fb00}', '\u{fb06}'),
            proptest::char::range('\u{2000}', '\u{2bff}'),
            proptest::char::range('\u{1d400}', '\u{1d420}'),
            any::<char>(),
        ]
    }

    proptest! {
        /// NFKC applied around the characters it can change is NFKC of the whole; lower-casing
        /// character by character is `str::to_lowercase` (but for the final sigma, which no
        /// rule reads).
        #[test]
        fn selective_nfkc_is_nfkc(chars in proptest::collection::vec(tricky_char(), 0..40)) {
            let s: String = chars.into_iter().collect();
            let whole: String = s.nfkc().collect();
            let selective = super::nfkc(&s);
            prop_assert_eq!(selective.as_ref(), whole.as_str());
            let lowered: String = whole
                .chars()
                .flat_map(|c| {
                    let v: Vec<char> = if super::char_flags(c) & super::LOWERS != 0 || c.is_ascii() {
                        c.to_lowercase().collect()
                    } else {
                        vec![c]
                    };
                    v
                })
                .collect();
            prop_assert_eq!(lowered.replace('ς', "σ"), whole.to_lowercase().replace('ς', "σ"));
        }
    }
}
