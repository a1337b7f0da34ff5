"""OpenTelemetry (``flask_rampart.tracing``): real requests made inside a span the test starts,
recorded by opentelemetry-sdk's in-memory exporter."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import AppFactory, request_as
from flask_rampart import Rampart, SecurityConfig, tracing
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SQLI = "/hello?q=' OR '1'='1"


@pytest.fixture(scope="session")
def exporter() -> InMemorySpanExporter:
    """Every span finished in this process, the test's own and any Rampart would start.

    The provider is global (set once a session) on purpose: a span Rampart started through
    ``trace.get_tracer()`` would land here too, so the tests can see that it starts none.
    """
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> trace.Tracer:
    return trace.get_tracer("rampart-tests")


def only_span(spans: InMemorySpanExporter) -> ReadableSpan:
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["request"], "Rampart must not start spans"
    return finished[0]


def rampart_attributes(span: ReadableSpan) -> dict[str, Any]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("rampart.")}


def test_a_block_annotates_the_current_span(
    make_app: AppFactory, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    with tracer.start_as_current_span("request"):
        assert request_as(app, "/hello", ip="203.0.113.9").status_code == 403
    span = only_span(spans)
    expected = {
        "rampart.action": "ip_blacklisted",
        "rampart.outcome": "blocked",
        "rampart.rule": "ip.blacklist",
        "rampart.status": 403,
    }
    assert rampart_attributes(span) == expected
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("rampart.blocked", expected)
    ]
    everything = [*span.attributes.values(), *span.events[0].attributes.values()]
    assert "203.0.113.9" not in everything and "/hello" not in everything


def test_a_detection_names_its_categories_and_the_ban(
    make_app: AppFactory, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig(auto_ban_threshold=1))
    with tracer.start_as_current_span("request"):
        assert request_as(app, SQLI).status_code == 403
    span = only_span(spans)
    attrs = rampart_attributes(span)
    assert attrs["rampart.action"] == "penetration_attempt"
    assert attrs["rampart.outcome"] == "blocked"
    assert attrs["rampart.categories"] == ("sqli",)
    assert attrs["rampart.rule"].startswith("detect:")
    names = sorted(e.name for e in span.events)
    assert names == ["rampart.blocked", "rampart.ip_banned"]
    for event in span.events:
        for v in (event.attributes or {}).values():
            assert "' OR" not in str(v) and "198.51.100.7" not in str(v)


def test_passive_mode_says_passive(
    make_app: AppFactory, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], passive_mode=True))
    with tracer.start_as_current_span("request"):
        assert request_as(app, "/hello", ip="203.0.113.9").status_code == 200
    span = only_span(spans)
    assert rampart_attributes(span)["rampart.outcome"] == "passive"
    assert [e.name for e in span.events] == ["rampart.passive"]


def test_a_ban_through_the_api_is_an_event_only(
    make_app: AppFactory, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig())
    rampart: Rampart = app.extensions["rampart"].extension
    with tracer.start_as_current_span("request"), app.app_context():
        rampart.ban("192.0.2.5", 60, "by hand")
    span = only_span(spans)
    assert rampart_attributes(span) == {}
    assert [e.name for e in span.events] == ["rampart.ip_banned"]


def test_an_allowed_request_adds_nothing(
    make_app: AppFactory, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
    with tracer.start_as_current_span("request"):
        assert request_as(app, "/hello").status_code == 200
    span = only_span(spans)
    assert rampart_attributes(span) == {} and span.events == ()


def test_without_a_span_nothing_fails_and_no_span_appears(
    make_app: AppFactory, spans: InMemorySpanExporter
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], auto_ban_threshold=1))
    assert request_as(app, "/hello", ip="203.0.113.9").status_code == 403
    assert request_as(app, SQLI).status_code == 403
    with trace.use_span(trace.INVALID_SPAN):
        assert request_as(app, "/hello", ip="203.0.113.9").status_code == 403
    assert spans.get_finished_spans() == ()


def test_without_opentelemetry_attach_does_nothing(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    try:
        importlib.reload(tracing)
        assert tracing.trace is None
        app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"]))
        sinks = app.extensions["rampart"].event_sinks
        assert not [s for s in sinks if getattr(s, "__module__", "") == tracing.__name__]
        assert request_as(app, "/hello", ip="203.0.113.9").status_code == 403
    finally:
        monkeypatch.undo()
        importlib.reload(tracing)
    assert tracing.trace is trace
