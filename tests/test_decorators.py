"""Route decorators (``SecurityDecorator``) end to end: each one's allow and deny paths, status
codes and bodies, stacking, priority over the global config, and the behavioural monitors on a
manual clock. Every request goes through a real Flask app and Rampart's engine."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import RampartLog
from flask import Blueprint, Flask, Response, jsonify, request
from flask_rampart import ConfigError, Rampart, SecurityConfig, SecurityDecorator
from flask_rampart.testing import ManualClock
from servers import RedisServer
from werkzeug.test import TestResponse

CLIENT = "198.51.100.7"


class Countries:
    """A geolocation handler (the ``get_country`` protocol) from a fixed table."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def get_country(self, ip: str) -> str | None:
        return self.table.get(ip)


GEO = Countries({"203.0.113.5": "CN", "192.0.2.10": "US", "192.0.2.20": "FR"})


class Site:
    """An app with Rampart and a connected ``SecurityDecorator``; views are added per test."""

    def __init__(
        self, config: SecurityConfig | None = None, *, clock: ManualClock | None = None
    ) -> None:
        self.config = config or SecurityConfig()
        self.app = Flask("decorated", static_folder=None)
        self.app.config["TESTING"] = True
        self.deco = SecurityDecorator(self.config)
        self.rampart = Rampart(self.app, config=self.config, clock=clock)
        self.rampart.set_decorator_handler(self.deco)

        @self.app.route("/plain", methods=["GET", "POST"])
        def plain() -> str:
            return "plain"

    def view(
        self,
        path: str,
        *decorators: Callable[[Any], Any],
        methods: list[str] | None = None,
        body: Callable[[], Any] | None = None,
    ) -> None:
        def handler() -> Any:
            return body() if body is not None else "ok"

        handler.__name__ = path.strip("/").replace("/", "_") or "root"
        view: Any = handler
        for d in reversed(decorators):
            view = d(view)
        self.app.add_url_rule(path, view_func=view, methods=methods or ["GET", "POST"])

    def get(self, path: str, ip: str = CLIENT, **kw: Any) -> TestResponse:
        return self.open(path, "GET", ip, **kw)

    def post(self, path: str, ip: str = CLIENT, **kw: Any) -> TestResponse:
        return self.open(path, "POST", ip, **kw)

    def open(self, path: str, method: str, ip: str = CLIENT, **kw: Any) -> TestResponse:
        base = kw.pop("environ_base", {})
        return self.app.test_client().open(
            path, method=method, environ_base={"REMOTE_ADDR": ip, **base}, **kw
        )


# Access control


def test_require_ip_whitelist_and_blacklist() -> None:
    s = Site()
    s.view("/office", s.deco.require_ip(whitelist=["10.0.0.0/8"], blacklist=["10.6.6.6"]))
    assert s.get("/office", ip="10.1.2.3").status_code == 200
    denied = s.get("/office", ip=CLIENT)
    assert (denied.status_code, denied.data) == (403, b"Forbidden")
    assert s.get("/office", ip="10.6.6.6").status_code == 403
    # Other routes are not restricted.
    assert s.get("/plain", ip=CLIENT).status_code == 200


def test_global_ip_lists_still_apply_on_decorated_routes() -> None:
    s = Site(SecurityConfig(blacklist=["10.9.9.9"]))
    s.view("/office", s.deco.require_ip(whitelist=["10.0.0.0/8"]))
    assert s.get("/office", ip="10.9.9.9").status_code == 403
    assert s.get("/office", ip="10.1.1.1").status_code == 200


def test_block_and_allow_countries() -> None:
    s = Site(SecurityConfig(geo_ip_handler=GEO))
    s.view("/no-cn", s.deco.block_countries(["CN"]))
    s.view("/us-only", s.deco.allow_countries(["us"]))
    assert s.get("/no-cn", ip="203.0.113.5").status_code == 403
    assert s.get("/no-cn", ip="192.0.2.20").status_code == 200
    assert s.get("/no-cn", ip="192.0.2.99").status_code == 200  # unknown: not blocked
    assert s.get("/us-only", ip="192.0.2.10").status_code == 200
    assert s.get("/us-only", ip="192.0.2.20").data == b"Forbidden"
    assert s.get("/us-only", ip="192.0.2.99").status_code == 403  # unknown: not allowed
    assert s.get("/plain", ip="203.0.113.5").status_code == 200


def test_country_decorators_without_a_source_are_config_errors() -> None:
    deco = SecurityDecorator(SecurityConfig())
    for apply in (
        lambda: deco.block_countries(["CN"]),
        lambda: deco.allow_countries(["US"]),
        lambda: deco.geo_rate_limit({"US": 10}),
    ):
        with pytest.raises(ConfigError, match="geo_ip_handler"):
            apply()
    with pytest.raises(ConfigError, match=r"block_countries\.blocked_countries\[0\]"):
        SecurityDecorator(SecurityConfig(geo_ip_handler=GEO)).block_countries(["China"])


def aws_file(tmp_path: Path) -> str:
    data = {
        "syncToken": "1",
        "createDate": "2026-01-01-00-00-00",
        "prefixes": [{"ip_prefix": "3.5.0.0/16", "region": "x", "service": "EC2"}],
        "ipv6_prefixes": [],
    }
    path = tmp_path / "aws.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_block_clouds_loads_the_providers_ranges_for_the_route(tmp_path: Path) -> None:
    s = Site(SecurityConfig(cloud_ranges_files={"AWS": aws_file(tmp_path)}))
    s.view("/human", s.deco.block_clouds(["AWS"]))
    denied = s.get("/human", ip="3.5.1.1")
    assert (denied.status_code, denied.data) == (403, b"Cloud provider IP not allowed")
    assert s.get("/human", ip="4.4.4.4").status_code == 200
    # Only the decorated route blocks clouds.
    assert s.get("/plain", ip="3.5.1.1").status_code == 200
    with pytest.raises(ConfigError, match="Oracle"):
        s.deco.block_clouds(["Oracle"])


# Rate limiting


def test_rate_limit_replaces_the_global_limit_on_its_route() -> None:
    clock = ManualClock()
    s = Site(SecurityConfig(rate_limit=2, rate_limit_window=60), clock=clock)
    s.view("/search", s.deco.rate_limit(requests=4, window=10))
    assert [s.get("/search").status_code for _ in range(5)] == [200, 200, 200, 200, 429]
    refused = s.get("/search")
    assert refused.data == b"Too many requests"
    assert refused.headers["Retry-After"] == "10"
    clock.advance(10)
    assert s.get("/search").status_code == 200
    # The global limit still holds elsewhere.
    assert [s.get("/plain").status_code for _ in range(3)] == [200, 200, 429]


def test_geo_rate_limit_falls_back_to_the_global_limit() -> None:
    s = Site(SecurityConfig(geo_ip_handler=GEO, rate_limit=1))
    s.view("/api", s.deco.geo_rate_limit({"US": 3}))
    assert [s.get("/api", ip="192.0.2.10").status_code for _ in range(4)] == [200] * 3 + [429]
    # France has no entry here: the global limit applies, not none.
    assert [s.get("/api", ip="192.0.2.20").status_code for _ in range(2)] == [200, 429]


def test_geo_rate_limit_by_country_with_a_default() -> None:
    s = Site(SecurityConfig(geo_ip_handler=GEO))
    s.view("/api", s.deco.geo_rate_limit({"US": 3, "default": 1}, window=60))
    assert [s.get("/api", ip="192.0.2.10").status_code for _ in range(4)] == [200] * 3 + [429]
    assert [s.get("/api", ip="192.0.2.20").status_code for _ in range(2)] == [200, 429]
    s2 = Site(SecurityConfig(geo_ip_handler=GEO))
    s2.view("/api", s2.deco.geo_rate_limit({"US": (2, 60)}))
    assert [s2.get("/api", ip="192.0.2.10").status_code for _ in range(3)] == [200, 200, 429]
    # No entry and no default: not limited by this decorator.
    assert [s2.get("/api", ip="192.0.2.20").status_code for _ in range(4)] == [200] * 4


# Authentication and headers


def test_require_https_redirects_only_its_route() -> None:
    s = Site()
    s.view("/secure", s.deco.require_https())
    r = s.get("/secure?x=1")
    assert r.status_code == 301
    assert r.headers["Location"] == "https://localhost/secure?x=1"
    assert s.get("/secure", base_url="https://localhost").status_code == 200
    assert s.get("/plain").status_code == 200


def test_require_auth_scheme_tokens_and_verifier() -> None:
    s = Site()
    s.view("/any", s.deco.require_auth(type="bearer"))
    s.view("/listed", s.deco.require_auth(tokens=["s3cret"]))
    s.view("/basic", s.deco.require_auth(type="basic"))
    s.view("/checked", s.deco.require_auth(verifier=lambda token: token.startswith("ok-")))
    missing = s.get("/any")
    assert (missing.status_code, missing.data) == (401, b"Authentication required")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert s.get("/any", headers={"Authorization": "Basic abc"}).status_code == 401
    assert s.get("/any", headers={"Authorization": "Bearer abc"}).status_code == 200
    wrong = s.get("/listed", headers={"Authorization": "Bearer guess"})
    assert (wrong.status_code, wrong.data) == (401, b"Invalid credentials")
    assert s.get("/listed", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = s.get("/basic")
    assert basic.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert s.get("/basic", headers={"Authorization": "Basic dTpw"}).status_code == 200
    refused = s.get("/checked", headers={"Authorization": "Bearer bad"})
    assert (refused.status_code, refused.data) == (401, b"Invalid credentials")
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert s.get("/checked", headers={"Authorization": "Bearer ok-1"}).status_code == 200


def test_api_key_auth() -> None:
    s = Site()
    s.view("/present", s.deco.api_key_auth())
    s.view("/keys", s.deco.api_key_auth(header_name="X-Token", keys=["k1", "k2"]))
    s.view("/verified", s.deco.api_key_auth(verifier=lambda key: key == "good"))
    missing = s.get("/present")
    assert (missing.status_code, missing.data) == (401, b"API key required")
    assert s.get("/present", headers={"X-API-Key": "anything"}).status_code == 200
    bad = s.get("/keys", headers={"X-Token": "k3"})
    assert (bad.status_code, bad.data) == (401, b"Invalid API key")
    assert s.get("/keys", headers={"X-Token": "k2"}).status_code == 200
    assert s.get("/verified", headers={"X-API-Key": "bad"}).status_code == 401
    assert s.get("/verified", headers={"X-API-Key": "good"}).status_code == 200


def test_require_headers_presence_and_value() -> None:
    s = Site()
    s.view("/h", s.deco.require_headers({"X-Client": "required", "X-Version": "2"}))
    missing = s.get("/h", headers={"X-Version": "2"})
    assert (missing.status_code, missing.data) == (400, b"Missing required header: X-Client")
    wrong = s.get("/h", headers={"X-Client": "a", "X-Version": "1"})
    assert (wrong.status_code, wrong.data) == (
        400,
        b"Header 'X-Version' does not match the required value",
    )
    assert s.get("/h", headers={"X-Client": "a", "X-Version": "2"}).status_code == 200


# Content


def test_block_user_agents_adds_to_the_global_patterns() -> None:
    s = Site(SecurityConfig(blocked_user_agents=["sqlmap"]))
    s.view("/ua", s.deco.block_user_agents(["curl", r"python-requests/\d"]))
    for agent in ("curl/8.0", "python-requests/2.31", "sqlmap/1.7"):
        r = s.get("/ua", headers={"User-Agent": agent})
        assert (r.status_code, r.data) == (403, b"User-Agent not allowed"), agent
    assert s.get("/ua", headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    assert s.get("/plain", headers={"User-Agent": "curl/8.0"}).status_code == 200


def test_content_type_filter() -> None:
    s = Site()
    s.view("/json", s.deco.content_type_filter(["application/json", "text/*"]))
    assert s.post("/json", json={"a": 1}).status_code == 200
    assert s.post("/json", data="x", content_type="text/plain; charset=utf-8").status_code == 200
    refused = s.post("/json", data={"a": "1"})
    assert (refused.status_code, refused.data) == (415, b"Unsupported content type")
    assert s.post("/json", data=b"raw").status_code == 415  # a body without a type
    assert s.get("/json").status_code == 200  # no body, nothing to filter


def test_max_request_size() -> None:
    s = Site()
    s.view("/upload", s.deco.max_request_size(100), body=lambda: "read")
    s.view("/stream", s.deco.max_request_size(10), body=lambda: str(len(request.get_data())))
    assert s.post("/upload", data=b"x" * 100).status_code == 200
    big = s.post("/upload", data=b"x" * 101)
    assert (big.status_code, big.data) == (413, b"Request too large")
    # Sent chunked, without Content-Length, as a server that ends the stream passes it on.
    for size, want in ((50, 413), (11, 413), (10, 200)):
        chunked = s.post(
            "/stream",
            input_stream=io.BytesIO(b"y" * size),
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
        )
        assert chunked.status_code == want, size
    assert chunked.data == b"10"  # the view reads the body the check read
    assert s.post("/stream", data=b"y" * 10).data == b"10"


def test_require_referrer() -> None:
    s = Site()
    s.view("/r", s.deco.require_referrer(["myapp.com"]))
    assert s.get("/r", headers={"Referer": "https://www.myapp.com:8443/p"}).status_code == 200
    none = s.get("/r")
    assert (none.status_code, none.data) == (403, b"Referrer required")
    evil = s.get("/r", headers={"Referer": "https://myapp.com.evil.net/"})
    assert (evil.status_code, evil.data) == (403, b"Invalid referrer")


# Advanced


def at(clock: ManualClock, iso: str) -> None:
    clock.set(datetime.fromisoformat(iso).timestamp())


def test_time_window_across_midnight_and_time_zones() -> None:
    clock = ManualClock()
    s = Site(clock=clock)
    s.view("/night", s.deco.time_window("22:00", "06:00", "UTC"))
    s.view("/paris", s.deco.time_window("09:00", "17:00", "Europe/Paris"))
    at(clock, "2026-01-15T23:30:00+00:00")
    assert s.get("/night").status_code == 200
    at(clock, "2026-01-16T05:59:00+00:00")
    assert s.get("/night").status_code == 200
    at(clock, "2026-01-16T06:00:00+00:00")
    closed = s.get("/night")
    assert (closed.status_code, closed.data) == (403, b"Access not allowed at this time")
    # Paris is UTC+1 in winter, UTC+2 in summer.
    at(clock, "2026-01-15T08:30:00+00:00")
    assert s.get("/paris").status_code == 200
    at(clock, "2026-07-15T07:30:00+00:00")
    assert s.get("/paris").status_code == 200
    at(clock, "2026-07-15T15:30:00+00:00")
    assert s.get("/paris").status_code == 403
    with pytest.raises(ConfigError) as err:
        s.deco.time_window("25:00", "9am", "Mars/Olympus")
    fields = [f for f, _ in err.value.errors]
    assert fields == [
        "time_window.time_window.start",
        "time_window.time_window.end",
        "time_window.time_window.timezone",
    ]


def test_honeypot_detection_in_forms_and_json_counts_toward_a_ban() -> None:
    s = Site(SecurityConfig(auto_ban_threshold=2))
    s.view("/signup", s.deco.honeypot_detection(["website"]))
    s.view("/echo", s.deco.honeypot_detection(["trap"]), body=lambda: request.form["a"])
    assert s.post("/signup", data={"name": "ann", "website": ""}).status_code == 200
    assert s.post("/signup", json={"name": "ann"}).status_code == 200
    bot = s.post("/signup", data={"name": "bot", "website": "http://spam"})
    assert (bot.status_code, bot.data) == (403, b"Forbidden")
    assert s.post("/signup", json={"website": "x"}, ip="192.0.2.50").status_code == 403
    escaped = b'{"\\u0077ebsite": "x"}'
    assert (
        s.post(
            "/signup", data=escaped, content_type="application/json", ip="192.0.2.51"
        ).status_code
        == 403
    )
    # A second trap hit from the same client reaches auto_ban_threshold: banned everywhere.
    s.post("/signup", data={"website": "again"})
    assert s.get("/plain").data == b"IP address banned"
    # The view still reads the body it was sent.
    assert s.post("/echo", data={"a": "kept"}, ip="192.0.2.60").data == b"kept"


def test_suspicious_detection_switches_detection_per_route() -> None:
    on = Site(SecurityConfig(enable_penetration_detection=False))
    on.view("/guarded", on.deco.suspicious_detection(enabled=True))
    assert on.get("/guarded?q=' OR '1'='1").status_code == 403
    assert on.get("/plain?q=' OR '1'='1").status_code == 200
    off = Site(SecurityConfig())
    off.view("/raw", off.deco.suspicious_detection(enabled=False))
    assert off.get("/raw?q=' OR '1'='1").status_code == 200
    assert off.get("/plain?q=' OR '1'='1").status_code == 403


def test_bypass_skips_named_global_checks_only() -> None:
    clock = ManualClock()
    s = Site(
        SecurityConfig(blocked_user_agents=["curl"], rate_limit=1, blacklist=["10.6.6.6"]),
        clock=clock,
    )
    s.view("/health", s.deco.bypass(["user_agent", "rate_limit"]))
    s.view("/open", s.deco.bypass(["all"]))
    curl = {"User-Agent": "curl/8"}
    assert [s.get("/health", headers=curl).status_code for _ in range(3)] == [200] * 3
    assert s.get("/health", ip="10.6.6.6").status_code == 403  # the blacklist still applies
    assert s.get("/open", ip="10.6.6.6", headers=curl).status_code == 200
    assert s.get("/plain", headers=curl).status_code == 403
    with pytest.raises(ConfigError, match="did you mean 'rate_limit'"):
        s.deco.bypass(["rate_limits"])


def test_bypass_all_keeps_emergency_mode() -> None:
    s = Site(SecurityConfig(emergency_mode=True, emergency_whitelist=["10.0.0.1"]))
    s.view("/open", s.deco.bypass(["all"]))
    assert s.get("/open").status_code == 503
    assert s.get("/open", ip="10.0.0.1").status_code == 200


def test_custom_validation_and_passive_mode(rampart_log: RampartLog) -> None:
    def no_debug(req: Any) -> Response | None:
        return Response("no debug", status=418) if req.args.get("debug") else None

    s = Site()
    s.view("/v", s.deco.custom_validation(no_debug))
    assert s.get("/v").status_code == 200
    assert s.get("/v?debug=1").status_code == 418
    p = Site(SecurityConfig(passive_mode=True))
    p.view("/v", p.deco.custom_validation(no_debug), p.deco.require_auth())
    assert p.get("/v?debug=1").status_code == 200
    outcomes = {(e["event.action"], e["event.outcome"]) for e in rampart_log.event_dicts}
    assert ("custom_validation", "passive") in outcomes
    assert ("auth_required", "passive") in outcomes


def test_python_checks_run_after_rampart_s_and_honour_fail_secure_and_exclusions(
    rampart_log: RampartLog,
) -> None:
    seen: list[str] = []

    def validator(req: Any) -> Response | None:
        seen.append(req.path)
        return Response("nope", status=418)

    def broken(token: str) -> bool:
        raise RuntimeError("verifier down")

    s = Site(SecurityConfig(exclude_methods=["HEAD"]))
    s.view(
        "/v", s.deco.custom_validation(validator), s.deco.require_auth(verifier=lambda t: t == "ok")
    )
    s.view("/broken", s.deco.require_auth(verifier=broken))
    # The verifier (Rampart's check) answers first, whatever the stacking order.
    assert s.get("/v", headers={"Authorization": "Bearer bad"}).status_code == 401
    assert seen == []
    assert s.get("/v", headers={"Authorization": "Bearer ok"}).status_code == 418
    # An excluded method skips every check, Python ones included.
    assert s.open("/v", "HEAD").status_code == 200
    assert s.get("/broken", headers={"Authorization": "Bearer x"}).status_code == 500
    assert any("verifier down" in (r.exc_text or "") for r in rampart_log.records)
    lenient = Site(SecurityConfig(fail_secure=False))
    lenient.view("/broken", lenient.deco.require_auth(verifier=broken))
    assert lenient.get("/broken", headers={"Authorization": "Bearer x"}).status_code == 200


def test_preflights_on_decorated_apps_still_meet_bans() -> None:
    config = SecurityConfig(enable_cors=True, cors_allow_origins=["https://app.test"])
    s = Site(config)
    s.view("/api", s.deco.rate_limit(requests=100, window=60), methods=["POST"])
    preflight = {
        "Origin": "https://app.test",
        "Access-Control-Request-Method": "POST",
    }
    ok = s.open("/api", "OPTIONS", headers=preflight)
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.test"
    with s.app.app_context():
        s.rampart.ban(CLIENT, 60)
    assert s.open("/api", "OPTIONS", headers=preflight).status_code == 403


# Stacking, blueprints, errors


def test_stacked_decorators_each_apply_in_either_order() -> None:
    s = Site()
    stack = [
        s.deco.require_https(),
        s.deco.require_auth(tokens=["t"]),
        s.deco.require_ip(whitelist=["10.0.0.0/8"]),
        s.deco.rate_limit(requests=2, window=60),
    ]
    s.view("/admin", *stack)
    s.view("/admin2", *reversed(stack))
    https = {"base_url": "https://localhost"}
    good = {"Authorization": "Bearer t"}
    for path in ("/admin", "/admin2"):
        assert s.get(path, ip="10.0.0.5", headers=good).status_code == 301
        assert s.get(path, ip="10.0.0.5", **https).status_code == 401
        assert s.get(path, ip=CLIENT, headers=good, **https).status_code == 403
        assert s.get(path, ip="10.0.0.5", headers=good, **https).status_code == 200
        assert s.get(path, ip="10.0.0.5", headers=good, **https).status_code == 200
        assert s.get(path, ip="10.0.0.5", headers=good, **https).status_code == 429


def test_blueprint_views_and_custom_error_responses() -> None:
    config = SecurityConfig(custom_error_responses={401: "who are you?", 415: "json please"})
    app = Flask("bp", static_folder=None)
    rampart = Rampart(app, config=config)
    secure = rampart.decorators
    bp = Blueprint("api", __name__, url_prefix="/api")

    @bp.post("/items")
    @secure.api_key_auth()
    @secure.content_type_filter(["application/json"])
    def items() -> Any:
        return jsonify(ok=True)

    app.register_blueprint(bp)
    c = app.test_client()
    assert c.post("/api/items", json={}).data == b"who are you?"
    r = c.post("/api/items", data="x", headers={"X-API-Key": "k"})
    assert (r.status_code, r.data) == (415, b"json please")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert c.post("/api/items", json={}, headers={"X-API-Key": "k"}).status_code == 200


def test_app_factory_decorators_and_unconnected_ones(rampart_log: RampartLog) -> None:
    rampart = Rampart()
    secure = rampart.decorators
    stray = SecurityDecorator(SecurityConfig())
    app = Flask("factory", static_folder=None)

    @app.get("/cn")
    @secure.block_countries(["CN"])  # checked once init_app gives the config
    def cn() -> str:
        return "ok"

    @app.get("/stray")
    @stray.require_https()
    def stray_view() -> str:
        return "stray"

    rampart.init_app(app, SecurityConfig(geo_ip_handler=GEO))
    c = app.test_client()
    assert c.get("/cn", environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code == 403
    assert c.get("/stray").status_code == 200  # never connected: does nothing, and says so
    warnings = [r.getMessage() for r in rampart_log.records if r.levelname == "WARNING"]
    assert any("stray" in m and "not connected" in m for m in warnings)


def test_bad_arguments_raise_when_applied_naming_each() -> None:
    deco = SecurityDecorator(SecurityConfig())
    with pytest.raises(ConfigError, match=r"rate_limit\.limits\[0\]"):
        deco.rate_limit(requests=0)
    with pytest.raises(ConfigError, match=r"require_ip\.whitelist\[0\]"):
        deco.require_ip(whitelist=["10.0.0.300"])
    with pytest.raises(ConfigError, match="list of strings"):
        deco.block_user_agents("curl")
    with pytest.raises(ConfigError, match=r"content_type_filter\.content_types\[0\]"):
        deco.content_type_filter(["json"])
    with pytest.raises(ConfigError, match="action"):
        deco.usage_monitor(max_calls=5, action="throttle")
    with pytest.raises(ConfigError, match="pattern"):
        deco.return_monitor("regex:(", max_occurrences=1)
    with pytest.raises(ConfigError, match="max_frequency"):
        deco.suspicious_frequency(max_frequency=0.001, window=60)
    with pytest.raises(ConfigError, match=r"api_key\.header"):
        deco.api_key_auth(header_name="X Key")
    with pytest.raises(TypeError):
        Rampart().set_decorator_handler(object())  # type: ignore[arg-type]


# Behaviour


def test_usage_monitor_bans_past_the_threshold_and_serves_the_crossing_call(
    rampart_log: RampartLog,
) -> None:
    clock = ManualClock()
    s = Site(SecurityConfig(auto_ban_duration=600), clock=clock)
    s.view("/reward", s.deco.usage_monitor(max_calls=3, window=60, action="ban"))
    assert [s.get("/reward").status_code for _ in range(4)] == [200] * 4
    assert s.get("/plain").data == b"IP address banned"
    assert s.get("/plain", ip="192.0.2.1").status_code == 200
    clock.advance(601)
    assert s.get("/plain").status_code == 200
    actions = [e["event.action"] for e in rampart_log.event_dicts]
    assert "usage_monitor" in actions and "ip_banned" in actions


def test_usage_monitor_window_slides_on_the_clock() -> None:
    clock = ManualClock()
    s = Site(clock=clock)
    s.view("/r", s.deco.usage_monitor(max_calls=2, window=60, action="ban"))
    for _ in range(2):
        s.get("/r")
        clock.advance(40)
    # 80 s later only one call is in the window: no ban.
    assert s.get("/r").status_code == 200
    assert s.get("/plain").status_code == 200


def test_monitor_log_and_alert_actions_only_log(rampart_log: RampartLog) -> None:
    s = Site()
    s.view("/l", s.deco.usage_monitor(max_calls=1, window=60, action="log"))
    s.view("/a", s.deco.suspicious_frequency(max_frequency=0.05, window=40, action="alert"))
    assert [s.get("/l").status_code for _ in range(3)] == [200] * 3
    assert [s.get("/a").status_code for _ in range(3)] == [200] * 3
    assert s.get("/plain").status_code == 200
    events = rampart_log.event_dicts
    logged = [e for e in events if e["event.action"] == "usage_monitor"]
    assert len(logged) == 2 and logged[0]["event.outcome"] == "detected"
    alerts = [r for r in rampart_log.events if r.rampart["event.action"] == "suspicious_frequency"]  # type: ignore[attr-defined]
    assert len(alerts) == 1 and alerts[0].levelname == "ERROR"
    assert alerts[0].rampart["event.outcome"] == "alert"  # type: ignore[attr-defined]


def test_return_monitor_patterns_count_matching_responses() -> None:
    clock = ManualClock()
    s = Site(clock=clock)
    prizes = iter(["rare_item", "common", "rare_item", "rare_item", "rare_item"])
    s.view(
        "/reward",
        s.deco.return_monitor("rare_item", max_occurrences=2, window=86400, action="ban"),
        body=lambda: jsonify(reward=next(prizes)),
    )
    assert [s.get("/reward").status_code for _ in range(4)] == [200] * 4
    # The third rare item went past the threshold: the client is banned from then on.
    assert s.get("/reward").status_code == 403

    s2 = Site()
    s2.view(
        "/find",
        s2.deco.return_monitor("status:404", max_occurrences=2, action="ban"),
        body=lambda: ("nope", 404),
    )
    s2.view(
        "/tier",
        s2.deco.return_monitor("json:reward.tier==gold", max_occurrences=1, action="ban"),
        body=lambda: jsonify(reward={"tier": "gold"}),
    )
    assert [s2.get("/find").status_code for _ in range(4)] == [404, 404, 404, 403]
    assert [s2.get("/tier", ip="192.0.2.9").status_code for _ in range(3)] == [200, 200, 403]


def test_monitor_bans_reach_other_apps_on_a_shared_store(
    tmp_path: Path, redis: RedisServer
) -> None:
    for uri in (f"shm://{tmp_path}/state.shm", redis.url):
        config = SecurityConfig(storage_uri=uri)
        one, two = Site(config), Site(config)
        one.view("/r", one.deco.usage_monitor(max_calls=1, window=60))
        two.view("/r", two.deco.usage_monitor(max_calls=1, window=60))
        ip = "192.0.2.77"
        assert one.get("/r", ip=ip).status_code == 200
        assert two.get("/r", ip=ip).status_code == 200  # the second call, counted together
        assert one.get("/plain", ip=ip).data == b"IP address banned", uri
        assert two.get("/plain", ip=ip).data == b"IP address banned", uri


def test_undecorated_apps_keep_the_fast_path() -> None:
    app = Flask("plain", static_folder=None)
    rampart = Rampart(app, config=SecurityConfig())
    rampart.set_decorator_handler(SecurityDecorator(SecurityConfig()))

    @app.get("/")
    def index() -> str:
        return "x"

    assert app.test_client().get("/").status_code == 200
    assert not app.extensions["rampart"].route_mode
    assert not app.before_request_funcs.get(None)
