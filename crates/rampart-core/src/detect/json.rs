//! A streaming JSON walker: every key and every string leaf, with its path, in one pass.
//!
//! No tree is built and nothing recurses, so a document nested to any depth costs no stack (its
//! memory is linear in the depth). A document that does not parse is reported as an error so the
//! caller can inspect the body whole instead. What Python's `json` accepts is walked: `NaN`,
//! `Infinity` and `-Infinity` too, and every value of a key given twice. Numbers, booleans,
//! `null` and those constants carry no text an attack could use and are skipped. [`decode`]
//! turns a body into text as Python's `json.loads(bytes)` does (UTF-8, UTF-16 or UTF-32, with
//! or without a byte order mark).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::normalize::{self, Profile};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame<'a> {
    Object { key: Cow<'a, str> },
    Array { index: usize },
}

/// Where the walker is: the chain of containers above the current value.
#[derive(Debug, Default)]
pub struct Path<'a> {
    frames: Vec<Frame<'a>>,
    /// The indices in `frames` of the objects, innermost last: the last key in constant time
    /// however deep the arrays below it.
    objects: Vec<usize>,
}

impl<'a> Path<'a> {
    /// The innermost object key on the path (`name` in `$.items[2].name`), or `""`.
    #[must_use]
    pub fn last_key(&self) -> &str {
        match self.objects.last().and_then(|&i| self.frames.get(i)) {
            Some(Frame::Object { key }) => key,
            _ => "",
        }
    }

    /// How many containers enclose the current value.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    fn push(&mut self, frame: Frame<'a>) {
        if matches!(frame, Frame::Object { .. }) {
            self.objects.push(self.frames.len());
        }
        self.frames.push(frame);
    }

    fn pop(&mut self) {
        if let Some(Frame::Object { .. }) = self.frames.pop() {
            self.objects.pop();
        }
    }

    /// `$.items[2].name`; keys that are not identifiers as `$['a b']`.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::from("$");
        for f in &self.frames {
            match f {
                Frame::Object { key, .. } => push_key(&mut out, key),
                Frame::Array { index } => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        out
    }
}

fn push_key(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$');
    if plain {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        for c in key.chars() {
            match c {
                '\'' => out.push_str("\\'"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push_str("']");
    }
}

/// What the callback is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// An object key; the path ends at that key.
    Key,
    /// A string value.
    String,
}

/// Why a document was not walked to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Syntax,
}

/// Walks `doc`, calling `f(item, path, text)` for every key and string; `f` returns `false` to
/// stop early (which is not an error).
///
/// # Errors
/// A document that is not JSON. Items already reported stay reported.
pub fn walk(doc: &str, f: &mut dyn FnMut(Item, &Path<'_>, &str) -> bool) -> Result<(), Error> {
    walk_profiled(doc, &mut |item, path, text, _| f(item, path, text))
}

/// [`walk`], also passing each text's [`Profile`], computed while the string is scanned.
///
/// The walk follows the grammar rather than dispatching on every byte: after a value comes a
/// comma or a closing bracket, after an object's comma a key, after a key a colon. Each of these
/// is one test the processor predicts well; a jump on every byte's value was the costliest
/// instruction of the walk (measured on a 10 KB document: the walk is 10 % faster this way).
///
/// # Errors
/// As [`walk`].
pub fn walk_profiled<'a, F>(doc: &'a str, f: &mut F) -> Result<(), Error>
where
    F: FnMut(Item, &Path<'a>, &str, Profile) -> bool,
{
    let b = doc.as_bytes();
    let mut path = Path::default();
    let mut i = skip_ws(b, 0);
    // Whether a key (and its colon) comes next, rather than a value.
    let mut at_key = false;
    loop {
        if at_key {
            at_key = false;
            if b.get(i) != Some(&b'"') {
                return Err(Error::Syntax);
            }
            let (text, profile, end) = string(doc, i)?;
            let colon = skip_ws(b, end);
            if b.get(colon) != Some(&b':') {
                return Err(Error::Syntax);
            }
            i = skip_ws(b, colon + 1);
            let Some(Frame::Object { key }) = path.frames.last_mut() else {
                return Err(Error::Syntax);
            };
            *key = text;
            if !f(Item::Key, &path, path.last_key(), profile) {
                return Ok(());
            }
            continue;
        }
        // A value starts at `i`.
        match b.get(i).copied() {
            Some(b'"') => {
                let (text, profile, end) = string(doc, i)?;
                i = end;
                if !f(Item::String, &path, &text, profile) {
                    return Ok(());
                }
            }
            Some(open @ (b'{' | b'[')) => {
                i = skip_ws(b, i + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    // Empty: a whole value already.
                    i += 1;
                } else {
                    path.push(if open == b'{' {
                        at_key = true;
                        Frame::Object {
                            key: Cow::Borrowed(""),
                        }
                    } else {
                        Frame::Array { index: 0 }
                    });
                    continue;
                }
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n' | b'N' | b'I') => i = scalar(b, i)?,
            _ => return Err(Error::Syntax),
        }
        // After a value: closing brackets, then a comma and the next value (or key), or the end.
        loop {
            i = skip_ws(b, i);
            match (path.frames.last_mut(), b.get(i).copied()) {
                (None, None) => return Ok(()),
                (Some(Frame::Array { .. }), Some(b']'))
                | (Some(Frame::Object { .. }), Some(b'}')) => {
                    path.pop();
                    i += 1;
                }
                (Some(frame), Some(b',')) => {
                    match frame {
                        Frame::Array { index } => *index += 1,
                        Frame::Object { .. } => at_key = true,
                    }
                    i = skip_ws(b, i + 1);
                    break;
                }
                _ => return Err(Error::Syntax),
            }
        }
    }
}

/// A number, `true`, `false`, `null`, `NaN`, `Infinity` or `-Infinity` at `b[i]`, then
/// something that is not part of one: the index after it.
#[inline]
fn scalar(b: &[u8], mut i: usize) -> Result<usize, Error> {
    if b[i] == b'-' && b.get(i + 1) == Some(&b'I') {
        i += 1;
    }
    let c = b[i];
    if c == b'-' || c.is_ascii_digit() {
        i += 1;
        while b
            .get(i)
            .is_some_and(|&d| d.is_ascii_digit() || matches!(d, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            i += 1;
        }
    } else {
        let word = [b"true".as_slice(), b"false", b"null", b"NaN", b"Infinity"]
            .into_iter()
            .find(|w| b[i..].starts_with(w))
            .ok_or(Error::Syntax)?;
        i += word.len();
    }
    if b.get(i)
        .is_some_and(|&d| d.is_ascii_alphanumeric() || matches!(d, b'-' | b'+' | b'.'))
    {
        return Err(Error::Syntax);
    }
    Ok(i)
}

/// The index of the first byte at or after `i` that is not JSON white space.
#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
    {
        i += 1;
    }
    i
}

/// The string starting at `start` (its opening quote), its profile, and the index after it.
// Measured: inlined into the walk (keys and values), a 10 KB document walks about 1 µs faster;
// left to itself the compiler keeps the call.
#[allow(clippy::inline_always)]
#[inline(always)]
fn string(doc: &str, start: usize) -> Result<(Cow<'_, str>, Profile, usize), Error> {
    let b = doc.as_bytes();
    let body = start + 1;
    // Fast path, no escapes: one pass finds the closing quote and profiles the text.
    let (classes, mut i) = normalize::scan_string(b, body);
    if i >= b.len() {
        return Err(Error::Syntax);
    }
    if b[i] == b'"' {
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        let s = doc.get(body..i).ok_or(Error::Syntax)?;
        return Ok((
            Cow::Borrowed(s),
            Profile::with_classes(s.as_bytes(), classes),
            i + 1,
        ));
    }
    let mut out: Vec<u8> = b[body..i].to_vec();
    while i < b.len() {
        match b[i] {
            b'"' => {
                let s = String::from_utf8(out).map_err(|_| Error::Syntax)?;
                let profile = Profile::of(s.as_bytes());
                return Ok((Cow::Owned(s), profile, i + 1));
            }
            b'\\' => {
                let esc = *b.get(i + 1).ok_or(Error::Syntax)?;
                i += 2;
                let c = match esc {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = hex4(b, i)?;
                        i += 4;
                        if (0xd800..0xdc00).contains(&hi)
                            && b.get(i) == Some(&b'\\')
                            && b.get(i + 1) == Some(&b'u')
                        {
                            let lo = hex4(b, i + 2)?;
                            if (0xdc00..0xe000).contains(&lo) {
                                i += 6;
                                let v = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                char::from_u32(v).unwrap_or('\u{fffd}')
                            } else {
                                '\u{fffd}'
                            }
                        } else {
                            char::from_u32(hi).unwrap_or('\u{fffd}')
                        }
                    }
                    _ => return Err(Error::Syntax),
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(Error::Syntax)
}

fn hex4(b: &[u8], i: usize) -> Result<u32, Error> {
    let digits = b.get(i..i + 4).ok_or(Error::Syntax)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16).ok_or(Error::Syntax)?;
        Ok(acc * 16 + v)
    })
}

/// `body` as text, the way Python's `json.loads(bytes)` reads it: a UTF-32, UTF-16 or UTF-8
/// byte order mark says the encoding (and is dropped); else the zero bytes among the first four
/// tell UTF-16 or UTF-32 of either byte order from UTF-8. Characters Python would keep as lone
/// surrogates become U+FFFD, one each; bytes no encoding explains too (Python refuses those).
#[must_use]
pub fn decode(body: &[u8]) -> Cow<'_, str> {
    #[derive(Clone, Copy)]
    enum Enc {
        Utf8,
        Utf16(bool),
        Utf32(bool),
    }
    let (enc, skip) = match body {
        [0, 0, 0xfe, 0xff, ..] => (Enc::Utf32(true), 4),
        [0xff, 0xfe, 0, 0, ..] => (Enc::Utf32(false), 4),
        [0xfe, 0xff, ..] => (Enc::Utf16(true), 2),
        [0xff, 0xfe, ..] => (Enc::Utf16(false), 2),
        [0xef, 0xbb, 0xbf, ..] => (Enc::Utf8, 3),
        [0, b1, _, _, ..] => (
            if *b1 != 0 {
                Enc::Utf16(true)
            } else {
                Enc::Utf32(true)
            },
            0,
        ),
        [_, 0, b2, b3, ..] => (
            if *b2 != 0 || *b3 != 0 {
                Enc::Utf16(false)
            } else {
                Enc::Utf32(false)
            },
            0,
        ),
        [0, _] => (Enc::Utf16(true), 0),
        [_, 0] => (Enc::Utf16(false), 0),
        _ => (Enc::Utf8, 0),
    };
    let b = &body[skip..];
    match enc {
        Enc::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(utf8_surrogatepass(b)),
        },
        Enc::Utf16(be) => {
            let units = b.chunks(2).map(|c| match c {
                [x, y] if be => u16::from_be_bytes([*x, *y]),
                [x, y] => u16::from_le_bytes([*x, *y]),
                // A lone last byte: not a character.
                _ => 0xdc00,
            });
            Cow::Owned(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        Enc::Utf32(be) => Cow::Owned(
            b.chunks(4)
                .map(|c| match c {
                    [w, x, y, z] if be => u32::from_be_bytes([*w, *x, *y, *z]),
                    [w, x, y, z] => u32::from_le_bytes([*w, *x, *y, *z]),
                    _ => 0xdc00,
                })
                .map(|v| char::from_u32(v).unwrap_or('\u{fffd}'))
                .collect(),
        ),
    }
}

/// Lossy UTF-8 where an encoded surrogate (`ED A0..BF 80..BF`) is one U+FFFD, as Python's
/// `surrogatepass` reads it as one character.
fn utf8_surrogatepass(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                // Checked valid just above.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{fffd}');
                let skip = match bad {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, ..] => 3,
                    _ => e.error_len().unwrap_or(bad.len()),
                };
                rest = &bad[skip..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(doc: &str) -> Result<Vec<(Item, String, String)>, Error> {
        let mut out = Vec::new();
        walk(doc, &mut |item, path, text| {
            out.push((item, path.render(), text.to_owned()));
            true
        })?;
        Ok(out)
    }

    #[test]
    fn keys_and_strings_with_paths() {
        let got =
            items(r#"{"a": "x", "items": [{"name": "n\u0041"}, 3, "y"], "b c": {"$ne": null}}"#)
                .expect("valid");
        let want = vec![
            (Item::Key, "$.a".to_owned(), "a".to_owned()),
            (Item::String, "$.a".to_owned(), "x".to_owned()),
            (Item::Key, "$.items".to_owned(), "items".to_owned()),
            (Item::Key, "$.items[0].name".to_owned(), "name".to_owned()),
            (Item::String, "$.items[0].name".to_owned(), "nA".to_owned()),
            (Item::String, "$.items[2]".to_owned(), "y".to_owned()),
            (Item::Key, "$['b c']".to_owned(), "b c".to_owned()),
            (Item::Key, "$['b c'].$ne".to_owned(), "$ne".to_owned()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn top_level_string_and_escapes() {
        let got = items(r#""<\/script>\ud83d\ude00\n""#).expect("valid");
        assert_eq!(got[0].2, "</script>😀\n");
        assert_eq!(got[0].1, "$");
    }

    #[test]
    fn malformed_documents_are_errors() {
        for doc in [
            "",
            "{",
            "[1,2",
            "{\"a\":}x",
            "\"open",
            "nope",
            "[1]]",
            "{} {}",
            "[\"\\q\"]",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" \"b\"}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "{1:2}",
            "[,1]",
        ] {
            assert!(items(doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn white_space_and_empty_containers_anywhere() {
        let got =
            items("\t{ \"a\" :\r\n[ ] , \"b\":{}, \"c\" : [ \"x\" , {} ]\n}\n").expect("valid");
        let paths: Vec<&str> = got.iter().map(|(_, p, _)| p.as_str()).collect();
        assert_eq!(paths, ["$.a", "$.b", "$.c", "$.c[0]"]);
        assert_eq!(items("[]").expect("valid"), []);
        assert_eq!(items(" 12.5e3 ").expect("valid"), []);
    }

    #[test]
    fn any_depth_without_recursion() {
        let deep = "[".repeat(100_000);
        assert_eq!(items(&deep), Err(Error::Syntax));
        let ok = format!("{}\"x\"{}", "[{\"k\":".repeat(50_000), "}]".repeat(50_000));
        // (Rendering every path would cost the depth each time: only the last key is read.)
        let mut seen = 0;
        let mut last = None;
        walk(&ok, &mut |item, path, _| {
            seen += 1;
            if item == Item::String {
                last = Some((path.last_key().to_owned(), path.depth()));
            }
            true
        })
        .expect("valid");
        assert_eq!(seen, 50_001);
        assert_eq!(last, Some(("k".to_owned(), 100_000)));
    }

    #[test]
    fn python_constants_and_duplicate_keys() {
        let got = items(r#"{"a": NaN, "b": [Infinity, -Infinity, "x"], "a": "y", "a": "z"}"#)
            .expect("valid");
        let strings: Vec<&str> = got
            .iter()
            .filter(|(i, _, _)| *i == Item::String)
            .map(|(_, _, t)| t.as_str())
            .collect();
        assert_eq!(strings, ["x", "y", "z"]);
        for doc in ["[NaNx]", "[-NaN]", "[Infinit]", "[-Inf]"] {
            assert!(items(doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn decoding_as_python_json() {
        let text = "{\"a\": \"\u{e9}\u{1F600}\"}";
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let utf32le: Vec<u8> = text
            .chars()
            .flat_map(|c| u32::from(c).to_le_bytes())
            .collect();
        let utf32be: Vec<u8> = text
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        for (bom, body) in [
            (&[][..], &utf16le),
            (&[0xff, 0xfe][..], &utf16le),
            (&[][..], &utf16be),
            (&[0xfe, 0xff][..], &utf16be),
            (&[][..], &utf32le),
            (&[0xff, 0xfe, 0, 0][..], &utf32le),
            (&[][..], &utf32be),
            (&[0, 0, 0xfe, 0xff][..], &utf32be),
        ] {
            let mut b = bom.to_vec();
            b.extend_from_slice(body);
            assert_eq!(decode(&b), text, "{bom:?}");
        }
        let mut b = vec![0xef, 0xbb, 0xbf];
        b.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&b), text);
        assert!(matches!(decode(text.as_bytes()), Cow::Borrowed(_)));
        // An encoded surrogate (which Python's json lets through) is one character.
        assert_eq!(decode(b"\"\xed\xa0\x80x\""), "\"\u{fffd}x\"");
        assert_eq!(decode(b"\"\xff\""), "\"\u{fffd}\"");
    }
}
