//! The detection fields of the configuration.

use std::sync::Arc;

use serde_json::Value;

use super::{validate_pattern, Category, Detector, Exclusion, RuleSelector, Settings};
use crate::config::{describe, Reader};

/// `detection_uninspectable`: what a body the engine cannot inspect as the application will
/// read it (over `detection_max_body_size`, malformed, ambiguous) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninspectablePolicy {
    /// Refuse it: 413 for a body too large, 400 for one malformed or ambiguous (the default, as
    /// `ModSecurity`'s `SecRequestBodyLimitAction Reject`).
    Block,
    /// Let it through with a WARNING event.
    Log,
    /// Let it through with an INFO `noted` event.
    Allow,
}

/// What a detected attack leads to.
#[derive(Debug, Clone)]
pub struct DetectPolicy {
    /// `None` when detection is off.
    pub detector: Option<Arc<Detector>>,
    /// `detection_action="log"`: log attacks and let them through (other checks still block).
    pub log_only: bool,
    /// Status of the block response.
    pub status: u16,
    /// Body bytes read for inspection; the rest is counted, not read.
    pub max_body_bytes: usize,
    /// What a body that cannot be inspected as the application will read it leads to
    /// (`detection_uninspectable`).
    pub uninspectable: UninspectablePolicy,
    /// Whether an attack counts toward the automatic ban.
    pub auto_ban: bool,
    /// When detection is off: the settings a route that switches it on builds its detector
    /// with (`suspicious_detection(enabled=True)`).
    pub dormant: Option<Settings>,
}

impl DetectPolicy {
    /// Reads every `detection_*` field (and `enable_penetration_detection`).
    pub(crate) fn parse(r: &mut Reader<'_>) -> DetectPolicy {
        let enabled = r.bool("enable_penetration_detection", true);
        // The reference's knobs: validated to its ranges; what each means here is documented.
        r.float("detection_compiler_timeout", 2.0, 0.1, 10.0);
        // Validated for compatibility; every value is inspected whole whatever its length.
        r.uint("detection_max_content_length", 10_000, 1000, 100_000);
        r.bool("detection_preserve_attack_patterns", true);
        r.float("detection_semantic_threshold", 0.7, 0.0, 1.0);
        r.float("detection_anomaly_threshold", 3.0, 1.0, 10.0);
        r.float("detection_slow_pattern_threshold", 0.1, 0.01, 1.0);
        r.uint("detection_monitor_history_size", 1000, 100, 10_000);
        r.uint("detection_max_tracked_patterns", 1000, 100, 5000);
        // Ours.
        let threshold = r.uint("detection_threshold", 5, 1, 1000);
        let paranoia = r.uint("detection_paranoia_level", 1, 1, 4);
        let log_only = match r.opt_string("detection_action").as_deref() {
            None | Some("block") => false,
            Some("log") => true,
            Some(other) => {
                r.err(
                    "detection_action",
                    format!("must be 'block' or 'log', not '{other}'"),
                );
                false
            }
        };
        let status = r.uint("detection_status_code", 403, 400, 499);
        let max_body = r.uint("detection_max_body_size", 1 << 20, 0, 1 << 30);
        let auto_ban = r.bool("detection_auto_ban", true);
        let uninspectable = match r.opt_string("detection_uninspectable").as_deref() {
            None | Some("block") => UninspectablePolicy::Block,
            Some("log") => UninspectablePolicy::Log,
            Some("allow") => UninspectablePolicy::Allow,
            Some(other) => {
                r.err(
                    "detection_uninspectable",
                    format!("must be 'block', 'log' or 'allow', not '{other}'"),
                );
                UninspectablePolicy::Block
            }
        };
        let mut exclusions = Vec::new();
        let rules = selectors(r, "detection_exclude_rules");
        let params = r.string_list("detection_exclude_params", &[]);
        if !rules.is_empty() || !params.is_empty() {
            exclusions.push(Exclusion {
                path: None,
                rules,
                params,
            });
        }
        for (i, p) in r
            .string_list("detection_exclude_paths", &[])
            .into_iter()
            .enumerate()
        {
            if p.starts_with('/') {
                exclusions.push(Exclusion {
                    path: Some(p),
                    ..Exclusion::default()
                });
            } else {
                r.err(
                    &format!("detection_exclude_paths[{i}]"),
                    format!("'{p}' must start with '/'"),
                );
            }
        }
        exclusions.extend(exclusion_list(r));
        let custom = custom_patterns(r);

        let settings = Settings {
            threshold: u32::try_from(threshold).unwrap_or(5),
            paranoia: u8::try_from(paranoia).unwrap_or(1),
            max_body_bytes: usize::try_from(max_body).unwrap_or(1 << 20),
            exclusions,
        };
        let dormant = (!enabled && r.errors.is_empty()).then(|| settings.clone());
        let detector = if enabled && r.errors.is_empty() {
            match Detector::new(settings) {
                Ok(d) => {
                    for (i, c) in custom.iter().enumerate() {
                        if let Err(errs) =
                            d.add_rule(&c.pattern, c.category, c.score, c.id, &c.description)
                        {
                            for e in errs.0 {
                                r.err(
                                    &format!("detection_custom_patterns[{i}].{}", e.field),
                                    e.message,
                                );
                            }
                        }
                    }
                    Some(Arc::new(d))
                }
                Err(e) => {
                    r.err(
                        "enable_penetration_detection",
                        format!("built-in rules: {e}"),
                    );
                    None
                }
            }
        } else {
            None
        };
        DetectPolicy {
            detector,
            log_only,
            status: u16::try_from(status).unwrap_or(403),
            max_body_bytes: usize::try_from(max_body).unwrap_or(1 << 20),
            uninspectable,
            auto_ban,
            dormant,
        }
    }
}

/// A list of rule ids (numbers or digit strings) and category names.
fn selectors(r: &mut Reader<'_>, key: &str) -> Vec<RuleSelector> {
    let Some(v) = r.get(key) else {
        return Vec::new();
    };
    let Value::Array(items) = v else {
        let d = describe(v);
        r.err(
            key,
            format!("must be a list of rule ids or categories, not {d}"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let parsed = match item {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(RuleSelector::Id),
            Value::String(s) => RuleSelector::parse(s),
            _ => None,
        };
        match parsed {
            Some(s) => out.push(s),
            None => r.err(
                &format!("{key}[{i}]"),
                format!(
                    "{} is not a rule id or one of the categories {}",
                    match item {
                        Value::String(s) => format!("'{s}'"),
                        other => describe(other),
                    },
                    category_names()
                ),
            ),
        }
    }
    out
}

fn category_names() -> String {
    Category::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `detection_exclusions=[{"path": "/cms", "rules": ["xss"], "params": ["body"]}, …]`.
fn exclusion_list(r: &mut Reader<'_>) -> Vec<Exclusion> {
    let key = "detection_exclusions";
    let Some(v) = r.get(key) else {
        return Vec::new();
    };
    let Value::Array(items) = v else {
        let d = describe(v);
        r.err(key, format!("must be a list of dicts, not {d}"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            let d = describe(item);
            r.err(&format!("{key}[{i}]"), format!("must be a dict, not {d}"));
            continue;
        };
        let mut sub = r.nested(map, &format!("{key}[{i}]"));
        sub.reject_unknown(&["path", "rules", "params"]);
        let path = sub.opt_string("path");
        if let Some(p) = &path {
            if !p.starts_with('/') {
                sub.err("path", format!("'{p}' must start with '/'"));
            }
        }
        let rules = selectors(&mut sub, "rules");
        let params = sub.string_list("params", &[]);
        if path.is_none() && rules.is_empty() && params.is_empty() {
            sub.err("path", "an exclusion needs a path, rules or params");
        }
        r.absorb(sub);
        out.push(Exclusion {
            path,
            rules,
            params,
        });
    }
    out
}

struct CustomSpec {
    pattern: String,
    category: Category,
    score: u8,
    id: Option<u32>,
    description: String,
}

/// `detection_custom_patterns=["acme-debug", {"pattern": "…", "category": "sqli", "score": 3}]`.
fn custom_patterns(r: &mut Reader<'_>) -> Vec<CustomSpec> {
    let key = "detection_custom_patterns";
    let Some(v) = r.get(key) else {
        return Vec::new();
    };
    let Value::Array(items) = v else {
        let d = describe(v);
        r.err(key, format!("must be a list of patterns or dicts, not {d}"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(p) => {
                if let Err(e) = validate_pattern(p) {
                    r.err(&format!("{key}[{i}].pattern"), e);
                }
                out.push(CustomSpec {
                    pattern: p.clone(),
                    category: Category::Custom,
                    score: 5,
                    id: None,
                    description: String::new(),
                });
            }
            Value::Object(map) => {
                let mut sub = r.nested(map, &format!("{key}[{i}]"));
                sub.reject_unknown(&["pattern", "category", "score", "id", "description"]);
                let pattern = sub.opt_string("pattern");
                match &pattern {
                    None => sub.err("pattern", "is required"),
                    Some(p) => {
                        if let Err(e) = validate_pattern(p) {
                            sub.err("pattern", e);
                        }
                    }
                }
                let category = match sub.opt_string("category").as_deref() {
                    None => Category::Custom,
                    Some(c) => Category::parse(c).unwrap_or_else(|| {
                        sub.err(
                            "category",
                            format!("'{c}' is not one of {}", category_names()),
                        );
                        Category::Custom
                    }),
                };
                let score = sub.uint("score", 5, 1, 100);
                let id = sub
                    .get("id")
                    .is_some()
                    .then(|| sub.uint("id", 0, 1, u64::from(u32::MAX)));
                let description = sub.opt_string("description").unwrap_or_default();
                r.absorb(sub);
                out.push(CustomSpec {
                    pattern: pattern.unwrap_or_default(),
                    category,
                    score: u8::try_from(score).unwrap_or(5),
                    id: id.and_then(|n| u32::try_from(n).ok()),
                    description,
                });
            }
            other => {
                let d = describe(other);
                r.err(
                    &format!("{key}[{i}]"),
                    format!("must be a pattern string or a dict, not {d}"),
                );
            }
        }
    }
    out
}
