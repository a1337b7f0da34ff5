"""The operator's dashboard: access rules through the test client, and the page itself driven
in headless Chromium against a real server.

The browser tests need Debian's ``chromium`` (``make test`` installs it) and Playwright from
PyPI, which drives that binary instead of downloading a browser of its own. Each run writes a
screenshot to ``.artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_rampart import ConfigError, Rampart, SecurityConfig, __version__
from playwright.sync_api import expect
from servers import RedisServer
from werkzeug.serving import make_server

TOKEN = "dashboard-token-for-tests-0123456789"
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
ARTIFACTS = Path(os.environ.get("RAMPART_ARTIFACTS", Path(__file__).parent.parent / ".artifacts"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def make_site(**dashboard: Any) -> tuple[Flask, Rampart]:
    app = Flask("dashboard_app")
    rampart = Rampart(
        app,
        SecurityConfig(
            trusted_proxies=["127.0.0.1"],
            auto_ban_threshold=2,
            auto_ban_duration=3600,
            rate_limit=1000,
        ),
        **{"dashboard": "/_rampart", "dashboard_token": TOKEN, **dashboard},
    )

    @app.get("/")
    def index() -> str:
        return "ok"

    return app, rampart


# Access ----------------------------------------------------------------------------------------


def test_off_by_default() -> None:
    app = Flask("plain")
    Rampart(app, SecurityConfig())
    assert app.test_client().get("/_rampart/", environ_base=LOCAL).status_code == 404
    assert "rampart_dashboard" not in app.blueprints


def test_needs_the_token_and_trades_it_for_a_cookie() -> None:
    app, _ = make_site()
    client = app.test_client()
    refused = client.get("/_rampart/", environ_base=LOCAL)
    assert refused.status_code == 401
    assert "token" in refused.get_data(as_text=True)
    assert client.get("/_rampart/api/state", environ_base=LOCAL).status_code == 401
    assert client.get("/_rampart/?token=wrong", environ_base=LOCAL).status_code == 401

    entered = client.get(f"/_rampart/?token={TOKEN}", environ_base=LOCAL)
    assert entered.status_code == 303
    assert entered.headers["Location"].endswith("/_rampart/")  # the token leaves the URL
    cookie = entered.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_rampart" in cookie
    assert TOKEN not in cookie

    page = client.get("/_rampart/", environ_base=LOCAL)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["Cache-Control"] == "no-store"
    state = client.get("/_rampart/api/state", environ_base=LOCAL)
    assert state.status_code == 200 and state.json["store"]["backend"] == "memory"


def test_bearer_token_for_scripts() -> None:
    app, _ = make_site()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/_rampart/api/state", headers=auth, environ_base=LOCAL).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/_rampart/api/state", headers=wrong, environ_base=LOCAL).status_code == 401


def test_clients_outside_the_allowed_networks_do_not_see_it() -> None:
    app, _ = make_site(dashboard_allow=["10.0.0.0/8"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Loopback is no longer allowed; behind the trusted proxy the client is the forwarded one.
    assert client.get("/_rampart/", headers=auth, environ_base=LOCAL).status_code == 404
    inside = {**auth, "X-Forwarded-For": "10.1.2.3"}
    outside = {**auth, "X-Forwarded-For": "192.0.2.1"}
    assert client.get("/_rampart/api/state", headers=inside, environ_base=LOCAL).status_code == 200
    assert client.get("/_rampart/api/state", headers=outside, environ_base=LOCAL).status_code == 404


def test_unban_needs_the_csrf_token_with_a_cookie() -> None:
    app, rampart = make_site()
    with app.app_context():
        rampart.ban("198.51.100.7", 600, "by hand")
    client = app.test_client()
    client.get(f"/_rampart/?token={TOKEN}", environ_base=LOCAL)
    page = client.get("/_rampart/", environ_base=LOCAL).get_data(as_text=True)
    csrf = page.split('name="rampart-csrf" content="')[1].split('"')[0]

    body = {"ip": "198.51.100.7"}
    assert client.post("/_rampart/api/unban", json=body, environ_base=LOCAL).status_code == 403
    wrong = {"X-Rampart-CSRF": "0" * 64}
    r = client.post("/_rampart/api/unban", json=body, headers=wrong, environ_base=LOCAL)
    assert r.status_code == 403
    other_site = {"X-Rampart-CSRF": csrf, "Origin": "https://evil.example"}
    r = client.post("/_rampart/api/unban", json=body, headers=other_site, environ_base=LOCAL)
    assert r.status_code == 403
    with app.app_context():
        assert rampart.is_banned("198.51.100.7")

    other_port = {"X-Rampart-CSRF": csrf, "Origin": "http://localhost:8080"}
    r = client.post("/_rampart/api/unban", json=body, headers=other_port, environ_base=LOCAL)
    assert r.status_code == 403
    # The same host over https (a TLS-terminating proxy in front) is this origin.
    good = {"X-Rampart-CSRF": csrf, "Origin": "https://localhost"}
    r = client.post("/_rampart/api/unban", json=body, headers=good, environ_base=LOCAL)
    assert r.status_code == 200 and r.json == {"ip": "198.51.100.7", "lifted": True}
    with app.app_context():
        assert not rampart.is_banned("198.51.100.7")
    # Nonsense gets a 400, not a 500.
    for bad in ({"ip": "not-an-ip"}, {"ip": 5}, ["x"]):
        r = client.post("/_rampart/api/unban", json=bad, headers=good, environ_base=LOCAL)
        assert r.status_code == 400, bad
    r = client.post("/_rampart/api/unban", data="{", headers=good, environ_base=LOCAL)
    assert r.status_code == 400


def test_state_reports_events_offenders_detections_and_bans() -> None:
    app, _ = make_site()
    client = app.test_client()
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(2):
        r = client.get(
            "/?q=1' UNION SELECT password FROM users--", headers=attacker, environ_base=LOCAL
        )
        assert r.status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    state = client.get("/_rampart/api/state", headers=auth, environ_base=LOCAL).json
    assert state["stats"]["blocked"]["penetration_attempt"] == 2
    assert [b["ip"] for b in state["bans"]] == ["203.0.113.9"]
    actions = [e["event.action"] for e in state["events"]]
    # Newest first: the second attempt (its ban was made while deciding it), then the first.
    assert actions == ["penetration_attempt", "ip_banned", "penetration_attempt"]
    stamps = [e["@timestamp"] for e in state["events"]]
    assert stamps == sorted(stamps, reverse=True)
    attempt = next(e for e in state["events"] if e["event.action"] == "penetration_attempt")
    assert attempt["rampart.categories"] == ["sqli"]
    assert attempt["rampart.locations"] == ["query:q"]
    assert state["offenders"][0]["ip"] == "203.0.113.9"
    assert state["chart"]["series"]["sqli"][-1] == 2
    assert len(state["chart"]["minutes"]) == 30
    assert state["store"]["healthy"] is True


def test_bad_settings_name_every_field_and_leave_the_app_alone() -> None:
    app = Flask("bad")
    with pytest.raises(ConfigError) as caught:
        Rampart(
            app,
            SecurityConfig(),
            dashboard="_rampart",
            dashboard_token="short",
            dashboard_allow=["127.0.0.1", "not-a-net"],
        )
    fields = [name for name, _ in caught.value.errors]
    assert fields == ["dashboard", "dashboard_token", "dashboard_allow[1]"]
    assert "rampart" not in app.extensions
    with pytest.raises(ConfigError) as caught:
        Rampart(Flask("empty"), dashboard="/_rampart", dashboard_token=TOKEN, dashboard_allow=[])
    assert [n for n, _ in caught.value.errors] == ["dashboard_allow"]


def test_token_from_app_config_and_app_factory() -> None:
    rampart = Rampart(dashboard="/ops/rampart")
    app = Flask("factory")
    app.config["RAMPART_DASHBOARD_TOKEN"] = TOKEN
    rampart.init_app(app, SecurityConfig())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = app.test_client()
    assert client.get("/ops/rampart/api/state", headers=auth, environ_base=LOCAL).status_code == 200
    with pytest.raises(ConfigError, match="dashboard_token"):
        rampart.init_app(Flask("no_token"), SecurityConfig())
    # Everything from app.config: path, token and networks.
    app = Flask("from_config")
    app.config.update(
        RAMPART_DASHBOARD="/_ops",
        RAMPART_DASHBOARD_TOKEN=TOKEN,
        RAMPART_DASHBOARD_ALLOW=["192.0.2.0/24"],
        RAMPART_TRUSTED_PROXIES=["127.0.0.1"],
    )
    Rampart(app)
    client = app.test_client()
    inside = {**auth, "X-Forwarded-For": "192.0.2.5"}
    assert client.get("/_ops/api/state", headers=inside, environ_base=LOCAL).status_code == 200
    assert client.get("/_ops/api/state", headers=auth, environ_base=LOCAL).status_code == 404


# The page in a real browser ----------------------------------------------------------------


class Server:
    """The app on a free loopback port, served by Werkzeug in a thread."""

    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def get(self, path: str, ip: str) -> int:
        req = urllib.request.Request(self.url + path, headers={"X-Forwarded-For": ip})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_page_shows_a_block_and_its_unban_button_lifts_the_ban(browser: Any) -> None:
    app, rampart = make_site()
    server = Server(app)
    try:
        # What the operator should see: a test-caused detection and the ban it led to, a
        # rate-limit-free benign request, and a path that tries to inject markup.
        attack = "/?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
        assert [server.get(attack, "203.0.113.9") for _ in range(2)] == [403, 403]
        assert server.get("/", "203.0.113.9") == 403  # banned now
        assert server.get("/", "192.0.2.10") == 200
        markup = "/%3Cimg%20src=x%20onerror=alert(1)%3E?q=%3Cscript%3Ealert(1)%3C/script%3E"
        assert server.get(markup, "192.0.2.66") == 403

        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

        response = page.goto(f"{server.url}/_rampart/?token={TOKEN}")
        assert response is not None and response.status == 200
        assert page.url == f"{server.url}/_rampart/"  # the token is gone from the address bar
        page.wait_for_selector("body[data-loaded=true]")

        assert page.locator("#version").inner_text() == f"v{__version__}"
        events = page.locator("#events tbody")
        assert "penetration_attempt" in events.inner_text()
        assert "203.0.113.9" in events.inner_text()
        assert "sqli" in events.inner_text()
        # The injected markup is shown as text and never became an element.
        assert "<img src=x onerror=alert(1)>" in events.inner_text()
        assert page.locator("#events img").count() == 0
        assert page.locator("#t-blocked").inner_text() != "0"
        assert "203.0.113.9" in page.locator("#offenders").inner_text()
        assert page.locator("#chart rect").count() >= 1
        assert "sqli" in page.locator("#legend").inner_text()
        assert "memory" in page.locator("#store").inner_text()

        # Where a client stands: its one request counted against the global limit.
        page.fill("#lookup-ip", "192.0.2.10")
        page.click("#lookup button")
        expect(page.locator("#client-limits")).to_be_visible()
        expect(page.locator("#client-limits tbody tr", has_text="global")).to_contain_text(
            "1 / 1000"
        )
        page.fill("#lookup-ip", "not an ip")
        page.click("#lookup button")
        expect(page.locator("#lookup-message")).to_contain_text("not an IP address")
        page.fill("#lookup-ip", "192.0.2.10")
        page.click("#lookup button")
        expect(page.locator("#client-limits")).to_be_visible()

        ban_row = page.locator("#bans tbody tr", has_text="203.0.113.9")
        assert ban_row.count() == 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        ban_row.locator("button.unban").click()
        page.wait_for_selector("#bans-empty:not([hidden])")
        assert page.locator("#bans tbody tr").count() == 0
        with app.app_context():
            assert not rampart.is_banned("203.0.113.9")
        assert server.get("/", "203.0.113.9") == 200
        unbanned = page.locator("#events tbody tr", has_text="ip_unbanned")
        unbanned.first.wait_for()
        assert problems == [], problems
        page.close()
    finally:
        server.stop()


def test_the_page_keeps_working_when_the_session_is_gone(browser: Any) -> None:
    # A page left open after the token changes (a redeploy) says the update failed instead
    # of throwing; an unban it tries is refused by the server and reported on the page.
    app, rampart = make_site()
    with app.app_context():
        rampart.ban("198.51.100.20", 600, "by hand")
    server = Server(app)
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/_rampart/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded=true]")
        page.context.clear_cookies()
        page.locator("#bans button.unban").click()
        # The unban's answer is shown, then the refresh after it fails too. (Playwright's own
        # waits: a JavaScript predicate would be refused by the page's CSP, which allows no eval.)
        expect(page.locator("#unban-error")).to_contain_text("401")
        expect(page.locator("#updated")).to_contain_text("update failed")
        with app.app_context():
            assert rampart.is_banned("198.51.100.20")
        assert errors == []
        page.close()
    finally:
        server.stop()


def test_limits_of_one_client() -> None:
    app, _ = make_site()
    client = app.test_client()
    for _ in range(3):
        assert (
            client.get(
                "/", headers={"X-Forwarded-For": "192.0.2.44"}, environ_base=LOCAL
            ).status_code
            == 200
        )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.get("/_rampart/api/limits?ip=192.0.2.44", headers=auth, environ_base=LOCAL)
    assert answer.status_code == 200
    (limit,) = answer.json["limits"]
    assert (limit["name"], limit["used"], limit["remaining"]) == ("global", 3, 997)
    # Reading counted nothing.
    again = client.get("/_rampart/api/limits?ip=192.0.2.44", headers=auth, environ_base=LOCAL)
    assert again.json["limits"][0]["used"] == 3
    bad = client.get("/_rampart/api/limits?ip=nope", headers=auth, environ_base=LOCAL)
    assert bad.status_code == 400


def test_polling_does_not_scan_the_store_each_time(redis: RedisServer) -> None:
    # Counting the store's keys SCANs Redis's whole keyspace: the page's 2 s poll reuses the
    # count (for 30 s) and reads only the bans and the health each time.
    app = Flask("polled")
    Rampart(
        app,
        SecurityConfig(storage_uri=redis.url, rate_limit=1000),
        dashboard="/_rampart",
        dashboard_token=TOKEN,
    )
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = client.get("/_rampart/api/state", headers=auth, environ_base=LOCAL).json
    assert first["store"]["keys"] >= 1  # the poll's own request is counted
    with redis.session() as session:
        session.command("CONFIG", "RESETSTAT")
    for _ in range(5):
        state = client.get("/_rampart/api/state", headers=auth, environ_base=LOCAL).json
        assert state["store"]["healthy"] is True
        assert state["store"]["keys"] == first["store"]["keys"]
    assert "scan" not in redis.commandstats()


def test_state_is_valid_json_for_scripts() -> None:
    app, _ = make_site()
    raw = app.test_client().get(
        "/_rampart/api/state",
        headers={"Authorization": f"Bearer {TOKEN}"},
        environ_base=LOCAL,
    )
    assert raw.headers["Content-Type"] == "application/json"
    assert json.loads(raw.get_data(as_text=True))["limits"]["rate_limit"] == 1000
