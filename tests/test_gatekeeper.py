"""GateKeeper, flask-gatekeeper's API on Rampart's engine, end to end.

The seed documentation's complete example (``/ping``, ``/login`` with ``report()``,
``/global_plus_specific``, ``/standalone``, ``/bypass``) is rebuilt with both documented argument
forms (0.3's lists, 1.0's dicts) and driven through the test client on a ``ManualClock``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from conftest import request_as
from flask import Blueprint, Flask, request
from flask_rampart import ConfigError, GateKeeper, Rampart, SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from flask_rampart.testing import ManualClock

IP = "198.51.100.7"
OTHER_IP = "198.51.100.8"

#: The example's rules in each documented spelling: GateKeeper's arguments, then specific()'s.
FORMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "0.3-lists": (
        {"ban_rule": [3, 60, 600], "rate_limit_rule": [100, 60]},
        {"rate_limit_rule": [1, 10]},
    ),
    "1.0-dicts": (
        {
            "ban_rule": {"count": 3, "window": 60, "duration": 600},
            "rate_limit_rules": [{"count": 100, "window": 60}],
        },
        {"rate_limit_rules": [{"count": 1, "window": 10}]},
    ),
    "1.0-lists": (
        {"ban_rule": [3, 60, 600], "rate_limit_rules": [[100, 60]]},
        {"rate_limit_rules": [[1, 10]]},
    ),
}

#: Headers Rampart adds for its own users that GateKeeper must not add.
RAMPART_ONLY_HEADERS = (
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Resource-Policy",
    "X-Permitted-Cross-Domain-Policies",
    "Content-Security-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
)


def example_app(clock: ManualClock, form: str) -> tuple[Flask, GateKeeper]:
    """The seed documentation's complete example, with ``token`` defined and a manual clock."""
    global_rules, specific_rules = FORMS[form]
    app = Flask("gatekeeper_example", static_folder=None)
    app.config["TESTING"] = True
    gk = GateKeeper(app=app, clock=clock, **global_rules)
    token = "token"

    @app.route("/ping")  # this route is rate limited by the global rule
    def ping() -> tuple[str, int]:
        return "ok", 200

    @app.route("/login")  # also rate limited by the global rule
    def login() -> tuple[str, int]:
        if request.json.get("password") == "password":  # type: ignore[union-attr]
            return token, 200
        gk.report()  # report that IP
        return "bad password", 401

    @app.route("/global_plus_specific")
    @gk.specific(**specific_rules)  # another limit on top of the global one
    def specific() -> tuple[str, int]:
        return "ok", 200

    @app.route("/standalone")
    @gk.specific(**specific_rules, standalone=True)  # rate limited only by this rule
    def standalone() -> tuple[str, int]:
        return "ok", 200

    @app.route("/bypass")
    @gk.bypass  # do not apply anything on that route
    def bypass() -> tuple[str, int]:
        return "ok", 200

    return app, gk


def get(
    app: Flask,
    path: str = "/ping",
    ip: str = IP,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    **kwargs: Any,
) -> TestResponse:
    return request_as(app, path, ip, headers, method, **kwargs)


def statuses(app: Flask, n: int, path: str = "/ping", ip: str = IP) -> list[int]:
    return [get(app, path, ip).status_code for _ in range(n)]


def bad_login(app: Flask, ip: str = IP) -> TestResponse:
    return get(app, "/login", ip, json={"password": "guess"})


def limited_body(ip: str, seconds: int, count: int, window: int) -> bytes:
    text = f"ip {ip} rate limited for {seconds}s (over {count} requests in a {window}s window)"
    return text.encode()


def banned_body(ip: str, seconds: int, count: int, window: int) -> bytes:
    return f"ip {ip} banned for {seconds}s (reported {count} times in a {window}s window)".encode()


def assert_refused(resp: TestResponse, status: int, body: bytes, retry_after: int) -> None:
    assert resp.status_code == status
    assert resp.data == body
    assert resp.headers["Retry-After"] == str(retry_after)


def gk_errors(**arguments: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as excinfo:
        GateKeeper(**arguments)
    errors = [(str(field), str(message)) for field, message in excinfo.value.errors]
    assert errors, "ConfigError raised with an empty .errors list"
    return errors


# --------------------------------------------------------------------------- the complete example


@pytest.mark.parametrize("form", FORMS)
def test_example_ping_is_limited_by_the_global_rule(clock: ManualClock, form: str) -> None:
    app, _ = example_app(clock, form)
    assert statuses(app, 100) == [200] * 100
    clock.advance(20)
    assert_refused(get(app), 429, limited_body(IP, 40, 100, 60), retry_after=40)
    assert get(app, ip=OTHER_IP).status_code == 200  # per client
    clock.advance(40)  # the first hundred leave the window together
    assert statuses(app, 100) == [200] * 100


@pytest.mark.parametrize("form", FORMS)
def test_example_101st_request_is_refused_with_the_rule_named(
    clock: ManualClock, form: str
) -> None:
    app, _ = example_app(clock, form)
    assert statuses(app, 100) == [200] * 100
    assert_refused(get(app), 429, limited_body(IP, 60, 100, 60), retry_after=60)


@pytest.mark.parametrize("form", FORMS)
def test_example_login_reports_and_bans(clock: ManualClock, form: str) -> None:
    app, gk = example_app(clock, form)
    ok = get(app, "/login", json={"password": "password"})
    assert ok.status_code == 200
    assert ok.data == b"token"
    for _ in range(3):
        resp = bad_login(app)
        assert resp.status_code == 401
        assert resp.data == b"bad password"

    for path in ("/ping", "/login", "/global_plus_specific", "/standalone"):
        assert_refused(get(app, path), 403, banned_body(IP, 600, 3, 60), retry_after=600)
    assert get(app, ip=OTHER_IP).status_code == 200
    with app.app_context():
        assert gk.is_banned(IP)

    clock.advance(599.5)
    assert_refused(get(app), 403, banned_body(IP, 1, 3, 60), retry_after=1)
    clock.advance(0.5)
    assert get(app).status_code == 200


@pytest.mark.parametrize("form", FORMS)
def test_example_reports_outside_the_ban_window_do_not_ban(clock: ManualClock, form: str) -> None:
    app, _ = example_app(clock, form)
    bad_login(app)
    clock.advance(30)
    bad_login(app)
    clock.advance(30)  # the first report leaves the 60 s window
    bad_login(app)
    assert get(app).status_code == 200
    clock.advance(1)
    bad_login(app)  # three reports in 60 s
    assert get(app).status_code == 403


@pytest.mark.parametrize("form", FORMS)
def test_example_global_plus_specific(clock: ManualClock, form: str) -> None:
    app, _ = example_app(clock, form)
    assert get(app, "/global_plus_specific").status_code == 200
    clock.advance(4)
    for _ in range(5):
        assert_refused(
            get(app, "/global_plus_specific"), 429, limited_body(IP, 6, 1, 10), retry_after=6
        )
    clock.advance(6)
    assert get(app, "/global_plus_specific").status_code == 200
    # both admitted requests counted toward the global rule, the five refused ones did not
    assert statuses(app, 98) == [200] * 98
    assert_refused(get(app), 429, limited_body(IP, 50, 100, 60), retry_after=50)


@pytest.mark.parametrize("form", FORMS)
def test_example_global_rule_also_applies_to_global_plus_specific(
    clock: ManualClock, form: str
) -> None:
    app, _ = example_app(clock, form)
    assert statuses(app, 100) == [200] * 100
    assert_refused(
        get(app, "/global_plus_specific"), 429, limited_body(IP, 60, 100, 60), retry_after=60
    )


@pytest.mark.parametrize("form", FORMS)
def test_example_standalone_has_only_its_own_rule(clock: ManualClock, form: str) -> None:
    app, _ = example_app(clock, form)
    assert statuses(app, 100) == [200] * 100  # the global rule is exhausted...
    assert get(app).status_code == 429
    assert get(app, "/standalone").status_code == 200  # ...and does not apply here
    assert_refused(get(app, "/standalone"), 429, limited_body(IP, 10, 1, 10), retry_after=10)
    clock.advance(10)
    assert get(app, "/standalone").status_code == 200
    assert get(app).status_code == 429


@pytest.mark.parametrize("form", FORMS)
def test_example_standalone_requests_are_not_counted_globally(
    clock: ManualClock, form: str
) -> None:
    app, _ = example_app(clock, form)
    for _ in range(5):
        get(app, "/standalone")
        clock.advance(10)
    assert statuses(app, 101) == [200] * 100 + [429]


@pytest.mark.parametrize("form", FORMS)
def test_example_bypass_is_neither_limited_nor_banned(clock: ManualClock, form: str) -> None:
    app, _ = example_app(clock, form)
    for _ in range(150):
        resp = get(app, "/bypass")
        assert resp.status_code == 200
        assert resp.data == b"ok"
    assert statuses(app, 101) == [200] * 100 + [429]  # the bypass requests were not counted
    assert get(app, "/bypass").status_code == 200  # over the global rule, still served
    for _ in range(3):
        get(app, "/login", ip=OTHER_IP, json={"password": "guess"})
    assert get(app, ip=OTHER_IP).status_code == 403
    assert get(app, "/bypass", ip=OTHER_IP).status_code == 200  # banned, still served


@pytest.mark.parametrize("form", FORMS)
def test_example_adds_no_headers_of_its_own(clock: ManualClock, form: str) -> None:
    app, gk = example_app(clock, form)
    responses = [get(app, "/global_plus_specific"), get(app, "/global_plus_specific")]
    with app.app_context():
        gk.ban(OTHER_IP, 60)
    responses.append(get(app, ip=OTHER_IP))
    assert [r.status_code for r in responses] == [200, 429, 403]
    for resp in responses:
        for name in RAMPART_ONLY_HEADERS:
            assert name not in resp.headers, name


# --------------------------------------------------------------------------- arguments


def test_excluded_methods_skip_limits_and_bans(clock: ManualClock) -> None:
    app = Flask("gatekeeper_excluded")
    gk = GateKeeper(
        app, ban_rule=[1, 60, 600], rate_limit_rule=[1, 60], excluded_methods=["POST"], clock=clock
    )

    @app.route("/form", methods=["GET", "POST"])
    def form() -> str:
        return request.method

    for _ in range(5):
        assert get(app, "/form", method="POST").data == b"POST"
    assert [get(app, "/form").status_code for _ in range(2)] == [200, 429]
    with app.app_context():
        assert gk.report(OTHER_IP) is True
    assert get(app, "/form", ip=OTHER_IP, method="POST").status_code == 200
    assert get(app, "/form", ip=OTHER_IP).status_code == 403


def test_several_global_rules(clock: ManualClock) -> None:
    app = Flask("gatekeeper_rules")
    GateKeeper(app, rate_limit_rules=[{"count": 2, "window": 10}, [5, 60]], clock=clock)
    app.add_url_rule("/ping", "ping", lambda: "ok")

    assert statuses(app, 2) == [200, 200]
    assert_refused(get(app), 429, limited_body(IP, 10, 2, 10), retry_after=10)
    clock.advance(10)
    assert statuses(app, 2) == [200, 200]
    clock.advance(10)
    assert get(app).status_code == 200  # the fifth in 60 s
    assert_refused(get(app), 429, limited_body(IP, 40, 5, 60), retry_after=40)


def test_specific_with_several_rules(clock: ManualClock) -> None:
    app = Flask("gatekeeper_specific_rules")
    gk = GateKeeper(app, clock=clock)

    @app.route("/burst")
    @gk.specific(rate_limit_rules=[[2, 1], [3, 60]])
    def burst() -> str:
        return "ok"

    assert statuses(app, 3, "/burst") == [200, 200, 429]
    clock.advance(1)
    assert get(app, "/burst").status_code == 200
    assert_refused(get(app, "/burst"), 429, limited_body(IP, 59, 3, 60), retry_after=59)
    assert statuses(app, 5, "/other-route-is-not-limited") == [404] * 5


def test_bypass_on_blueprint_views_in_either_decorator_order(clock: ManualClock) -> None:
    gk = GateKeeper(ban_rule=[1, 60, 600], rate_limit_rule=[1, 60], clock=clock)
    bp = Blueprint("bp", __name__)

    @bp.route("/route-then-bypass")
    @gk.bypass
    def route_then_bypass() -> str:
        return "a"

    @gk.bypass
    @bp.route("/bypass-then-route")
    def bypass_then_route() -> str:
        return "b"

    @bp.route("/guarded")
    def guarded() -> str:
        return "c"

    app = Flask("gatekeeper_blueprint")

    @app.route("/app-route-then-bypass")
    @gk.bypass
    def app_route_then_bypass() -> str:
        return "d"

    @gk.bypass
    @app.route("/app-bypass-then-route")
    def app_bypass_then_route() -> str:
        return "e"

    app.register_blueprint(bp, url_prefix="/bp")
    gk.init_app(app)

    free = ["/bp/route-then-bypass", "/bp/bypass-then-route"]
    free += ["/app-route-then-bypass", "/app-bypass-then-route"]
    for path in free:
        assert statuses(app, 3, path) == [200, 200, 200], path
    assert statuses(app, 2, "/bp/guarded") == [200, 429]

    with app.app_context():
        gk.report(OTHER_IP)
    for path in free:
        assert get(app, path, ip=OTHER_IP).status_code == 200, path
    assert get(app, "/bp/guarded", ip=OTHER_IP).status_code == 403


def test_ip_header_is_read_from_its_rightmost_entry_from_any_peer(clock: ManualClock) -> None:
    app = Flask("gatekeeper_ip_header")
    gk = GateKeeper(
        app,
        ip_header="X-Forwarded-For",
        ban_rule=[1, 60, 600],
        rate_limit_rule=[1, 60],
        clock=clock,
    )

    @app.route("/login")
    def login() -> str:
        gk.report()
        return "reported"

    app.add_url_rule("/ping", "ping", lambda: "ok")

    client = "203.0.113.7"
    assert (
        get(app, ip="10.9.9.9", headers={"X-Forwarded-For": f"1.1.1.1, {client}"}).status_code
        == 200
    )
    refused = get(app, ip="10.9.9.8", headers={"X-Forwarded-For": f"9.9.9.9, {client}"})
    assert_refused(refused, 429, limited_body(client, 60, 1, 60), retry_after=60)
    # the leftmost entry is whatever the client wrote: not the client
    assert (
        get(app, ip="10.9.9.9", headers={"X-Forwarded-For": f"{client}, 203.0.113.8"}).status_code
        == 200
    )

    assert get(app, "/login", ip="10.9.9.9", headers={"X-Forwarded-For": "203.0.113.50"}).data == (
        b"reported"
    )
    with app.app_context():
        assert gk.is_banned("203.0.113.50")
        assert not gk.is_banned("10.9.9.9")


def test_without_ip_header_forwarded_for_is_ignored(clock: ManualClock) -> None:
    app = Flask("gatekeeper_no_ip_header")
    GateKeeper(app, rate_limit_rule=[1, 60], clock=clock)
    app.add_url_rule("/ping", "ping", lambda: "ok")
    assert get(app, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
    refused = get(app, headers={"X-Forwarded-For": "203.0.113.8"})
    assert_refused(refused, 429, limited_body(IP, 60, 1, 60), retry_after=60)


def test_report_for_an_unseen_ip_does_not_fail(clock: ManualClock) -> None:
    app = Flask("gatekeeper_unseen")
    gk = GateKeeper(app, ban_rule=[2, 60, 600], clock=clock)
    app.add_url_rule("/ping", "ping", lambda: "ok")
    with app.app_context():
        assert gk.report("192.0.2.55") is False
        assert gk.report("2001:db8::55") is False
        assert gk.report("192.0.2.55") is True
    assert_refused(get(app, ip="192.0.2.55"), 403, banned_body("192.0.2.55", 600, 2, 60), 600)


def test_report_without_a_ban_rule_never_bans(clock: ManualClock) -> None:
    app = Flask("gatekeeper_no_ban_rule")
    gk = GateKeeper(app, rate_limit_rule=[100, 60], clock=clock)

    @app.route("/login")
    def login() -> str:
        return str(gk.report())

    assert [get(app, "/login").data for _ in range(20)] == [b"False"] * 20
    assert get(app, "/login").status_code == 200


def test_init_app_factory_keeps_each_apps_state(clock: ManualClock) -> None:
    gk = GateKeeper(ban_rule=[2, 60, 600], rate_limit_rule=[3, 60], clock=clock)

    def create_app() -> Flask:
        app = Flask("gatekeeper_factory")

        @app.route("/ping")
        def ping() -> str:
            return "ok"

        @app.route("/once")
        @gk.specific(rate_limit_rule=[1, 60])
        def once() -> str:
            return "once"

        @app.route("/login")
        def login() -> tuple[str, int]:
            gk.report()
            return "bad password", 401

        gk.init_app(app)
        return app

    first, second = create_app(), create_app()
    assert first.extensions["gatekeeper"].extension is gk
    assert first.extensions["gatekeeper"] is not second.extensions["gatekeeper"]

    assert statuses(first, 4) == [200, 200, 200, 429]
    assert statuses(second, 3) == [200, 200, 200]  # its own counters
    assert statuses(first, 2, "/once", ip=OTHER_IP) == [200, 429]
    assert statuses(second, 2, "/once", ip=OTHER_IP) == [200, 429]

    client = "203.0.113.20"
    assert statuses(first, 2, "/login", ip=client) == [401, 401]
    assert get(first, ip=client).status_code == 403
    assert get(second, ip=client).status_code == 200
    with second.app_context():
        assert not gk.is_banned(client)
    with first.app_context():
        assert gk.is_banned(client)


def test_init_app_twice_on_one_app_is_an_error(clock: ManualClock) -> None:
    app = Flask("gatekeeper_twice")
    gk = GateKeeper(app, clock=clock)
    with pytest.raises(RuntimeError, match="already initialised"):
        gk.init_app(app)


def test_every_path_is_checked(clock: ManualClock) -> None:
    """Rampart's default exclude_paths (/static, /docs) are not GateKeeper's."""
    app = Flask("gatekeeper_paths", static_folder=None)
    GateKeeper(app, rate_limit_rule=[1, 60], clock=clock)
    app.add_url_rule("/static/x", "static_x", lambda: "x")
    app.add_url_rule("/docs", "docs", lambda: "docs")
    assert statuses(app, 2, "/static/x") == [200, 429]
    assert get(app, "/docs").status_code == 429


def test_head_request_refusal_has_an_empty_body(clock: ManualClock) -> None:
    app = Flask("gatekeeper_head")
    GateKeeper(app, rate_limit_rule=[1, 60], clock=clock)
    app.add_url_rule("/ping", "ping", lambda: "ok")
    assert get(app).status_code == 200
    head = get(app, method="HEAD")
    assert head.status_code == 429
    assert head.data == b""
    assert head.headers["Retry-After"] == "60"


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"ban_rule": [3, 60]}, "ban_rule", id="ban-rule-short"),
        pytest.param({"ban_rule": "3/60/600"}, "ban_rule", id="ban-rule-string"),
        pytest.param({"ban_rule": [0, 60, 600]}, "ban_rule.count", id="ban-count-0"),
        pytest.param({"ban_rule": [3, 0, 600]}, "ban_rule.window", id="ban-window-0"),
        pytest.param({"ban_rule": [3, 60, -1]}, "ban_rule.duration", id="ban-duration-negative"),
        pytest.param(
            {"ban_rule": {"count": 3, "window": 60}}, "ban_rule.duration", id="ban-dict-missing"
        ),
        pytest.param(
            {"ban_rule": {"count": 3, "window": 60, "duration": 600, "forever": True}},
            "ban_rule.forever",
            id="ban-dict-unknown",
        ),
        pytest.param({"rate_limit_rule": "100/60"}, "rate_limit_rule", id="rule-string"),
        pytest.param({"rate_limit_rules": {"count": 1}}, "rate_limit_rules", id="rules-not-list"),
        pytest.param(
            {"rate_limit_rules": [{"count": 1}]}, "rate_limit_rules[0].window", id="rules-no-window"
        ),
        pytest.param(
            {"rate_limit_rules": [[1, 60], {"count": 0, "window": 60}]},
            "rate_limit_rules[1].count",
            id="rules-count-0",
        ),
        pytest.param({"rate_limit_rules": [[1]]}, "rate_limit_rules[0]", id="rules-short-list"),
        pytest.param({"excluded_methods": "POST"}, "excluded_methods", id="methods-string"),
        pytest.param({"excluded_methods": ["P0ST"]}, "excluded_methods[0]", id="methods-bad"),
        pytest.param({"ip_header": "X Forwarded For"}, "ip_header", id="ip-header"),
    ],
)
def test_bad_argument_is_named_as_gatekeeper_names_it(
    arguments: dict[str, Any], field: str
) -> None:
    assert [f for f, _ in gk_errors(**arguments)] == [field]


def test_every_bad_argument_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as excinfo:
        GateKeeper(
            ban_rule={"count": 0, "window": 60},
            rate_limit_rules=[{"count": 1}],
            excluded_methods="POST",
            ip_header="bad header",
        )
    fields = sorted(f for f, _ in excinfo.value.errors)
    assert fields == [
        "ban_rule.count",
        "ban_rule.duration",
        "excluded_methods",
        "ip_header",
        "rate_limit_rules[0].window",
    ]
    text = str(excinfo.value)
    assert "5 invalid GateKeeper arguments" in text
    for field in fields:
        assert field in text
    # Rampart's own field names do not leak into GateKeeper's errors
    for ours in ("auto_ban", "rate_limits", "exclude_methods", "client_ip_header"):
        assert ours not in text


def test_bad_specific_rule_fails_when_decorating() -> None:
    gk = GateKeeper()
    with pytest.raises(ConfigError) as excinfo:
        gk.specific(rate_limit_rules=[{"count": 1}])
    assert [f for f, _ in excinfo.value.errors] == ["rate_limit_rules[0].window"]
    with pytest.raises(ConfigError) as excinfo:
        gk.specific(rate_limit_rule="1/10")
    assert [f for f, _ in excinfo.value.errors] == ["rate_limit_rule"]


def test_bad_single_rate_limit_rule_is_named_rate_limit_rule() -> None:
    assert [f for f, _ in gk_errors(rate_limit_rule=[0, 60])] == ["rate_limit_rule"]


def test_bad_rule_index_is_the_callers_index() -> None:
    errors = gk_errors(rate_limit_rule=[100, 60], rate_limit_rules=[[1]])
    assert [f for f, _ in errors] == ["rate_limit_rules[0]"]


# --------------------------------------------------------------------------- with Rampart


def test_gatekeeper_and_rampart_on_one_app_are_independent(clock: ManualClock) -> None:
    app = Flask("gatekeeper_and_rampart", static_folder=None)
    app.add_url_rule("/ping", "ping", lambda: "ok")
    rampart = Rampart(app, SecurityConfig(rate_limit=2), clock=clock)
    gk = GateKeeper(app, ban_rule=[1, 60, 600], rate_limit_rule=[3, 60], clock=clock)

    assert set(app.extensions) >= {"rampart", "gatekeeper"}
    assert app.extensions["rampart"].engine is not app.extensions["gatekeeper"].engine

    # two separate counters: Rampart's (2 a minute, its headers) and GateKeeper's (3 a minute)
    first = get(app)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert get(app).status_code == 200
    refused_by_rampart = get(app)
    assert refused_by_rampart.status_code == 429
    assert refused_by_rampart.data == b"Too many requests"
    assert_refused(get(app), 429, limited_body(IP, 60, 3, 60), retry_after=60)

    # separate bans
    with app.app_context():
        assert gk.report(OTHER_IP) is True
        assert gk.is_banned(OTHER_IP)
        assert not rampart.is_banned(OTHER_IP)
        rampart.ban("203.0.113.30", 120)
        assert rampart.is_banned("203.0.113.30")
        assert not gk.is_banned("203.0.113.30")
        assert [b.ip for b in gk.bans()] == [OTHER_IP]
        assert [b.ip for b in rampart.bans()] == ["203.0.113.30"]
    assert_refused(get(app, ip=OTHER_IP), 403, banned_body(OTHER_IP, 600, 1, 60), 600)
    by_rampart = get(app, ip="203.0.113.30")
    assert by_rampart.status_code == 403
    assert by_rampart.data == b"IP address banned"
    assert by_rampart.headers["Retry-After"] == "120"
    assert get(app, ip="203.0.113.31").status_code == 200
