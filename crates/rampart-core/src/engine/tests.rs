use super::*;
use crate::decision::Verdict;

fn engine(json: &str) -> Engine {
    Engine::from_json(json).expect("valid config")
}

fn req<'a>(peer: &'a str, path: &'a str) -> RequestView<'a> {
    RequestView {
        method: "GET",
        path,
        scheme: "http",
        peer: Some(peer),
        host: Some("example.test"),
        ..RequestView::default()
    }
}

fn status(e: &Engine, r: &RequestView<'_>) -> u16 {
    e.inspect(r)
        .and_then(|v| v.respond)
        .map_or(200, |resp| resp.status)
}

/// The headers a verdict adds to the app's response, precomputed or not.
fn added<'a>(e: &'a Engine, v: &'a Verdict) -> &'a [(String, String)] {
    match (v.cors_set, &v.headers) {
        (Some(i), _) => &e.cors_sets()[i],
        (None, Some(h)) => h,
        (None, None) => &[],
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn plain_allow_path_returns_none() {
    let e = engine(r#"{"blacklist": ["10.0.0.0/8"], "blocked_user_agents": ["sqlmap"]}"#);
    let mut r = req("192.0.2.1", "/");
    r.user_agent = Some("Mozilla/5.0");
    assert!(e.inspect(&r).is_none());
}

#[test]
fn access_lists() {
    let e = engine(
        r#"{"blacklist": ["10.0.0.0/8", "2001:db8::/32"], "whitelist": ["10.1.2.3", "192.0.2.0/24"]}"#,
    );
    let cases = [
        ("192.0.2.9", 200),
        ("10.1.2.3", 403),
        ("198.51.100.1", 403),
        ("2001:db8::5", 403),
        ("::ffff:192.0.2.9", 200),
        ("not-an-ip", 403),
    ];
    for (peer, want) in cases {
        assert_eq!(status(&e, &req(peer, "/x")), want, "{peer}");
    }
    let v = e.inspect(&req("10.1.2.3", "/x")).expect("blocked");
    assert_eq!(v.events[0].action, "ip_blacklisted");
    assert_eq!(v.events[0].rule, "ip.blacklist");
    let resp = v.respond.expect("response");
    assert_eq!(resp.body, "Forbidden");
    assert_eq!(resp.status_line(), "403 Forbidden");
    assert_eq!(header(&resp.headers, "X-Frame-Options"), Some("SAMEORIGIN"));
    assert_eq!(header(&resp.headers, "Content-Length"), Some("9"));
}

#[test]
fn empty_whitelist_means_none() {
    let e = engine(r#"{"whitelist": []}"#);
    assert_eq!(status(&e, &req("198.51.100.1", "/")), 200);
}

#[test]
fn excluded_paths_skip_checks() {
    let e = engine(r#"{"blacklist": ["192.0.2.1"]}"#);
    assert_eq!(status(&e, &req("192.0.2.1", "/static/app.css")), 200);
    assert_eq!(status(&e, &req("192.0.2.1", "/static")), 200);
    assert_eq!(status(&e, &req("192.0.2.1", "/staticfoo")), 403);
    assert_eq!(status(&e, &req("192.0.2.1", "/docs")), 200);
    let e = engine(r#"{"blacklist": ["192.0.2.1"], "exclude_paths": ["/health/"]}"#);
    assert_eq!(status(&e, &req("192.0.2.1", "/health")), 200);
    assert_eq!(status(&e, &req("192.0.2.1", "/static/x")), 403);
}

#[test]
fn emergency_mode_before_lists() {
    let e = engine(
        r#"{"emergency_mode": true, "emergency_whitelist": ["10.0.0.0/8"], "blacklist": ["10.9.9.9"]}"#,
    );
    assert_eq!(status(&e, &req("192.0.2.1", "/")), 503);
    assert_eq!(status(&e, &req("10.0.0.1", "/")), 200);
    assert_eq!(status(&e, &req("10.9.9.9", "/")), 403);
}

#[test]
fn user_agents() {
    let e = engine(r#"{"blocked_user_agents": ["curl", "^bad"]}"#);
    let mut r = req("192.0.2.1", "/");
    r.user_agent = Some("curl/8.0");
    let v = e.inspect(&r).expect("blocked");
    assert_eq!(v.respond.expect("resp").body, "User-Agent not allowed");
    assert_eq!(v.events[0].rule, "user_agent:curl");
    r.user_agent = Some("not bad");
    assert!(e.inspect(&r).is_none());
    r.user_agent = None;
    assert!(e.inspect(&r).is_none());
}

#[test]
fn https_redirects() {
    let e = engine(r#"{"enforce_https": true, "trusted_proxies": ["10.0.0.1"]}"#);
    let mut r = req("192.0.2.1", "/a b/é");
    r.query = "q=1&x=%20";
    r.host = Some("example.test:80");
    let resp = e.inspect(&r).and_then(|v| v.respond).expect("redirect");
    assert_eq!(resp.status, 301);
    assert_eq!(
        header(&resp.headers, "Location"),
        Some("https://example.test/a%20b/%E9?q=1&x=%20")
    );
    r.forwarded_proto = Some("https");
    assert_eq!(
        status(&e, &r),
        301,
        "untrusted peer's X-Forwarded-Proto is ignored"
    );
    r.peer = Some("10.0.0.1");
    assert_eq!(status(&e, &r), 200);
    r.scheme = "https";
    r.peer = Some("192.0.2.1");
    assert_eq!(status(&e, &r), 200);
    let mut bad = req("192.0.2.1", "/");
    bad.host = Some("evil.test\r\nX: y");
    assert_eq!(status(&e, &bad), 400);
}

#[test]
fn passive_mode_logs_everything_and_blocks_nothing() {
    let e = engine(
        r#"{"passive_mode": true, "blacklist": ["192.0.2.1"], "blocked_user_agents": ["curl"]}"#,
    );
    let mut r = req("192.0.2.1", "/");
    r.user_agent = Some("curl/8");
    let v = e.inspect(&r).expect("events");
    assert!(v.respond.is_none());
    let actions: Vec<_> = v.events.iter().map(|ev| (ev.action, ev.outcome)).collect();
    assert_eq!(
        actions,
        [
            ("ip_blacklisted", Outcome::Passive),
            ("user_agent_blocked", Outcome::Passive)
        ]
    );
}

#[test]
fn custom_error_bodies() {
    let e = engine(r#"{"blacklist": ["192.0.2.1"], "custom_error_responses": {"403": "Go away"}}"#);
    let resp = e
        .inspect(&req("192.0.2.1", "/"))
        .and_then(|v| v.respond)
        .expect("resp");
    assert_eq!(resp.body, "Go away");
    assert_eq!(
        e.error_response(500, "Internal Server Error", &req("1.1.1.1", "/"))
            .status,
        500
    );
}

#[test]
fn trusted_proxy_resolution_reaches_lists() {
    let e = engine(r#"{"trusted_proxies": ["10.0.0.0/8"], "blacklist": ["203.0.113.9"]}"#);
    let mut r = req("10.0.0.2", "/");
    r.forwarded_for = Some("1.1.1.1, 203.0.113.9");
    assert_eq!(status(&e, &r), 403);
    r.peer = Some("192.0.2.50");
    assert_eq!(
        status(&e, &r),
        200,
        "spoofed header from an untrusted peer changes nothing"
    );
    assert!(e.needs().forwarded_for);
}

#[test]
fn cors_actual_and_preflight() {
    let e = engine(
        r#"{"enable_cors": true, "cors_allow_origins": ["https://app.test"], "blacklist": ["192.0.2.66"]}"#,
    );
    let mut r = req("192.0.2.1", "/api");
    r.origin = Some("https://app.test");
    let v = e.inspect(&r).expect("cors headers");
    let h = &e.cors_sets()[v.cors_set.expect("precomputed")];
    assert_eq!(
        header(h, "Access-Control-Allow-Origin"),
        Some("https://app.test")
    );
    assert_eq!(
        header(h, "X-Frame-Options"),
        None,
        "static headers are not repeated"
    );

    r.method = "OPTIONS";
    r.access_control_request_method = Some("PUT");
    let resp = e
        .inspect(&r)
        .and_then(|v| v.respond)
        .expect("preflight answered");
    assert_eq!(resp.status, 204);
    assert_eq!(header(&resp.headers, "Access-Control-Max-Age"), Some("600"));

    r.peer = Some("192.0.2.66");
    let resp = e.inspect(&r).and_then(|v| v.respond).expect("blocked");
    assert_eq!(resp.status, 403, "preflight runs the checks first");
    assert_eq!(
        header(&resp.headers, "Access-Control-Allow-Origin"),
        Some("https://app.test"),
        "blocks carry CORS headers so the browser can read them"
    );

    r.peer = Some("192.0.2.1");
    r.origin = Some("https://evil.test");
    let v = e.inspect(&r).expect("vary");
    assert!(
        v.respond.is_none(),
        "a disallowed preflight goes on to the app"
    );
    assert_eq!(header(added(&e, &v), "Access-Control-Allow-Origin"), None);
}

#[test]
fn nonce_per_request() {
    let e = engine(
        r#"{"security_headers": {"csp": {"script-src": ["'self'"]}, "csp_nonce_in": ["script-src"]}}"#,
    );
    let r = req("192.0.2.1", "/");
    let a = e.inspect(&r).expect("nonce");
    let b = e.inspect(&r).expect("nonce");
    let (na, nb) = (a.nonce.expect("a"), b.nonce.expect("b"));
    assert_ne!(na, nb);
    assert_eq!(na.len(), 24);
    let csp = header(a.headers.as_deref().expect("h"), "Content-Security-Policy").expect("csp");
    assert_eq!(csp, format!("script-src 'self' 'nonce-{na}'"));
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, want) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), want);
    }
}

#[test]
fn bad_patterns_are_reported_with_other_errors() {
    let e = Engine::from_json(r#"{"blocked_user_agents": ["("], "blacklist": ["nope"]}"#)
        .expect_err("bad");
    let fields: Vec<_> = e.0.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["blacklist[0]", "blocked_user_agents[0]"]);
}

fn clocked(json: &str) -> (Engine, Clock) {
    let clock = Clock::manual(1_000_000);
    (engine(json).with_clock(clock.clone()), clock)
}

fn statuses(e: &Engine, r: &RequestView<'_>, n: usize) -> Vec<u16> {
    (0..n).map(|_| status(e, r)).collect()
}

#[test]
fn global_limit_counts_per_ip_and_slides() {
    let (e, clock) = clocked(r#"{"rate_limit": 2, "rate_limit_window": 10}"#);
    let a = req("192.0.2.1", "/");
    let b = req("2001:db8::1", "/");
    assert_eq!(statuses(&e, &a, 3), [200, 200, 429]);
    assert_eq!(statuses(&e, &b, 3), [200, 200, 429]);
    clock.advance_ms(9_999);
    assert_eq!(status(&e, &a), 429);
    clock.advance_ms(1);
    assert_eq!(statuses(&e, &a, 3), [200, 200, 429]);
}

#[test]
fn limit_headers_and_refusal() {
    let (e, _clock) =
        clocked(r#"{"rate_limit": 2, "rate_limit_window": 60, "rate_limit_draft_headers": true}"#);
    let r = req("192.0.2.1", "/");
    let v = e.inspect(&r).expect("limit headers");
    let h = v.limit_headers.expect("headers");
    assert_eq!(header(&h, "X-RateLimit-Limit"), Some("2"));
    assert_eq!(header(&h, "X-RateLimit-Remaining"), Some("1"));
    assert_eq!(header(&h, "X-RateLimit-Reset"), Some("1060"));
    assert_eq!(header(&h, "RateLimit-Policy"), Some(r#""global";q=2;w=60"#));
    assert_eq!(header(&h, "RateLimit"), Some(r#""global";r=1;t=60"#));
    let _ = e.inspect(&r);
    let v = e.inspect(&r).expect("refused");
    let resp = v.respond.expect("429");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.body, "Too many requests");
    assert_eq!(header(&resp.headers, "Retry-After"), Some("60"));
    assert_eq!(header(&resp.headers, "X-RateLimit-Remaining"), Some("0"));
    assert_eq!(v.events[0].action, "rate_limited");
    assert_eq!(v.events[0].rule, "rate_limit:global");
}

#[test]
fn endpoint_limits_stack_with_the_global_one() {
    let (e, _clock) = clocked(
        r#"{"rate_limit": 3, "rate_limit_window": 60,
            "endpoint_rate_limits": {"/login": [1, 60]}, "block_messages": "detailed"}"#,
    );
    let login = req("192.0.2.1", "/login");
    let other = req("192.0.2.1", "/other");
    assert_eq!(status(&e, &login), 200);
    let v = e.inspect(&login).and_then(|v| v.respond).expect("refused");
    assert_eq!(
        v.body,
        "ip 192.0.2.1 rate limited for 60s (over 1 requests in a 60s window)"
    );
    // The refused login was not counted by the global limit: two more requests fit.
    assert_eq!(statuses(&e, &other, 3), [200, 200, 429]);
}

#[test]
fn bans_reports_and_passive_mode() {
    let (e, clock) =
        clocked(r#"{"auto_ban_threshold": 2, "auto_ban_window": 60, "auto_ban_duration": 100}"#);
    let ip: IpAddr = "203.0.113.9".parse().expect("ip");
    let r = req("203.0.113.9", "/");
    assert!(e.inspect(&r).is_none(), "no limit, no ban: plain allow");
    assert_eq!(e.report(ip).count, 1);
    let second = e.report(ip);
    assert!(second.banned_until_ms.is_some());
    assert_eq!(second.event.as_ref().map(|ev| ev.action), Some("ip_banned"));
    let resp = e.inspect(&r).and_then(|v| v.respond).expect("banned");
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (403, "IP address banned")
    );
    assert_eq!(header(&resp.headers, "Retry-After"), Some("100"));
    assert_eq!(e.bans().len(), 1);
    clock.advance_ms(100_000);
    assert!(e.inspect(&r).is_none(), "the ban ended");
    assert!(e.ban(ip, Some(5_000), "").is_ok());
    assert_eq!(status(&e, &r), 403);
    assert!(e.unban(ip));
    assert_eq!(status(&e, &r), 200);

    let (p, _clock) = clocked(r#"{"passive_mode": true, "auto_ban_threshold": 1}"#);
    let report = p.report(ip);
    assert_eq!(report.banned_until_ms, None);
    assert_eq!(
        report.event.map(|ev| ev.outcome),
        Some(Outcome::Passive),
        "passive mode logs the ban it would make"
    );
    let off = engine(r#"{"enable_ip_banning": false}"#);
    assert!(off.ban(ip, None, "").is_err());
    assert_eq!(off.report(ip).count, 0);
}

#[test]
fn route_policies_bypass_standalone_and_extra_limits() {
    let (e, _clock) = clocked(r#"{"rate_limit": 2, "rate_limit_window": 60}"#);
    assert!(!e.route_mode());
    e.set_routes(
        r#"{"free": {"bypass": ["all"]},
            "solo": {"standalone": true, "limits": [[5, 60]]},
            "tight": {"limits": [{"count": 1, "window": 10}]}}"#,
    )
    .expect("valid routes");
    assert!(e.route_mode());
    assert!(e.set_routes("{}").is_err(), "routes are set once");
    let r = req("192.0.2.1", "/x");
    let code = |endpoint: &str| {
        e.inspect_route(&r, Some(endpoint))
            .and_then(|v| v.respond)
            .map_or(200, |resp| resp.status)
    };
    // In route mode `inspect` leaves admission to `inspect_route`.
    assert!(e.inspect(&r).is_none());
    assert_eq!((0..4).map(|_| code("free")).collect::<Vec<_>>(), [200; 4]);
    assert_eq!(code("tight"), 200);
    assert_eq!(code("tight"), 429, "the route's own limit");
    assert_eq!(code("other"), 200);
    assert_eq!(code("other"), 429, "the global limit: 2 used");
    assert_eq!(
        (0..6).map(|_| code("solo")).collect::<Vec<_>>(),
        [200, 200, 200, 200, 200, 429],
        "standalone: only the route's 5"
    );
    e.ban("192.0.2.1".parse().expect("ip"), None, "")
        .expect("ban");
    assert_eq!(code("solo"), 403, "bans apply to standalone routes");
    assert_eq!(code("free"), 200, "bypass skips bans too");
    let errs = e.set_routes(r#"{"x": {"bypass": ["nope"], "limits": [[0, 1]]}}"#);
    assert!(errs.is_err());
}

#[test]
fn endpoint_scoped_limits_need_the_route() {
    let (e, _clock) =
        clocked(r#"{"rate_limits": [{"limit": 1, "window": 60, "key": "endpoint"}]}"#);
    assert!(e.route_mode());
    let a = req("192.0.2.1", "/a");
    let b = req("192.0.2.2", "/a");
    let code = |r: &RequestView<'_>, ep: &str| {
        e.inspect_route(r, Some(ep))
            .and_then(|v| v.respond)
            .map_or(200, |resp| resp.status)
    };
    assert_eq!(code(&a, "a"), 200);
    assert_eq!(
        code(&b, "a"),
        429,
        "one counter per endpoint, shared by clients"
    );
    assert_eq!(code(&b, "b"), 200);
}

#[test]
fn client_ip_header_and_excluded_methods() {
    let (e, _clock) = clocked(
        r#"{"rate_limit": 1, "client_ip_header": "X-Real-IP", "exclude_methods": ["options"]}"#,
    );
    assert!(e.config().warnings.iter().any(|w| w.contains("any peer")));
    assert_eq!(e.config().proxies.environ_key(), "HTTP_X_REAL_IP");
    let mut a = req("10.0.0.1", "/");
    a.forwarded_for = Some("198.51.100.1");
    let mut b = req("10.0.0.1", "/");
    b.forwarded_for = Some("198.51.100.2");
    assert_eq!(statuses(&e, &a, 2), [200, 429]);
    assert_eq!(status(&e, &b), 200, "keyed by the header, not the peer");
    let mut opts = a;
    opts.method = "OPTIONS";
    assert!(e.inspect(&opts).is_none(), "excluded method: no checks");
}

#[test]
fn rate_limit_config_errors_name_every_field() {
    let errs = Engine::from_json(
        r#"{"rate_limit": 0, "rate_limit_algorithm": "leaky", "rate_limits": [{"limit": 1}],
            "endpoint_rate_limits": {"login": [1, 2], "/x": [1]}, "client_ip_header": "bad header"}"#,
    )
    .expect_err("invalid");
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "rate_limit",
        "rate_limit_algorithm",
        "rate_limits[0].window",
        "endpoint_rate_limits[login]",
        "endpoint_rate_limits[/x]",
        "client_ip_header",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[test]
fn engines_opening_one_shm_file_share_limits_and_bans() {
    let dir = std::env::temp_dir().join(format!("rampart-engine-shm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let json = format!(
        r#"{{"rate_limit": 3, "storage_uri": "shm://{}/e.shm"}}"#,
        dir.display()
    );
    let a = engine(&json).open_store().expect("open");
    let b = engine(&json).open_store().expect("open");
    let r = req("192.0.2.1", "/");
    let got: Vec<u16> = [&a, &b, &a, &b].iter().map(|e| status(e, &r)).collect();
    assert_eq!(got, [200, 200, 200, 429]);
    let ip: std::net::IpAddr = "192.0.2.2".parse().expect("ip");
    a.ban(ip, Some(60_000), "shared").expect("ban");
    assert_eq!(status(&b, &req("192.0.2.2", "/")), 403);
    assert_eq!(b.bans().len(), 1);
    // memory:// (the default) keeps each engine to itself; a bad path is an error naming it.
    let m = engine(r#"{"rate_limit": 1}"#).open_store().expect("memory");
    assert_eq!(status(&m, &r), 200);
    let missing = dir.join("no/such/dir/x.shm");
    let err = engine(&format!(
        r#"{{"storage_uri": "shm://{}"}}"#,
        missing.display()
    ))
    .open_store()
    .expect_err("missing directory");
    assert!(err.contains("no/such/dir"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn geo_engine(json: &str) -> Engine {
    use crate::net::geo::{GeoDb, GeoSlot};
    use crate::net::mmdb::{build, Data};
    let e = engine(json);
    let db = build(
        "GeoLite2-Country",
        &[
            (
                "203.0.113.0/24".parse().expect("net"),
                Data::maxmind_country("CN"),
            ),
            (
                "198.51.100.0/24".parse().expect("net"),
                Data::maxmind_country("US"),
            ),
            (
                "2001:db8::/32".parse().expect("net"),
                Data::maxmind_country("FR"),
            ),
        ],
    );
    let slot = GeoSlot::default();
    slot.replace(Some(GeoDb::from_bytes(db).expect("db")));
    e.set_country_source(Arc::new(slot)).expect("first source");
    e
}

#[test]
fn countries_are_blocked_or_allowed_by_the_source() {
    let e =
        geo_engine(r#"{"blocked_countries": ["CN"], "geo_ip_handler": {"$object": "MaxMindDB"}}"#);
    assert_eq!(status(&e, &req("203.0.113.7", "/")), 403);
    assert_eq!(status(&e, &req("198.51.100.7", "/")), 200);
    assert_eq!(
        status(&e, &req("192.0.2.1", "/")),
        200,
        "not placed: passes a block list"
    );
    let v = e.inspect(&req("203.0.113.7", "/")).expect("blocked");
    assert_eq!(v.events[0].action, "country_blocked");
    assert_eq!(v.events[0].rule, "country:CN");
    assert_eq!(
        v.events[0].country.map(|c| c.to_string()).as_deref(),
        Some("CN")
    );
    assert_eq!(v.respond.expect("response").body, "Forbidden");

    let allow = geo_engine(
        r#"{"whitelist_countries": ["US", "FR"], "geo_ip_handler": {"$object": "MaxMindDB"}}"#,
    );
    assert_eq!(status(&allow, &req("198.51.100.7", "/")), 200);
    assert_eq!(status(&allow, &req("2001:db8::1", "/")), 200);
    assert_eq!(status(&allow, &req("203.0.113.7", "/")), 403);
    assert_eq!(
        status(&allow, &req("192.0.2.1", "/")),
        403,
        "not placed: fails an allow list"
    );
    assert_eq!(
        status(&allow, &req("10.0.0.1", "/")),
        200,
        "private: never placed, never refused"
    );
    assert_eq!(status(&allow, &req("127.0.0.1", "/")), 200);
    let v = allow.inspect(&req("192.0.2.1", "/")).expect("blocked");
    assert_eq!(v.events[0].rule, "country:unknown");
}

#[test]
fn the_ip_whitelist_and_passive_mode_apply_to_countries_and_clouds() {
    let e = geo_engine(
        r#"{"blocked_countries": ["CN"], "geo_ip_handler": {"$object": "MaxMindDB"},
            "whitelist": ["203.0.113.7", "198.51.100.0/24"], "block_cloud_providers": ["AWS"]}"#,
    );
    e.clouds().replace(
        Provider::Aws,
        crate::net::cloud::parse(Provider::Aws, b"198.51.100.0/25")
            .expect("ranges")
            .set,
    );
    assert_eq!(
        status(&e, &req("203.0.113.7", "/")),
        200,
        "whitelisted in CN"
    );
    assert_eq!(
        status(&e, &req("198.51.100.9", "/")),
        200,
        "whitelisted in AWS"
    );
    let passive = geo_engine(
        r#"{"blocked_countries": ["CN"], "geo_ip_handler": {"$object": "MaxMindDB"},
            "passive_mode": true}"#,
    );
    let v = passive.inspect(&req("203.0.113.8", "/")).expect("event");
    assert!(v.respond.is_none());
    assert_eq!(v.events[0].outcome, Outcome::Passive);
    assert_eq!(v.events[0].action, "country_blocked");
}

#[test]
fn cloud_ranges_block_the_configured_providers_only() {
    let e = engine(r#"{"block_cloud_providers": ["GCP", "Azure"]}"#);
    assert_eq!(
        status(&e, &req("34.80.0.1", "/")),
        200,
        "nothing loaded yet"
    );
    for (p, cidr) in [
        (Provider::Aws, "3.5.140.0/22"),
        (Provider::Gcp, "34.80.0.0/15"),
        (Provider::Azure, "2603:1000::/25"),
    ] {
        e.clouds().replace(
            p,
            crate::net::cloud::parse(p, cidr.as_bytes())
                .expect("ranges")
                .set,
        );
    }
    assert_eq!(
        status(&e, &req("3.5.141.1", "/")),
        200,
        "AWS is not blocked"
    );
    assert_eq!(status(&e, &req("34.81.2.3", "/")), 403);
    assert_eq!(status(&e, &req("2603:1000::9", "/")), 403);
    let v = e.inspect(&req("34.81.2.3", "/")).expect("blocked");
    assert_eq!(v.events[0].action, "cloud_provider_blocked");
    assert_eq!(v.events[0].rule, "cloud:GCP");
    assert_eq!(v.events[0].cloud, Some(Provider::Gcp));
    assert_eq!(
        v.respond.expect("response").body,
        "Cloud provider IP not allowed"
    );
}

#[test]
fn geo_blocks_count_toward_the_ban_only_when_asked() {
    let json = r#"{"blocked_countries": ["CN"], "geo_ip_handler": {"$object": "MaxMindDB"},
                   "auto_ban_threshold": 2, "geo_auto_ban": GEO}"#;
    let off = geo_engine(&json.replace("GEO", "false"));
    for _ in 0..3 {
        assert_eq!(status(&off, &req("203.0.113.7", "/")), 403);
    }
    assert!(off.ban_of("203.0.113.7".parse().expect("ip")).is_none());
    let on = geo_engine(&json.replace("GEO", "true"));
    let _ = on.inspect(&req("203.0.113.7", "/"));
    let v = on.inspect(&req("203.0.113.7", "/")).expect("blocked");
    assert!(
        v.events.iter().any(|ev| ev.action == "ip_banned"),
        "{:?}",
        v.events
    );
    assert!(on.ban_of("203.0.113.7".parse().expect("ip")).is_some());
}

#[derive(Debug)]
struct Failing;

impl CountrySource for Failing {
    fn country(&self, _: IpAddr) -> Result<Option<Country>, String> {
        Err("handler raised ValueError('boom')".into())
    }
}

#[test]
fn a_failing_source_is_noted_and_the_country_is_unknown() {
    let e = engine(r#"{"blocked_countries": ["CN"], "geo_ip_handler": {"$object": "H"}}"#);
    e.set_country_source(Arc::new(Failing)).expect("set");
    assert!(e.set_country_source(Arc::new(Failing)).is_err(), "once");
    let v = e.inspect(&req("203.0.113.7", "/")).expect("a note");
    assert!(v.respond.is_none());
    assert_eq!(v.events[0].action, "geo_lookup_failed");
    assert!(v.events[0].message.contains("boom"));
}

/// The route stage's answer: the status it responds with, or 200.
fn route_status(e: &Engine, r: &RequestView<'_>, endpoint: &str) -> u16 {
    e.inspect_route(r, Some(endpoint))
        .and_then(|v| v.respond)
        .map_or(200, |resp| resp.status)
}

/// Both stages, as the adapter runs them: the WSGI stage, then the route stage.
fn both(e: &Engine, r: &RequestView<'_>, endpoint: &str) -> u16 {
    match status(e, r) {
        200 => route_status(e, r, endpoint),
        s => s,
    }
}

#[test]
fn a_bypassed_global_check_waits_for_the_route() {
    let e = engine(r#"{"blocked_user_agents": ["curl"], "blacklist": ["10.6.6.6"]}"#);
    e.set_routes(r#"{"health": {"bypass": ["user_agent"]}, "other": {}}"#)
        .expect("valid routes");
    let curl = RequestView {
        user_agent: Some("curl/8"),
        ..req("1.2.3.4", "/health")
    };
    // The WSGI stage no longer decides the user agent: the route does.
    assert_eq!(status(&e, &curl), 200);
    assert_eq!(route_status(&e, &curl, "health"), 200);
    assert_eq!(route_status(&e, &curl, "other"), 403);
    assert_eq!(route_status(&e, &curl, "unknown"), 403);
    // Checks no route skips still run before routing.
    assert_eq!(status(&e, &req("10.6.6.6", "/health")), 403);
}

#[test]
fn route_checks_answer_with_their_statuses() {
    let e = engine("{}");
    e.set_routes(
        r#"{
        "size": {"max_request_size": 10, "content_types": ["application/json"]},
        "auth": {"auth": {"type": "bearer", "accepted": ["t"]}},
        "key": {"api_key": {"header": "X-Key"}},
        "hdr": {"required_headers": {"X-A": "required"}},
        "ref": {"referrers": ["a.test"]},
        "ip": {"whitelist": ["10.0.0.0/8"], "blacklist": ["10.0.0.9"]},
        "trap": {"honeypot_fields": ["website"]}
    }"#,
    )
    .expect("valid routes");
    fn with<'a>(named: &'a [(&'a str, &'a str)]) -> RequestView<'a> {
        RequestView {
            method: "POST",
            named,
            ..req("10.0.0.1", "/x")
        }
    }
    assert_eq!(
        route_status(&e, &with(&[("CONTENT_LENGTH", "11")]), "size"),
        413
    );
    assert_eq!(
        route_status(&e, &with(&[("CONTENT_LENGTH", "x")]), "size"),
        413
    );
    let form = [("CONTENT_LENGTH", "3"), ("CONTENT_TYPE", "text/plain")];
    assert_eq!(route_status(&e, &with(&form), "size"), 415);
    assert_eq!(route_status(&e, &with(&[]), "size"), 200);
    assert_eq!(route_status(&e, &with(&[]), "auth"), 401);
    let bad = [("HTTP_AUTHORIZATION", "Bearer u")];
    assert_eq!(route_status(&e, &with(&bad), "auth"), 401);
    let good = [("HTTP_AUTHORIZATION", "Bearer t")];
    assert_eq!(route_status(&e, &with(&good), "auth"), 200);
    assert_eq!(route_status(&e, &with(&[]), "key"), 401);
    assert_eq!(route_status(&e, &with(&[("HTTP_X_KEY", "k")]), "key"), 200);
    assert_eq!(route_status(&e, &with(&[]), "hdr"), 400);
    let referer = [("HTTP_REFERER", "https://b.a.test/")];
    assert_eq!(route_status(&e, &with(&referer), "ref"), 200);
    assert_eq!(route_status(&e, &with(&[]), "ref"), 403);
    assert_eq!(route_status(&e, &req("10.0.0.9", "/"), "ip"), 403);
    assert_eq!(route_status(&e, &req("11.0.0.1", "/"), "ip"), 403);
    assert_eq!(route_status(&e, &req("10.0.0.1", "/"), "ip"), 200);
    let bot = RequestView {
        content_type: Some("application/x-www-form-urlencoded"),
        body: b"website=spam",
        ..with(&[])
    };
    assert_eq!(route_status(&e, &bot, "trap"), 403);
    let env = [("HTTP_AUTHORIZATION", "Bearer t")];
    assert_eq!(e.route_env_keys().len(), 7);
    assert_eq!(route_status(&e, &with(&env), "trap"), 200);
}

#[test]
fn route_limits_replace_the_global_ones_and_monitors_ban() {
    let (e, clock) = clocked(r#"{"rate_limit": 1, "auto_ban_duration": 100}"#);
    e.set_routes(
        r#"{"search": {"limits": [[3, 10]], "standalone": true},
            "reward": {"bypass": ["rate_limit"], "monitors": [{"type": "usage", "max_calls": 2, "window": 60, "action": "ban"}]}}"#,
    )
    .expect("valid routes");
    let r = req("1.2.3.4", "/search");
    let got: Vec<u16> = (0..4).map(|_| both(&e, &r, "search")).collect();
    assert_eq!(got, [200, 200, 200, 429]);
    clock.advance_ms(10_000);
    assert_eq!(both(&e, &r, "search"), 200);
    let c = req("5.6.7.8", "/reward");
    let calls: Vec<u16> = (0..3).map(|_| both(&e, &c, "reward")).collect();
    // The call past the threshold is served; the ban refuses the next one.
    assert_eq!(calls, [200, 200, 200]);
    assert_eq!(both(&e, &c, "reward"), 403);
    assert!(e.ban_of("5.6.7.8".parse().expect("ip")).is_some());
    clock.advance_ms(100_001);
    assert!(e.ban_of("5.6.7.8".parse().expect("ip")).is_none());
}

#[test]
fn return_monitors_count_matching_responses() {
    let e = engine("{}");
    e.set_routes(
        r#"{"find": {"monitors": [{"type": "return", "pattern": "status:404",
            "max_occurrences": 1, "window": 60, "action": "log"}]}}"#,
    )
    .expect("valid routes");
    assert_eq!(e.response_monitors(), [("find".to_owned(), false)]);
    let r = req("1.2.3.4", "/find");
    assert!(e.observe_response(&r, Some("find"), 200, b"").is_empty());
    assert!(e.observe_response(&r, Some("find"), 404, b"").is_empty());
    let events = e.observe_response(&r, Some("find"), 404, b"");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "return_monitor");
    assert_eq!(events[0].outcome, Outcome::Detected);
    assert!(e.ban_of("1.2.3.4".parse().expect("ip")).is_none());
}

#[test]
fn route_policies_are_validated_with_every_error_named() {
    let e = engine("{}");
    let errs = e
        .check_routes(
            r#"{"v": {"bypass": ["al"], "blocked_countries": ["CN"], "content_types": ["x"],
                "time_window": {"start": "9", "end": "17:00"}, "auth": {"type": "a b"},
                "monitors": [{"type": "usage", "max_calls": 0}], "colour": 1}}"#,
        )
        .expect_err("invalid");
    let fields: Vec<&str> = errs.0.iter().map(|f| f.field.as_str()).collect();
    for want in [
        "v.bypass[0]",
        "v.blocked_countries",
        "v.content_types[0]",
        "v.time_window.start",
        "v.auth.type",
        "v.monitors[0].max_calls",
        "v.colour",
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
}

#[test]
fn in_route_mode_preflights_are_answered_after_bans() {
    let e = engine(r#"{"enable_cors": true, "cors_allow_origins": ["https://a.test"]}"#);
    e.set_routes(r#"{"api": {"limits": [[100, 60]]}}"#)
        .expect("valid routes");
    let preflight = RequestView {
        method: "OPTIONS",
        origin: Some("https://a.test"),
        access_control_request_method: Some("POST"),
        ..req("1.2.3.4", "/api")
    };
    // The WSGI stage leaves it to the route stage, which answers it.
    assert_eq!(status(&e, &preflight), 200);
    assert_eq!(route_status(&e, &preflight, "api"), 204);
    let _ = e.ban("1.2.3.4".parse().expect("ip"), None, "test");
    assert_eq!(route_status(&e, &preflight, "api"), 403);
}

#[test]
fn a_country_without_a_geo_limit_gets_the_global_limit() {
    #[derive(Debug)]
    struct Fixed;
    impl CountrySource for Fixed {
        fn country(&self, ip: IpAddr) -> Result<Option<Country>, String> {
            Ok(Country::parse(if ip.to_string() == "1.1.1.1" {
                "US"
            } else {
                "FR"
            }))
        }
    }
    let e = engine(r#"{"rate_limit": 1, "geo_ip_handler": {"$object": "Fixed"}}"#);
    e.set_country_source(Arc::new(Fixed)).expect("first source");
    e.set_routes(r#"{"api": {"geo_limits": {"US": 3}}}"#)
        .expect("valid routes");
    let us = req("1.1.1.1", "/api");
    let got: Vec<u16> = (0..4).map(|_| route_status(&e, &us, "api")).collect();
    assert_eq!(got, [200, 200, 200, 429]);
    let fr = req("2.2.2.2", "/api");
    let got: Vec<u16> = (0..2).map(|_| route_status(&e, &fr, "api")).collect();
    assert_eq!(got, [200, 429]);
}

/// `(name, endpoint, used, remaining)` of each limit `limits_of` lists.
fn standings(
    e: &Engine,
    ip: &str,
    endpoints: &[&str],
    routes: Option<&str>,
) -> Vec<(String, Option<String>, u32, u32)> {
    e.limits_of(ip.parse().expect("ip"), endpoints, routes)
        .expect("readable")
        .into_iter()
        .map(|s| (s.name, s.endpoint, s.used, s.quota.remaining))
        .collect()
}

fn row(
    name: &str,
    endpoint: Option<&str>,
    used: u32,
    remaining: u32,
) -> (String, Option<String>, u32, u32) {
    (
        name.to_owned(),
        endpoint.map(str::to_owned),
        used,
        remaining,
    )
}

#[test]
fn limits_of_lists_every_limit_and_counts_nothing() {
    let (e, clock) = clocked(
        r#"{"rate_limit": 5, "rate_limit_window": 60,
            "rate_limits": [{"limit": 100, "window": 3600, "algorithm": "gcra"},
                            {"limit": 9, "window": 60, "key": "ip_endpoint"}],
            "endpoint_rate_limits": {"/login": [3, 60], "/a": [4, 60]}}"#,
    );
    let routes = r#"{"search": {"limits": [[2, 10]],
                      "monitors": [{"type": "usage", "max_calls": 7, "window": 60, "action": "log"}]}}"#;
    let a = "192.0.2.1";
    let untouched = [
        row("global", None, 0, 5),
        row("global-2", None, 0, 100),
        row("global-3", Some(""), 0, 9),
        row("global-3", Some("login"), 0, 9),
        row("global-3", Some("search"), 0, 9),
        row("path:/a", None, 0, 4),
        row("path:/login", None, 0, 3),
        row("route:search#1", Some("search"), 0, 2),
        row("monitor:search:usage_monitor#0", Some("search"), 0, 7),
    ];
    // Before any request, the route policies come from the caller (a CLI process).
    assert_eq!(
        standings(&e, a, &["login", "search"], Some(routes)),
        untouched
    );
    e.set_routes(routes).expect("valid routes");
    let login = req(a, "/login");
    for _ in 0..2 {
        assert_eq!(route_status(&e, &login, "login"), 200);
    }
    assert_eq!(route_status(&e, &req(a, "/search"), "search"), 200);
    let seen = standings(&e, a, &["login", "search"], None);
    assert_eq!(
        seen,
        [
            row("global", None, 3, 2),
            row("global-2", None, 3, 97),
            row("global-3", Some(""), 0, 9),
            row("global-3", Some("login"), 2, 7),
            row("global-3", Some("search"), 1, 8),
            row("path:/a", None, 0, 4),
            row("path:/login", None, 2, 1),
            row("route:search#1", Some("search"), 1, 1),
            row("monitor:search:usage_monitor#0", Some("search"), 1, 6),
        ]
    );
    // Reading twice gives one answer and counts nothing: the next requests get what it said.
    assert_eq!(standings(&e, a, &["login", "search"], None), seen);
    assert_eq!(route_status(&e, &login, "login"), 200);
    assert_eq!(
        route_status(&e, &login, "login"),
        429,
        "path:/login: 3 used"
    );
    // Another client, untouched; the first one's reset shows nothing used.
    assert_eq!(
        standings(&e, "198.51.100.1", &["login", "search"], None),
        untouched
    );
    e.reset_limits(a.parse().expect("ip"));
    assert_eq!(standings(&e, a, &["login", "search"], None), untouched);
    // The state carries the limit's rule and when it resets.
    route_status(&e, &login, "login");
    clock.advance_ms(15_000);
    let global = e
        .limits_of(a.parse().expect("ip"), &[], None)
        .expect("readable")
        .remove(0);
    assert_eq!((global.rule.limit, global.rule.window_secs()), (5, 60));
    assert_eq!(global.rule.algorithm.as_str(), "sliding_window");
    assert_eq!(global.scope.as_str(), "ip");
    assert_eq!(global.quota.reset_ms, 45_000);
}

#[test]
fn limits_of_follows_the_switch_and_the_clients_country() {
    #[derive(Debug)]
    struct Fixed;
    impl CountrySource for Fixed {
        fn country(&self, ip: IpAddr) -> Result<Option<Country>, String> {
            Ok(Country::parse(if ip.to_string() == "1.1.1.1" {
                "US"
            } else {
                "FR"
            }))
        }
    }
    let e = engine(
        r#"{"rate_limit": 1, "enable_rate_limiting": false, "geo_ip_handler": {"$object": "Fixed"}}"#,
    );
    e.set_country_source(Arc::new(Fixed)).expect("first source");
    e.set_routes(r#"{"api": {"geo_limits": {"US": 3, "default": 1}}}"#)
        .expect("valid routes");
    // Rate limiting is off: only the route's own limits count.
    assert_eq!(
        standings(&e, "1.1.1.1", &["api"], None),
        [row("route:api:geo:US", Some("api"), 0, 3)]
    );
    assert_eq!(
        standings(&e, "2.2.2.2", &["api"], None),
        [row("route:api:geo:default", Some("api"), 0, 1)]
    );
    // Bad route policies handed in are reported, as set_routes reports them.
    let fresh = engine(r#"{"rate_limit": 1}"#);
    let bad = fresh.limits_of(
        "1.1.1.1".parse().expect("ip"),
        &[],
        Some(r#"{"x": {"limits": [[0, 1]]}}"#),
    );
    assert!(matches!(bad, Err(LimitsError::Routes(_))), "{bad:?}");
}

#[test]
fn refusals_counted_by_the_adapter_join_the_blocks() {
    let e = engine(r#"{"blacklist": ["10.0.0.0/8"]}"#);
    assert_eq!(status(&e, &req("10.0.0.1", "/")), 403);
    e.count_refusal("custom_request_check");
    e.count_refusal("custom_request_check");
    let (snap, _) = e.stats();
    assert_eq!(snap.blocked.get("ip_blacklisted"), Some(&1));
    assert_eq!(snap.blocked.get("custom_request_check"), Some(&2));
    assert_eq!(snap.blocked.values().sum::<u64>(), 3);
}
