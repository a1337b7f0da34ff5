use super::*;
use crate::request::RequestView;

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

/// Every byte of a long value is read: a payload padded on both sides is found wherever it
/// sits, in every kind of value, and the finding's excerpt is the payload itself.
#[test]
fn long_values_are_inspected_whole() {
    let d = detector();
    let payloads = [
        ("' union select secret from users --", "union select"),
        ("<script>alert(1)</script>", "<script"),
        ("; cat /etc/passwd", "passwd"),
    ];
    for (payload, key) in payloads {
        for pad in [5_000_usize, 50_000, 400_000] {
            for at in [0.0, 0.37, 0.5, 0.99, 1.0] {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let before = (pad as f64 * at) as usize;
                let text = format!(
                    "{}{payload}{}",
                    "lorem ipsum ".repeat(before / 12),
                    "dolor sit. ".repeat((pad - before) / 11)
                );
                for kind in [
                    Kind::Query,
                    Kind::Json,
                    Kind::Header,
                    Kind::Body,
                    Kind::Form,
                ] {
                    let s = d.scan_text(&text, kind, "q");
                    assert!(s.attack, "{payload} at {at} of {pad} in {kind:?}");
                    assert_eq!(s.truncated_bytes, 0);
                    assert!(
                        s.findings.iter().any(|f| f.excerpt.contains(key)),
                        "excerpt names the payload: {:?}",
                        s.findings
                    );
                }
            }
        }
    }
    // Its benign twin, as long: nothing.
    let text = format!(
        "{}O'Brien's <b>bold</b> cat, 3 < 4{}",
        "lorem ipsum ".repeat(30_000),
        "dolor sit. ".repeat(30_000)
    );
    for kind in [Kind::Query, Kind::Json, Kind::Body] {
        let s = d.scan_text(&text, kind, "q");
        assert!(!s.attack, "{kind:?}: {:?}", s.findings);
    }
}

/// Floods that the tokenisers would read slowly are read in bounded spans: an attack after the
/// flood is still found by the rules (and a short value's tokenisers still run whole).
#[test]
fn tokeniser_floods_are_bounded() {
    let d = detector();
    for unit in ["<a>", "<a ", "<a b=", "' or ", "<ab>"] {
        let flood = unit.repeat(1_000_000 / unit.len());
        let s = d.scan_text(&flood, Kind::Body, "");
        assert!(
            s.tokeniser_skipped <= 1_000,
            "{unit}: {}",
            s.tokeniser_skipped
        );
        let attack = format!("{flood}<svg/onload=alert(1)>");
        assert!(d.scan_text(&attack, Kind::Body, "").attack, "{unit}");
    }
    // libinjection alone (no rule knows this spelling) still reads a short value whole.
    let s = d.scan_text("<svg><a xlink:href=\"javascript:x\">", Kind::Query, "q");
    assert!(s.attack, "{:?}", s.findings);
}

fn with_header<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> RequestView<'a> {
    RequestView {
        method: "GET",
        path,
        headers,
        ..RequestView::default()
    }
}

/// Header values found clean are remembered; the memo must never let an attack through: not
/// after a user rule is added, not when an exclusion shaped the verdict, and a scan's result
/// is the same with the memo as without.
#[test]
fn clean_header_memo_never_hides_an_attack() {
    let d = detector();
    let ua = [(
        "USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    )];
    let first = d.scan_request(&with_header("/", &ua));
    assert!(!first.attack && first.findings.is_empty());
    assert_eq!(d.scan_request(&with_header("/", &ua)), first);
    d.add_rule("gecko/2010", Category::Custom, 5, Some(9001), "old gecko")
        .expect("valid rule");
    let after = d.scan_request(&with_header("/", &ua));
    assert!(after.attack, "a new user rule sees a remembered value");
    assert_eq!(after.findings[0].location, "header:user-agent");

    // An exclusion on one path: the value is clean there, and an attack everywhere else.
    let d = Detector::new(Settings {
        exclusions: vec![Exclusion {
            path: Some("/cms".into()),
            rules: vec![RuleSelector::Category(Category::Xss)],
            params: vec![],
        }],
        ..Settings::default()
    })
    .expect("compile");
    let xss = [("X_TITLE", "<img src=x onerror=alert(1)>")];
    for _ in 0..2 {
        assert!(!d.scan_request(&with_header("/cms/page", &xss)).attack);
        assert!(d.scan_request(&with_header("/shop", &xss)).attack);
    }
}

/// A prose header value waits for the batch; it is remembered once the batch is found clean,
/// and not when the batch matched.
#[test]
fn batched_header_values_are_remembered_once_the_batch_is_clean() {
    let d = detector();
    let host = [("HOST", "shop.example.com")];
    let first = d.scan_request(&with_header("/", &host));
    assert!(!first.attack);
    assert!(d.is_clean_header("shop.example.com"));
    assert_eq!(d.scan_request(&with_header("/", &host)), first);

    // The same kind of value in a request whose batch matches (a prose attack in the query).
    let d = detector();
    let referer = [("REFERER", "shop.example.com")];
    let attack = RequestView {
        query: "q=1 union select password from users",
        ..with_header("/", &referer)
    };
    assert!(d.scan_request(&attack).attack);
    assert!(!d.is_clean_header("shop.example.com"));
}

/// A header value the memo answers for is skipped by the replay of a matching batch as it was
/// by the first walk: the batched values stay in step, and the attack is found where it is.
#[test]
fn a_remembered_header_keeps_the_replay_in_step() {
    let d = detector();
    let headers = [("X_CLIENT", "198.51.100.20"), ("X_NOTE", "hello there")];
    assert!(!d.scan_request(&with_header("/", &headers)).attack);
    assert!(d.is_clean_header("198.51.100.20") && d.is_clean_header("hello there"));
    let body = r#"{"note": "1 union select password from users"}"#;
    let attack = RequestView {
        headers: &headers,
        ..json_post(body)
    };
    let scan = d.scan_request(&attack);
    assert!(scan.attack, "{scan:?}");
    assert!(
        scan.findings.iter().all(|f| f.location == "json:$.note"),
        "{scan:?}"
    );
}

fn json_post(body: &str) -> RequestView<'_> {
    RequestView {
        method: "POST",
        path: "/submit",
        content_type: Some("application/json"),
        body: body.as_bytes(),
        ..RequestView::default()
    }
}

/// Clean prose is matched in one batch; an attack among many honest prose values is still
/// found, at its own location, wherever it sits, including rules anchored to a value's start
/// and end.
#[test]
fn batched_prose_attacks_are_found_and_placed() {
    let d = detector();
    let honest = "A durable widget with a brushed finish; see the care sheet.";
    for attack_text in [
        "1 union select password from users where id 1",
        "...",
        "select null, null",
        "; sleep 5",
    ] {
        assert!(
            d.scan_text(attack_text, Kind::Json, "q").score > 0,
            "{attack_text}"
        );
        for at in [0, 3, 7] {
            let mut values = vec![honest; 8];
            values.insert(at, attack_text);
            let body =
                serde_json::to_string(&serde_json::json!({ "notes": values })).expect("json");
            let scan = d.scan_request(&json_post(&body));
            assert!(
                scan.findings
                    .iter()
                    .any(|f| f.location == format!("json:$.notes[{at}]")),
                "{attack_text} at {at}: {scan:?}"
            );
            assert!(scan
                .findings
                .iter()
                .all(|f| f.location == format!("json:$.notes[{at}]")));
        }
    }
    // Honest prose alone: nothing.
    let body =
        serde_json::to_string(&serde_json::json!({ "notes": vec![honest; 40] })).expect("json");
    let scan = d.scan_request(&json_post(&body));
    assert!(scan.findings.is_empty() && scan.values == 40, "{scan:?}");
}

/// The regression set's payloads reduced to prose (their other characters dropped or turned
/// into spaces), and keyword-heavy sentences: text on which prose rules fire or nearly fire.
fn prose_texts() -> Vec<String> {
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
        "...",
        "select null, null",
        "\n; id",
        "a durable widget; see the care sheet.",
    ] {
        texts.push(s.to_owned());
    }
    texts.retain(|t| is_prose(t.as_bytes()));
    texts
}

/// The prose gate (rules narrowed to prose, one automaton) answers as the full prose rules do,
/// on single values and on batches, at every paranoia level.
#[test]
fn prose_gate_agrees_with_the_prose_rules() {
    let texts = prose_texts();
    for paranoia in 1..=4 {
        let d = Detector::new(Settings {
            paranoia,
            ..Settings::default()
        })
        .expect("rules compile");
        let hits: Vec<bool> = texts
            .iter()
            .map(|t| d.prose_set.is_match(t.as_bytes()))
            .collect();
        assert!(hits.iter().any(|&h| h) && hits.iter().any(|&h| !h));
        for (t, &hit) in texts.iter().zip(&hits) {
            assert_eq!(d.prose_gate.is_match(t.as_bytes()), hit, "{t:?}");
        }
        // Batches of the texts that match nothing, then each matching text placed first, in
        // the middle and last among them.
        let clean: Vec<&String> = texts
            .iter()
            .zip(&hits)
            .filter(|(_, &h)| !h)
            .map(|(t, _)| t)
            .collect();
        let batch = |values: &[&String]| -> (Vec<u8>, Vec<usize>) {
            let mut b = Vec::new();
            let mut ends = Vec::new();
            for v in values {
                b.extend_from_slice(v.as_bytes());
                ends.push(b.len());
                b.push(prose::BARRIER);
            }
            (b, ends)
        };
        for chunk in clean.chunks(9) {
            let (b, ends) = batch(chunk);
            assert!(!d.prose_gate.batch_is_match(&b), "{chunk:?}");
            assert!(d.prose_gate.matching_values(&b, &ends).is_empty());
        }
        let filler: Vec<&String> = clean.iter().copied().cycle().take(8).collect();
        for (t, _) in texts.iter().zip(&hits).filter(|(_, &h)| h).take(300) {
            for at in [0, 4, 8] {
                let mut values = filler.clone();
                values.insert(at, t);
                let (b, ends) = batch(&values);
                assert!(d.prose_gate.batch_is_match(&b), "{t:?} at {at}");
                assert_eq!(d.prose_gate.matching_values(&b, &ends), vec![at], "{t:?}");
                // And a second one further on.
                values.push(t);
                let (b, ends) = batch(&values);
                assert_eq!(
                    d.prose_gate.matching_values(&b, &ends),
                    vec![at, 9],
                    "{t:?}"
                );
            }
        }
    }
}

/// Every rule outside `PROSE_RULES` must fail on prose, or prose values would skip it. Checked
/// on [`prose_texts`].
#[test]
fn only_prose_rules_match_prose() {
    let texts = prose_texts();
    let all: Vec<&Rule> = RULES
        .iter()
        .filter(|r| r.target == rules::Target::Normalized && r.paranoia <= 4)
        .collect();
    let set = builder_set(all.iter().map(|r| r.pattern)).expect("compile");
    for t in &texts {
        for i in &set.matches(t.as_bytes()) {
            assert!(
                rules::PROSE_RULES.contains(&all[i].id),
                "rule {} matches prose {t:?}: add it to PROSE_RULES",
                all[i].id
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Random prose built from the words and punctuation the prose rules look for: the gate,
    /// alone and batched, agrees with the full rules.
    #[test]
    fn prose_gate_agrees_on_random_prose(
        values in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "select", "union", "all", "from", "where", "order", "by", "group",
                    "having", "drop", "table", "into", "outfile", "case", "when", "sleep",
                    "id", "ls", "cat", "sh", "-c", "-e", "nc", "ping", "-n", "etc", "passwd",
                    "..", ".", ";", ",", "!", "?", "-", " ", "  ", "\n", "1", "0x2e", "0x41424344",
                    "document", ".cookie", "alert", "process", ".env", "169.254.169.254",
                    "metadata.", "null", "a", "widget", "care", "sheet",
                ]),
                0..12,
            ),
            1..6,
        )
    ) {
        static DETECTOR: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(detector);
        let d = &*DETECTOR;
        let values: Vec<String> = values.iter().map(|w| w.concat()).collect();
        let mut batch = Vec::new();
        let mut ends = Vec::new();
        let mut hits = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let hit = d.prose_set.is_match(v.as_bytes());
            proptest::prop_assert_eq!(d.prose_gate.is_match(v.as_bytes()), hit, "{:?}", v);
            if hit {
                hits.push(i);
            }
            batch.extend_from_slice(v.as_bytes());
            ends.push(batch.len());
            batch.push(prose::BARRIER);
        }
        proptest::prop_assert_eq!(
            d.prose_gate.batch_is_match(&batch),
            !hits.is_empty(),
            "{:?}",
            values
        );
        proptest::prop_assert_eq!(
            d.prose_gate.matching_values(&batch, &ends),
            hits,
            "{:?}",
            values
        );
    }
}

/// Solo rules are matched only on values holding a `<`: each must start with one, read the
/// normal form, and not be a prose rule.
#[test]
fn solo_rules_start_with_a_tag_opening() {
    for id in rules::SOLO_RULES {
        let rule = rules::RULES
            .iter()
            .find(|r| r.id == *id)
            .expect("solo rule exists");
        // `<`, then a letter, `/` or white space (`\s*` and `/?` may start it): the gate.
        let after = &rule.pattern[1..];
        assert!(
            after.starts_with("(?:") || after.starts_with("\\s*") || after.starts_with('['),
            "{id}: {after}"
        );
        assert!(rule.target == rules::Target::Normalized, "{id}");
        assert!(!rules::PROSE_RULES.contains(id), "{id}");
    }
    // And they still match where they did.
    let d = detector();
    let s = d.scan_text("see <a href=x>here</a>", Kind::Query, "q");
    assert!(
        s.findings.iter().any(|f| f.rule == 1216),
        "{:?}",
        s.findings
    );
}
