"""Security events on the ``flask_rampart`` logger, request logging, JSON log files."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_rampart import SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog

AppFactory = Callable[..., Flask]

EVENT_KEYS = {
    "event.action",
    "event.outcome",
    "source.ip",
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "rule.id",
    "message",
}
BAD = "203.0.113.5"


def get(app: Flask, path: str = "/hello", ip: str = "198.51.100.7") -> TestResponse:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": ip})


def test_blocked_request_emits_one_structured_warning(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD]))
    rampart_log.clear()
    resp = get(app, "/admin", ip=BAD)
    assert resp.status_code == 403

    events = rampart_log.events
    assert len(events) == 1
    record = events[0]
    assert record.levelno == logging.WARNING
    event: dict[str, Any] = record.rampart  # type: ignore[attr-defined]
    assert EVENT_KEYS <= set(event)
    assert event["event.outcome"] == "blocked"
    assert event["source.ip"] == BAD
    assert event["http.request.method"] == "GET"
    assert event["url.path"] == "/admin"
    assert int(event["http.response.status_code"]) == 403
    assert isinstance(event["event.action"], str)
    assert event["event.action"]
    assert event["rule.id"]
    assert isinstance(event["message"], str)
    assert event["message"]


def test_allowed_request_emits_no_event_by_default(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD]))
    rampart_log.clear()
    assert get(app).status_code == 200
    assert rampart_log.records == []


def test_different_blocks_have_different_rules(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD], blocked_user_agents=["curl"]))
    rampart_log.clear()
    assert get(app, ip=BAD).status_code == 403
    ua = app.test_client().get("/hello", headers={"User-Agent": "curl/8"})
    assert ua.status_code == 403
    events = rampart_log.event_dicts
    assert len(events) == 2
    assert events[0]["rule.id"] != events[1]["rule.id"]
    assert events[1]["source.ip"] == "127.0.0.1"


def test_emergency_event(rampart_log: RampartLog, make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(emergency_mode=True))
    rampart_log.clear()
    assert get(app).status_code == 503
    events = rampart_log.event_dicts
    assert len(events) == 1
    assert int(events[0]["http.response.status_code"]) == 503
    assert events[0]["event.outcome"] == "blocked"


def test_log_suspicious_level_error(rampart_log: RampartLog, make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD], log_suspicious_level="ERROR"))
    rampart_log.clear()
    assert get(app, ip=BAD).status_code == 403
    events = rampart_log.events
    assert len(events) == 1
    assert events[0].levelno == logging.ERROR


def test_log_suspicious_level_none_emits_nothing(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD], log_suspicious_level=None))
    rampart_log.clear()
    resp = get(app, ip=BAD)
    assert resp.status_code == 403  # still blocked, just not logged
    assert rampart_log.records == []


def test_log_request_level_logs_allowed_requests(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(log_request_level="INFO"))
    rampart_log.clear()
    assert get(app, "/hello").status_code == 200
    assert get(app, "/admin").status_code == 200
    info = [r for r in rampart_log.records if r.levelno == logging.INFO]
    assert len(info) == 2

    def mentions(record: logging.LogRecord, path: str) -> bool:
        data = getattr(record, "rampart", None)
        if isinstance(data, dict) and data.get("url.path") == path:
            return True
        return path in record.getMessage()

    assert mentions(info[0], "/hello")
    assert mentions(info[1], "/admin")


def test_log_request_level_debug(rampart_log: RampartLog, make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(log_request_level="DEBUG"))
    rampart_log.clear()
    assert get(app).status_code == 200
    assert [r.levelno for r in rampart_log.records] == [logging.DEBUG]


def test_json_log_file(rampart_log: RampartLog, make_app: AppFactory, tmp_path: Path) -> None:
    log_file = tmp_path / "security.log"
    app = make_app(
        SecurityConfig(blacklist=[BAD], log_format="json", custom_log_file=str(log_file))
    )
    rampart_log.clear()
    assert get(app, ip=BAD).status_code == 403
    assert get(app, "/admin", ip=BAD).status_code == 403
    events = rampart_log.event_dicts
    assert len(events) == 2

    lines = [line for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) >= 2
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(obj, dict) for obj in objects)

    action = events[0]["event.action"]
    matching = [obj for obj in objects if BAD in json.dumps(obj) and action in json.dumps(obj)]
    assert len(matching) == 2, lines


def test_text_log_file(rampart_log: RampartLog, make_app: AppFactory, tmp_path: Path) -> None:
    log_file = tmp_path / "security.log"
    app = make_app(SecurityConfig(blacklist=[BAD], custom_log_file=str(log_file)))
    assert get(app, ip=BAD).status_code == 403
    text = log_file.read_text(encoding="utf-8")
    assert BAD in text
    # the default format is text, not JSON
    first = text.splitlines()[0]
    try:
        parsed = json.loads(first)
    except ValueError:
        parsed = None
    assert not isinstance(parsed, dict)


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def test_console_handler_added_when_no_logger_has_handlers(make_app: AppFactory) -> None:
    logger = logging.getLogger("flask_rampart")
    root = logging.getLogger()
    saved_root_handlers = list(root.handlers)
    # precondition: the autouse fixture keeps the flask_rampart logger bare
    assert logger.handlers == []
    root.handlers = []
    try:
        make_app(SecurityConfig())
        console = _console_handlers(logger)
    finally:
        root.handlers = saved_root_handlers
    assert len(console) == 1
    assert logger.level == logging.DEBUG


def test_no_console_handler_when_root_logger_has_handlers(make_app: AppFactory) -> None:
    logger = logging.getLogger("flask_rampart")
    root = logging.getLogger()
    extra = logging.NullHandler()
    root.addHandler(extra)
    try:
        make_app(SecurityConfig())
    finally:
        root.removeHandler(extra)
    assert _console_handlers(logger) == []


def test_no_console_handler_added_when_logger_has_one(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    logger = logging.getLogger("flask_rampart")
    before = list(logger.handlers)
    make_app(SecurityConfig())
    assert logger.handlers == before


def test_log_files_are_per_app(
    rampart_log: RampartLog, make_app: AppFactory, tmp_path: Path
) -> None:
    """Each app logs to its own file only.

    Both apps come from the same factory and so share an import name, as with any
    ``create_app()`` called twice in one process.
    """
    file_a = tmp_path / "a.log"
    app_a = make_app(SecurityConfig(blacklist=[BAD], custom_log_file=str(file_a)))
    app_b = make_app(SecurityConfig(blacklist=["203.0.113.77"]))
    assert get(app_b, ip="203.0.113.77").status_code == 403
    assert get(app_a, ip=BAD).status_code == 403
    text = file_a.read_text(encoding="utf-8")
    assert BAD in text
    assert "203.0.113.77" not in text
