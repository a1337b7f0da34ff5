"""``rampart.stats``: live counters read through real requests (and a real redis-server)."""

from __future__ import annotations

from pathlib import Path

import flask_rampart
from conftest import AppFactory, request_as
from flask import Request, Response
from flask_rampart import Rampart, SecurityConfig
from servers import RedisServer


def stats_of(app: object) -> dict:
    rampart: Rampart = app.extensions["rampart"].extension  # type: ignore[attr-defined]
    with app.app_context():  # type: ignore[attr-defined]
        return rampart.stats


def test_counts_requests_blocks_detections_and_timing(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], rate_limit=2))
    before = stats_of(app)
    assert before["requests"] == 0 and before["blocked_total"] == 0
    request_as(app, "/hello", ip="203.0.113.1")
    for _ in range(3):
        request_as(app, "/hello", ip="192.0.2.1")
    request_as(app, "/hello?q=1' OR '1'='1", ip="192.0.2.2")
    request_as(app, "/hello?q=<script>alert(1)</script>", ip="192.0.2.3")
    s = stats_of(app)
    assert s["version"] == flask_rampart.__version__
    assert s["requests"] == 6
    assert s["blocked"] == {"ip_blacklisted": 1, "rate_limited": 1, "penetration_attempt": 2}
    assert s["blocked_total"] == 4
    assert s["detections"] == {"sqli": 1, "xss": 1}
    assert s["inspection"]["calls"] == 6
    assert 0 < s["inspection"]["p50_us"] <= s["inspection"]["p99_us"]
    assert s["store"] == {"backend": "memory", "round_trips": 0, "errors": 0}


def test_passive_mode_blocks_nothing(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], passive_mode=True))
    request_as(app, "/hello", ip="203.0.113.1")
    s = stats_of(app)
    assert s["requests"] == 1 and s["blocked_total"] == 0


def test_refusals_decided_in_python_count_as_blocks(make_app: AppFactory) -> None:
    def no_admin(req: Request) -> Response | None:
        return Response("not here", status=403) if req.path == "/admin" else None

    config = SecurityConfig(blacklist=["203.0.113.0/24"], custom_request_check=no_admin)
    app = make_app(config)
    assert request_as(app, "/admin").status_code == 403
    assert request_as(app, "/admin").status_code == 403
    assert request_as(app, "/hello").status_code == 200
    assert request_as(app, "/admin", ip="203.0.113.1").status_code == 403
    s = stats_of(app)
    assert s["blocked"] == {"custom_request_check": 2, "ip_blacklisted": 1}
    assert s["blocked_total"] == 3
    # Passive mode refuses nothing, so nothing is counted.
    passive = make_app(SecurityConfig(custom_request_check=no_admin, passive_mode=True))
    assert request_as(passive, "/admin").status_code == 200
    s = stats_of(passive)
    assert s["blocked"] == {} and s["blocked_total"] == 0


def test_bans_active_come_from_the_shared_store(tmp_path: Path) -> None:
    from flask import Flask

    config = SecurityConfig(storage_uri=f"shm://{tmp_path}/s.shm")
    one, two = Flask("one"), Flask("two")
    r1, _ = Rampart(one, config=config), Rampart(two, config=config)
    with one.app_context():
        r1.ban("192.0.2.5", 60)
    assert stats_of(two)["bans_active"] == 1
    assert stats_of(two)["store"]["backend"] == "shm"


def test_redis_round_trips_and_errors(make_app: AppFactory, redis: RedisServer) -> None:
    app = make_app(SecurityConfig(storage_uri=redis.url, rate_limit=100))
    for _ in range(3):
        request_as(app, "/hello")
    s = stats_of(app)
    assert s["store"]["backend"] == "redis"
    assert s["store"]["round_trips"] >= 3 and s["store"]["errors"] == 0
    redis.kill()
    try:
        request_as(app, "/hello")
        assert stats_of(app)["store"]["errors"] >= 1
    finally:
        redis.start()
