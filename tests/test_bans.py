"""IP bans end to end: the ban API, report-driven automatic bans, expiry on the clock, proxies,
IPv6, passive mode, messages and per-app state.

Every app runs on a ``ManualClock`` (the ``clock`` fixture): bans expire by stepping the clock,
never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from conftest import request_as
from flask import Flask, request
from flask_rampart import Ban, Rampart, SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog
    from flask_rampart.testing import ManualClock

IP = "198.51.100.7"
OTHER_IP = "198.51.100.8"
BAD = "203.0.113.9"


def banning_app(clock: ManualClock, **fields: Any) -> tuple[Flask, Rampart]:
    """An app whose views report clients, protected by ``SecurityConfig(**fields)``."""
    rampart = Rampart(clock=clock)
    app = Flask("rampart_ban_app", static_folder=None)
    app.config["TESTING"] = True

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.post("/login")
    def login() -> tuple[str, int]:
        if (request.get_json(silent=True) or {}).get("password") == "password":
            return "token", 200
        rampart.report()
        return "bad password", 401

    @app.get("/report")
    def report() -> str:
        return str(rampart.report())

    @app.get("/static/x")
    def static_x() -> str:
        return "static x"

    @app.post("/submit")
    def submit() -> str:
        return "submitted"

    rampart.init_app(app, SecurityConfig(**fields))
    return app, rampart


def get(
    app: Flask,
    path: str = "/hello",
    ip: str = IP,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    **kwargs: Any,
) -> TestResponse:
    return request_as(app, path, ip, headers, method, **kwargs)


def bad_login(app: Flask, ip: str = IP, headers: dict[str, str] | None = None) -> TestResponse:
    return get(app, "/login", ip, headers, method="POST", json={"password": "guess"})


def assert_banned(resp: TestResponse, retry_after: int, body: str = "IP address banned") -> None:
    assert resp.status_code == 403
    assert resp.get_data(as_text=True) == body
    assert resp.mimetype == "text/plain"
    assert resp.headers["Retry-After"] == str(retry_after)


# --------------------------------------------------------------------------- the ban API


def test_manual_ban_blocks_until_unbanned(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    now = clock.now()
    with app.app_context():
        until = rampart.ban(BAD, 120, reason="abuse")
        assert until == now + 120
        assert rampart.is_banned(BAD)
        assert not rampart.is_banned(IP)
        assert rampart.bans() == [Ban(BAD, now + 120, "abuse")]

    assert_banned(get(app, ip=BAD), retry_after=120)
    assert get(app, "/does-not-exist", ip=BAD).status_code == 403  # every path
    assert get(app, ip=IP).status_code == 200

    with app.app_context():
        assert rampart.unban(BAD) is True
        assert rampart.unban(BAD) is False  # nothing left to lift
        assert not rampart.is_banned(BAD)
        assert rampart.bans() == []
    ok = get(app, ip=BAD)
    assert ok.status_code == 200
    assert ok.data == b"hello"


def test_ban_from_inside_a_view(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)

    @app.get("/ban-me")
    def ban_me() -> str:
        rampart.ban(request.remote_addr or "", 30, reason="asked for it")
        return "banned"

    assert get(app, "/ban-me").data == b"banned"
    assert_banned(get(app), retry_after=30)


def test_ban_defaults_to_auto_ban_duration_and_a_reason(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_duration=900)
    with app.app_context():
        until = rampart.ban(BAD)
        [ban] = rampart.bans()
    assert until == clock.now() + 900
    assert ban.ip == BAD
    assert ban.until == until
    assert ban.reason == "banned manually"
    assert_banned(get(app, ip=BAD), retry_after=900)


def test_ban_expires_on_the_clock(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 60)
    clock.advance(30.5)
    assert_banned(get(app, ip=BAD), retry_after=30)  # 29.5 s left, rounded up
    clock.advance(29.499)
    assert_banned(get(app, ip=BAD), retry_after=1)  # never 0
    with app.app_context():
        assert rampart.is_banned(BAD)
    clock.advance(0.001)  # exactly the end of the ban
    assert get(app, ip=BAD).status_code == 200
    with app.app_context():
        assert not rampart.is_banned(BAD)
        assert rampart.bans() == []


def test_banning_again_replaces_the_ban(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 60, reason="first")
        rampart.ban(BAD, 600, reason="second")
        assert rampart.bans() == [Ban(BAD, clock.now() + 600, "second")]
    clock.advance(60)
    assert_banned(get(app, ip=BAD), retry_after=540)


def test_bans_are_listed_soonest_to_end_first(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    now = clock.now()
    with app.app_context():
        rampart.ban("203.0.113.1", 300)
        rampart.ban("203.0.113.2", 100)
        rampart.ban("2001:db8::2", 200)
        assert [(b.ip, b.until) for b in rampart.bans()] == [
            ("203.0.113.2", now + 100),
            ("2001:db8::2", now + 200),
            ("203.0.113.1", now + 300),
        ]
        clock.advance(150)
        assert [b.ip for b in rampart.bans()] == ["2001:db8::2", "203.0.113.1"]


def test_reset_forgets_bans_and_strikes(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2)
    with app.app_context():
        rampart.ban(BAD, 600)
        assert rampart.report(IP) is False
        rampart.reset()
        assert rampart.bans() == []
        assert rampart.report(IP) is False  # the earlier strike was forgotten
        assert rampart.report(IP) is True
    assert get(app, ip=BAD).status_code == 200


def test_reset_limits_does_not_lift_a_ban(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 600)
        rampart.reset_limits(BAD)
        assert rampart.is_banned(BAD)
    assert get(app, ip=BAD).status_code == 403


def test_reset_limits_keeps_the_report_strikes(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2)
    with app.app_context():
        assert rampart.report(IP) is False
        rampart.reset_limits(IP)
        assert rampart.report(IP) is True


def test_ban_and_unban_are_logged(rampart_log: RampartLog, clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    rampart_log.clear()
    with app.app_context():
        rampart.ban(BAD, 60, reason="abuse")
        rampart.unban(BAD)
        rampart.unban(BAD)  # no ban: nothing to log
    actions = [(e["event.action"], e["source.ip"]) for e in rampart_log.event_dicts]
    assert actions == [("ip_banned", BAD), ("ip_unbanned", BAD)]
    assert "abuse" in rampart_log.event_dicts[0]["message"]


def test_blocked_request_of_a_banned_client_is_logged(
    rampart_log: RampartLog, clock: ManualClock
) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 60)
    rampart_log.clear()
    get(app, ip=BAD)
    [event] = rampart_log.event_dicts
    assert event["event.action"] == "ip_ban_enforced"
    assert event["event.outcome"] == "blocked"
    assert event["source.ip"] == BAD
    assert int(event["http.response.status_code"]) == 403


# --------------------------------------------------------------------------- automatic bans


def test_report_bans_at_the_threshold(clock: ManualClock) -> None:
    app, rampart = banning_app(
        clock, auto_ban_threshold=3, auto_ban_window=60, auto_ban_duration=600
    )
    assert [get(app, "/report").data for _ in range(2)] == [b"False", b"False"]
    now = clock.now()
    assert get(app, "/report").data == b"True"  # this report caused the ban

    assert_banned(get(app), retry_after=600)
    assert get(app, ip=OTHER_IP).status_code == 200
    with app.app_context():
        assert rampart.bans() == [Ban(IP, now + 600, "reported 3 times in a 60s window")]


def test_threshold_of_one_bans_at_the_first_report(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=1)
    with app.app_context():
        assert rampart.report(BAD) is True
        assert rampart.is_banned(BAD)


def test_failed_logins_lead_to_a_detailed_ban_message(clock: ManualClock) -> None:
    app, _ = banning_app(
        clock,
        auto_ban_threshold=3,
        auto_ban_window=60,
        auto_ban_duration=600,
        block_messages="detailed",
    )
    for _ in range(3):
        resp = bad_login(app)
        assert resp.status_code == 401
        assert resp.data == b"bad password"
    clock.advance(100)
    banned = get(app, "/login", method="POST", json={"password": "password"})
    assert_banned(
        banned, retry_after=500, body=f"ip {IP} banned for 500s (reported 3 times in a 60s window)"
    )
    # a client who never failed logs in
    ok = get(app, "/login", ip=OTHER_IP, method="POST", json={"password": "password"})
    assert ok.status_code == 200
    assert ok.data == b"token"


def test_strikes_older_than_the_window_do_not_count(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=3, auto_ban_window=60)
    t0 = clock.now()
    with app.app_context():
        assert rampart.report(IP) is False  # t0
        clock.set(t0 + 30)
        assert rampart.report(IP) is False  # t0 + 30
        clock.set(t0 + 60)  # the first strike has just left the window
        assert rampart.report(IP) is False
        assert not rampart.is_banned(IP)
        clock.set(t0 + 61)  # t0 + 30, t0 + 60, t0 + 61: three in 60 s
        assert rampart.report(IP) is True
        assert rampart.is_banned(IP)


def test_reports_are_counted_per_client(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2)
    with app.app_context():
        assert rampart.report(IP) is False
        assert rampart.report(OTHER_IP) is False
        assert rampart.report("2001:db8::7") is False
        assert rampart.report(IP) is True
        assert not rampart.is_banned(OTHER_IP)
        assert not rampart.is_banned("2001:db8::7")


def test_reports_while_banned_do_not_count_and_the_count_restarts(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2, auto_ban_duration=100)
    with app.app_context():
        assert rampart.report(IP) is False
        assert rampart.report(IP) is True
        [ban] = rampart.bans()
        for _ in range(5):
            assert rampart.report(IP) is False
        assert rampart.bans() == [ban]  # not extended by the reports
        clock.advance(100)
        assert not rampart.is_banned(IP)
        assert rampart.report(IP) is False  # no immediate re-ban: one strike so far
        assert not rampart.is_banned(IP)
        assert rampart.report(IP) is True


def test_auto_ban_lasts_exactly_auto_ban_duration(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=1, auto_ban_duration=300)
    t0 = clock.now()
    assert get(app, "/report").data == b"True"
    with app.app_context():
        assert rampart.bans()[0].until == t0 + 300

    clock.set(t0 + 299.999)
    assert_banned(get(app), retry_after=1)
    with app.app_context():
        assert rampart.is_banned(IP)

    clock.set(t0 + 300)
    assert get(app).status_code == 200
    with app.app_context():
        assert not rampart.is_banned(IP)


def test_report_without_ip_uses_the_requests_client(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2)
    assert bad_login(app, ip="2001:db8::42").status_code == 401
    assert bad_login(app, ip="2001:db8::42").status_code == 401
    assert get(app, ip="2001:db8::42").status_code == 403
    assert get(app, ip=IP).status_code == 200
    with app.app_context():
        assert [b.ip for b in rampart.bans()] == ["2001:db8::42"]


def test_report_without_ip_behind_a_trusted_proxy_uses_the_forwarded_client(
    clock: ManualClock,
) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2, trusted_proxies=["10.0.0.1"])
    via = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(2):
        assert bad_login(app, ip="10.0.0.1", headers=via).status_code == 401
    with app.app_context():
        assert rampart.is_banned("203.0.113.7")
        assert not rampart.is_banned("10.0.0.1")  # not the proxy
    assert get(app, ip="10.0.0.1", headers=via).status_code == 403
    assert get(app, ip="10.0.0.1", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    assert get(app, ip="10.0.0.1").status_code == 200


def test_spoofed_forwarded_for_cannot_frame_another_client(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, auto_ban_threshold=2, trusted_proxies=["10.0.0.1"])
    spoof = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(2):
        bad_login(app, ip=OTHER_IP, headers=spoof)
    with app.app_context():
        assert [b.ip for b in rampart.bans()] == [OTHER_IP]


def test_enable_ip_banning_false(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, enable_ip_banning=False, auto_ban_threshold=1)
    with app.app_context():
        with pytest.raises(RuntimeError, match="enable_ip_banning"):
            rampart.ban(BAD, 60)
        assert [rampart.report(BAD) for _ in range(5)] == [False] * 5
        assert not rampart.is_banned(BAD)
        assert rampart.bans() == []
    assert [get(app, "/report", ip=BAD).data for _ in range(3)] == [b"False"] * 3
    assert get(app, ip=BAD).status_code == 200


def test_bans_work_with_rate_limiting_disabled(clock: ManualClock) -> None:
    app, _ = banning_app(clock, enable_rate_limiting=False, auto_ban_threshold=1)
    assert get(app, "/report", ip=BAD).data == b"True"
    assert get(app, ip=BAD).status_code == 403


def test_banned_requests_do_not_count_toward_rate_limits(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, rate_limit=2)
    with app.app_context():
        rampart.ban(BAD, 60)
    assert [get(app, ip=BAD).status_code for _ in range(5)] == [403] * 5
    with app.app_context():
        rampart.unban(BAD)
    assert [get(app, ip=BAD).status_code for _ in range(3)] == [200, 200, 429]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad_ip", ["not-an-ip", "203.0.113.300", "", "2001:db8::zz"])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r, ip: r.ban(ip, 60), id="ban"),
        pytest.param(lambda r, ip: r.unban(ip), id="unban"),
        pytest.param(lambda r, ip: r.is_banned(ip), id="is_banned"),
        pytest.param(lambda r, ip: r.report(ip), id="report"),
        pytest.param(lambda r, ip: r.reset_limits(ip), id="reset_limits"),
    ],
)
def test_bad_ip_raises_value_error(
    clock: ManualClock, call: Callable[[Rampart, str], object], bad_ip: str
) -> None:
    app, rampart = banning_app(clock)
    with app.app_context(), pytest.raises(ValueError, match="not an IP address"):
        call(rampart, bad_ip)
    with app.app_context():
        assert rampart.bans() == []


@pytest.mark.parametrize("seconds", [0, -5])
def test_ban_duration_must_be_positive(clock: ManualClock, seconds: float) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        with pytest.raises(ValueError, match="positive"):
            rampart.ban(BAD, seconds)
        assert not rampart.is_banned(BAD)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r: r.ban(BAD, 60), id="ban"),
        pytest.param(lambda r: r.unban(BAD), id="unban"),
        pytest.param(lambda r: r.is_banned(BAD), id="is_banned"),
        pytest.param(lambda r: r.bans(), id="bans"),
        pytest.param(lambda r: r.report(BAD), id="report"),
        pytest.param(lambda r: r.report(), id="report-no-ip"),
        pytest.param(lambda r: r.reset_limits(BAD), id="reset_limits"),
        pytest.param(lambda r: r.reset(), id="reset"),
    ],
)
def test_outside_an_app_context_raises_a_clear_runtime_error(
    clock: ManualClock, call: Callable[[Rampart], object]
) -> None:
    _, rampart = banning_app(clock)
    with pytest.raises(RuntimeError) as excinfo:
        call(rampart)
    message = str(excinfo.value)
    assert "application context" in message
    assert "app.app_context()" in message


def test_report_without_ip_needs_a_request(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context(), pytest.raises(RuntimeError, match="request context"):
        rampart.report()


def test_api_on_an_app_without_rampart_says_so(clock: ManualClock) -> None:
    _, rampart = banning_app(clock)
    other = Flask("no_rampart_here")
    with other.app_context(), pytest.raises(RuntimeError, match="not initialised"):
        rampart.ban(BAD, 60)


# --------------------------------------------------------------------------- passive mode


def test_passive_mode_report_logs_but_does_not_ban(
    rampart_log: RampartLog, clock: ManualClock
) -> None:
    app, rampart = banning_app(clock, passive_mode=True, auto_ban_threshold=2)
    rampart_log.clear()
    assert [get(app, "/report").data for _ in range(3)] == [b"False"] * 3
    with app.app_context():
        assert not rampart.is_banned(IP)
        assert rampart.bans() == []
    assert get(app).status_code == 200

    [event] = rampart_log.event_dicts
    assert event["event.action"] == "ip_banned"
    assert event["event.outcome"] == "passive"
    assert event["source.ip"] == IP
    assert "would be banned" in event["message"]


def test_passive_mode_does_not_block_a_banned_client(
    rampart_log: RampartLog, clock: ManualClock
) -> None:
    app, rampart = banning_app(clock, passive_mode=True)
    with app.app_context():
        rampart.ban(BAD, 60)
    rampart_log.clear()
    resp = get(app, ip=BAD)
    assert resp.status_code == 200
    assert resp.data == b"hello"
    assert "Retry-After" not in resp.headers
    [event] = rampart_log.event_dicts
    assert event["event.action"] == "ip_ban_enforced"
    assert event["event.outcome"] == "passive"
    assert event["source.ip"] == BAD


# --------------------------------------------------------------------------- answers


def test_detailed_message_of_a_manual_ban(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, block_messages="detailed")
    with app.app_context():
        rampart.ban(BAD, 120, reason="abuse")
    clock.advance(20)
    assert_banned(get(app, ip=BAD), retry_after=100, body=f"ip {BAD} banned for 100s (abuse)")


def test_custom_error_response_for_403(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, custom_error_responses={403: "Go away"})
    with app.app_context():
        rampart.ban(BAD, 60)
    assert_banned(get(app, ip=BAD), retry_after=60, body="Go away")


def test_head_request_of_a_banned_client_has_an_empty_body(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 60)
    head = get(app, ip=BAD, method="HEAD")
    assert head.status_code == 403
    assert head.data == b""
    assert head.headers["Retry-After"] == "60"


# --------------------------------------------------------------------------- clients


def test_ipv6_ban_matches_every_spelling_of_the_address(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban("2001:0DB8:0000:0000:0000:0000:0000:0005", 60)
        assert rampart.is_banned("2001:db8::5")
        assert [b.ip for b in rampart.bans()] == ["2001:db8::5"]
    assert_banned(get(app, ip="2001:db8::5"), retry_after=60)
    assert get(app, ip="2001:db8:0:0::5").status_code == 403
    assert get(app, ip="2001:db8::6").status_code == 200


def test_ipv4_ban_covers_the_ipv4_mapped_peer(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban(BAD, 60)
        assert rampart.is_banned(f"::ffff:{BAD}")
    assert get(app, ip=f"::ffff:{BAD}").status_code == 403
    assert get(app, ip="203.0.113.10").status_code == 200


def test_ipv4_bans_are_per_address(clock: ManualClock) -> None:
    app, rampart = banning_app(clock)
    with app.app_context():
        rampart.ban("203.0.113.9", 60)
    assert get(app, ip="203.0.113.9").status_code == 403
    assert get(app, ip="203.0.113.8").status_code == 200


# --------------------------------------------------------------------------- scope


def test_excluded_paths_and_methods_skip_bans(clock: ManualClock) -> None:
    app, rampart = banning_app(clock, exclude_methods=["POST"])
    with app.app_context():
        rampart.ban(BAD, 60)
    assert get(app, "/static/x", ip=BAD).status_code == 200
    assert get(app, "/submit", ip=BAD, method="POST").status_code == 200
    assert get(app, ip=BAD).status_code == 403


def test_apps_in_one_process_have_separate_bans(clock: ManualClock) -> None:
    app1, rampart1 = banning_app(clock, auto_ban_threshold=1)
    app2, rampart2 = banning_app(clock, auto_ban_threshold=1)
    with app1.app_context():
        rampart1.ban(BAD, 60)
    assert get(app1, ip=BAD).status_code == 403
    assert get(app2, ip=BAD).status_code == 200
    assert get(app2, "/report", ip=IP).data == b"True"
    assert get(app2, ip=IP).status_code == 403
    assert get(app1, ip=IP).status_code == 200
    with app1.app_context():
        assert [b.ip for b in rampart1.bans()] == [BAD]
    with app2.app_context():
        assert [b.ip for b in rampart2.bans()] == [IP]


def test_one_extension_on_two_apps_keeps_their_bans_apart(clock: ManualClock) -> None:
    rampart = Rampart(clock=clock)
    apps = []
    for name in ("first", "second"):
        app = Flask(name, static_folder=None)
        app.add_url_rule("/hello", "hello", lambda: "hello")
        rampart.init_app(app, SecurityConfig())
        apps.append(app)
    first, second = apps
    with first.app_context():
        rampart.ban(BAD, 60)
        assert rampart.is_banned(BAD)
    with second.app_context():
        assert not rampart.is_banned(BAD)
        assert rampart.bans() == []
    assert get(first, ip=BAD).status_code == 403
    assert get(second, ip=BAD).status_code == 200
