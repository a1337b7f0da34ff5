"""The demo (`make demo`) does what the curl lines it prints say: each line, through the app."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import request_as

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
LOCAL = "127.0.0.1"


@pytest.fixture
def demo() -> ModuleType:
    """A fresh import of the demo: its own app, counters and bans."""
    spec = importlib.util.spec_from_file_location("rampart_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("rampart_demo", None)
    spec.loader.exec_module(module)
    return module


def test_every_printed_line_is_in_the_demo(demo: ModuleType) -> None:
    for path in ["/comments", "/api/items", "/login", "/page", "X-Forwarded-For: 198.51.100.20"]:
        assert path in demo.TRY


def test_the_detection_lines(demo: ModuleType) -> None:
    app = demo.app
    attacker = {"X-Forwarded-For": "198.51.100.20"}
    resp = request_as(app, "/?q=%3Cscript%3Ealert(1)%3C/script%3E", LOCAL, headers=attacker)
    assert resp.status_code == 403
    resp = request_as(
        app,
        "/comments",
        LOCAL,
        headers=attacker,
        method="POST",
        json={"items": [{"note": "1 union select password from users"}]},
    )
    assert resp.status_code == 403
    honest = {"note": "select the blue one or the red one from the union shop"}
    resp = request_as(app, "/comments", LOCAL, method="POST", json=honest)
    assert resp.status_code == 201
    assert resp.get_json() == {"received": honest}
    # The attacks counted toward a ban of the other client, not of this one.
    assert request_as(app, "/", LOCAL).status_code == 200


def test_the_other_lines(demo: ModuleType) -> None:
    app = demo.app
    assert request_as(app, "/", LOCAL).status_code == 200
    listed = {"X-Forwarded-For": "203.0.113.7"}
    assert request_as(app, "/", LOCAL, headers=listed).status_code == 403
    assert request_as(app, "/", LOCAL, headers={"User-Agent": "sqlmap/1.7"}).status_code == 403
    cors = request_as(app, "/", LOCAL, headers={"Origin": "https://app.example.com"})
    assert cors.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "nonce-" in request_as(app, "/page", LOCAL).headers["Content-Security-Policy"]
    codes = [request_as(app, "/api/items", LOCAL).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    login = {"X-Forwarded-For": "198.51.100.9"}
    codes = [
        request_as(app, "/login", LOCAL, headers=login, method="POST").status_code for _ in range(4)
    ]
    assert codes == [401, 401, 401, 403]


def test_the_dashboard_line(demo: ModuleType) -> None:
    app = demo.app
    url = next(line.strip() for line in demo.TRY.splitlines() if "/_rampart/?token=" in line)
    path = url.removeprefix(demo.BASE)
    client = app.test_client()
    local = {"REMOTE_ADDR": LOCAL}
    assert client.get(path, environ_base=local).status_code == 303  # token traded for a cookie
    page = client.get("/_rampart/", environ_base=local)
    assert page.status_code == 200 and b"dashboard.js" in page.data
    # Another client (through the demo's trusted proxy) does not see it.
    away = client.get(path, headers={"X-Forwarded-For": "192.0.2.1"}, environ_base=local)
    assert away.status_code == 404
