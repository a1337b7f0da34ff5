"""Shared fixtures for the flask-rampart end-to-end suite.

Every test builds a real Flask app protected by a real Rampart engine and drives it
through ``app.test_client()``. Nothing of Rampart is mocked.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from flask import Flask, Response, current_app, render_template_string, request
from servers import RedisServer
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from flask_rampart.testing import ManualClock

LOGGER_NAME = "flask_rampart"


class AppFactory(Protocol):
    def __call__(
        self,
        config: Any = None,
        *,
        flask_config: dict[str, Any] | None = None,
        **routes: Callable[[], Any],
    ) -> Flask: ...


def build_app(
    config: Any = None,
    *,
    flask_config: dict[str, Any] | None = None,
    **routes: Callable[[], Any],
) -> Flask:
    """A small Flask app with a fixed set of routes, protected by Rampart.

    Extra ``routes`` are added as ``/<name>`` (GET and POST) with the given view.
    """
    from flask_rampart import Rampart, csp_nonce

    app = Flask("rampart_test_app", static_folder=None)
    app.config["TESTING"] = True
    if flask_config:
        app.config.update(flask_config)

    @app.get("/")
    def index() -> str:
        return "index"

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/static/x")
    def static_x() -> str:
        return "static x"

    @app.get("/staticfoo")
    def staticfoo() -> str:
        return "staticfoo"

    @app.get("/docs")
    def docs() -> str:
        return "docs"

    @app.get("/admin")
    def admin() -> str:
        return "admin"

    @app.post("/submit")
    def submit() -> str:
        return "submitted:" + request.get_data(as_text=True)

    @app.get("/template")
    def template() -> str:
        return render_template_string("{{ csp_nonce() }}")

    @app.get("/nonce")
    def nonce() -> str:
        return csp_nonce() or ""

    @app.get("/ip")
    def client_ip() -> str:
        ip = current_app.extensions["rampart"].extension.client_ip()
        return "None" if ip is None else str(ip)

    @app.get("/view-header")
    def view_header() -> Response:
        resp = Response("view header")
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    for name, view in routes.items():
        app.add_url_rule(f"/{name}", endpoint=name, view_func=view, methods=["GET", "POST"])

    Rampart(app, config=config)
    return app


@pytest.fixture
def make_app() -> AppFactory:
    """Factory fixture: ``make_app(SecurityConfig(...), flask_config={...}, **routes)``."""
    return build_app


@pytest.fixture(autouse=True)
def _isolate_rampart_logger() -> Iterator[None]:
    """Undo whatever a test (or Rampart's init_app) did to the ``flask_rampart`` logger."""
    logger = logging.getLogger(LOGGER_NAME)
    handlers = list(logger.handlers)
    level, propagate, disabled = logger.level, logger.propagate, logger.disabled
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
    logger.propagate = propagate
    logger.disabled = disabled


class RampartLog:
    """Records that reached the ``flask_rampart`` logger, captured through ``caplog``."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        seen: set[int] = set()
        out: list[logging.LogRecord] = []
        for record in self._caplog.records:
            if id(record) in seen:
                continue
            if record.name == LOGGER_NAME or record.name.startswith(LOGGER_NAME + "."):
                seen.add(id(record))
                out.append(record)
        return out

    @property
    def events(self) -> list[logging.LogRecord]:
        """Records carrying a structured security event (``record.rampart``)."""
        return [r for r in self.records if isinstance(getattr(r, "rampart", None), dict)]

    @property
    def event_dicts(self) -> list[dict[str, Any]]:
        return [dict(r.rampart) for r in self.events]  # type: ignore[attr-defined]

    def clear(self) -> None:
        self._caplog.clear()


@pytest.fixture
def rampart_log(caplog: pytest.LogCaptureFixture) -> Iterator[RampartLog]:
    """Attach caplog's handler directly to ``flask_rampart`` (works whether or not it propagates).

    Must be requested before the app is built: Rampart only adds its console handler when the
    logger has none, so the test sees exactly the records Rampart emits.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield RampartLog(caplog)
    finally:
        logger.removeHandler(caplog.handler)


#: Where the ``clock`` fixture starts, in seconds since the epoch: 2023-11-15 00:00:00 UTC, a
#: multiple of 60, 3600 and 86400, so clock-aligned windows (fixed window) begin there too.
CLOCK_START = 1_700_006_400.0


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock for rate limits and bans (``Rampart(app, config, clock=clock)``), at
    :data:`CLOCK_START`. Tests step it with ``clock.advance(seconds)``; nothing sleeps."""
    from flask_rampart.testing import ManualClock

    return ManualClock(start=CLOCK_START)


CLIENT_IP = "198.51.100.7"


def request_as(
    app: Flask,
    path: str,
    ip: str = CLIENT_IP,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    **kwargs: Any,
) -> TestResponse:
    """One request to ``app`` from client ``ip`` (its ``REMOTE_ADDR``)."""
    return app.test_client().open(
        path, method=method, environ_base={"REMOTE_ADDR": ip}, headers=headers or {}, **kwargs
    )


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port, one per test module."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """The module's Redis, emptied and its statistics reset for this test."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.command("FLUSHALL")
    redis_server.command("CONFIG", "RESETSTAT")
    return redis_server


def vulnerable_lookup(value: str, secret: str) -> str:
    """A deliberately vulnerable query for the blind-spot tests: ``value`` is pasted into the
    SQL string run against an in-memory table holding ``secret``; ``rows:…`` or ``query
    failed: …``."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE users (name TEXT, secret TEXT)")
        db.execute("INSERT INTO users VALUES ('admin', ?)", (secret,))
        try:
            rows = db.execute("SELECT secret FROM users WHERE name = '" + value + "'").fetchall()
        except sqlite3.Error as exc:
            return f"query failed: {type(exc).__name__}"
        return "rows:" + ",".join(str(r[0]) for r in rows)
    finally:
        db.close()
