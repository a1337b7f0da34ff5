//! User-agent blocking.
//!
//! Patterns are regular expressions searched case-insensitively anywhere in the header, compiled
//! into one `RegexSet`: one linear-time pass over the header whatever the number of patterns. The
//! `regex` crate has no backtracking, so no header can make this slow.

use regex::{RegexSet, RegexSetBuilder};

use crate::error::ConfigErrors;

/// Compiled user-agent patterns.
#[derive(Debug, Clone)]
pub struct UserAgentFilter {
    set: RegexSet,
    patterns: Vec<String>,
}

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
        if !self.set.is_match(user_agent) {
            return None;
        }
        let i = self.set.matches(user_agent).into_iter().next()?;
        self.patterns.get(i).map(String::as_str)
    }
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
