use super::*;

fn detector() -> Detector {
    Detector::new(Settings::default()).expect("rules compile")
}

fn attack(d: &Detector, kind: Kind, text: &str) -> bool {
    d.scan_text(text, kind, "q").attack
}

#[test]
fn every_rule_compiles_with_a_unique_id() {
    let mut ids: Vec<u32> = RULES.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate rule ids");
    for level in 1..=4 {
        let d = Detector::new(Settings {
            paranoia: level,
            ..Settings::default()
        });
        assert!(d.is_ok(), "{:?}", d.err());
    }
}

#[test]
fn classic_attacks_are_caught() {
    let d = detector();
    for (kind, text) in [
        (Kind::Query, "1' OR '1'='1"),
        (Kind::Query, "1 UNION/**/SELECT password FROM users"),
        (Kind::Query, "<svg/onload=alert(1)>"),
        (Kind::Query, "%3Cscript%3Ealert(1)%3C/script%3E"),
        (Kind::Form, "; cat /etc/passwd"),
        (Kind::Query, "../../../../etc/passwd"),
        (
            Kind::Query,
            "php://filter/convert.base64-encode/resource=index.php",
        ),
        (Kind::Query, "*)(uid=*))(|(uid=*"),
        (
            Kind::Body,
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>",
        ),
        (Kind::Query, "http://169.254.169.254/latest/meta-data/"),
        (Kind::Query, "__import__('os').system('id')"),
        (Kind::Key, "$ne"),
        (Kind::Query, "{{config.__class__.__init__.__globals__}}"),
        (Kind::Query, "/x\r\nSet-Cookie: a=b"),
    ] {
        assert!(
            attack(&d, kind, text),
            "{kind:?} {text:?}: {:?}",
            d.scan_text(text, kind, "q")
        );
    }
}

#[test]
fn ordinary_text_is_not() {
    let d = detector();
    for text in [
        "O'Brien",
        "select a product from the list",
        "I <3 this, a < b and c > d",
        "Tom & Jerry; cat lovers welcome",
        "Please drop me a line or two",
        "see ../docs/readme.md",
        "http://localhost:3000 is where the dev server runs",
        "Home | Shop | About",
        "price: $5 {name}",
        "C:\\Users\\Anna\\Documents\\report.docx",
    ] {
        let s = d.scan_text(text, Kind::Query, "q");
        assert!(!s.attack, "{text:?}: {:?}", s.findings);
    }
}

#[test]
fn findings_explain_where_and_what() {
    let d = detector();
    let s = d.scan_text("1 union select 1,2", Kind::Query, "id");
    let f = s.findings.iter().find(|f| f.rule == 1110).expect("1110");
    assert_eq!(f.location, "query:id");
    assert_eq!(f.category, Category::Sqli);
    assert_eq!(f.excerpt, "union select");
    let secret = d.scan_text("1 union select 1,2", Kind::Form, "password");
    assert!(secret.findings.iter().all(|f| f.excerpt == "[redacted]"));
}

#[test]
fn custom_rules_are_validated_added_and_removed() {
    let d = detector();
    assert!(!attack(&d, Kind::Query, "acme-internal-token"));
    let r = d
        .add_rule("acme-internal", Category::Custom, 5, None, "")
        .expect("valid");
    assert_eq!(r.id, CUSTOM_ID_BASE);
    assert!(attack(&d, Kind::Query, "acme-internal-token"));
    let errs = d
        .add_rule("a*", Category::Custom, 5, None, "")
        .expect_err("empty match");
    assert!(errs.mentions("pattern"));
    let errs = d
        .add_rule("(", Category::Custom, 5, Some(1110), "")
        .expect_err("bad");
    assert!(errs.mentions("pattern") && errs.mentions("id"));
    assert_eq!(d.remove_rule(Some(r.id), None), 1);
    assert!(!attack(&d, Kind::Query, "acme-internal-token"));
}

#[test]
fn exclusions_by_rule_param_and_path() {
    let d = Detector::new(Settings {
        exclusions: vec![
            Exclusion {
                path: None,
                rules: vec![RuleSelector::Category(Category::Xss)],
                params: vec!["html".into()],
            },
            Exclusion {
                path: Some("/cms".into()),
                rules: vec![],
                params: vec![],
            },
        ],
        ..Settings::default()
    })
    .expect("compile");
    assert!(!d.scan_text("<script>x</script>", Kind::Form, "html").attack);
    assert!(
        d.scan_text("<script>x</script>", Kind::Form, "title")
            .attack
    );
    assert!(d.skips_path("/cms/page"));
    assert!(!d.skips_path("/cmsx"));
}

#[test]
fn long_values_are_inspected_at_both_ends_and_counted() {
    let d = detector();
    let tail = format!("{}<script>alert(1)</script>", "a".repeat(50_000));
    let s = d.scan_text(&tail, Kind::Json, "q");
    assert!(s.attack);
    assert!(s.truncated_bytes > 30_000);
}

/// Every rule outside `PROSE_RULES` must fail on prose, or prose values would skip it. Checked
/// on the regression set's payloads reduced to prose (their other characters dropped or turned
/// into spaces) and on keyword-heavy sentences.
#[test]
fn only_prose_rules_match_prose() {
    let corpus = include_str!("../../../../tests/detection/regression.jsonl");
    let mut texts: Vec<String> = Vec::new();
    for line in corpus.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
        let p = normalize::normalize(v["payload"].as_str().unwrap_or_default()).text;
        let dropped: String = p
            .bytes()
            .filter(|&b| is_prose(&[b]))
            .map(char::from)
            .collect();
        let spaced: String = p
            .bytes()
            .map(|b| if is_prose(&[b]) { char::from(b) } else { ' ' })
            .collect();
        texts.extend([dropped, spaced]);
    }
    for s in [
        "1 union select password from users where id 1",
        "x; drop table users; shutdown",
        "order by 3 -- select 1,2",
        "; ls -la; cat etc passwd; id",
        "ping -n 3 127.0.0.1; whoami",
        "etc passwd boot.ini win.ini web.config",
        "169.254.169.254 metadata.google.internal",
        "java.lang.runtime processbuilder",
        "set-cookie: a\nlocation: x",
    ] {
        texts.push(s.to_owned());
    }
    let all: Vec<&Rule> = RULES
        .iter()
        .filter(|r| r.target == rules::Target::Normalized && r.paranoia <= 4)
        .collect();
    let set = builder_set(all.iter().map(|r| r.pattern)).expect("compile");
    for t in texts.iter().filter(|t| is_prose(t.as_bytes())) {
        for i in &set.matches(t.as_bytes()) {
            assert!(
                rules::PROSE_RULES.contains(&all[i].id),
                "rule {} matches prose {t:?}: add it to PROSE_RULES",
                all[i].id
            );
        }
    }
}
