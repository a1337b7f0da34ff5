//! User-agent blocking.
//!
//! Patterns are regular expressions searched case-insensitively anywhere in the header, compiled
//! into one `RegexSet`: one linear-time pass over the header whatever the number of patterns. The
//! `regex` crate has no backtracking, so no header can make this slow. When every pattern is a
//! plain word (the usual blocklist), an ASCII header is lower-cased and searched for the words
//! directly instead, with the same answer.

use memchr::memmem;
use regex::{RegexSet, RegexSetBuilder};

use crate::error::ConfigErrors;

/// Compiled user-agent patterns.
#[derive(Debug, Clone)]
pub struct UserAgentFilter {
    set: RegexSet,
    patterns: Vec<String>,
    /// When every pattern is a plain ASCII word (`sqlmap`, `nikto`, the usual case): each one
    /// lower-cased, as a substring finder. An ASCII header is lower-cased and searched for them
    /// in order: the same answer as the set, several times faster (a case-insensitive set's
    /// prefilter cannot use the vectorised search).
    words: Option<Vec<memmem::Finder<'static>>>,
}

/// Headers up to this length are lower-cased on the stack.
const STACK_HEADER: usize = 512;

impl UserAgentFilter {
    /// Compiles the patterns of `field`, reporting each bad one.
    ///
    /// # Errors
    /// One entry per pattern that does not compile.
    pub fn new(field: &str, patterns: &[String]) -> Result<Option<Self>, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = builder(std::slice::from_ref(p)).build() {
                errors.push(format!("{field}[{i}]"), explain(p, &e));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        match builder(patterns).build() {
            Ok(set) => Ok(Some(Self {
                set,
                patterns: patterns.to_vec(),
                words: words(patterns),
            })),
            Err(e) => {
                errors.push(field, format!("the patterns together are too large: {e}"));
                Err(errors)
            }
        }
    }

    /// The first pattern that matches, if any.
    #[must_use]
    pub fn matching(&self, user_agent: &str) -> Option<&str> {
        match &self.words {
            // ASCII only: a case-insensitive pattern also matches non-ASCII case variants
            // (`ſ` for `s`, `K` for `k`), which lower-casing ASCII does not produce.
            Some(words) if user_agent.is_ascii() => {
                let mut stack = [0u8; STACK_HEADER];
                let mut heap = Vec::new();
                let lower: &mut [u8] = if let Some(buf) = stack.get_mut(..user_agent.len()) {
                    buf
                } else {
                    heap.resize(user_agent.len(), 0);
                    &mut heap
                };
                lower.copy_from_slice(user_agent.as_bytes());
                lower.make_ascii_lowercase();
                let i = words.iter().position(|w| w.find(lower).is_some())?;
                self.patterns.get(i).map(String::as_str)
            }
            _ => self.matching_by_set(user_agent),
        }
    }

    fn matching_by_set(&self, user_agent: &str) -> Option<&str> {
        if !self.set.is_match(user_agent) {
            return None;
        }
        let i = self.set.matches(user_agent).into_iter().next()?;
        self.patterns.get(i).map(String::as_str)
    }
}

/// Finders for `patterns` lower-cased, if every one is a plain ASCII word: no character that
/// means something in a regular expression.
fn words(patterns: &[String]) -> Option<Vec<memmem::Finder<'static>>> {
    patterns
        .iter()
        .map(|p| {
            let plain = p.chars().all(|c| {
                c.is_ascii() && !c.is_ascii_control() && !regex_syntax::is_meta_character(c)
            });
            plain.then(|| memmem::Finder::new(p.to_ascii_lowercase().as_bytes()).into_owned())
        })
        .collect()
}

fn builder(patterns: &[String]) -> RegexSetBuilder {
    let mut b = RegexSetBuilder::new(patterns);
    b.case_insensitive(true)
        .size_limit(32 * 1024 * 1024)
        .dfa_size_limit(32 * 1024 * 1024);
    b
}

fn explain(pattern: &str, e: &regex::Error) -> String {
    let lookaround = ["(?=", "(?!", "(?<=", "(?<!"]
        .iter()
        .any(|l| pattern.contains(l));
    if lookaround {
        format!("'{pattern}' uses look-around, which linear-time matching does not support")
    } else {
        let first = e.to_string();
        let last = first.lines().last().unwrap_or("").trim().to_owned();
        format!("'{pattern}' is not a valid regular expression: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_case_insensitively_anywhere() {
        let f = UserAgentFilter::new("ua", &["curl".into(), r"^python-requests/\d".into()])
            .expect("valid")
            .expect("some");
        assert_eq!(f.matching("CURL/8.4"), Some("curl"));
        assert_eq!(f.matching("Mozilla (curl)"), Some("curl"));
        assert_eq!(
            f.matching("python-requests/2.31"),
            Some(r"^python-requests/\d")
        );
        assert_eq!(f.matching("x python-requests/2"), None);
        assert_eq!(f.matching("Mozilla/5.0"), None);
    }

    #[test]
    fn plain_words_answer_as_the_set_does() {
        let words: Vec<String> = ["sqlmap", "Nikto", "masscan", "go http"]
            .map(String::from)
            .to_vec();
        let f = UserAgentFilter::new("ua", &words)
            .expect("valid")
            .expect("some");
        assert!(f.words.is_some());
        let long = format!("{}NIKTO", "x".repeat(2 * STACK_HEADER));
        for ua in [
            "sqlmap/1.7",
            "Mozilla/5.0 (compatible; Nikto/2.5)",
            "MASSCAN",
            "Go HTTP client",
            "go  http",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
            "ſqlmap",
            "",
            long.as_str(),
        ] {
            assert_eq!(f.matching(ua), f.matching_by_set(ua), "{ua:?}");
        }
        assert_eq!(
            f.matching("a NIKTO and sqlmap"),
            Some("sqlmap"),
            "the first pattern wins"
        );
        assert_eq!(f.matching(&long), Some("Nikto"));
        assert_eq!(
            f.matching("ſqlmap"),
            Some("sqlmap"),
            "Unicode case folding, as before"
        );
        // One pattern that is a regular expression: the set answers for all.
        let f = UserAgentFilter::new("ua", &["curl".into(), "^wget".into()])
            .expect("valid")
            .expect("some");
        assert!(f.words.is_none());
    }

    #[test]
    fn bad_patterns_are_named() {
        let e = UserAgentFilter::new("ua", &["ok".into(), "(".into(), "foo(?!bar)".into()])
            .expect_err("bad");
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[0].field, "ua[1]");
        assert!(e.0[1].message.contains("look-around"));
    }

    #[test]
    fn long_headers_are_linear() {
        let f = UserAgentFilter::new("ua", &["(a|aa)+$".into(), "x.*y.*z".into()])
            .expect("valid")
            .expect("some");
        // Inputs that make backtracking engines explode are an ordinary linear scan here.
        let evil = "a".repeat(200_000) + "!";
        assert!(f.matching(&evil).is_none());
        assert_eq!(f.matching(&(evil + "x-y-z")), Some("x.*y.*z"));
    }
}
