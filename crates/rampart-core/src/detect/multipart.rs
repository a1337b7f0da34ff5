//! `multipart/form-data` and header parameters, read the way Werkzeug reads them (what a Flask
//! view gets in `request.form` and `request.files`).
//!
//! - [`options`]: a header value with `; key=value` parameters (`Content-Type`,
//!   `Content-Disposition`): token or quoted values (a `;` inside quotes is not a separator,
//!   `\"` and `%22` are quotes), RFC 2231 `key*=charset'lang'value` and `key*0=` continuations
//!   (charsets `ascii`, `us-ascii`, `utf-8`, `iso-8859-1` only), keys lower-cased, the last
//!   occurrence of a key winning;
//! - [`boundary`]: the `boundary` parameter of a content type;
//! - [`each_part`]: the parts of a body. A delimiter is `--BOUNDARY` after a line break (`\r\n`,
//!   `\n` or `\r`; the first one may start the body), then optional white space and a line
//!   break, or `--` for the last. A part's headers end at the first blank line (`\r\n\r\n`,
//!   `\r\r` or `\n\n`); folded header lines are joined; names match whatever their case. A part
//!   is a file when its `Content-Disposition` has a `filename` parameter (even empty); a text
//!   field is decoded with its `Content-Type`'s charset when that is one of the four above, as
//!   UTF-8 otherwise. Nothing after the closing delimiter is a part.
//!
//! Where a reader could take a request two ways, [`each_part`] and [`boundary`] say so (the
//! request is then refused as ambiguous): two different `boundary` parameters, a part with two
//! `Content-Disposition` headers, a disposition naming a part or its file twice, differently.
//! Everything runs in time linear in the input.

use std::borrow::Cow;
use std::collections::HashMap;

/// The charsets Werkzeug decodes header parameters and text fields with (any other is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Ascii,
    Latin1,
}

impl Charset {
    /// `utf-8`, `ascii`, `us-ascii`, `iso-8859-1` (already lower-cased); `None` for any other.
    #[must_use]
    pub fn named(name: &str) -> Option<Charset> {
        match name {
            "utf-8" => Some(Charset::Utf8),
            "ascii" | "us-ascii" => Some(Charset::Ascii),
            "iso-8859-1" => Some(Charset::Latin1),
            _ => None,
        }
    }

    /// `bytes` decoded, each invalid sequence replaced by U+FFFD (Python's `errors="replace"`).
    #[must_use]
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Ascii => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => Cow::Borrowed(s),
                _ => Cow::Owned(
                    bytes
                        .iter()
                        .map(|&b| {
                            if b.is_ascii() {
                                char::from(b)
                            } else {
                                '\u{fffd}'
                            }
                        })
                        .collect(),
                ),
            },
            Charset::Latin1 => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => Cow::Borrowed(s),
                _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
            },
        }
    }
}

/// A header value's parameters, as [`options`] reads them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// The value before the first `;`, trimmed (`form-data`, `text/plain`).
    pub value: String,
    params: HashMap<String, String>,
    /// Keys set more than once to different values.
    conflicts: Vec<String>,
}

impl Options {
    /// The parameter `key` (lower case), if given.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Whether `key` was given more than once, with different values.
    #[must_use]
    pub fn conflicting(&self, key: &str) -> bool {
        self.conflicts.iter().any(|k| k == key)
    }
}

/// RFC 9110 `tchar`: the characters of a parameter key or token value.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'_' | b'!'
                | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn trim_sp_tab(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses `value; key=value; key="quoted"; key*=utf-8''percent%20encoded`.
#[must_use]
pub fn options(header: &str) -> Options {
    let (value, rest) = header.split_once(';').unwrap_or((header, ""));
    let value = trim_sp_tab(value);
    let rest = trim_sp_tab(rest);
    let mut out = Options {
        value: value.to_owned(),
        ..Options::default()
    };
    if value.is_empty() || rest.is_empty() {
        return out;
    }
    // The raw `key=value` parts, values still quoted.
    let b = rest.as_bytes();
    let mut parts: Vec<(String, &str)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key_end = i + b[i..].iter().take_while(|&&c| is_tchar(c)).count();
        if key_end > i && b.get(key_end) == Some(&b'=') {
            let key = rest[i..key_end].to_ascii_lowercase();
            i = key_end + 1;
            let token_end = i + b[i..].iter().take_while(|&&c| is_tchar(c)).count();
            if token_end > i {
                parts.push((key, &rest[i..token_end]));
                i = token_end;
            } else if b.get(i) == Some(&b'"') {
                let mut q = i + 1;
                let mut closed = false;
                while q < b.len() {
                    match (b[q], b.get(q + 1)) {
                        (b'\\', Some(b'\\' | b'"')) => q += 2,
                        (b'"', _) => {
                            q += 1;
                            closed = true;
                            break;
                        }
                        _ => q += 1,
                    }
                }
                if !closed {
                    // An unterminated quote ends the parameters.
                    break;
                }
                parts.push((key, &rest[i..q]));
                i = q;
            }
        }
        // On to the next `;` (wherever it is), and past the white space after it.
        let Some(semi) = memchr::memchr(b';', &b[i.min(b.len())..]) else {
            break;
        };
        i += semi + 1;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
    }

    let mut continuations: HashMap<String, String> = HashMap::new();
    let mut continuation_charsets: HashMap<String, String> = HashMap::new();
    // Every value each key was set to, for conflicts: (the plain values, whether they differ).
    let mut plain: HashMap<String, String> = HashMap::new();
    for (key, raw) in parts {
        let (base, continued, charset) = split_marks(&key);
        let mut encoding: Option<String> = None;
        let value: String = if charset {
            let mut v: Cow<'_, str> = Cow::Borrowed(raw);
            if let Some((cs, rest)) = charset_value(raw) {
                encoding = Some(cs.to_ascii_lowercase());
                v = Cow::Borrowed(rest);
            }
            if encoding.as_deref().is_none_or(str::is_empty) && continued {
                encoding = continuation_charsets.get(base).cloned();
            }
            match encoding.as_deref().and_then(Charset::named) {
                Some(cs) => percent_unquote(&v, cs).into_owned(),
                None => v.into_owned(),
            }
        } else {
            unquote_header_value(raw).replace("%22", "\"")
        };
        if continued {
            out.params.remove(base);
            continuations
                .entry(base.to_owned())
                .or_default()
                .push_str(&value);
            if let Some(e) = encoding.filter(|e| !e.is_empty()) {
                continuation_charsets.insert(base.to_owned(), e);
            }
        } else {
            if continuations.remove(base).is_some_and(|c| c != value) {
                out.conflicts.push(base.to_owned());
            }
            continuation_charsets.remove(base);
            match plain.get(base) {
                Some(before) if *before != value => out.conflicts.push(base.to_owned()),
                _ => {}
            }
            plain.insert(base.to_owned(), value.clone());
            out.params.insert(base.to_owned(), value);
        }
    }
    for (key, value) in continuations {
        if plain.get(&key).is_some_and(|p| *p != value) {
            out.conflicts.push(key.clone());
        }
        out.params.insert(key, value);
    }
    out
}

/// `key*0*` → (`key`, continued, charset-marked): RFC 2231's marks at the end of a key.
fn split_marks(key: &str) -> (&str, bool, bool) {
    let mut base = key;
    let charset = base.ends_with('*');
    if charset {
        base = &base[..base.len() - 1];
    }
    let digits = base.bytes().rev().take_while(u8::is_ascii_digit).count();
    let continued = digits > 0 && base[..base.len() - digits].ends_with('*');
    if continued {
        base = &base[..base.len() - digits - 1];
    }
    (base, continued, charset)
}

/// `charset'language'value` (RFC 2231): the charset and the value; `None` when `raw` is not
/// of that form.
fn charset_value(raw: &str) -> Option<(&str, &str)> {
    let plain = |s: &str| s.bytes().all(|c| is_tchar(c) && c != b'\'');
    let (charset, rest) = raw.split_once('\'')?;
    let (language, value) = rest.split_once('\'')?;
    (plain(charset) && plain(language) && !value.is_empty() && value.bytes().all(is_tchar))
        .then_some((charset, value))
}

/// Removes the quotes around a quoted value and the backslashes of its escapes.
fn unquote_header_value(raw: &str) -> Cow<'_, str> {
    let inner = match super::cookie::quoted_inner(raw) {
        Ok(plain) => return Cow::Borrowed(plain),
        Err(inner) => inner,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\n') => out.push_str("\\\n"),
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Percent-decoding as Python's `urllib.parse.unquote(s, charset, errors="replace")`: escapes
/// are decoded within runs of ASCII characters, each run decoded on its own.
#[must_use]
pub fn percent_unquote(s: &str, charset: Charset) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<u8> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !c.is_ascii() {
            out.push_str(&charset.decode(&run));
            run.clear();
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        if c == b'%' {
            if let Some(v) = hex_pair(b, i + 1) {
                run.push(v);
                i += 3;
                continue;
            }
        }
        run.push(c);
        i += 1;
    }
    out.push_str(&charset.decode(&run));
    Cow::Owned(out)
}

/// The byte two hex digits at `b[i..i + 2]` spell.
#[must_use]
pub fn hex_pair(b: &[u8], i: usize) -> Option<u8> {
    let hi = char::from(*b.get(i)?).to_digit(16)?;
    let lo = char::from(*b.get(i + 1)?).to_digit(16)?;
    u8::try_from(hi * 16 + lo).ok()
}

/// The `boundary` parameter of a multipart content type, as Werkzeug reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    /// `None` when absent or empty.
    pub value: Option<String>,
    /// Given twice, differently: readers may pick either.
    pub ambiguous: bool,
}

/// The `boundary` of `content_type`.
#[must_use]
pub fn boundary(content_type: &str) -> Boundary {
    let o = options(content_type);
    Boundary {
        value: o
            .get("boundary")
            .filter(|b| !b.is_empty())
            .map(str::to_owned),
        ambiguous: o.conflicting("boundary"),
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
pub struct Part<'a> {
    /// The form field's name (`name=` of `Content-Disposition`; empty when absent).
    pub name: &'a str,
    /// Set when the disposition has a `filename` parameter: the part is a file.
    pub filename: Option<&'a str>,
    /// The part's `Content-Type`, lower-cased (empty when absent).
    pub content_type: &'a str,
    /// The charset a text field is decoded with.
    pub charset: Charset,
    pub content: &'a [u8],
}

impl Part<'_> {
    /// The content as the application reads a text field.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        self.charset.decode(self.content)
    }
}

/// Multipart line breaks: `\r\n`, `\n` or `\r`; the length of the one at `b[i]` (0: none).
fn line_break(b: &[u8], i: usize) -> usize {
    match (b.get(i), b.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\r' | b'\n'), _) => 1,
        _ => 0,
    }
}

/// Werkzeug reads a body in chunks of this size, and loses a delimiter line whose white space
/// (two bytes or more) a chunk ends in: it takes the line for content, and two parts for one.
/// In a body that is read in more than one chunk, such padding is refused as ambiguous.
const CHUNK: usize = 64 * 1024;

/// A delimiter: where it starts, where what follows it starts, whether it is the last.
struct Delimiter {
    start: usize,
    end: usize,
    last: bool,
    padded: bool,
}

/// The first delimiter that starts at or after `from`; `needs_break`: it must start with a line
/// break (all but the first of a body).
fn find_delimiter(
    body: &[u8],
    dash_boundary: &[u8],
    finder: &memchr::memmem::Finder<'_>,
    from: usize,
    needs_break: bool,
) -> Option<Delimiter> {
    let mut at = from;
    while let Some(found) = body.get(at..).and_then(|rest| finder.find(rest)) {
        let q = at + found;
        at = q + 1;
        let start = if q >= 2 && body[q - 2] == b'\r' && body[q - 1] == b'\n' && q - 2 >= from {
            q - 2
        } else if q > from && matches!(body[q - 1], b'\r' | b'\n') {
            q - 1
        } else if needs_break {
            continue;
        } else {
            q
        };
        let after = q + dash_boundary.len();
        if body[after..].starts_with(b"--") {
            return Some(Delimiter {
                start,
                end: body.len(),
                last: true,
                padded: false,
            });
        }
        let pad = body[after..]
            .iter()
            .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c'))
            .count();
        let lb = line_break(body, after + pad);
        if lb > 0 {
            return Some(Delimiter {
                start,
                end: after + pad + lb,
                last: false,
                padded: pad >= 2 && body.len() > CHUNK,
            });
        }
    }
    None
}

/// The first blank line at or after `from`: (its start, its end).
fn blank_line(body: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(off) = body.get(i..).and_then(|r| memchr::memchr2(b'\r', b'\n', r)) {
        let p = i + off;
        let rest = &body[p..];
        if rest.starts_with(b"\r\n\r\n") {
            return Some((p, p + 4));
        }
        if rest.starts_with(b"\r\r") || rest.starts_with(b"\n\n") {
            return Some((p, p + 2));
        }
        i = p + 1;
    }
    None
}

/// A part's header block as lines `(name, value)`: folded lines joined with a space, split on
/// any line break, names and values trimmed of spaces and tabs.
fn header_lines(head: &[u8]) -> Vec<(String, String)> {
    let mut joined = Vec::with_capacity(head.len());
    let mut i = 0;
    while i < head.len() {
        let lb = line_break(head, i);
        if lb > 0 && matches!(head.get(i + lb), Some(b' ' | b'\t')) {
            joined.push(b' ');
            i += lb + 1;
            continue;
        }
        joined.push(head[i]);
        i += 1;
    }
    let text = String::from_utf8_lossy(&joined);
    text.split(['\r', '\n'])
        .map(trim_sp_tab)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or((l, ""));
            (trim_sp_tab(n).to_owned(), trim_sp_tab(v).to_owned())
        })
        .collect()
}

/// Whether header `name` is `want` (lower case), case-insensitively as Python's `str.lower`.
fn header_is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want) || (!name.is_ascii() && name.to_lowercase() == want)
}

/// Calls `f` on each part of a multipart body, in order, until it returns `false`. A part
/// whose closing delimiter is missing (a truncated body) ends at the end of the body.
///
/// Returns why the body can be read more than one way, if it can (the parts are still given,
/// as Werkzeug reads them).
pub fn each_part(
    body: &[u8],
    boundary: &str,
    mut f: impl FnMut(&Part<'_>) -> bool,
) -> Option<String> {
    let dash_boundary = format!("--{boundary}");
    let dash_boundary = dash_boundary.as_bytes();
    let finder = memchr::memmem::Finder::new(dash_boundary);
    let mut ambiguous: Option<String> = None;
    let mut note = |why: &str| {
        if ambiguous.is_none() {
            ambiguous = Some(format!("multipart: {why}"));
        }
    };
    let first = find_delimiter(body, dash_boundary, &finder, 0, false)?;
    if first.padded {
        note("white space after a boundary in a body over 64 KiB");
    }
    if first.last {
        return ambiguous;
    }
    let mut pos = first.end;
    while let Some((blank_start, blank_end)) = blank_line(body, pos) {
        let lines = header_lines(&body[pos..blank_start]);
        let headers_end = usize::midpoint(blank_start, blank_end);
        let data_start = headers_end + line_break(body, headers_end);
        let mut dispositions = lines
            .iter()
            .filter(|(n, _)| header_is(n, "content-disposition"));
        let disposition = dispositions.next().map(|(_, v)| options(v));
        if dispositions.next().is_some() {
            note("a part with two Content-Disposition headers");
        }
        let disposition = disposition.unwrap_or_default();
        for key in ["name", "filename"] {
            if disposition.conflicting(key) {
                note(&format!("a part with two {key} parameters"));
            }
        }
        let content_type = lines
            .iter()
            .find(|(n, _)| header_is(n, "content-type"))
            .map_or(String::new(), |(_, v)| v.to_ascii_lowercase());
        let charset = if content_type.is_empty() {
            Charset::Utf8
        } else {
            options(&content_type)
                .get("charset")
                .and_then(|c| Charset::named(&c.to_ascii_lowercase()))
                .unwrap_or(Charset::Utf8)
        };
        let next = find_delimiter(body, dash_boundary, &finder, headers_end, true);
        let content_end = next
            .as_ref()
            .map_or(body.len(), |d| d.start.max(data_start));
        let part = Part {
            name: disposition.get("name").unwrap_or(""),
            filename: disposition.get("filename"),
            content_type: &content_type,
            charset,
            content: body.get(data_start..content_end).unwrap_or_default(),
        };
        if !f(&part) {
            break;
        }
        match next {
            Some(d) if !d.last => {
                if d.padded {
                    note("white space after a boundary in a body over 64 KiB");
                }
                pos = d.end;
            }
            _ => break,
        }
    }
    ambiguous
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (Vec<(String, Option<String>, String)>, Option<String>);

    fn parts(body: &[u8], boundary: &str) -> Parsed {
        let mut out = Vec::new();
        let why = each_part(body, boundary, |p| {
            out.push((
                p.name.to_owned(),
                p.filename.map(str::to_owned),
                p.text().into_owned(),
            ));
            true
        });
        (out, why)
    }

    #[test]
    fn options_quoted_escaped_and_rfc2231() {
        let o = options(r#"form-data; name="a;filename=x"; x=1"#);
        assert_eq!(o.value, "form-data");
        assert_eq!(o.get("name"), Some("a;filename=x"));
        assert_eq!(o.get("filename"), None);
        let o = options(r#"form-data; NAME="a\"b%22c\\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"#);
        assert_eq!(o.get("name"), Some("a\"b\"c\\"));
        assert_eq!(o.get("filename"), Some("été.txt"));
        let o = options("form-data; filename*0*=utf-8''a%20; filename*1=b; filename*2=\"c\"");
        assert_eq!(o.get("filename"), Some("a bc"));
        let o = options("form-data; filename*=utf-16''abc");
        assert_eq!(o.get("filename"), Some("abc"));
        // A key followed by a space is skipped up to the next `;`, wherever it is.
        let o = options(r#"form-data; name ="x;filename=y""#);
        assert_eq!(o.get("name"), None);
        assert_eq!(o.get("filename"), Some("y"));
        // An unterminated quote ends the parameters.
        let o = options(r#"form-data; name="x; filename=y"#);
        assert_eq!(o.get("name"), None);
        assert_eq!(options("text/plain").get("charset"), None);
        assert_eq!(options("; name=x").get("name"), None);
    }

    #[test]
    fn conflicting_parameters() {
        assert!(options("form-data; name=a; name=b").conflicting("name"));
        assert!(!options("form-data; name=a; name=a").conflicting("name"));
        assert!(options("form-data; filename=a; filename*=utf-8''b").conflicting("filename"));
        let b = boundary("multipart/form-data; boundary=a; boundary=b");
        assert!(b.ambiguous);
        assert_eq!(b.value.as_deref(), Some("b"));
        let b = boundary("multipart/form-data; boundary=\"a b\"");
        assert_eq!(b.value.as_deref(), Some("a b"));
        assert!(!b.ambiguous);
        assert_eq!(boundary("multipart/form-data").value, None);
    }

    #[test]
    fn line_breaks_of_every_kind() {
        for lb in ["\r\n", "\n", "\r"] {
            let body = format!(
                "pre{lb}--B{lb}Content-Disposition: form-data; name=a{lb}{lb}one{lb}--B  {lb}\
                 content-disposition: form-data; name=\"f\"; filename=\"x.txt\"{lb}\
                 Content-Type: text/plain{lb}{lb}two{lb}--B--{lb}epilogue"
            );
            let (got, why) = parts(body.as_bytes(), "B");
            assert_eq!(why, None);
            assert_eq!(
                got,
                [
                    ("a".to_owned(), None, "one".to_owned()),
                    ("f".to_owned(), Some("x.txt".to_owned()), "two".to_owned())
                ],
                "{lb:?}"
            );
        }
    }

    #[test]
    fn charsets_folding_and_ambiguity() {
        let body = b"--B\r\nContent-Disposition: form-data;\r\n name=a\r\n\
            Content-Type: text/plain; charset=ISO-8859-1\r\n\r\n\xe9\r\n--B\r\n\
            Content-Disposition: form-data; name=b\r\nContent-Type: text/plain; charset=utf-16\r\n\
            \r\n\xc3\xa9\r\n--B--\r\n";
        let (got, why) = parts(body, "B");
        assert_eq!(why, None);
        assert_eq!(got[0], ("a".to_owned(), None, "é".to_owned()));
        assert_eq!(got[1], ("b".to_owned(), None, "é".to_owned()));
        let body = b"--B\r\nContent-Disposition: form-data; name=a\r\n\
            Content-Disposition: form-data; name=b; filename=c\r\n\r\nx\r\n--B--\r\n";
        let (got, why) = parts(body, "B");
        assert_eq!(got[0].0, "a");
        assert!(why.is_some_and(|w| w.contains("two Content-Disposition")));
    }

    #[test]
    fn padding_in_a_body_of_several_chunks_is_ambiguous() {
        let part = |pad: &str| {
            format!("--B{pad}\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--B--\r\n")
        };
        assert_eq!(parts(part("  ").as_bytes(), "B").1, None);
        let big = format!("{}{}", "p".repeat(CHUNK), part("  "));
        assert!(parts(big.as_bytes(), "B")
            .1
            .is_some_and(|w| w.contains("white space")));
        let big = format!("{}{}", "p".repeat(CHUNK), part(" "));
        assert_eq!(parts(big.as_bytes(), "B").1, None);
    }

    #[test]
    fn missing_end_and_empty_parts() {
        let (got, _) = parts(
            b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nrest",
            "B",
        );
        assert_eq!(got, [("a".to_owned(), None, "rest".to_owned())]);
        let (got, _) = parts(
            b"--B--\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
            "B",
        );
        assert!(got.is_empty());
        let (got, _) = parts(
            b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--B--",
            "B",
        );
        assert_eq!(got, [("a".to_owned(), None, String::new())]);
    }

    #[test]
    fn percent_unquote_like_python() {
        assert_eq!(percent_unquote("a%20b", Charset::Utf8), "a b");
        assert_eq!(percent_unquote("%E9", Charset::Latin1), "é");
        assert_eq!(percent_unquote("%E9", Charset::Ascii), "\u{fffd}");
        assert_eq!(percent_unquote("%zz", Charset::Utf8), "%zz");
    }
}
