"""Prometheus metrics of Rampart's decisions (the ``flask-rampart[prometheus]`` extra).

``RampartMetrics(app)`` after ``Rampart(app)`` (or ``GateKeeper(app)``) counts what the engine
decides: requests inspected and the time each inspection took, decisions by outcome and reason,
detections by category, rate-limit and ban outcomes, the shared store's failures and whether it is
degraded, and the bans in force. ``path="/metrics"`` serves them in the text format.

Every label value comes from a fixed set (outcomes, event actions, detection categories); anything
else is counted as ``other``. No label ever holds a client IP, a path or a rule's text, so the
number of series stays bounded whatever the traffic.

Per request the cost is one counter increment and one histogram observation; the other metrics
are updated from Rampart's events, which only refusals, detections and store trouble produce.
With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn's workers), prometheus-client keeps the values in
files shared by the workers and the ``path`` view reads them all.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.multiprocess import MultiProcessCollector
except ImportError as e:  # pragma: no cover - exercised in a test that hides the package
    raise ImportError(
        "flask_rampart.metrics needs prometheus-client: pip install flask-rampart[prometheus]"
    ) from e

from .extension import EXTENSION_KEY
from .gatekeeper import EXTENSION_KEY as GATEKEEPER_KEY

if TYPE_CHECKING:
    from .extension import RampartState

#: Where :class:`RampartMetrics` notes the apps it is initialised on.
METRICS_KEY = "rampart.metrics"

#: Inspection times are microseconds on the allow path; the top buckets catch slow detections
#: and store round trips.
DURATION_BUCKETS = (
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
)

OUTCOMES = frozenset({"blocked", "passive", "noted", "detected", "alert"})

#: Every ``event.action`` Rampart emits for a request (engine and Python checks).
REASONS = frozenset(
    {
        "api_key_invalid",
        "api_key_missing",
        "auth_failed",
        "auth_required",
        "cloud_provider_blocked",
        "content_type_refused",
        "country_blocked",
        "country_not_allowed",
        "custom_request_check",
        "custom_validation",
        "emergency_mode",
        "enforce_https",
        "geo_lookup_failed",
        "header_mismatch",
        "header_missing",
        "honeypot_triggered",
        "https_redirect",
        "inspection_truncated",
        "request_uninspectable",
        "ip_ban_enforced",
        "ip_banned",
        "ip_blacklisted",
        "ip_not_whitelisted",
        "outside_time_window",
        "penetration_attempt",
        "rate_limited",
        "referrer_missing",
        "referrer_refused",
        "request_too_large",
        "return_monitor",
        "storage_unavailable",
        "suspicious_frequency",
        "usage_monitor",
        "user_agent_blocked",
    }
)

#: The detection categories of the engine (``flask rampart check`` shows them).
CATEGORIES = frozenset(
    {
        "cmdi",
        "code_injection",
        "custom",
        "file_inclusion",
        "header_injection",
        "ldap",
        "nosql",
        "path_traversal",
        "sqli",
        "ssrf",
        "template_injection",
        "xss",
        "xxe",
    }
)

#: ``(event.action, event.outcome)`` to the ``result`` label of the rate-limit counter.
LIMIT_RESULTS: dict[tuple[str, str], str] = {
    ("rate_limited", "blocked"): "limited",
    ("rate_limited", "passive"): "would_limit",
    ("ip_banned", "blocked"): "banned",
    ("ip_banned", "passive"): "would_ban",
    ("ip_ban_enforced", "blocked"): "ban_enforced",
    ("ip_ban_enforced", "passive"): "would_enforce_ban",
    ("ip_unbanned", "success"): "unbanned",
}

_STORAGE_ACTIONS = frozenset({"storage_degraded", "storage_recovered"})


def _bounded(value: Any, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


def multiprocess_dir() -> str | None:
    """The directory prometheus-client shares values through, when multi-process mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class _BansCollector:
    """``rampart_bans_active``, read from the store when scraped (never during a request)."""

    def __init__(self) -> None:
        self._states: list[weakref.ref[RampartState]] = []

    def add(self, state: RampartState) -> None:
        self._states.append(weakref.ref(state))

    def states(self) -> list[RampartState]:
        live = [s for s in (ref() for ref in self._states) if s is not None]
        if len(live) != len(self._states):
            self._states = [weakref.ref(s) for s in live]
        return live

    def describe(self) -> list[GaugeMetricFamily]:
        return [_bans_family(0)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _bans_families(self.states())


def _bans_family(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "rampart_bans_active",
        "Bans in force in the store (with shm:// or Redis, every worker's).",
        value=value,
    )


def _bans_families(states: Iterable[RampartState]) -> Iterator[GaugeMetricFamily]:
    total = 0
    for state in states:
        try:
            total += len(state.engine.bans())
        except Exception:
            # A store that cannot answer has its own metric; the scrape still succeeds.
            state.logger.exception("metrics: reading the bans failed")
            return
    yield _bans_family(total)


class _Metrics:
    """The metric objects of one registry, shared by every app counted into it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "rampart_requests",
            "Requests the engine inspected.",
            registry=registry,
        )
        self.duration = Histogram(
            "rampart_inspection_duration_seconds",
            "Time the engine took to inspect a request.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "rampart_decisions",
            "Rampart's decisions on requests, by outcome (blocked, passive, noted, detected, "
            "alert) and reason (the event's action).",
            ["outcome", "reason"],
            registry=registry,
        )
        self.rule_matches = Counter(
            "rampart_rule_matches",
            "Requests in which attack detection matched, once per category found.",
            ["category"],
            registry=registry,
        )
        self.rate_limit = Counter(
            "rampart_rate_limit_events",
            "Rate-limit and ban outcomes: limited, banned, ban_enforced, unbanned, and their "
            "would_* forms in passive mode.",
            ["result"],
            registry=registry,
        )
        self.storage_errors = Counter(
            "rampart_storage_errors",
            "Times the shared store became full or unreachable.",
            registry=registry,
        )
        self.storage_degraded = Gauge(
            "rampart_storage_degraded",
            "1 while the shared store is degraded (full, or unreachable and falling back).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.bans = _BansCollector()
        registry.register(self.bans)  # type: ignore[arg-type]

    def observer(
        self, previous: Callable[[float, Any], None] | None
    ) -> Callable[[float, Any], None]:
        """The ``request_observer``: one increment and one observation, then ``previous``."""
        inc = self.requests.inc
        observe = self.duration.observe
        if previous is None:

            def rampart_metrics_observer(seconds: float, decision: Any) -> None:
                inc()
                observe(seconds)

            return rampart_metrics_observer

        def rampart_metrics_observer_chained(seconds: float, decision: Any) -> None:
            inc()
            observe(seconds)
            previous(seconds, decision)

        return rampart_metrics_observer_chained

    def on_event(self, event: dict[str, Any]) -> None:
        """The event sink: counts one event Rampart logged."""
        action = event.get("event.action")
        outcome = event.get("event.outcome")
        if action in _STORAGE_ACTIONS:
            if action == "storage_degraded":
                self.storage_errors.inc()
                self.storage_degraded.set(1)
            else:
                self.storage_degraded.set(0)
            return
        result = LIMIT_RESULTS.get((action, outcome))  # type: ignore[arg-type]
        if result is not None:
            self.rate_limit.labels(result).inc()
        if not event.get("http.request.method"):
            # A ban made or lifted outside a request's checks: not a decision on a request.
            return
        self.decisions.labels(_bounded(outcome, OUTCOMES), _bounded(action, REASONS)).inc()
        findings = event.get("rampart.findings")
        if findings:
            categories = {_bounded(f.get("category"), CATEGORIES) for f in findings}
            for category in categories:
                self.rule_matches.labels(category).inc()


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry) -> _Metrics:
    metrics = _by_registry.get(registry)
    if metrics is None:
        metrics = _by_registry[registry] = _Metrics(registry)
    return metrics


def _states(app: Flask) -> list[RampartState]:
    return [app.extensions[k] for k in (EXTENSION_KEY, GATEKEEPER_KEY) if k in app.extensions]


class RampartMetrics:
    """Prometheus metrics of the apps Rampart (or GateKeeper) protects.

    ``RampartMetrics(app, registry=None, path=None)``, or ``RampartMetrics(...)`` then
    ``init_app(app)`` once Rampart is initialised on the app. ``registry`` defaults to
    prometheus-client's global one; apps counted into the same registry share its metrics.
    ``path`` (e.g. ``"/metrics"``) adds a view serving them, every worker's in multi-process
    mode.
    """

    def __init__(
        self,
        app: Flask | None = None,
        registry: CollectorRegistry | None = None,
        path: str | None = None,
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.path = path
        self._metrics = _metrics_for(self.registry)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        states = _states(app)
        if not states:
            raise RuntimeError(
                f"RampartMetrics needs Rampart (or GateKeeper) initialised on app {app.name!r} "
                "first: call Rampart(app, ...) before RampartMetrics(app)"
            )
        if METRICS_KEY in app.extensions:
            raise RuntimeError(f"RampartMetrics is already initialised on app {app.name!r}")
        metrics = self._metrics
        for state in states:
            state.event_sinks.append(metrics.on_event)
            state.request_observer = metrics.observer(state.request_observer)
            metrics.bans.add(state)
        app.extensions[METRICS_KEY] = self
        if self.path is not None:
            app.add_url_rule(
                self.path, endpoint="rampart_metrics", view_func=self._serve, methods=["GET"]
            )

    def _serve(self) -> Response:
        """The ``path`` view: the text exposition format."""
        if multiprocess_dir():
            # Every worker's values, from the shared files; the bans from this app's store.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            registry.register(_AppBans(_states(current_app)))  # type: ignore[arg-type]
        else:
            registry = self.registry
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _AppBans:
    """``rampart_bans_active`` of one app, for a multi-process scrape."""

    def __init__(self, states: list[RampartState]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _bans_families(self._states)
