"""Rate limiting end to end: the four algorithms at their exact boundaries, stacked limits, keys,
headers, exclusions, passive mode and configuration errors.

Every app runs on a ``ManualClock`` (the ``clock`` fixture, which starts at ``CLOCK_START``, a
multiple of 60 and 3600): tests step time forward instead of sleeping, and every expected header
value is computed from that clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest
from conftest import CLOCK_START, request_as
from flask import Flask, request
from flask_rampart import ConfigError, Rampart, SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog
    from flask_rampart.testing import ManualClock

IP = "198.51.100.7"
OTHER_IP = "198.51.100.8"
LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
DRAFT_HEADERS = ("RateLimit-Policy", "RateLimit")


def limited_app(clock: ManualClock, **fields: Any) -> Flask:
    """A small app protected by Rampart with ``SecurityConfig(**fields)`` on the manual clock."""
    app = Flask("rampart_rate_limit_app", static_folder=None)
    app.config["TESTING"] = True

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/other")
    def other() -> str:
        return "other"

    @app.route("/login", methods=["GET", "POST"])
    def login() -> str:
        return "login"

    @app.get("/login/reset")
    def login_reset() -> str:
        return "login reset"

    @app.get("/static/x")
    def static_x() -> str:
        return "static x"

    @app.get("/staticfoo")
    def staticfoo() -> str:
        return "staticfoo"

    @app.post("/submit")
    def submit() -> str:
        return "submitted:" + request.get_data(as_text=True)

    Rampart(app, SecurityConfig(**fields), clock=clock)
    return app


def get(
    app: Flask,
    path: str = "/hello",
    ip: str = IP,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> TestResponse:
    return request_as(app, path, ip, headers, method)


def statuses(app: Flask, n: int, path: str = "/hello", ip: str = IP) -> list[int]:
    return [get(app, path, ip).status_code for _ in range(n)]


def limit_headers(resp: TestResponse) -> tuple[int, int, int]:
    """``(X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset)`` as integers."""
    return (
        int(resp.headers["X-RateLimit-Limit"]),
        int(resp.headers["X-RateLimit-Remaining"]),
        int(resp.headers["X-RateLimit-Reset"]),
    )


def assert_too_many(resp: TestResponse, retry_after: int) -> None:
    assert resp.status_code == 429
    assert resp.data == b"Too many requests"
    assert resp.mimetype == "text/plain"
    assert resp.headers["Retry-After"] == str(retry_after)


def config_errors(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(**fields)
    errors = [(str(field), str(message)) for field, message in excinfo.value.errors]
    assert errors, "ConfigError raised with an empty .errors list"
    return errors


# --------------------------------------------------------------------------- every algorithm


ALGORITHMS = ["sliding_window", "fixed_window", "sliding_window_counter", "gcra"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_n_requests_pass_and_the_next_is_refused(clock: ManualClock, algorithm: str) -> None:
    app = limited_app(clock, rate_limit=5, rate_limit_window=60, rate_limit_algorithm=algorithm)
    remaining = []
    for _ in range(5):
        resp = get(app)
        assert resp.status_code == 200
        assert resp.data == b"hello"
        remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    refused = get(app)
    assert refused.status_code == 429
    assert refused.data == b"Too many requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Limit"] == "5"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # another client is not affected
    assert get(app, ip=OTHER_IP).status_code == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_quiet_client_gets_its_full_quota_back(clock: ManualClock, algorithm: str) -> None:
    app = limited_app(clock, rate_limit=3, rate_limit_window=60, rate_limit_algorithm=algorithm)
    assert statuses(app, 4) == [200, 200, 200, 429]
    # two windows of silence restore every algorithm (the sliding counter weighs the previous one)
    clock.advance(120)
    assert statuses(app, 4) == [200, 200, 200, 429]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_can_be_chosen_per_limit(clock: ManualClock, algorithm: str) -> None:
    app = limited_app(clock, rate_limits=[{"limit": 2, "window": 60, "algorithm": algorithm}])
    assert statuses(app, 3) == [200, 200, 429]


# --------------------------------------------------------------------------- sliding window


def test_sliding_window_frees_one_slot_per_expired_request(clock: ManualClock) -> None:
    """N=3, W=60, requests at t=0, 10, 20: at t=60 exactly the first slot frees, and only it."""
    app = limited_app(clock, rate_limit=3, rate_limit_window=60)
    t0 = clock.now()
    for offset in (0, 10, 20):
        clock.set(t0 + offset)
        assert get(app).status_code == 200

    clock.set(t0 + 30)
    assert_too_many(get(app), retry_after=30)  # the request of t=0 leaves at t=60
    clock.set(t0 + 59.999)
    assert_too_many(get(app), retry_after=1)  # rounded up, never 0

    clock.set(t0 + 60)
    assert get(app).status_code == 200  # exactly one slot freed...
    assert_too_many(get(app), retry_after=10)  # ...the next one frees at t=70

    clock.set(t0 + 70)
    assert get(app).status_code == 200
    assert_too_many(get(app), retry_after=10)  # t=80 next (the request of t=20)


def test_sliding_window_holds_n_in_any_window_span(clock: ManualClock) -> None:
    """A client sending one request a second never gets more than N through in any W span."""
    app = limited_app(clock, rate_limit=4, rate_limit_window=10)
    t0 = clock.now()
    allowed: list[float] = []
    for second in range(40):
        clock.set(t0 + second)
        if get(app).status_code == 200:
            allowed.append(second)
    assert allowed == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33]
    for start in range(40):
        assert sum(1 for s in allowed if start <= s < start + 10) <= 4


def test_refused_requests_are_not_counted(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=2, rate_limit_window=60)
    assert statuses(app, 2) == [200, 200]
    clock.advance(30)
    assert statuses(app, 10) == [429] * 10
    # had the refused requests been counted, the client would still be limited at t=60
    clock.advance(30)
    assert statuses(app, 3) == [200, 200, 429]


# --------------------------------------------------------------------------- fixed window


def test_fixed_window_is_aligned_to_the_clock(clock: ManualClock) -> None:
    assert CLOCK_START % 60 == 0  # the clock starts a fixed window
    app = limited_app(
        clock, rate_limit=3, rate_limit_window=60, rate_limit_algorithm="fixed_window"
    )
    start = int(CLOCK_START)
    for remaining, offset in zip((2, 1, 0), (0, 1, 2), strict=True):
        clock.set(start + offset)
        resp = get(app)
        assert resp.status_code == 200
        assert limit_headers(resp) == (3, remaining, start + 60)

    clock.set(start + 3)
    refused = get(app)
    assert_too_many(refused, retry_after=57)  # until the window ends
    assert limit_headers(refused) == (3, 0, start + 60)

    clock.set(start + 59.999)
    assert_too_many(get(app), retry_after=1)

    # a new window starts exactly at the edge: a full quota again (2N across the edge)
    clock.set(start + 60)
    for remaining in (2, 1, 0):
        resp = get(app)
        assert resp.status_code == 200
        assert limit_headers(resp) == (3, remaining, start + 120)
    assert_too_many(get(app), retry_after=60)


# --------------------------------------------------------------------------- sliding counter


def test_sliding_window_counter_weighs_the_previous_window(clock: ManualClock) -> None:
    """N=4, W=60: 4 requests at the start of a window. In the next window the previous count
    weighs ``4 * (60 - elapsed) / 60``, so one more fits from elapsed=15, two from elapsed=30."""
    app = limited_app(
        clock, rate_limit=4, rate_limit_window=60, rate_limit_algorithm="sliding_window_counter"
    )
    start = int(CLOCK_START)
    remaining = [int(get(app).headers["X-RateLimit-Remaining"]) for _ in range(4)]
    assert remaining == [3, 2, 1, 0]
    assert_too_many(get(app), retry_after=75)  # into the next window, until elapsed=15

    clock.set(start + 60)  # next window: the previous 4 still weigh fully
    assert_too_many(get(app), retry_after=15)
    clock.set(start + 74.999)
    assert_too_many(get(app), retry_after=1)

    clock.set(start + 75)  # 4 * 45/60 = 3 weighted, + 1 = 4
    resp = get(app)
    assert resp.status_code == 200
    assert limit_headers(resp) == (4, 0, start + 120)
    assert_too_many(get(app), retry_after=15)  # 3 + 1 + 1 > 4 until elapsed=30

    clock.set(start + 90)  # 4 * 30/60 = 2, + 1 + 1 = 4
    assert get(app).status_code == 200
    assert get(app).status_code == 429


# --------------------------------------------------------------------------- GCRA


def test_gcra_allows_a_burst_then_one_per_emission_interval(clock: ManualClock) -> None:
    """N=3, W=60: a burst of 3, then one request every W/N = 20 s."""
    app = limited_app(clock, rate_limit=3, rate_limit_window=60, rate_limit_algorithm="gcra")
    t0 = int(clock.now())
    # Remaining counts the burst left; Reset is when the bucket is full again.
    for remaining, reset in ((2, t0 + 20), (1, t0 + 40), (0, t0 + 60)):
        resp = get(app)
        assert resp.status_code == 200
        assert limit_headers(resp) == (3, remaining, reset)
    refused = get(app)
    assert_too_many(refused, retry_after=20)
    assert limit_headers(refused) == (3, 0, t0 + 60)

    clock.set(t0 + 19.999)
    assert_too_many(get(app), retry_after=1)
    clock.set(t0 + 20)
    assert get(app).status_code == 200
    assert_too_many(get(app), retry_after=20)
    clock.set(t0 + 40)
    assert get(app).status_code == 200
    assert get(app).status_code == 429
    # 5 = 2N - 1 requests in [t0, t0 + 60): GCRA is a rate, not an "N in any W" window


# --------------------------------------------------------------------------- stacked limits


def test_stacked_limits_tightest_refuses_and_the_others_do_not_count_it(
    clock: ManualClock,
) -> None:
    app = limited_app(
        clock,
        rate_limit=10,
        rate_limit_window=60,
        rate_limits=[(20, 3600)],
        endpoint_rate_limits={"/login": (2, 60)},
        rate_limit_draft_headers=True,
    )
    now = int(clock.now())
    policy = '"global";q=10;w=60, "global-2";q=20;w=3600, "path:/login";q=2;w=60'

    first = get(app, "/login")
    assert first.status_code == 200
    # the X- trio describes the limit closest to refusing: the path limit
    assert limit_headers(first) == (2, 1, now + 60)
    assert first.headers["RateLimit-Policy"] == policy
    assert (
        first.headers["RateLimit"]
        == '"global";r=9;t=60, "global-2";r=19;t=3600, "path:/login";r=1;t=60'
    )

    assert get(app, "/login").status_code == 200
    for _ in range(3):
        refused = get(app, "/login")
        assert_too_many(refused, retry_after=60)
        assert limit_headers(refused) == (2, 0, now + 60)
        # the wider limits show their count before this (uncounted) request
        assert refused.headers["RateLimit"] == (
            '"global";r=8;t=60, "global-2";r=18;t=3600, "path:/login";r=0;t=60'
        )

    # two /login requests counted, three refused ones not: 10 - 3 after this one
    hello = get(app, "/hello")
    assert hello.status_code == 200
    assert limit_headers(hello) == (10, 7, now + 60)
    assert hello.headers["RateLimit-Policy"] == '"global";q=10;w=60, "global-2";q=20;w=3600'
    assert hello.headers["RateLimit"] == '"global";r=7;t=60, "global-2";r=17;t=3600'


def test_global_limit_refusals_do_not_count_toward_the_path_limit(clock: ManualClock) -> None:
    app = limited_app(
        clock, rate_limit=3, rate_limit_window=10, endpoint_rate_limits={"/login": (5, 3600)}
    )
    first = get(app, "/login")
    assert limit_headers(first)[:2] == (3, 2)  # the global limit is the closer one
    assert statuses(app, 2, "/login") == [200, 200]
    refused = get(app, "/login")
    assert_too_many(refused, retry_after=10)
    assert refused.headers["X-RateLimit-Limit"] == "3"  # refused by the global limit
    assert statuses(app, 3, "/login") == [429] * 3

    clock.advance(10)
    # the six refusals were not counted by the path limit: two more fit in it
    assert statuses(app, 2, "/login") == [200, 200]
    by_path = get(app, "/login")
    assert_too_many(by_path, retry_after=3590)
    assert by_path.headers["X-RateLimit-Limit"] == "5"
    # the global limit still has room for other paths
    assert get(app, "/hello").status_code == 200


def test_refused_by_several_limits_retry_after_is_the_longest_wait(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limits=[(2, 10), (2, 100)])
    assert statuses(app, 2) == [200, 200]
    assert_too_many(get(app), retry_after=100)
    clock.advance(10)
    assert_too_many(get(app), retry_after=90)  # the 10 s limit is free, the 100 s one is not
    clock.advance(90)
    assert get(app).status_code == 200


def test_rate_limits_forms_are_equivalent(clock: ManualClock) -> None:
    app = limited_app(
        clock,
        rate_limits=[
            (5, 60),
            [4, 60],
            {"limit": 3, "window": 60},
            {"count": 7, "window": 60},
            {"requests": 6, "window": 60},
        ],
    )
    resp = get(app)
    assert limit_headers(resp)[:2] == (3, 2)
    assert statuses(app, 3) == [200, 200, 429]


# --------------------------------------------------------------------------- per-endpoint


def test_endpoint_limit_applies_to_the_exact_path_only(clock: ManualClock) -> None:
    app = limited_app(clock, endpoint_rate_limits={"/login": (2, 60)})
    now = int(clock.now())
    first = get(app, "/login")
    assert first.status_code == 200
    assert limit_headers(first) == (2, 1, now + 60)
    assert get(app, "/login", method="POST").status_code == 200  # any method counts
    assert_too_many(get(app, "/login"), retry_after=60)
    assert_too_many(get(app, "/login?next=/x"), retry_after=60)  # the query is not the path
    assert_too_many(get(app, "/login", method="POST"), retry_after=60)

    # other paths, including one below /login, have no limit at all
    for path in ("/login/reset", "/hello"):
        for _ in range(5):
            resp = get(app, path)
            assert resp.status_code == 200
            for name in LIMIT_HEADERS:
                assert name not in resp.headers
    # and it is per client
    assert get(app, "/login", ip=OTHER_IP).status_code == 200


def test_endpoint_limits_are_independent_of_each_other(clock: ManualClock) -> None:
    app = limited_app(clock, endpoint_rate_limits={"/login": (1, 60), "/hello": (3, 60)})
    assert statuses(app, 2, "/login") == [200, 429]
    assert statuses(app, 4, "/hello") == [200, 200, 200, 429]
    assert get(app, "/other").status_code == 200


# --------------------------------------------------------------------------- keys


def test_global_key_shares_one_quota_between_all_clients(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=3, rate_limit_key="global")
    clients = [IP, OTHER_IP, "2001:db8::5"]
    remaining = [int(get(app, ip=ip).headers["X-RateLimit-Remaining"]) for ip in clients]
    assert remaining == [2, 1, 0]
    assert_too_many(get(app, ip="203.0.113.99"), retry_after=60)
    assert get(app, "/other", ip="203.0.113.99").status_code == 429  # every path shares it


def test_endpoint_key_shares_a_quota_per_endpoint(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=2, rate_limit_key="endpoint")
    assert get(app, "/hello", ip=IP).status_code == 200
    assert get(app, "/hello", ip=OTHER_IP).status_code == 200
    assert get(app, "/hello", ip="203.0.113.3").status_code == 429
    # another endpoint has its own quota, shared by everyone
    assert get(app, "/other", ip="203.0.113.3").status_code == 200
    assert get(app, "/other", ip=IP).status_code == 200
    assert get(app, "/other", ip="203.0.113.4").status_code == 429


def test_ip_endpoint_key_counts_each_client_per_endpoint(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, rate_limit_key="ip_endpoint")
    assert statuses(app, 2, "/hello") == [200, 429]
    assert statuses(app, 2, "/other") == [200, 429]
    assert statuses(app, 2, "/hello", ip=OTHER_IP) == [200, 429]


def test_per_limit_key_in_the_dict_form(clock: ManualClock) -> None:
    app = limited_app(
        clock, rate_limit=2, rate_limits=[{"limit": 3, "window": 60, "key": "global"}]
    )
    assert statuses(app, 2, ip=IP) == [200, 200]
    per_ip = get(app, ip=IP)
    assert per_ip.status_code == 429
    assert per_ip.headers["X-RateLimit-Limit"] == "2"  # not counted by the shared limit...
    assert get(app, ip=OTHER_IP).status_code == 200  # ...so it has one left for this client
    shared = get(app, ip="203.0.113.3")
    assert shared.status_code == 429
    assert shared.headers["X-RateLimit-Limit"] == "3"


# --------------------------------------------------------------------------- headers


def test_headers_are_computed_from_the_clock_and_rounded_up(clock: ManualClock) -> None:
    clock.advance(0.5)
    app = limited_app(clock, rate_limit=2, rate_limit_window=60)
    first = get(app)
    assert limit_headers(first) == (2, 1, math.ceil(CLOCK_START + 60.5))
    assert "Retry-After" not in first.headers

    clock.advance(10.25)  # the oldest request leaves at CLOCK_START + 60.5 still
    second = get(app)
    assert limit_headers(second) == (2, 0, int(CLOCK_START) + 61)
    refused = get(app)
    assert_too_many(refused, retry_after=50)  # 49.75 s, rounded up
    assert limit_headers(refused) == (2, 0, int(CLOCK_START) + 61)


def test_draft_headers(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=5, rate_limit_window=60, rate_limit_draft_headers=True)
    first = get(app)
    assert first.headers["RateLimit-Policy"] == '"global";q=5;w=60'
    assert first.headers["RateLimit"] == '"global";r=4;t=60'
    assert limit_headers(first)[:2] == (5, 4)  # the X- headers stay on
    clock.advance(15)
    assert get(app).headers["RateLimit"] == '"global";r=3;t=45'


def test_draft_headers_without_the_x_headers(clock: ManualClock) -> None:
    app = limited_app(
        clock,
        rate_limit=1,
        rate_limits=[(10, 3600)],
        rate_limit_headers=False,
        rate_limit_draft_headers=True,
    )
    resp = get(app)
    assert resp.headers["RateLimit-Policy"] == '"global";q=1;w=60, "global-2";q=10;w=3600'
    assert resp.headers["RateLimit"] == '"global";r=0;t=60, "global-2";r=9;t=3600'
    for name in LIMIT_HEADERS:
        assert name not in resp.headers


def test_rate_limit_headers_false_removes_them(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, rate_limit_headers=False)
    allowed = get(app)
    assert allowed.status_code == 200
    refused = get(app)
    assert_too_many(refused, retry_after=60)  # Retry-After is part of the refusal, kept
    for resp in (allowed, refused):
        for name in LIMIT_HEADERS + DRAFT_HEADERS:
            assert name not in resp.headers


def test_no_limit_configured_means_no_headers_and_no_refusal(clock: ManualClock) -> None:
    app = limited_app(clock)
    for _ in range(50):
        resp = get(app)
        assert resp.status_code == 200
        for name in LIMIT_HEADERS + DRAFT_HEADERS:
            assert name not in resp.headers


def test_refusal_keeps_the_security_headers(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1)
    get(app)
    refused = get(app)
    assert refused.status_code == 429
    assert refused.headers["X-Content-Type-Options"] == "nosniff"


# --------------------------------------------------------------------------- bodies


def test_custom_error_response_for_429(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, custom_error_responses={429: "Slow down, please"})
    get(app)
    refused = get(app)
    assert refused.status_code == 429
    assert refused.data == b"Slow down, please"
    assert refused.headers["Retry-After"] == "60"


def test_detailed_block_message(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=2, rate_limit_window=30, block_messages="detailed")
    get(app)
    clock.advance(5)
    get(app)
    refused = get(app)
    assert refused.status_code == 429
    assert refused.data == (
        f"ip {IP} rate limited for 25s (over 2 requests in a 30s window)".encode()
    )
    assert refused.headers["Retry-After"] == "25"


def test_head_request_is_refused_with_an_empty_body(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1)
    assert get(app).status_code == 200
    head = get(app, method="HEAD")
    assert head.status_code == 429
    assert head.data == b""
    assert head.headers["Retry-After"] == "60"
    # and a HEAD request counts like any other
    assert get(app, method="HEAD", ip=OTHER_IP).status_code == 200
    assert get(app, ip=OTHER_IP).status_code == 429


# --------------------------------------------------------------------------- clients


def test_ipv6_clients_are_keyed_by_address(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=2, block_messages="detailed")
    assert statuses(app, 2, ip="2001:db8::5") == [200, 200]
    refused = get(app, ip="2001:0db8:0000:0000:0000:0000:0000:0005")  # the same address
    assert refused.status_code == 429
    assert refused.data.startswith(b"ip 2001:db8::5 rate limited for 60s")
    assert get(app, ip="2001:db8::6").status_code == 200


def test_ipv4_clients_are_independent(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=2)
    assert statuses(app, 3, ip=IP) == [200, 200, 429]
    assert statuses(app, 3, ip=OTHER_IP) == [200, 200, 429]
    # an IPv4-mapped IPv6 peer is that IPv4 client
    assert get(app, ip=f"::ffff:{IP}").status_code == 429
    assert get(app, ip="::ffff:198.51.100.9").status_code == 200


def test_trusted_proxy_client_is_the_key(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, trusted_proxies=["10.0.0.1"], block_messages="detailed")
    via = {"X-Forwarded-For": "203.0.113.7"}
    assert get(app, ip="10.0.0.1", headers=via).status_code == 200
    # another client behind the same proxy has its own quota
    assert get(app, ip="10.0.0.1", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    refused = get(app, ip="10.0.0.1", headers=via)
    assert refused.status_code == 429
    assert refused.data == b"ip 203.0.113.7 rate limited for 60s (over 1 requests in a 60s window)"


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, trusted_proxies=["10.0.0.1"], block_messages="detailed")
    peer = "198.51.100.9"
    assert get(app, ip=peer, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    refused = get(app, ip=peer, headers={"X-Forwarded-For": "203.0.113.10"})
    assert refused.status_code == 429
    assert refused.data.startswith(f"ip {peer} rate limited".encode())


def test_explicit_client_ip_header_without_proxies_is_read_from_any_peer(
    clock: ManualClock,
) -> None:
    app = limited_app(clock, rate_limit=1, client_ip_header="X-Real-IP")
    assert get(app, ip="10.1.1.1", headers={"X-Real-IP": "203.0.113.7"}).status_code == 200
    assert get(app, ip="10.1.1.2", headers={"X-Real-IP": "203.0.113.7"}).status_code == 429
    assert get(app, ip="10.1.1.2", headers={"X-Real-IP": "203.0.113.8"}).status_code == 200


# --------------------------------------------------------------------------- exclusions


def test_excluded_paths_are_neither_limited_nor_counted(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1)  # the default exclude_paths include /static
    for _ in range(5):
        resp = get(app, "/static/x")
        assert resp.status_code == 200
        assert "X-RateLimit-Limit" not in resp.headers
    assert get(app, "/hello").status_code == 200  # the quota was untouched
    assert get(app, "/hello").status_code == 429
    assert get(app, "/static/x").status_code == 200  # excluded even for a limited client
    assert get(app, "/staticfoo").status_code == 429  # whole segments only


def test_custom_exclude_paths(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, exclude_paths=["/other"])
    assert statuses(app, 3, "/other") == [200, 200, 200]
    assert statuses(app, 2, "/hello") == [200, 429]


@pytest.mark.parametrize("method", ["POST", "post"])
def test_excluded_methods_are_neither_limited_nor_counted(clock: ManualClock, method: str) -> None:
    app = limited_app(clock, rate_limit=1, exclude_methods=[method])
    for _ in range(5):
        resp = get(app, "/submit", method="POST")
        assert resp.status_code == 200
        assert "X-RateLimit-Limit" not in resp.headers
    assert statuses(app, 2) == [200, 429]
    assert get(app, "/submit", method="POST").status_code == 200


def test_enable_rate_limiting_false_turns_every_limit_off(clock: ManualClock) -> None:
    app = limited_app(
        clock,
        enable_rate_limiting=False,
        rate_limit=1,
        rate_limits=[(1, 60)],
        endpoint_rate_limits={"/login": (1, 60)},
    )
    for path in ("/hello", "/login"):
        for _ in range(5):
            resp = get(app, path)
            assert resp.status_code == 200
            for name in LIMIT_HEADERS + DRAFT_HEADERS:
                assert name not in resp.headers


# --------------------------------------------------------------------------- passive mode


def test_passive_mode_logs_instead_of_refusing(rampart_log: RampartLog, clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, passive_mode=True)
    rampart_log.clear()
    responses = [get(app) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(r.data == b"hello" for r in responses)

    events = rampart_log.event_dicts
    assert len(events) == 2
    for event in events:
        assert event["event.action"] == "rate_limited"
        assert event["event.outcome"] == "passive"
        assert event["source.ip"] == IP
        assert event["url.path"] == "/hello"
        assert int(event["http.response.status_code"]) == 429


def test_enforcing_mode_logs_the_refusal(rampart_log: RampartLog, clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1)
    rampart_log.clear()
    get(app)
    assert rampart_log.event_dicts == []
    get(app)
    [event] = rampart_log.event_dicts
    assert event["event.action"] == "rate_limited"
    assert event["event.outcome"] == "blocked"
    assert event["rule.id"] == "rate_limit:global"


# --------------------------------------------------------------------------- reset


def test_reset_limits_forgets_one_client(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1)
    rampart: Rampart = app.extensions["rampart"].extension
    assert statuses(app, 2, ip=IP) == [200, 429]
    assert statuses(app, 2, ip=OTHER_IP) == [200, 429]
    with app.app_context():
        rampart.reset_limits(IP)
    assert statuses(app, 2, ip=IP) == [200, 429]
    assert get(app, ip=OTHER_IP).status_code == 429
    with app.app_context():
        rampart.reset()
    assert get(app, ip=OTHER_IP).status_code == 200


def test_reset_limits_also_forgets_the_clients_per_endpoint_counters(
    clock: ManualClock,
) -> None:
    app = limited_app(clock, rate_limit=1, rate_limit_key="ip_endpoint")
    rampart: Rampart = app.extensions["rampart"].extension
    assert statuses(app, 2, ip=IP) == [200, 429]
    with app.app_context():
        rampart.reset_limits(IP)
    assert get(app, ip=IP).status_code == 200


# --------------------------------------------------------------------------- config errors


def test_bad_rate_limit_fields_are_reported_at_once() -> None:
    errors = config_errors(
        rate_limit=0,
        rate_limit_algorithm="leaky",
        endpoint_rate_limits={"login": (1, 2), "/x": (1,)},
        rate_limits=[{"limit": 1}],
    )
    fields = sorted(field for field, _ in errors)
    assert fields == [
        "endpoint_rate_limits[/x]",
        "endpoint_rate_limits[login]",
        "rate_limit",
        "rate_limit_algorithm",
        "rate_limits[0].window",
    ]
    messages = dict(errors)
    assert "leaky" in messages["rate_limit_algorithm"]
    assert "'/'" in messages["endpoint_rate_limits[login]"]


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        pytest.param({"rate_limit": 0}, "rate_limit", id="rate_limit-0"),
        pytest.param({"rate_limit": -5}, "rate_limit", id="rate_limit-negative"),
        pytest.param({"rate_limit_window": 0}, "rate_limit_window", id="window-0"),
        pytest.param({"rate_limit_algorithm": "leaky"}, "rate_limit_algorithm", id="algorithm"),
        pytest.param({"rate_limit_key": "user"}, "rate_limit_key", id="key"),
        pytest.param(
            {"endpoint_rate_limits": {"login": (1, 2)}},
            "endpoint_rate_limits[login]",
            id="path-without-slash",
        ),
        pytest.param(
            {"endpoint_rate_limits": {"/x": (1,)}}, "endpoint_rate_limits[/x]", id="short-tuple"
        ),
        pytest.param(
            {"endpoint_rate_limits": {"/x": (1, 0)}}, "endpoint_rate_limits[/x]", id="window-0"
        ),
        pytest.param({"rate_limits": [{"limit": 1}]}, "rate_limits[0].window", id="no-window"),
        pytest.param({"rate_limits": [{"window": 1}]}, "rate_limits[0].limit", id="no-limit"),
        pytest.param(
            {"rate_limits": [(1, 60), {"limit": 1, "window": 60, "algorithm": "leaky"}]},
            "rate_limits[1].algorithm",
            id="dict-algorithm",
        ),
        pytest.param({"rate_limits": "10/minute"}, "rate_limits", id="not-a-list"),
        pytest.param({"max_tracked_keys": 999}, "max_tracked_keys", id="max-keys-below-1000"),
        pytest.param({"block_messages": "loud"}, "block_messages", id="block-messages"),
    ],
)
def test_each_bad_rate_limit_field_is_named(fields: dict[str, Any], bad_field: str) -> None:
    assert [field for field, _ in config_errors(**fields)] == [bad_field]


def test_smallest_valid_values_are_accepted(clock: ManualClock) -> None:
    app = limited_app(clock, rate_limit=1, rate_limit_window=1, max_tracked_keys=1000)
    assert statuses(app, 2) == [200, 429]
    clock.advance(1)
    assert get(app).status_code == 200


def test_bad_rate_limit_in_app_config_fails_at_init_app() -> None:
    app = Flask("rampart_bad_config")
    app.config["RAMPART_RATE_LIMIT"] = 0
    with pytest.raises(ConfigError) as excinfo:
        Rampart(app)
    assert [field for field, _ in excinfo.value.errors] == ["rate_limit"]
    assert "rampart" not in app.extensions
