//! The `Cookie` header, read the way Werkzeug's `parse_cookie` reads it (`request.cookies`).
//!
//! Pairs are separated by `;`. Each is `name`, `name=token` or `name="quoted"`, with spaces and
//! tabs around the name, the `=` and the value ignored; a name is anything but space, tab, `=`,
//! `"` and `;`, a token anything but space, tab, `"` and `;`. A quoted value may hold `;` and
//! backslash escapes: `\"`, `\\`, any `\c` (→ `c`), and three octal digits `\047` (→ that
//! byte); the unescaped bytes are read as UTF-8, invalid sequences as U+FFFD. A pair that fits
//! none of these is skipped up to the next `;`. Linear time: each byte is looked at a bounded
//! number of times.

use std::borrow::Cow;

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_space) {
        i += 1;
    }
    i
}

/// A quoted value that was found invalid: opened at `.0`, failed at `.1` (the end, or an escaped
/// line feed, or the closing quote when something but `;` followed it). A quote inside that
/// span is an escaped one of the failed value, and a value opened there fails at the same place
/// (its escapes pair up the same way): it is refused without another scan, which keeps a header
/// like `a="x;a="x;a="x…` linear.
type Failed = Option<(usize, usize)>;

/// Where the pair starting at `pos` ends (after its `;`), its name and its raw value (quotes
/// included); `None` when it is not a valid pair.
fn pair<'s>(s: &'s str, pos: usize, failed: &mut Failed) -> Option<(usize, &'s str, &'s str)> {
    let b = s.as_bytes();
    let start = skip_spaces(b, pos);
    let name_end = start
        + b[start..]
            .iter()
            .take_while(|&&c| !matches!(c, b' ' | b'\t' | b'=' | b'"' | b';'))
            .count();
    if name_end == start {
        return None;
    }
    let name = &s[start..name_end];
    // The end: spaces, then `;` or the end of the header.
    let ends_at = |i: usize| -> Option<usize> {
        let i = skip_spaces(b, i);
        match b.get(i) {
            None => Some(i),
            Some(b';') => Some(i + 1),
            Some(_) => None,
        }
    };
    let after_name = skip_spaces(b, name_end);
    if b.get(after_name) != Some(&b'=') {
        return ends_at(name_end).map(|end| (end, name, ""));
    }
    let v = skip_spaces(b, after_name + 1);
    if b.get(v) == Some(&b'"') {
        if failed.is_some_and(|(from, to)| from < v && v < to) {
            return None;
        }
        let mut i = v + 1;
        let closed = loop {
            match (b.get(i), b.get(i + 1)) {
                (Some(b'"'), _) => break true,
                // `\` and any character but a line feed.
                (Some(b'\\'), Some(b'\n')) | (Some(b'\\') | None, None) => break false,
                (Some(b'\\'), Some(_)) => i += 2,
                (Some(_), _) => i += 1,
                (None, Some(_)) => break false,
            }
        };
        // `i` is the closing quote; a backslash escape may have skipped into a multi-byte
        // character, which `get` refuses.
        let found = if closed {
            s.get(v..=i)
                .and_then(|raw| ends_at(i + 1).map(|end| (end, name, raw)))
        } else {
            None
        };
        if found.is_none() {
            *failed = Some((v, i.min(b.len())));
        }
        return found;
    }
    let token_end = v + b[v..]
        .iter()
        .take_while(|&&c| !matches!(c, b' ' | b'\t' | b'"' | b';'))
        .count();
    ends_at(token_end).map(|end| (end, name, &s[v..token_end]))
}

/// What is inside the double quotes around `raw`: `Ok` when there is nothing left to decode
/// (`raw` is not quoted, or its inside has no backslash), `Err` with the inside when its
/// escapes remain to be decoded. Cookie values and header parameters decode them differently.
pub(super) fn quoted_inner(raw: &str) -> Result<&str, &str> {
    match raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|_| raw.len() >= 2)
    {
        None => Ok(raw),
        Some(inner) if !inner.contains('\\') => Ok(inner),
        Some(inner) => Err(inner),
    }
}

/// A quoted value's text: quotes removed, escapes decoded.
#[must_use]
pub fn unquote(raw: &str) -> Cow<'_, str> {
    let inner = match quoted_inner(raw) {
        Ok(plain) => return Cow::Borrowed(plain),
        Err(inner) => inner,
    };
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() || b[i + 1] == b'\n' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let octal = b.get(i + 1..i + 4).filter(|d| {
            (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|c| (b'0'..=b'7').contains(c))
        });
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i + 1]);
            i += 2;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Calls `f(name, value)` for each cookie of a `Cookie` header (several headers joined with
/// `;`), in order, until it returns `false`.
pub fn each(header: &str, mut f: impl FnMut(&str, Cow<'_, str>) -> bool) {
    let mut pos = 0;
    let mut failed: Failed = None;
    while pos < header.len() {
        match pair(header, pos, &mut failed) {
            Some((end, name, raw)) => {
                pos = end;
                let value = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
                    unquote(raw)
                } else {
                    Cow::Borrowed(raw)
                };
                if !f(name, value) {
                    return;
                }
            }
            None => match memchr::memchr(b';', &header.as_bytes()[pos..]) {
                Some(semi) => pos += semi + 1,
                None => return,
            },
        }
    }
}

/// `value` as a quoted cookie value that [`each`] reads back as `value`: `"` and `\` escaped,
/// and bytes that are not printable ASCII (and `;`, `,`, space) as octal escapes.
#[must_use]
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for &c in value.as_bytes() {
        match c {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(c));
            }
            b'!'..=b'~' if c != b';' && c != b',' => out.push(char::from(c)),
            _ => {
                out.push('\\');
                out.push(char::from(b'0' + (c >> 6)));
                out.push(char::from(b'0' + ((c >> 3) & 7)));
                out.push(char::from(b'0' + (c & 7)));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(header: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        each(header, |n, v| {
            out.push((n.to_owned(), v.into_owned()));
            true
        });
        out
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn plain_quoted_and_escaped() {
        assert_eq!(
            all("a=1; b = 2 ;c=\"x;y\"; d=\"\\047 OR \\0471\\047=\\0471\"; e"),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "x;y"),
                ("d", "' OR '1'='1"),
                ("e", "")
            ])
        );
        assert_eq!(all("a=\"\\\"q\\\\\""), pairs(&[("a", "\"q\\")]));
        assert_eq!(all("a=\"\\303\\251\""), pairs(&[("a", "é")]));
        assert_eq!(all("a=\"\\377\""), pairs(&[("a", "\u{fffd}")]));
    }

    #[test]
    fn invalid_pairs_are_skipped_to_the_next_semicolon() {
        assert_eq!(all("a=x y; b=2"), pairs(&[("b", "2")]));
        assert_eq!(all("a=\"open; b=2"), pairs(&[("b", "2")]));
        assert_eq!(all("=1; \"q\"=2; c=3"), pairs(&[("c", "3")]));
        assert_eq!(all(";;; ;"), pairs(&[]));
        assert_eq!(all("a=\"x\"y; b=1"), pairs(&[("b", "1")]));
    }

    #[test]
    fn unterminated_quotes_stay_linear() {
        let header = "a=\"x;".repeat(200_000);
        let t = std::time::Instant::now();
        assert_eq!(all(&header), pairs(&[]));
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
        let header = "a=\"x;b=1;".repeat(100_000);
        let got = all(&header);
        assert_eq!(got.len(), 100_000);
        assert!(got.iter().all(|(n, v)| n == "b" && v == "1"));
    }

    #[test]
    fn quoting_round_trips() {
        for v in [
            "",
            "plain",
            "a b;c,d",
            "\"\\",
            "é\u{1}\u{7f}",
            "' OR 1=1 --",
        ] {
            assert_eq!(all(&format!("k={}", quote(v))), pairs(&[("k", v)]), "{v:?}");
        }
    }
}
