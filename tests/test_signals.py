"""Blinker signals: each one sent, with the app as sender and the logged event, through real
requests (and a real redis-server for the storage signals)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from blinker import Signal
from conftest import AppFactory, request_as
from flask import Flask
from flask_rampart import Rampart, SecurityConfig, signals
from servers import RedisServer


@contextmanager
def recording(app: Flask, *watched: Signal) -> Iterator[dict[Signal, list[dict[str, Any]]]]:
    """Events each signal delivered for ``app``, checking the sender on the way."""
    got: dict[Signal, list[dict[str, Any]]] = {s: [] for s in watched}
    receivers = []
    for signal in watched:

        def receive(sender: Any, event: dict[str, Any], _s: Signal = signal, **_: Any) -> None:
            assert sender is app
            got[_s].append(event)

        receivers.append(receive)
        signal.connect(receive, sender=app)
    try:
        yield got
    finally:
        for signal, receive in zip(watched, receivers, strict=True):
            signal.disconnect(receive, sender=app)


def test_blocks_limits_and_attacks(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(blacklist=["203.0.113.0/24"], rate_limit=1, auto_ban_threshold=99)
    )
    s = signals
    with recording(app, s.request_blocked, s.rate_limited, s.attack_detected) as got:
        request_as(app, "/hello", ip="203.0.113.9")
        request_as(app, "/hello", ip="192.0.2.1")
        request_as(app, "/hello", ip="192.0.2.1")
        request_as(app, "/hello?q=' OR '1'='1", ip="192.0.2.2")
    blocked = [(e["event.action"], e["source.ip"]) for e in got[s.request_blocked]]
    assert blocked == [
        ("ip_blacklisted", "203.0.113.9"),
        ("rate_limited", "192.0.2.1"),
        ("penetration_attempt", "192.0.2.2"),
    ]
    limited = got[s.rate_limited][0]
    assert limited["http.response.status_code"] == 429 and limited["url.path"] == "/hello"
    attack = got[s.attack_detected][0]
    assert attack["rule.id"].startswith("detect:")
    assert {f["category"] for f in attack["rampart.findings"]} == {"sqli"}


def test_detections_only_logged_still_signal(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(detection_action="log"))
    with recording(app, signals.attack_detected, signals.request_blocked) as got:
        assert request_as(app, "/hello?q=<script>alert(1)</script>").status_code == 200
    assert [e["event.outcome"] for e in got[signals.attack_detected]] == ["passive"]
    assert got[signals.request_blocked] == []


def test_bans_and_unbans(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(auto_ban_threshold=2))
    rampart: Rampart = app.extensions["rampart"].extension
    with recording(app, signals.ip_banned, signals.ip_unbanned) as got:
        for _ in range(2):
            request_as(app, "/hello?q=' OR '1'='1", ip="192.0.2.7")
        with app.app_context():
            rampart.ban("192.0.2.8", 60, "by hand")
            assert rampart.unban("192.0.2.7")
    assert [e["source.ip"] for e in got[signals.ip_banned]] == ["192.0.2.7", "192.0.2.8"]
    assert [e["source.ip"] for e in got[signals.ip_unbanned]] == ["192.0.2.7"]


def test_passive_mode_would_ban_is_not_a_ban(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(auto_ban_threshold=1, passive_mode=True))
    with recording(app, signals.ip_banned, signals.request_blocked) as got:
        assert request_as(app, "/hello?q=' OR '1'='1").status_code == 200
    assert got[signals.ip_banned] == [] and got[signals.request_blocked] == []


def test_signals_fire_with_logging_off(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], log_suspicious_level=None))
    with recording(app, signals.request_blocked) as got:
        request_as(app, "/hello", ip="203.0.113.9")
    assert len(got[signals.request_blocked]) == 1


def test_other_apps_receivers_hear_nothing(make_app: AppFactory) -> None:
    one = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    two = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    with recording(two, signals.request_blocked) as got:
        request_as(one, "/hello", ip="203.0.113.9")
    assert got[signals.request_blocked] == []


def test_storage_degraded_and_recovered(make_app: AppFactory, redis: RedisServer) -> None:
    app = make_app(SecurityConfig(storage_uri=redis.url, rate_limit=100))
    with recording(app, signals.storage_degraded, signals.storage_recovered) as got:
        assert request_as(app, "/hello").status_code == 200
        redis.kill()
        assert request_as(app, "/hello").status_code == 200
        redis.start()
        time.sleep(0.6)
        assert request_as(app, "/hello").status_code == 200
        assert request_as(app, "/hello").status_code == 200
    assert [e["event.action"] for e in got[signals.storage_degraded]] == ["storage_degraded"]
    assert "unreachable" in got[signals.storage_degraded][0]["message"]
    assert "reachable again" in got[signals.storage_recovered][0]["message"]


def test_secrets_never_reach_events_signals_logs_or_the_dashboard(tmp_path: Any) -> None:
    # A secret sent in every place that may carry one, each time alongside an attack so that
    # an event is made: it must not appear in the signal payloads, the log file (text and
    # JSON), or the dashboard's recent events.
    secret = "Sup3rSecretValue42"
    logs = {fmt: tmp_path / f"rampart-{fmt}.log" for fmt in ("text", "json")}
    attack = "' UNION SELECT password FROM users--"
    requests: list[dict[str, Any]] = [
        {"data": {"password": secret + attack, "user": "bob"}},
        {"json": {"user": {"password": secret + attack}}},
        {"data": {"passwd": secret + "<script>alert(1)</script>"}},
        {"query_string": {"api_key": secret + attack}},
        {"query_string": {"access_token": secret + attack}},
        {"headers": {"X-Api-Key": secret + attack}},
        {"headers": {"Authorization": "Bearer " + secret + attack}, "query_string": {"q": attack}},
        {"headers": {"Cookie": "session=" + secret + attack}, "query_string": {"q": attack}},
    ]
    for fmt, path in logs.items():
        app = Flask(f"redaction_{fmt}")
        Rampart(
            app,
            SecurityConfig(custom_log_file=str(path), log_format=fmt, auto_ban_threshold=99),
            dashboard="/_rampart",
            dashboard_token="redaction-test-token-0123",
        )

        @app.post("/")
        def index() -> str:
            return "ok"

        client = app.test_client()
        with recording(app, *signals.ALL) as got:
            statuses = [client.post("/", **kwargs).status_code for kwargs in requests]
        assert statuses == [403] * len(requests), fmt
        delivered = [e for events in got.values() for e in events]
        assert len(delivered) >= len(requests)
        recent = client.get(
            "/_rampart/api/state",
            headers={"Authorization": "Bearer redaction-test-token-0123"},
        ).json["events"]
        assert len(recent) == len(requests)
        text = path.read_text()
        assert text.count("penetration_attempt") >= len(requests), fmt
        assert secret not in text, fmt
        assert secret not in repr(delivered), fmt
        assert secret not in repr(recent), fmt


def test_asking_for_store_health_does_not_swallow_the_storage_events(redis: RedisServer) -> None:
    # The dashboard asks for the store's health every 2 s and `flask rampart status` on demand.
    # Asking talks to Redis, so during an outage it is often the call that finds Redis gone or
    # back; the note that makes must still become the storage_degraded / storage_recovered
    # event (signals, logs, the metrics gauge), not be taken by the asking.
    token = "store-health-token-0123"
    app = Flask("health")
    Rampart(
        app,
        SecurityConfig(storage_uri=redis.url, rate_limit=100),
        dashboard="/_rampart",
        dashboard_token=token,
    )

    @app.get("/")
    def index() -> str:
        return "ok"

    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    local = {"REMOTE_ADDR": "127.0.0.1"}

    def health() -> dict[str, Any]:
        # The dashboard's own request goes through Rampart too; the health is read in its view.
        return client.get("/_rampart/api/state", headers=auth, environ_base=local).json["store"]

    with recording(app, signals.storage_degraded, signals.storage_recovered) as got:
        assert health()["healthy"] is True
        redis.kill()
        assert client.get("/", environ_base=local).status_code == 200
        first = health()
        assert first["healthy"] is False and "unreachable" in first["problem"]
        assert health()["healthy"] is False  # asked again: still degraded, nothing taken
        redis.start()
        time.sleep(0.6)
        health()  # may be the probe that finds Redis back
        assert client.get("/", environ_base=local).status_code == 200
        assert health()["healthy"] is True
    assert len(got[signals.storage_degraded]) == 1
    assert len(got[signals.storage_recovered]) == 1
    assert "reachable again" in got[signals.storage_recovered][0]["message"]


def test_a_full_shm_table_recovers_after_a_quiet_minute(tmp_path: Any, clock: Any) -> None:
    # A 64-slot table filled by new clients: storage_degraded once. A minute in which no
    # operation finds it full (a known client keeps coming): storage_recovered once, and the
    # store reads healthy again (the dashboard's badge, the metrics gauge).
    app = Flask("full_shm")
    Rampart(
        app,
        SecurityConfig(
            storage_uri=f"shm://{tmp_path}/small.shm?slots=64",
            rate_limit=1000,
            rate_limit_window=3600,
            # One slot per client (a sliding log takes one per counted request).
            rate_limit_algorithm="gcra",
            trusted_proxies=["127.0.0.1"],
        ),
        clock=clock,
    )

    @app.get("/")
    def index() -> str:
        return "ok"

    client = app.test_client()
    local = {"REMOTE_ADDR": "127.0.0.1"}

    def get(ip: str) -> int:
        return client.get("/", headers={"X-Forwarded-For": ip}, environ_base=local).status_code

    engine = app.extensions["rampart"].engine
    with recording(app, signals.storage_degraded, signals.storage_recovered) as got:
        assert get("10.0.0.1") == 200  # the known client, counted first
        assert all(get(f"10.1.{n // 250}.{n % 250}") == 200 for n in range(300))
        assert len(got[signals.storage_degraded]) == 1
        assert engine.store_health()[1] is not None
        clock.advance(59)
        assert get("10.0.0.1") == 200
        assert got[signals.storage_recovered] == []
        clock.advance(2)
        assert get("10.0.0.1") == 200
        assert len(got[signals.storage_recovered]) == 1
        assert "room again" in got[signals.storage_recovered][0]["message"]
        assert engine.store_health()[1] is None
    assert len(got[signals.storage_degraded]) == 1
