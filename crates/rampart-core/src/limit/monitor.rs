//! Behavioural monitors: `usage_monitor`, `suspicious_frequency` and `return_monitor`.
//!
//! A monitor counts events per client and route in a sliding window, in the same store as the
//! rate limits (so every worker and host counts together when the store is shared). Past its
//! threshold it acts: log, alert, or ban the client. It never refuses the request that crossed
//! the threshold; a ban refuses the client's next ones.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

/// What a monitor does past its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An event at the suspicious-request log level.
    Log,
    /// An event marked `alert` (logged at warning level or above).
    Alert,
    /// Bans the client for `auto_ban_duration`.
    Ban,
}

impl Action {
    pub const NAMES: [&'static str; 3] = ["log", "alert", "ban"];

    #[must_use]
    pub fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "log" => Some(Action::Log),
            "alert" => Some(Action::Alert),
            "ban" => Some(Action::Ban),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Alert => "alert",
            Action::Ban => "ban",
        }
    }
}

/// What a `return_monitor` looks for in a response.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `status:404`.
    Status(u16),
    /// `json:reward.tier==gold`: the value at a dotted path (`items[]` for any element of a
    /// list) equals the text, compared with the JSON value as written (`true`, `3`, `gold`).
    Json { path: Vec<Step>, value: String },
    /// `regex:…`: a (linear-time) regular expression searched in the body.
    Regex(Regex),
    /// Anything else: text that the body contains.
    Contains(String),
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// `key[]`: the key's value is a list; any element may match.
    Each(String),
}

impl Pattern {
    /// # Errors
    /// Why the pattern cannot be used.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if let Some(code) = s.strip_prefix("status:") {
            return code
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Pattern::Status)
                .ok_or_else(|| format!("'{s}': the status must be a number from 100 to 599"));
        }
        if let Some(rest) = s.strip_prefix("json:") {
            let (path, value) = rest.split_once("==").ok_or_else(|| {
                format!("'{s}': write json:path==value (e.g. json:item.rarity==legendary)")
            })?;
            let mut steps = Vec::new();
            for part in path.trim().split('.') {
                let step = match part.strip_suffix("[]") {
                    Some(k) => Step::Each(k.to_owned()),
                    None => Step::Key(part.to_owned()),
                };
                if part.is_empty() || part == "[]" {
                    return Err(format!("'{s}': the path has an empty step"));
                }
                steps.push(step);
            }
            return Ok(Pattern::Json {
                path: steps,
                value: value.trim().to_owned(),
            });
        }
        if let Some(re) = s.strip_prefix("regex:") {
            return RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map(Pattern::Regex)
                .map_err(|e| format!("'{s}': not a valid regular expression: {e}"));
        }
        if s.is_empty() {
            return Err("the pattern is empty".to_owned());
        }
        Ok(Pattern::Contains(s.to_owned()))
    }

    /// Whether the pattern needs the response body (all but `status:`).
    #[must_use]
    pub fn needs_body(&self) -> bool {
        !matches!(self, Pattern::Status(_))
    }

    /// Whether a response matches.
    #[must_use]
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        match self {
            Pattern::Status(s) => *s == status,
            Pattern::Contains(text) => memchr::memmem::find(body, text.as_bytes()).is_some(),
            Pattern::Regex(re) => re.is_match(&String::from_utf8_lossy(body)),
            Pattern::Json { path, value } => {
                serde_json::from_slice::<Value>(body).is_ok_and(|doc| json_has(&doc, path, value))
            }
        }
    }
}

fn json_has(v: &Value, path: &[Step], want: &str) -> bool {
    let Some((step, rest)) = path.split_first() else {
        return match v {
            Value::String(s) => s == want,
            Value::Null => want == "null",
            other => {
                let text = other.to_string();
                text == want
            }
        };
    };
    let Value::Object(map) = v else {
        return false;
    };
    match step {
        Step::Key(k) => map.get(k).is_some_and(|next| json_has(next, rest, want)),
        Step::Each(k) => match map.get(k) {
            Some(Value::Array(items)) => items.iter().any(|i| json_has(i, rest, want)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_kinds() {
        let p = |s: &str| Pattern::parse(s).expect("valid");
        assert!(p("status:404").matches(404, b""));
        assert!(!p("status:404").matches(200, b"404"));
        assert!(!p("status:404").needs_body());
        assert!(p("rare_item").matches(200, b"{\"reward\": \"rare_item\"}"));
        assert!(!p("rare_item").matches(200, b"common"));
        assert!(p("regex:gold|platinum").matches(200, b"tier=platinum"));
        let json =
            br#"{"reward": {"tier": "gold", "n": 3, "ok": true}, "items": [{"id": 1}, {"id": 7}]}"#;
        assert!(p("json:reward.tier==gold").matches(200, json));
        assert!(p("json:reward.n==3").matches(200, json));
        assert!(p("json:reward.ok==true").matches(200, json));
        assert!(p("json:items[].id==7").matches(200, json));
        assert!(!p("json:items[].id==8").matches(200, json));
        assert!(!p("json:reward.tier==silver").matches(200, json));
        assert!(!p("json:reward.tier==gold").matches(200, b"not json"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "status:abc",
            "status:700",
            "json:a.b",
            "json:a..b==1",
            "regex:(",
            "",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Action::parse("BAN"), Some(Action::Ban));
        assert_eq!(Action::parse("throttle"), None);
    }
}
