"""Prometheus metrics (``flask_rampart.metrics``): real apps through the test client, a fresh
registry each, a real redis-server for the store's outage, and real gunicorn workers sharing
their values through ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

import importlib
import ipaddress
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import AppFactory, request_as
from flask import Flask
from flask_rampart import GateKeeper, Rampart, SecurityConfig
from flask_rampart.metrics import (
    CATEGORIES,
    DURATION_BUCKETS,
    OUTCOMES,
    REASONS,
    RampartMetrics,
)
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from servers import Gunicorn, RedisServer

SQLI = "/hello?q=' OR '1'='1"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def decisions(registry: CollectorRegistry, outcome: str, reason: str) -> float:
    return value(registry, "rampart_decisions_total", outcome=outcome, reason=reason)


def limits(registry: CollectorRegistry, result: str) -> float:
    return value(registry, "rampart_rate_limit_events_total", result=result)


def test_requests_and_inspection_histogram_count_every_request(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    RampartMetrics(app, registry=registry)
    for _ in range(4):
        assert request_as(app, "/hello").status_code == 200
    assert request_as(app, "/hello", ip="203.0.113.9").status_code == 403
    assert request_as(app, SQLI).status_code == 403
    assert value(registry, "rampart_requests_total") == 6
    assert value(registry, "rampart_inspection_duration_seconds_count") == 6
    assert value(registry, "rampart_inspection_duration_seconds_bucket", le="+Inf") == 6
    assert 0 < value(registry, "rampart_inspection_duration_seconds_sum") < 6
    bounds = [
        sample.labels["le"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "rampart_inspection_duration_seconds_bucket"
    ]
    assert bounds == [*(str(b) for b in DURATION_BUCKETS), "+Inf"]
    assert bounds[0] == "5e-06" and bounds[-2] == "0.01"


def test_blocked_ip_counts_a_decision(make_app: AppFactory, registry: CollectorRegistry) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    RampartMetrics(app, registry=registry)
    request_as(app, "/hello", ip="203.0.113.9")
    request_as(app, "/hello", ip="203.0.113.10")
    request_as(app, "/hello")
    assert decisions(registry, "blocked", "ip_blacklisted") == 2
    assert decisions(registry, "passive", "ip_blacklisted") == 0


def test_rate_limits_bans_and_bans_active(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(SecurityConfig(rate_limit=2, auto_ban_threshold=99))
    RampartMetrics(app, registry=registry)
    statuses = [request_as(app, "/hello", ip="192.0.2.1").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert limits(registry, "limited") == 2
    assert decisions(registry, "blocked", "rate_limited") == 2
    assert value(registry, "rampart_bans_active") == 0

    rampart: Rampart = app.extensions["rampart"].extension
    with app.app_context():
        rampart.ban("192.0.2.50", 60, "by hand")
    assert limits(registry, "banned") == 1
    assert value(registry, "rampart_bans_active") == 1
    assert request_as(app, "/hello", ip="192.0.2.50").status_code == 403
    assert limits(registry, "ban_enforced") == 1
    assert decisions(registry, "blocked", "ip_ban_enforced") == 1
    with app.app_context():
        assert rampart.unban("192.0.2.50")
    assert limits(registry, "unbanned") == 1
    assert value(registry, "rampart_bans_active") == 0
    # A ban is not a decision on a request: only the enforcement is.
    assert decisions(registry, "blocked", "ip_banned") == 0


def test_route_rate_limit_is_counted(make_app: AppFactory, registry: CollectorRegistry) -> None:
    from flask_rampart import SecurityDecorator

    secure = SecurityDecorator()

    @secure.rate_limit(requests=1, window=60)
    def limited() -> str:
        return "limited"

    app = make_app(SecurityConfig(), limited=limited)
    app.extensions["rampart"].extension.set_decorator_handler(secure)
    RampartMetrics(app, registry=registry)
    assert [request_as(app, "/limited").status_code for _ in range(3)] == [200, 429, 429]
    assert limits(registry, "limited") == 2
    assert value(registry, "rampart_requests_total") == 3


def test_sql_injection_counts_its_category(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(SecurityConfig(auto_ban_threshold=99))
    RampartMetrics(app, registry=registry)
    assert request_as(app, SQLI, ip="192.0.2.2").status_code == 403
    assert request_as(app, "/hello?q=<script>alert(1)</script>").status_code == 403
    # Two SQL rules matched in the first request: the category counts once.
    assert value(registry, "rampart_rule_matches_total", category="sqli") == 1
    assert value(registry, "rampart_rule_matches_total", category="xss") == 1
    assert decisions(registry, "blocked", "penetration_attempt") == 2


def test_passive_mode_counts_would_be_blocks(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(
        SecurityConfig(
            blacklist=["203.0.113.0/24"], rate_limit=1, auto_ban_threshold=1, passive_mode=True
        )
    )
    RampartMetrics(app, registry=registry)
    assert request_as(app, "/hello", ip="203.0.113.9").status_code == 200
    assert request_as(app, SQLI, ip="192.0.2.3").status_code == 200
    assert request_as(app, "/hello", ip="192.0.2.3").status_code == 200
    assert decisions(registry, "passive", "ip_blacklisted") == 1
    assert decisions(registry, "passive", "penetration_attempt") == 1
    assert decisions(registry, "blocked", "ip_blacklisted") == 0
    assert decisions(registry, "blocked", "penetration_attempt") == 0
    assert value(registry, "rampart_rule_matches_total", category="sqli") == 1
    assert limits(registry, "would_limit") == 1 and limits(registry, "limited") == 0
    assert limits(registry, "would_ban") >= 1 and limits(registry, "banned") == 0
    assert value(registry, "rampart_bans_active") == 0


def test_detection_only_logged_is_a_detection(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(SecurityConfig(detection_action="log"))
    RampartMetrics(app, registry=registry)
    assert request_as(app, SQLI).status_code == 200
    assert value(registry, "rampart_rule_matches_total", category="sqli") == 1
    assert decisions(registry, "blocked", "penetration_attempt") == 0


def test_storage_outage_sets_degraded_and_counts_an_error(
    make_app: AppFactory, registry: CollectorRegistry, redis: RedisServer
) -> None:
    app = make_app(SecurityConfig(storage_uri=redis.url, rate_limit=100))
    RampartMetrics(app, registry=registry)
    assert request_as(app, "/hello").status_code == 200
    assert value(registry, "rampart_storage_degraded") == 0
    assert value(registry, "rampart_storage_errors_total") == 0
    redis.kill()
    assert request_as(app, "/hello").status_code == 200
    assert value(registry, "rampart_storage_degraded") == 1
    assert value(registry, "rampart_storage_errors_total") == 1
    # Still down: the outage is one error, not one a request.
    assert request_as(app, "/hello").status_code == 200
    assert value(registry, "rampart_storage_errors_total") == 1
    redis.start()
    time.sleep(0.6)
    for _ in range(2):
        assert request_as(app, "/hello").status_code == 200
    assert value(registry, "rampart_storage_degraded") == 0
    assert value(registry, "rampart_storage_errors_total") == 1
    # Store trouble is not a decision on the request that met it.
    assert decisions(registry, "noted", "other") == 0


def test_unknown_values_are_counted_as_other(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    app = make_app(SecurityConfig())
    RampartMetrics(app, registry=registry)
    state = app.extensions["rampart"]
    state.log_events(
        [
            {
                "event.action": "made_up_check",
                "event.outcome": "vanished",
                "source.ip": "192.0.2.99",
                "http.request.method": "GET",
                "url.path": "/secret/192.0.2.99",
                "http.response.status_code": 403,
                "rule.id": "custom:/secret",
                "message": "made up",
                "rampart.findings": [{"category": "not-a-category", "rule": 1}],
            }
        ]
    )
    assert decisions(registry, "other", "other") == 1
    assert value(registry, "rampart_rule_matches_total", category="other") == 1


def test_no_label_is_an_ip_or_a_path(make_app: AppFactory, registry: CollectorRegistry) -> None:
    app = make_app(
        SecurityConfig(
            blacklist=["203.0.113.0/24"],
            blocked_user_agents=["sqlmap"],
            rate_limit=3,
            auto_ban_threshold=2,
        )
    )
    RampartMetrics(app, registry=registry, path="/metrics")
    ips = ["203.0.113.9", "192.0.2.20", "192.0.2.21", "2001:db8::7", "198.51.100.7"]
    paths = ["/hello", "/admin", "/docs", "/submit"]
    for ip in ips:
        for path in paths:
            request_as(app, path, ip=ip)
            request_as(app, path + "?q=../../etc/passwd", ip=ip)
            request_as(app, path, ip=ip, headers={"User-Agent": "sqlmap/1.7"})
    rampart: Rampart = app.extensions["rampart"].extension
    with app.app_context():
        rampart.ban("192.0.2.77", 60, "by hand")
        rampart.unban("192.0.2.77")
    text = request_as(app, "/metrics", ip="192.0.2.200").get_data(as_text=True)
    assert decisions(registry, "blocked", "penetration_attempt") > 0
    assert decisions(registry, "blocked", "user_agent_blocked") > 0
    assert limits(registry, "banned") > 0
    for needle in [*ips, "192.0.2.77", *paths, "passwd", "sqlmap"]:
        assert needle not in text
    allowed = {
        "outcome": OUTCOMES | {"other"},
        "reason": REASONS | {"other"},
        "category": CATEGORIES | {"other"},
        "result": {
            "limited",
            "would_limit",
            "banned",
            "would_ban",
            "ban_enforced",
            "would_enforce_ban",
            "unbanned",
        },
    }
    seen = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, label in sample.labels.items():
                seen += 1
                with pytest.raises(ValueError):
                    ipaddress.ip_address(label)
                assert "/" not in label
                if name != "le":
                    assert label in allowed[name], (sample.name, name, label)
    assert seen > 0


def test_path_serves_the_text_format(make_app: AppFactory, registry: CollectorRegistry) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    RampartMetrics(app, registry=registry, path="/metrics")
    request_as(app, "/hello")
    request_as(app, "/hello", ip="203.0.113.9")
    resp = request_as(app, "/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert "# TYPE rampart_requests_total counter" in text
    assert "# TYPE rampart_inspection_duration_seconds histogram" in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The scrape itself is inspected before its view runs.
    requests = [s for s in families["rampart_requests"].samples if s.name.endswith("_total")]
    assert requests[0].value == 3
    blocked = [
        s
        for s in families["rampart_decisions"].samples
        if s.name.endswith("_total")
        and s.labels == {"outcome": "blocked", "reason": "ip_blacklisted"}
    ]
    assert blocked[0].value == 1
    assert families["rampart_bans_active"].samples[0].value == 0


def test_gatekeeper_apps_are_counted(registry: CollectorRegistry) -> None:
    app = Flask("gk")
    app.get("/")(lambda: "ok")
    GateKeeper(app, rate_limit_rule={"count": 1, "window": 60})
    RampartMetrics(app, registry=registry)
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    assert value(registry, "rampart_requests_total") == 2
    assert limits(registry, "limited") == 1


def test_needs_rampart_first_and_only_once(registry: CollectorRegistry) -> None:
    app = Flask("bare")
    with pytest.raises(RuntimeError, match="Rampart"):
        RampartMetrics(app, registry=registry)
    Rampart(app)
    metrics = RampartMetrics(registry=registry)
    metrics.init_app(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        metrics.init_app(app)


def test_apps_share_a_registry_and_chain_observers(
    make_app: AppFactory, registry: CollectorRegistry
) -> None:
    one, two = make_app(SecurityConfig()), make_app(SecurityConfig())
    seen: list[float] = []
    two.extensions["rampart"].request_observer = lambda seconds, decision: seen.append(seconds)
    RampartMetrics(one, registry=registry)
    RampartMetrics(two, registry=registry)
    request_as(one, "/hello")
    request_as(two, "/hello")
    assert value(registry, "rampart_requests_total") == 2
    assert len(seen) == 1 and seen[0] > 0


def test_import_without_prometheus_client_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "flask_rampart.metrics")
    with pytest.raises(ImportError, match=r"pip install flask-rampart\[prometheus\]"):
        importlib.import_module("flask_rampart.metrics")


# --- gunicorn's workers, multi-process mode -------------------------------------------------


@pytest.fixture
def metrics_server(tmp_path: Path) -> Iterator[tuple[Gunicorn, Path]]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    # No /pid round of its own: every request the test makes is counted.
    server = Gunicorn(3, env, app="metrics_app:app", wait_for_workers=False)
    try:
        yield server, directory
    finally:
        server.stop()


def test_gunicorn_workers_add_up(metrics_server: tuple[Gunicorn, Path]) -> None:
    server, directory = metrics_server
    pids: set[str] = set()
    sent = 0
    with ThreadPoolExecutor(6) as pool:
        # Concurrent slow requests spread over the workers; go on until two or more answered.
        while len(pids) < 2 and sent < 120:
            answers = list(pool.map(lambda _: server.get("/", ip="192.0.2.10"), range(12)))
            sent += len(answers)
            assert {status for status, _ in answers} == {200}
            pids.update(body for _, body in answers)
        blocked = list(pool.map(lambda _: server.get("/", ip="203.0.113.9"), range(6)))
    assert len(pids) >= 2, "the requests all went to one worker"
    assert {status for status, _ in blocked} == {403}
    total = sent + len(blocked) + 1  # and the scrape itself

    status, text = server.get("/metrics")
    assert status == 200
    served = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert served[("rampart_requests_total", ())] == total
    assert served[("rampart_inspection_duration_seconds_count", ())] == total
    key = ("rampart_decisions_total", (("outcome", "blocked"), ("reason", "ip_blacklisted")))
    assert served[key] == len(blocked)
    assert served[("rampart_storage_degraded", ())] == 0
    assert served[("rampart_bans_active", ())] == 0

    # The same sums straight from the workers' files, each worker having written its own.
    workers_files = {p.name for p in directory.glob("counter_*.db")}
    assert len(workers_files) >= 2
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    assert registry.get_sample_value("rampart_requests_total") == total
    per_worker = [_requests_in(directory / name) for name in sorted(workers_files)]
    assert sum(per_worker) == total and sum(1 for n in per_worker if n > 0) >= 2


def _requests_in(file: Path) -> float:
    """``rampart_requests_total`` in one worker's file."""
    return sum(
        sample.value
        for metric in MultiProcessCollector.merge([str(file)])
        for sample in metric.samples
        if sample.name == "rampart_requests_total"
    )
