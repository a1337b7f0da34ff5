//! Penetration-attempt detection: every value of a request inspected on its own, in its context,
//! in time linear in its length.
//!
//! - [`extract`] walks a request into values with their location (`query:q`,
//!   `json:$.items[2].name`, `header:user-agent`, …);
//! - [`normalize`] peels the encodings off each value;
//! - [`rules`] holds the built-in rules; they run as one `RegexSet` pass per value (a lazy DFA
//!   with a cache large enough never to fall back to the slow engine), next to a SQL and an
//!   HTML/JS tokeniser (libinjection's algorithm, through a pure-Rust port) for values that
//!   could hold SQL or markup;
//! - every match scores; a request is an attack when its score reaches the threshold
//!   (CRS-style anomaly scoring), and each finding says which rule, where, and what matched.

pub mod cookie;
pub mod extract;
pub mod json;
pub mod multipart;
pub mod normalize;
pub mod policy;
pub mod prose;
pub mod rules;

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, RwLock};

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::error::ConfigErrors;
pub use normalize::is_prose;
use normalize::Normalized;
use rules::{Rule, Target, RULES};

/// Attack categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Sqli,
    Xss,
    Cmdi,
    PathTraversal,
    FileInclusion,
    Ldap,
    Xxe,
    Ssrf,
    CodeInjection,
    Nosql,
    TemplateInjection,
    HeaderInjection,
    /// A user's own pattern.
    Custom,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::Sqli,
        Category::Xss,
        Category::Cmdi,
        Category::PathTraversal,
        Category::FileInclusion,
        Category::Ldap,
        Category::Xxe,
        Category::Ssrf,
        Category::CodeInjection,
        Category::Nosql,
        Category::TemplateInjection,
        Category::HeaderInjection,
        Category::Custom,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Sqli => "sqli",
            Category::Xss => "xss",
            Category::Cmdi => "cmdi",
            Category::PathTraversal => "path_traversal",
            Category::FileInclusion => "file_inclusion",
            Category::Ldap => "ldap",
            Category::Xxe => "xxe",
            Category::Ssrf => "ssrf",
            Category::CodeInjection => "code_injection",
            Category::Nosql => "nosql",
            Category::TemplateInjection => "template_injection",
            Category::HeaderInjection => "header_injection",
            Category::Custom => "custom",
        }
    }

    /// A human name for messages.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Category::Sqli => "SQL injection",
            Category::Xss => "cross-site scripting",
            Category::Cmdi => "command injection",
            Category::PathTraversal => "path traversal",
            Category::FileInclusion => "file inclusion",
            Category::Ldap => "LDAP injection",
            Category::Xxe => "XML external entity",
            Category::Ssrf => "server-side request forgery",
            Category::CodeInjection => "code injection",
            Category::Nosql => "NoSQL injection",
            Category::TemplateInjection => "template injection",
            Category::HeaderInjection => "header injection",
            Category::Custom => "custom rule",
        }
    }

    /// The category named `s` (as [`Category::as_str`] spells it).
    #[must_use]
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A path segment.
    Path,
    /// A query-string value.
    Query,
    /// A form field (urlencoded or a multipart text part).
    Form,
    /// A JSON string.
    Json,
    /// A parameter name or a JSON key.
    Key,
    Cookie,
    Header,
    /// A body inspected whole (XML, plain text, or a body that did not parse).
    Body,
}

impl Kind {
    const fn bit(self) -> u16 {
        match self {
            Kind::Path => 1,
            Kind::Query => 2,
            Kind::Form => 4,
            Kind::Json => 8,
            Kind::Key => 16,
            Kind::Cookie => 32,
            Kind::Header => 64,
            Kind::Body => 128,
        }
    }

    /// The location prefix (`query` in `query:q`).
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Path => "path",
            Kind::Query => "query",
            Kind::Form => "form",
            Kind::Json => "json",
            Kind::Key => "key",
            Kind::Cookie => "cookie",
            Kind::Header => "header",
            Kind::Body => "body",
        }
    }

    /// The kind for a location name as users write it (`query`, `body`, `json`, …).
    #[must_use]
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "path" => Kind::Path,
            "query" => Kind::Query,
            "form" | "body" => Kind::Form,
            "json" | "json_body" => Kind::Json,
            "key" | "name" => Kind::Key,
            "cookie" => Kind::Cookie,
            "header" => Kind::Header,
            "raw" | "xml" | "text" => Kind::Body,
            _ => return None,
        })
    }
}

/// A set of [`Kind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u16);

impl Kinds {
    pub const ALL: Kinds = Kinds(u16::MAX);
    pub const HEADER: Kinds = Kinds(Kind::Header.bit());
    pub const PATH: Kinds = Kinds(Kind::Path.bit());
    pub const KEY: Kinds = Kinds(Kind::Key.bit());
    pub const COOKIE: Kinds = Kinds(Kind::Cookie.bit());

    #[must_use]
    pub const fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    #[must_use]
    pub const fn without(self, other: Kinds) -> Kinds {
        Kinds(self.0 & !other.0)
    }

    #[must_use]
    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// One rule that matched one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: u32,
    pub category: Category,
    pub score: u8,
    /// `query:q`, `json:$.items[2].name`, `header:user-agent`, …
    pub location: String,
    /// What matched, shortened, control characters escaped; `[redacted]` for secret fields.
    pub excerpt: String,
    pub description: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} (rule {} {}, score {}): {}",
            self.category.title(),
            self.location,
            self.rule,
            self.description,
            self.score,
            self.excerpt
        )
    }
}

/// The outcome of inspecting a request or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Findings, highest score first (at most [`MAX_FINDINGS`]).
    pub findings: Vec<Finding>,
    /// The anomaly score: the sum of the findings' scores.
    pub score: u32,
    /// Whether the score reached the threshold.
    pub attack: bool,
    /// Values inspected.
    pub values: u32,
    /// Bytes not inspected because a value or the body was over the limit, and where.
    pub truncated_bytes: u64,
    pub truncated_at: Vec<String>,
    /// The first part of the request that could not be inspected as the application will read
    /// it, and why (see [`Uninspectable`]); the engine's `detection_uninspectable` policy decides
    /// what follows.
    pub uninspectable: Option<(Uninspectable, String)>,
    /// Tokeniser spans left unread because the request's tokeniser budget was spent (the rule
    /// sets still read them).
    pub tokeniser_skipped: u32,
}

/// Why part of a request could not be inspected the way the application will read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uninspectable {
    /// The body is larger than `detection_max_body_size` (file uploads excluded): 413.
    TooLarge,
    /// The body claims a media type the engine reads, but does not parse as it: 400.
    Malformed,
    /// The engine and the application's parser could read the body differently (two multipart
    /// boundaries, a part with conflicting dispositions): 400.
    Ambiguous,
}

impl Uninspectable {
    /// The event reason (`event.reason`-style token).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Uninspectable::TooLarge => "body_too_large",
            Uninspectable::Malformed => "body_malformed",
            Uninspectable::Ambiguous => "body_ambiguous",
        }
    }

    /// The status a refusal answers with.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Uninspectable::TooLarge => 413,
            Uninspectable::Malformed | Uninspectable::Ambiguous => 400,
        }
    }
}

impl Scan {
    /// One line: the categories and the strongest findings.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.findings.iter().take(3).enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(&f.to_string());
        }
        if self.findings.len() > 3 {
            let _ = write!(out, "; and {} more", self.findings.len() - 3);
        }
        out
    }
}

/// Findings kept per request; the score still counts every one.
pub const MAX_FINDINGS: usize = 16;
/// Values up to this many bytes are read whole by the tokenisers; longer ones in spans of it.
pub const TOKEN_SPAN: usize = 2048;
/// Bytes before a tag opening or a SQL match that a span starts with (a `'>` or `"` breakout).
const TOKEN_LEAD: usize = 64;
/// Bytes at the end of a markup span read again by the next one (a tag the span cut).
const TOKEN_OVERLAP: usize = 256;
/// The SQL tokeniser's budget per request, in bytes: this much, plus one byte per
/// [`SQL_BUDGET_DIVISOR`] bytes inspected.
const SQL_BUDGET_BASE: usize = 4 * TOKEN_SPAN;
const SQL_BUDGET_DIVISOR: usize = 256;
/// The HTML tokeniser's budget per request (it costs about a fiftieth of the SQL one per byte).
const XSS_BUDGET_BASE: usize = 32 * TOKEN_SPAN;
const XSS_BUDGET_DIVISOR: usize = 8;
/// Longest excerpt, in characters.
const EXCERPT_CHARS: usize = 60;

/// Which rules an exclusion silences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSelector {
    Id(u32),
    Category(Category),
}

impl RuleSelector {
    fn matches(&self, id: u32, category: Category) -> bool {
        match self {
            RuleSelector::Id(i) => *i == id,
            RuleSelector::Category(c) => *c == category,
        }
    }

    /// `942100`-style ids, or a category name.
    #[must_use]
    pub fn parse(s: &str) -> Option<RuleSelector> {
        s.trim()
            .parse()
            .ok()
            .map(RuleSelector::Id)
            .or_else(|| Category::parse(s.trim()).map(RuleSelector::Category))
    }
}

/// A detection exclusion: on `path` (a prefix; every path when `None`), do not apply `rules`
/// (all when empty) to `params` (all when empty). With neither, the path is not inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusion {
    pub path: Option<String>,
    pub rules: Vec<RuleSelector>,
    pub params: Vec<String>,
}

impl Exclusion {
    fn applies_to_path(&self, path: &str) -> bool {
        self.path
            .as_deref()
            .is_none_or(|p| crate::request::path_is_under(path, p))
    }

    fn covers_param(&self, kind: Kind, name: &str) -> bool {
        self.params.is_empty() || self.params.iter().any(|p| param_matches(p, kind, name))
    }

    fn covers_rule(&self, id: u32, category: Category) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.matches(id, category))
    }

    /// Whether the exclusion switches inspection off for the whole path.
    fn whole_path(&self) -> bool {
        self.path.is_some() && self.rules.is_empty() && self.params.is_empty()
    }
}

/// `q` matches a parameter, cookie, header or JSON key called `q` anywhere; `query:q`,
/// `form:q`, `json:$.a.b`, `cookie:q`, `header:user-agent` and `path` say where.
fn param_matches(p: &str, kind: Kind, name: &str) -> bool {
    match p.split_once(':') {
        Some((prefix, rest)) => {
            Kind::parse(prefix).is_some_and(|k| k == kind) && rest.eq_ignore_ascii_case(name)
        }
        None if p == "path" => kind == Kind::Path,
        None => {
            name.eq_ignore_ascii_case(p)
                || (kind == Kind::Json
                    && name
                        .rsplit(['.', '['])
                        .next()
                        .is_some_and(|last| last.trim_end_matches(']') == p))
        }
    }
}

/// Detection settings (the config's `detection_*` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Anomaly score at which a request is an attack.
    pub threshold: u32,
    /// 1 to 4: rules above this level are left out.
    pub paranoia: u8,
    /// `detection_max_body_size`: the most bytes of multipart text parts a request may hold
    /// (file contents are not counted); more is reported [`Uninspectable::TooLarge`].
    pub max_body_bytes: usize,
    pub exclusions: Vec<Exclusion>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            threshold: 5,
            paranoia: 1,
            max_body_bytes: 1 << 20,
            exclusions: Vec::new(),
        }
    }
}

/// A user's rule: a linear-time pattern over the normalised value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRule {
    pub id: u32,
    pub pattern: String,
    pub category: Category,
    pub score: u8,
    pub description: String,
}

/// Custom rules, compiled. Replaced whole when one is added or removed.
#[derive(Debug, Default)]
struct CustomSet {
    rules: Vec<CustomRule>,
    set: Option<RegexSet>,
    regexes: Vec<Regex>,
}

/// Ids of user rules start here.
pub const CUSTOM_ID_BASE: u32 = 90_000;

/// A compiled rule: its definition and its own regex, run only to find the excerpt of a match.
#[derive(Debug)]
struct Compiled {
    rule: &'static Rule,
    regex: Regex,
}

/// Cache per regex set: large enough that the lazy DFA never gives up on the full rule set.
const DFA_CACHE: usize = 32 << 20;
const NFA_SIZE: usize = 64 << 20;

/// The compiled detection engine. Built once; scanning takes `&self`.
#[derive(Debug)]
pub struct Detector {
    settings: Settings,
    normalized: Vec<Compiled>,
    normalized_set: RegexSet,
    /// `normalized_set`'s patterns, as indexes into `normalized` (all but the solo rules).
    in_set: Vec<usize>,
    /// Rules matched on their own ([`rules::SOLO_RULES`]): indexes into `normalized`, each with
    /// its pattern compiled without a prefilter (a flood of the `<` they start with would make
    /// a prefilter stop at every byte).
    solo: Vec<(usize, regex_automata::meta::Regex)>,
    /// The rules that can match prose, as indexes into `normalized`, and their set.
    prose: Vec<usize>,
    prose_set: RegexSet,
    /// `prose_set` narrowed to prose: the fast "does any match" for prose values.
    prose_gate: prose::ProseGate,
    raw: Vec<Compiled>,
    raw_set: RegexSet,
    custom: RwLock<Arc<CustomSet>>,
    /// Header values found clean before (see [`ScanState::header`]).
    clean_headers: Mutex<HashSet<Box<str>>>,
}

/// Header values remembered as clean, at most; the memo starts over when full.
const CLEAN_HEADERS: usize = 1024;
/// Longer header values are not remembered.
const CLEAN_HEADER_LEN: usize = 512;

fn builder_set<I: IntoIterator<Item = S>, S: AsRef<str>>(patterns: I) -> Result<RegexSet, String> {
    // Values are lower-cased before matching; case-insensitive patterns let users write
    // `Evil-Token` and mean it (built-in rules are lower case already).
    RegexSetBuilder::new(patterns)
        .unicode(false)
        .case_insensitive(true)
        .size_limit(NFA_SIZE)
        .dfa_size_limit(DFA_CACHE)
        .build()
        .map_err(|e| e.to_string())
}

/// A solo rule's pattern: as [`builder_one`] compiles it, without a prefilter.
fn solo_regex(pattern: &str) -> Result<regex_automata::meta::Regex, String> {
    use regex_automata::meta;
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .auto_prefilter(false)
                .utf8_empty(false)
                .nfa_size_limit(Some(NFA_SIZE))
                .hybrid_cache_capacity(1 << 20),
        )
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .case_insensitive(true),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

fn builder_one(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .case_insensitive(true)
        .size_limit(NFA_SIZE)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Whether `pattern` can be a user rule: it compiles (linear-time syntax: no look-around, no
/// back-references) and does not match the empty string.
///
/// # Errors
/// Why not, in one line.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    compile_user_pattern(pattern).map(drop)
}

/// [`validate_pattern`], keeping the compiled regex.
fn compile_user_pattern(pattern: &str) -> Result<Regex, String> {
    let regex =
        builder_one(pattern).map_err(|e| format!("does not compile: {}", first_line(&e)))?;
    if regex.is_match(b"") {
        return Err("matches the empty string, so it would match every value".to_owned());
    }
    Ok(regex)
}

/// Fields whose values are never shown in an excerpt.
fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "auth",
        "key",
        "session",
        "cookie",
        "credential",
        "csrf",
        "otp",
        "pin",
    ]
    .iter()
    .any(|s| n.contains(s))
}

impl Detector {
    /// Compiles the built-in rules of the configured paranoia level.
    ///
    /// # Errors
    /// A rule that does not compile (a bug, caught by the tests).
    pub fn new(settings: Settings) -> Result<Detector, String> {
        let active = |r: &&'static Rule| {
            r.paranoia <= settings.paranoia
                && !settings.exclusions.iter().any(|e| {
                    e.path.is_none()
                        && e.params.is_empty()
                        && e.covers_rule(r.id, r.category)
                        && !e.rules.is_empty()
                })
        };
        let pick = |target: Target| -> Result<(Vec<Compiled>, RegexSet, Vec<usize>), String> {
            let rules: Vec<&'static Rule> = RULES
                .iter()
                .filter(|r| r.target == target)
                .filter(active)
                .collect();
            let compiled = rules
                .iter()
                .map(|r| {
                    builder_one(r.pattern)
                        .map(|regex| Compiled { rule: r, regex })
                        .map_err(|e| format!("rule {}: {e}", r.id))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let in_set: Vec<usize> = (0..rules.len())
                .filter(|&i| !rules::SOLO_RULES.contains(&rules[i].id))
                .collect();
            let set = builder_set(in_set.iter().map(|&i| rules[i].pattern))?;
            Ok((compiled, set, in_set))
        };
        let (normalized, normalized_set, in_set) = pick(Target::Normalized)?;
        let solo = (0..normalized.len())
            .filter(|&i| rules::SOLO_RULES.contains(&normalized[i].rule.id))
            .map(|i| solo_regex(normalized[i].rule.pattern).map(|re| (i, re)))
            .collect::<Result<Vec<_>, _>>()?;
        let prose: Vec<usize> = (0..normalized.len())
            .filter(|&i| rules::PROSE_RULES.contains(&normalized[i].rule.id))
            .collect();
        let prose_set = builder_set(prose.iter().map(|&i| normalized[i].rule.pattern))?;
        let prose_gate = prose::ProseGate::new(
            prose.iter().map(|&i| normalized[i].rule.pattern),
            NFA_SIZE,
            DFA_CACHE,
        )?;
        let (raw, raw_set, raw_in_set) = pick(Target::Raw)?;
        if raw_in_set.len() != raw.len() {
            return Err("a solo rule must read the normal form".to_owned());
        }
        Ok(Detector {
            settings,
            normalized,
            normalized_set,
            in_set,
            solo,
            prose,
            prose_set,
            prose_gate,
            raw,
            raw_set,
            custom: RwLock::new(Arc::new(CustomSet::default())),
            clean_headers: Mutex::new(HashSet::new()),
        })
    }

    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether `path` is excluded from inspection altogether.
    #[must_use]
    pub fn skips_path(&self, path: &str) -> bool {
        self.settings
            .exclusions
            .iter()
            .any(|e| e.whole_path() && e.applies_to_path(path))
    }

    /// The user's rules.
    #[must_use]
    pub fn custom_rules(&self) -> Vec<CustomRule> {
        self.custom_set().rules.clone()
    }

    fn custom_set(&self) -> Arc<CustomSet> {
        match self.custom.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Adds a user rule. `id` defaults to the next free id from [`CUSTOM_ID_BASE`].
    ///
    /// # Errors
    /// A pattern that does not compile, matches the empty string (it would match every value),
    /// or an id already in use.
    pub fn add_rule(
        &self,
        pattern: &str,
        category: Category,
        score: u8,
        id: Option<u32>,
        description: &str,
    ) -> Result<CustomRule, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let regex = match compile_user_pattern(pattern) {
            Ok(regex) => Some(regex),
            Err(e) => {
                errors.push("pattern", e);
                None
            }
        };
        if score == 0 || score > 100 {
            errors.push(
                "score",
                format!("must be a whole number from 1 to 100, not {score}"),
            );
        }
        if id == Some(0) {
            errors.push("id", "must be at least 1");
        }
        let mut guard = match self.custom.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = Arc::clone(&guard);
        let id = id.unwrap_or_else(|| {
            current
                .rules
                .iter()
                .map(|r| r.id + 1)
                .max()
                .unwrap_or(CUSTOM_ID_BASE)
                .max(CUSTOM_ID_BASE)
        });
        if current.rules.iter().any(|r| r.id == id)
            || RULES.iter().any(|r| r.id == id)
            || rules::RESERVED_IDS.contains(&id)
        {
            errors.push("id", format!("{id} is already in use"));
        }
        let Some(regex) = regex.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let rule = CustomRule {
            id,
            pattern: pattern.to_owned(),
            category,
            score,
            description: if description.is_empty() {
                format!("custom pattern {pattern}")
            } else {
                description.to_owned()
            },
        };
        let mut rules = current.rules.clone();
        rules.push(rule.clone());
        let mut regexes = current.regexes.clone();
        regexes.push(regex);
        let set = builder_set(rules.iter().map(|r| r.pattern.as_str())).map_err(|e| {
            let mut errs = ConfigErrors::default();
            errs.push("pattern", first_line(&e));
            errs
        })?;
        self.forget_clean_headers();
        *guard = Arc::new(CustomSet {
            rules,
            set: Some(set),
            regexes,
        });
        Ok(rule)
    }

    /// Removes user rules by id or by pattern; how many were removed.
    pub fn remove_rule(&self, id: Option<u32>, pattern: Option<&str>) -> usize {
        let mut guard = match self.custom.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = Arc::clone(&guard);
        let keep: Vec<usize> = (0..current.rules.len())
            .filter(|&i| {
                let r = &current.rules[i];
                !(id == Some(r.id) || pattern == Some(r.pattern.as_str()))
            })
            .collect();
        let removed = current.rules.len() - keep.len();
        if removed == 0 {
            return 0;
        }
        let rules: Vec<CustomRule> = keep.iter().map(|&i| current.rules[i].clone()).collect();
        let regexes: Vec<Regex> = keep.iter().map(|&i| current.regexes[i].clone()).collect();
        let set = if rules.is_empty() {
            None
        } else {
            builder_set(rules.iter().map(|r| r.pattern.as_str())).ok()
        };
        self.forget_clean_headers();
        *guard = Arc::new(CustomSet {
            rules,
            set,
            regexes,
        });
        removed
    }

    /// Inspects one value as if it came from `kind` (named `name`): the `scan` behind
    /// `rampart.detector.scan(text, location=…)`.
    #[must_use]
    pub fn scan_text(&self, text: &str, kind: Kind, name: &str) -> Scan {
        let exclusions: Vec<&Exclusion> = self
            .settings
            .exclusions
            .iter()
            .filter(|e| e.path.is_none())
            .collect();
        let mut state = ScanState::new(self, &exclusions, None);
        let location = if name.is_empty() {
            kind.prefix().to_owned()
        } else {
            format!("{}:{name}", kind.prefix())
        };
        state.value(kind, name, &|| location.clone(), text);
        state.finish()
    }

    fn forget_clean_headers(&self) {
        if let Ok(mut memo) = self.clean_headers.lock() {
            memo.clear();
        }
    }

    fn is_clean_header(&self, value: &str) -> bool {
        self.clean_headers
            .lock()
            .is_ok_and(|memo| memo.contains(value))
    }

    fn remember_clean_header(&self, value: &str) {
        if value.len() > CLEAN_HEADER_LEN {
            return;
        }
        if let Ok(mut memo) = self.clean_headers.lock() {
            if memo.len() >= CLEAN_HEADERS {
                memo.clear();
            }
            memo.insert(value.into());
        }
    }

    /// Inspects a whole request (see [`extract`]).
    #[must_use]
    pub fn scan_request(&self, req: &crate::request::RequestView<'_>) -> Scan {
        let exclusions: Vec<&Exclusion> = self
            .settings
            .exclusions
            .iter()
            .filter(|e| !e.whole_path() && e.applies_to_path(req.path))
            .collect();
        // Clean prose, most of what honest users send, is matched in one pass over all such
        // values at the end. That pass almost never finds anything; when it does, the values
        // that matched are found in the batch, and a second walk of the request inspects those
        // values alone, in place, which names and explains the findings.
        let mut state = ScanState::new(self, &exclusions, Some(req.body.len().min(1 << 16)));
        extract::walk(req, &mut state);
        match state.batch_matches() {
            Ok(()) => {
                // No batched value matched: the header values that waited for the batch are
                // clean too.
                for value in state.batched_headers.drain(..) {
                    self.remember_clean_header(&value);
                }
            }
            Err(Some(flagged)) => {
                state.replay = Some(Replay {
                    flagged,
                    next: 0,
                    seen: 0,
                });
                state.header_calls = 0;
                extract::walk(req, &mut state);
            }
            Err(None) => {}
        }
        state.finish()
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

thread_local! {
    /// The batch buffers of the thread's last request, emptied, for its next: a 10 KB body
    /// would otherwise allocate and free them every time.
    static SPARE_BATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    static SPARE_ENDS: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Batches up to this capacity are kept for the thread's next request.
const SPARE_KEEP: usize = 1 << 17;

/// The per-request accumulator the extractor feeds values into.
pub struct ScanState<'d> {
    detector: &'d Detector,
    custom: Arc<CustomSet>,
    exclusions: &'d [&'d Exclusion],
    scan: Scan,
    /// Stop once this is reached: the request is an attack and enough evidence is kept.
    saturated: bool,
    /// When batching: the clean prose values seen so far, lower-cased, each followed by
    /// [`prose::BARRIER`], for one pass of the prose gate at the end (see
    /// [`Detector::scan_request`]).
    batch: Option<Vec<u8>>,
    /// Where each batched value's barrier is in `batch`.
    batch_ends: Vec<usize>,
    /// The second walk of a request whose batch matched.
    replay: Option<Replay>,
    /// Header values that found nothing but went into the batch: remembered as clean (see
    /// [`Self::header`]) once the batch is found clean.
    batched_headers: Vec<String>,
    /// Calls of [`Self::header`] in this walk so far.
    header_calls: u32,
    /// The calls of the first walk that the memo answered for, one bit each.
    memo_hits: u128,
    /// Bytes the SQL and HTML tokenisers may still read in this request (see
    /// [`ScanState::tokenisers`]).
    sql_budget: usize,
    xss_budget: usize,
}

/// Which batched values a second walk inspects.
struct Replay {
    /// Sequence numbers (in batching order) of the values that matched, ascending.
    flagged: Vec<usize>,
    /// Index into `flagged` of the next one to come.
    next: usize,
    /// Batch-eligible values seen so far by this walk.
    seen: usize,
}

impl Replay {
    /// Counts a batch-eligible value; whether it is one that matched.
    fn take(&mut self) -> bool {
        let seq = self.seen;
        self.seen += 1;
        if self.flagged.get(self.next) == Some(&seq) {
            self.next += 1;
            true
        } else {
            false
        }
    }
}

/// Values made only of `[A-Za-z0-9_,-]` cannot hold an attack: nothing to decode, no syntax
/// (hex-encoded `0x2e0x2e…` aside).
#[inline]
fn is_inert(s: &str, classes: u8) -> bool {
    s.len() < 3
        || (classes & normalize::NOT_TOKEN == 0
            && (classes & normalize::HEX_MARK == 0
                || !s
                    .as_bytes()
                    .windows(2)
                    .any(|w| w.eq_ignore_ascii_case(b"0x"))))
}

impl<'d> ScanState<'d> {
    /// `batch`: the bytes to reserve for batched prose values (`None`: no batching).
    fn new(
        detector: &'d Detector,
        exclusions: &'d [&'d Exclusion],
        batch: Option<usize>,
    ) -> ScanState<'d> {
        ScanState {
            detector,
            custom: detector.custom_set(),
            exclusions,
            scan: Scan::default(),
            saturated: false,
            batch: batch.map(|n| {
                let mut spare = SPARE_BATCH.take();
                spare.clear();
                spare.reserve(n);
                spare
            }),
            batch_ends: {
                let mut spare = SPARE_ENDS.take();
                spare.clear();
                spare
            },
            replay: None,
            batched_headers: Vec::new(),
            header_calls: 0,
            memo_hits: 0,
            sql_budget: SQL_BUDGET_BASE,
            xss_budget: XSS_BUDGET_BASE,
        }
    }

    /// Runs the prose gate over the batch (which is then spent). `Ok` when no batched value
    /// matches a prose rule; otherwise the sequence numbers of those that do, or `Err(None)`
    /// when the gate did not run (no batch, or the request is already judged an attack).
    fn batch_matches(&mut self) -> Result<(), Option<Vec<usize>>> {
        let batch = self.batch.take().ok_or(None)?;
        let result = if self.saturated {
            Err(None)
        } else if batch.is_empty() || !self.detector.prose_gate.batch_is_match(&batch) {
            Ok(())
        } else {
            let flagged = self
                .detector
                .prose_gate
                .matching_values(&batch, &self.batch_ends);
            // Both answers come from the same rules; should they ever disagree, every batched
            // value is inspected again rather than none.
            Err(Some(if flagged.is_empty() {
                (0..self.batch_ends.len()).collect()
            } else {
                flagged
            }))
        };
        if batch.capacity() <= SPARE_KEEP {
            SPARE_BATCH.set(batch);
            SPARE_ENDS.set(std::mem::take(&mut self.batch_ends));
        }
        result
    }

    /// Whether exclusions name parameters, so JSON values need their path as their name.
    #[must_use]
    pub fn names_json_paths(&self) -> bool {
        self.exclusions.iter().any(|e| !e.params.is_empty())
    }

    /// Whether a value with this profile is skipped whatever its name: an inert token, and no
    /// user rule that could want to see it.
    #[inline]
    #[must_use]
    pub fn skips(&self, raw: &str, profile: normalize::Profile) -> bool {
        is_inert(raw, profile.classes) && self.custom.set.is_none()
    }

    /// The most bytes of multipart text parts a request may hold (`detection_max_body_size`).
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.detector.settings.max_body_bytes
    }

    /// Whether more values are worth reading.
    #[must_use]
    pub fn wants_more(&self) -> bool {
        !self.saturated
    }

    /// Records bytes the extractor could not inspect (a body over the limit).
    pub fn truncated(&mut self, location: String, bytes: u64) {
        if self.replay.is_some() {
            // Counted by the first walk.
            return;
        }
        self.scan.truncated_bytes += bytes;
        if self.scan.truncated_at.len() < 8 {
            self.scan.truncated_at.push(location);
        }
    }

    /// Records that part of the request cannot be inspected as the application will read it;
    /// `why` names the place and the reason (`multipart: two boundary parameters`). The first
    /// report is kept.
    pub fn uninspectable(&mut self, reason: Uninspectable, why: String) {
        if self.replay.is_none() && self.scan.uninspectable.is_none() {
            self.scan.uninspectable = Some((reason, why));
        }
    }

    fn excluded(&self, kind: Kind, name: &str, id: u32, category: Category) -> bool {
        self.exclusions
            .iter()
            .any(|e| e.covers_rule(id, category) && e.covers_param(kind, name))
    }

    /// Inspects a header value (`env_name` as in the WSGI environ, without `HTTP_`). Browsers
    /// send the same `User-Agent` and `Origin` on every request, so a value found clean is
    /// remembered (per detector, up to [`CLEAN_HEADERS`] values) and not scanned again. Only
    /// verdicts that no exclusion shaped and that were reached value by value (not waiting in
    /// the prose batch) are remembered; changing the user rules forgets them all.
    pub fn header(&mut self, env_name: &str, raw: &str) {
        if self.saturated {
            return;
        }
        let call = self.header_calls;
        self.header_calls += 1;
        if self.replay.is_some() {
            // A value the memo answered for in the first walk was not batched then: skipped
            // here too, or the replay would count batched values out of step.
            if self
                .memo_hits
                .checked_shr(call)
                .is_some_and(|bits| bits & 1 == 1)
            {
                return;
            }
            let name = extract::header_name(env_name);
            self.value(Kind::Header, &name, &|| format!("header:{name}"), raw);
            return;
        }
        // An inert token (`https`, `keep-alive`) needs neither the memo nor a name (as in
        // `value_profiled`, which would return at once).
        if self.custom.set.is_none() && is_inert(raw, normalize::classes(raw.as_bytes())) {
            return;
        }
        // The memo answers for the first 128 headers of a request (one bit each, for the replay).
        let memo = self.exclusions.is_empty() && call < u128::BITS;
        if memo && self.detector.is_clean_header(raw) {
            // Counted as when it was inspected: a scan's result does not depend on the memo.
            self.scan.values += 1;
            self.memo_hits |= 1 << call;
            return;
        }
        let values = self.scan.values;
        let before = (
            self.scan.findings.len(),
            self.scan.score,
            self.scan.truncated_bytes + u64::from(self.scan.tokeniser_skipped),
            self.batch.as_ref().map(Vec::len),
        );
        let name = extract::header_name(env_name);
        self.value(Kind::Header, &name, &|| format!("header:{name}"), raw);
        let after = (
            self.scan.findings.len(),
            self.scan.score,
            self.scan.truncated_bytes + u64::from(self.scan.tokeniser_skipped),
            self.batch.as_ref().map(Vec::len),
        );
        // Remembered only when inspected (not an inert token) and clean; a value that went
        // into the batch once the batch is found clean.
        if memo
            && (before.0, before.1, before.2) == (after.0, after.1, after.2)
            && self.scan.values == values + 1
            && !self.saturated
            && raw.len() <= CLEAN_HEADER_LEN
        {
            if before.3 == after.3 {
                self.detector.remember_clean_header(raw);
            } else {
                self.batched_headers.push(raw.to_owned());
            }
        }
    }

    /// Inspects one value. `location` renders where it came from, only when something matched.
    pub fn value(&mut self, kind: Kind, name: &str, location: &dyn Fn() -> String, raw: &str) {
        if !self.saturated {
            let profile = normalize::Profile::of(raw.as_bytes());
            self.value_profiled(kind, name, location, raw, profile);
        }
    }

    /// [`ScanState::value`] with the value's profile already known (the JSON walker computes
    /// it while finding the string's end). Every byte of the value is inspected, whatever its
    /// length: normalisation and the rule sets are linear in it, and the tokenisers run on
    /// bounded spans (see [`ScanState::tokenisers`]).
    pub fn value_profiled(
        &mut self,
        kind: Kind,
        name: &str,
        location: &dyn Fn() -> String,
        raw: &str,
        profile: normalize::Profile,
    ) {
        if self.saturated {
            return;
        }
        if (is_inert(raw, profile.classes) && self.custom.set.is_none())
            || self.excluded_param(kind, name)
        {
            return;
        }
        // A clean prose value can only match a prose rule (no decoding, no markup, no raw
        // rule, no tokeniser): it waits for the batch, unless user rules need to see it.
        let batchable = profile.clean()
            && profile.classes & normalize::NOT_PROSE == 0
            && self.custom.set.is_none();
        if let Some(replay) = self.replay.as_mut() {
            // The second walk: only the batched values that matched; the rest is done.
            if batchable && replay.take() {
                self.piece(kind, name, location, raw, profile);
            }
            return;
        }
        self.scan.values += 1;
        self.sql_budget += raw.len() / SQL_BUDGET_DIVISOR;
        self.xss_budget += raw.len() / XSS_BUDGET_DIVISOR;
        if batchable {
            if let Some(batch) = self.batch.as_mut() {
                let start = batch.len();
                batch.extend_from_slice(raw.as_bytes());
                batch[start..].make_ascii_lowercase();
                self.batch_ends.push(batch.len());
                batch.push(prose::BARRIER);
                return;
            }
        }
        self.piece(kind, name, location, raw, profile);
    }

    /// Whether an exclusion switches inspection of this value off entirely.
    fn excluded_param(&self, kind: Kind, name: &str) -> bool {
        self.exclusions
            .iter()
            .any(|e| e.rules.is_empty() && e.covers_param(kind, name))
    }

    fn piece(
        &mut self,
        kind: Kind,
        name: &str,
        location: &dyn Fn() -> String,
        raw: &str,
        profile: normalize::Profile,
    ) {
        let d = self.detector;
        let clean = profile.clean();
        let norm = normalize::normalize_profiled(raw, profile);
        let text = norm.text.as_bytes();
        // Findings of this value; their location is filled in once, for those that count.
        let mut hits: Vec<Finding> = Vec::new();
        let secret = std::cell::OnceCell::new();
        let excerpt_of = |bytes: &[u8], start: usize, end: usize| -> String {
            if *secret.get_or_init(|| is_secret(name)) {
                "[redacted]".to_owned()
            } else {
                excerpt(bytes, start, end)
            }
        };
        // A clean value's normal form is its lower case: same classes, no second pass.
        let prose = if clean {
            profile.classes & normalize::NOT_PROSE == 0
        } else {
            is_prose(text)
        };
        let (set, map): (&RegexSet, Option<&[usize]>) = if prose {
            (&d.prose_set, Some(&d.prose))
        } else {
            (&d.normalized_set, Some(&d.in_set))
        };
        // Most values match nothing: `is_match` stops at the first match and skips the
        // bookkeeping of which rules matched.
        let any = if prose {
            d.prose_gate.is_match(text)
        } else {
            set.is_match(text)
        };
        let matched = any.then(|| set.matches(text));
        // Where the first SQL rule matched in the normal form: the SQL tokeniser reads a long
        // value from there.
        let mut sql_at: Option<usize> = None;
        let mut record = |hits: &mut Vec<Finding>, c: &Compiled, bytes: &[u8], normal: bool| {
            if c.rule.kinds.contains(kind) {
                let (start, end) = c.regex.find(bytes).map_or((0, 0), |m| (m.start(), m.end()));
                if normal && c.rule.category == Category::Sqli {
                    sql_at = Some(sql_at.map_or(start, |at| at.min(start)));
                }
                hits.push(finding(
                    c.rule.id,
                    c.rule.category,
                    c.rule.score,
                    c.rule.description.to_owned(),
                    excerpt_of(bytes, start, end),
                ));
            }
        };
        for i in matched.iter().flat_map(regex::bytes::SetMatches::iter) {
            record(
                &mut hits,
                &d.normalized[map.map_or(i, |m| m[i])],
                text,
                true,
            );
        }
        // The solo rules start with `<` then a tag name, maybe after white space or `/` (a
        // test checks it): prose has none, nor a flood of `<` or `<!--`.
        let names_a_tag = |c: u8| c.is_ascii_alphabetic() || c == b'/' || c.is_ascii_whitespace();
        if !prose && next_lt(text, 0, names_a_tag).is_some() {
            for (j, re) in &d.solo {
                let c = &d.normalized[*j];
                if !c.rule.kinds.contains(kind) {
                    continue;
                }
                if let Some(m) = re.find(text) {
                    // The excerpt shows the tag up to its `>` (the rule stops at its name).
                    let window = &text[m.end()..text.len().min(m.end() + 4 * EXCERPT_CHARS)];
                    let end =
                        m.end() + memchr::memchr(b'>', window).map_or(window.len(), |i| i + 1);
                    hits.push(finding(
                        c.rule.id,
                        c.rule.category,
                        c.rule.score,
                        c.rule.description.to_owned(),
                        excerpt_of(text, m.start(), end),
                    ));
                }
            }
        }
        // Raw-form rules look for encodings and control characters: a clean value has none.
        if !d.raw.is_empty() && !clean && d.raw_set.is_match(raw.as_bytes()) {
            for i in &d.raw_set.matches(raw.as_bytes()) {
                record(&mut hits, &d.raw[i], raw.as_bytes(), false);
            }
        }
        self.traits(&norm, &mut hits, &excerpt_of);
        self.tokenisers(raw, &norm, clean, sql_at, &mut hits, &excerpt_of);
        if let Some(set) = &self.custom.set {
            for i in &set.matches(text) {
                let r = &self.custom.rules[i];
                let m = self.custom.regexes[i]
                    .find(text)
                    .map_or((0, 0), |m| (m.start(), m.end()));
                hits.push(finding(
                    r.id,
                    r.category,
                    r.score,
                    r.description.clone(),
                    excerpt_of(text, m.0, m.1),
                ));
            }
        }
        if hits.is_empty() {
            return;
        }
        let mut loc: Option<String> = None;
        for mut f in hits {
            if self.excluded(kind, name, f.rule, f.category) {
                continue;
            }
            // A rule counts once per value (the head and tail of a long value are one value).
            f.location.clone_from(loc.get_or_insert_with(location));
            if self
                .scan
                .findings
                .iter()
                .any(|g| g.rule == f.rule && g.location == f.location)
            {
                continue;
            }
            self.scan.score += u32::from(f.score);
            if self.scan.findings.len() < MAX_FINDINGS {
                self.scan.findings.push(f);
            }
        }
        if self.scan.score >= d.settings.threshold && self.scan.findings.len() >= MAX_FINDINGS {
            self.saturated = true;
        }
    }

    /// Evidence from the encoding itself.
    #[allow(clippy::unused_self)]
    fn traits(
        &self,
        norm: &Normalized,
        hits: &mut Vec<Finding>,
        excerpt_of: &dyn Fn(&[u8], usize, usize) -> String,
    ) {
        let t = norm.traits;
        let text = norm.text.as_bytes();
        if t.overlong {
            hits.push(finding(
                1420,
                Category::PathTraversal,
                rules::CRITICAL,
                "overlong UTF-8 encoding".to_owned(),
                excerpt_of(text, 0, text.len()),
            ));
        }
        if t.null_byte {
            hits.push(finding(
                1421,
                Category::FileInclusion,
                rules::CRITICAL,
                "null byte".to_owned(),
                excerpt_of(text, 0, text.len()),
            ));
        }
    }

    /// libinjection's SQL and HTML tokenisers, on values that could hold either.
    ///
    /// Their cost per byte is far above the rule sets' (the SQL one looks every word up in its
    /// keyword table: about 1 µs per byte of `<a>` repeated), so they never read a whole long
    /// value. A value up to [`TOKEN_SPAN`] bytes is read whole, as libinjection expects; a
    /// longer one in bounded spans: for SQL, its start and where the first SQL rule matched;
    /// for markup, a span at each tag opening not yet read. Every span is paid for from the
    /// request's budgets, which grow with the bytes inspected ([`SQL_BUDGET_BASE`],
    /// [`XSS_BUDGET_BASE`] and their divisors), so their total cost stays linear in the request
    /// whatever its shape. The rule sets still read every byte.
    fn tokenisers(
        &mut self,
        raw: &str,
        norm: &Normalized,
        clean: bool,
        sql_at: Option<usize>,
        hits: &mut Vec<Finding>,
        excerpt_of: &dyn Fn(&[u8], usize, usize) -> String,
    ) {
        // The SQL tokeniser only ever corroborates: its verdict scores below the threshold. So
        // it runs only on values another rule already found suspicious.
        // Markup alone (a tag, an event handler) is no reason to read a value as SQL: a flood of
        // tags would otherwise pay the SQL tokeniser for nothing.
        let sql_candidate = hits.iter().any(|h| h.category != Category::Xss);
        let changed = !clean && (norm.traits.layers > 0 || !raw.eq_ignore_ascii_case(&norm.text));
        // `sql_at` is a position in the normal form: in the raw value too when the two differ
        // only in case.
        let candidates: [(Option<&str>, Option<usize>); 2] = [
            (Some(raw), sql_at.filter(|_| !changed)),
            (changed.then_some(norm.text.as_str()), sql_at),
        ];
        for (s, at) in candidates {
            let Some(s) = s else { continue };
            let b = s.as_bytes();
            if sql_candidate && !hits.iter().any(|h| h.rule == 1100) {
                for (start, end) in sql_spans(s, at) {
                    let span = &b[start..end];
                    if !self.spend(Budget::Sql, span.len()) {
                        break;
                    }
                    if let Some(fp) = injection::sqli(span) {
                        hits.push(finding(
                            1100,
                            Category::Sqli,
                            rules::ERROR,
                            format!("SQL token sequence {fp}"),
                            excerpt_of(span, 0, span.len()),
                        ));
                        break;
                    }
                }
            }
            // An XML document is markup by design; the element rules still apply to it.
            let xml = b.trim_ascii_start().starts_with(b"<?xml");
            if xml || hits.iter().any(|h| h.rule == 1200) {
                continue;
            }
            let mut read_to = 0;
            while let Some(open) = next_tag_opening(b, read_to) {
                let (start, end) = if b.len() <= TOKEN_SPAN {
                    (0, b.len())
                } else {
                    (
                        ceil_boundary(s, open.saturating_sub(TOKEN_LEAD)),
                        floor_boundary(s, (open + TOKEN_SPAN).min(b.len())),
                    )
                };
                let span = &b[start..end];
                if !self.spend(Budget::Xss, span.len()) {
                    break;
                }
                if injection::xss(span) {
                    hits.push(finding(
                        1200,
                        Category::Xss,
                        rules::CRITICAL,
                        "HTML/JavaScript tokeniser: executable markup".to_owned(),
                        excerpt_of(span, 0, span.len()),
                    ));
                    break;
                }
                if end == b.len() {
                    break;
                }
                // A tag cut at the span's end is read again by the next span.
                read_to = end.saturating_sub(TOKEN_OVERLAP).max(open + 1);
            }
        }
    }

    /// Takes `bytes` from a tokeniser budget; `false` (and nothing taken) when it has not got
    /// that much left, which is counted.
    fn spend(&mut self, budget: Budget, bytes: usize) -> bool {
        let left = match budget {
            Budget::Sql => &mut self.sql_budget,
            Budget::Xss => &mut self.xss_budget,
        };
        if *left < bytes {
            self.scan.tokeniser_skipped += 1;
            return false;
        }
        *left -= bytes;
        true
    }

    fn finish(mut self) -> Scan {
        self.scan.attack = self.scan.score >= self.detector.settings.threshold;
        self.scan
            .findings
            .sort_by(|a, b| b.score.cmp(&a.score).then(a.rule.cmp(&b.rule)));
        self.scan
    }
}

/// The tokenisers, behind one small interface (the crate is young; keep it replaceable).
mod injection {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// The fingerprint when `s` tokenises as SQL injection.
    pub fn sqli(s: &[u8]) -> Option<String> {
        catch_unwind(AssertUnwindSafe(|| {
            let r = libinjectionrs::detect_sqli(s);
            if r.is_injection() {
                Some(
                    r.fingerprint
                        .map_or_else(String::new, |f| f.as_str().to_owned()),
                )
            } else {
                None
            }
        }))
        .ok()
        .flatten()
    }

    /// Whether `s` tokenises as executable markup.
    pub fn xss(s: &[u8]) -> bool {
        catch_unwind(AssertUnwindSafe(|| {
            libinjectionrs::detect_xss(s).is_injection()
        }))
        .unwrap_or(false)
    }
}

/// A finding of one value, its location still to be filled in.
fn finding(
    rule: u32,
    category: Category,
    score: u8,
    description: String,
    excerpt: String,
) -> Finding {
    Finding {
        rule,
        category,
        score,
        location: String::new(),
        excerpt,
        description,
    }
}

/// The first `<` at or after `from` that `next` accepts the byte after. One `memchr` to the
/// first `<`, then a plain loop: a flood of `<` makes a `memchr` per hit slower than looking at
/// every byte.
fn next_lt(b: &[u8], from: usize, next: impl Fn(u8) -> bool) -> Option<usize> {
    let first = from + memchr::memchr(b'<', b.get(from..)?)?;
    b[first..]
        .windows(2)
        .position(|w| w[0] == b'<' && next(w[1]))
        .map(|i| first + i)
}

/// The first `<` at or after `from` that can start markup (`<a`, `</`, `<!`, `<?`), not `<3`
/// or `a < b`.
fn next_tag_opening(b: &[u8], from: usize) -> Option<usize> {
    next_lt(b, from, |c| {
        c.is_ascii_alphabetic() || matches!(c, b'/' | b'!' | b'?')
    })
}

/// The spans of `s` the SQL tokeniser reads: all of it when short; else its start, and the
/// span from a little before `at` (where a SQL rule matched) when that is further on.
fn sql_spans(s: &str, at: Option<usize>) -> impl Iterator<Item = (usize, usize)> {
    let len = s.len();
    let whole = len <= TOKEN_SPAN;
    let head = (
        0,
        if whole {
            len
        } else {
            floor_boundary(s, TOKEN_SPAN)
        },
    );
    let from = at
        .filter(|&at| !whole && at.saturating_sub(TOKEN_LEAD) + TOKEN_OVERLAP > head.1)
        .map(|at| {
            let start = ceil_boundary(s, at.saturating_sub(TOKEN_LEAD).min(len));
            (start, floor_boundary(s, (start + TOKEN_SPAN).min(len)))
        });
    std::iter::once(head).chain(from)
}

/// Which tokeniser budget a span is paid from.
#[derive(Clone, Copy)]
enum Budget {
    Sql,
    Xss,
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The matched bytes with a little context, shortened to [`EXCERPT_CHARS`], control
/// characters escaped.
fn excerpt(bytes: &[u8], start: usize, end: usize) -> String {
    let start = start.min(bytes.len());
    let end = end.clamp(start, bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..end]);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
