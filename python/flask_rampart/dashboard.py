"""The operator's dashboard: one page, served by the extension itself, that shows what Rampart
is doing and lifts bans.

``Rampart(app, config, dashboard="/_rampart", dashboard_token="...")`` mounts it. It is off by
default, answers only clients whose IP (after ``trusted_proxies``) is in ``dashboard_allow``
(loopback by default) and only with the token: once as ``?token=`` (which sets a session
cookie and redirects to a clean URL) or as ``Authorization: Bearer <token>`` on every call.
State-changing calls are POSTs that carry a CSRF token the page got with its HTML (a bearer
client needs none: a browser never sends that header by itself).

The page loads one script and one stylesheet of its own, and nothing else: its
Content-Security-Policy allows no inline code and no other origin. Everything it shows comes
from ``GET <path>/api/state`` and is put on the page as text, never as HTML, since events carry
what clients sent.

Recent events, top offenders and the detections chart come from this process's own events (a
worker of a multi-process server shows its own); bans, counters and store health come from the
store, so with ``shm://`` or Redis they are every worker's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, jsonify, redirect, request

from .errors import ConfigError

if TYPE_CHECKING:
    from .extension import RampartState

ASSETS = Path(__file__).parent / "_dashboard"
COOKIE = "rampart_dashboard"
CSRF_HEADER = "X-Rampart-CSRF"
#: Nothing but the page's own script, stylesheet and API calls.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The recent events kept for the page, per process.
RECENT = 200
#: Minutes of detections the chart shows.
CHART_MINUTES = 30
#: Offenders tracked before the least active are forgotten.
MAX_OFFENDERS = 2000
LOOPBACK = ("127.0.0.1", "::1")
#: How long the store's key count is reused: counting walks the whole shared-memory table, or
#: SCANs Redis's keyspace, too much for a page polling every 2 s. Its health is read each time.
STORE_COUNT_EVERY = 30.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RecentEvents:
    """This process's recent events, top offenders and detections per minute, fed by every
    event Rampart makes (an event sink)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.offenders: Counter[str] = Counter()
        self.last_action: dict[str, str] = {}
        #: minute (epoch seconds // 60) → category → count
        self.detections: dict[int, Counter[str]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.time()
        kept = {k: v for k, v in event.items() if k != "rampart.findings"}
        findings = event.get("rampart.findings") or []
        categories = sorted({str(f.get("category", "other")) for f in findings})
        if categories:
            kept["rampart.categories"] = categories
            locations = sorted({str(f.get("location", "")) for f in findings} - {""})
            kept["rampart.locations"] = locations
        kept["@timestamp"] = now
        with self._lock:
            self.events.append(kept)
            ip = event.get("source.ip")
            outcome = event.get("event.outcome")
            if ip and outcome in ("blocked", "passive", "detected", "alert"):
                self.offenders[ip] += 1
                self.last_action[ip] = str(event.get("event.action", ""))
                if len(self.offenders) > MAX_OFFENDERS:
                    self._forget_least_active()
            if categories:
                minute = int(now // 60)
                per = self.detections.setdefault(minute, Counter())
                per.update(categories)
                for old in [m for m in self.detections if m <= minute - CHART_MINUTES]:
                    del self.detections[old]

    def _forget_least_active(self) -> None:
        keep = dict(self.offenders.most_common(MAX_OFFENDERS // 2))
        self.offenders = Counter(keep)
        self.last_action = {ip: a for ip, a in self.last_action.items() if ip in keep}

    def snapshot(self, limit: int = 50) -> dict[str, Any]:
        now_minute = int(time.time() // 60)
        with self._lock:
            events = list(self.events)[-limit:][::-1]
            top = [
                {"ip": ip, "events": n, "last_action": self.last_action.get(ip, "")}
                for ip, n in self.offenders.most_common(10)
            ]
            minutes = list(range(now_minute - CHART_MINUTES + 1, now_minute + 1))
            categories = sorted({c for per in self.detections.values() for c in per})
            series = {
                c: [self.detections.get(m, Counter()).get(c, 0) for m in minutes]
                for c in categories
            }
        return {
            "events": events,
            "offenders": top,
            "chart": {"minutes": [m * 60 for m in minutes], "series": series},
        }


class Dashboard:
    """The mounted dashboard of one app: access rules and the blueprint's views."""

    def __init__(
        self, state: RampartState, path: str, token: str, allow: Sequence[Network]
    ) -> None:
        self.state = state
        self.path = path
        self.token = token
        self.networks = list(allow)
        self.recent = RecentEvents()
        #: The store's key count and when it was taken (``time.monotonic``).
        self._keys: tuple[int, float] | None = None
        state.event_sinks.append(self.recent)
        self._session = self._mac("session")
        self.csrf = self._mac("csrf")

    def _mac(self, purpose: str) -> str:
        return hmac.new(
            self.token.encode(), f"rampart-dashboard:{purpose}".encode(), hashlib.sha256
        ).hexdigest()

    # Access -------------------------------------------------------------------------------

    def _allowed_ip(self) -> bool:
        ip = self.state.engine.client_ip(request.environ)
        if not ip:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def _bearer(self) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def _cookie(self) -> bool:
        value = request.cookies.get(COOKIE, "")
        return bool(value) and hmac.compare_digest(value.encode(), self._session.encode())

    def guard(self) -> Response | None:
        """Runs before every dashboard view: 404 to clients outside ``dashboard_allow`` (the
        dashboard does not exist for them), 401 without the token."""
        if not self._allowed_ip():
            abort(404)
        if self._bearer() or self._cookie():
            return None
        given = request.args.get("token")
        if (
            given is not None
            and request.method == "GET"
            and request.endpoint == "rampart_dashboard.page"
        ):
            if hmac.compare_digest(given.encode(), self.token.encode()):
                # Trade the token in the URL (which lands in histories and logs) for a cookie.
                response = redirect(request.base_url, code=303)
                response.set_cookie(
                    COOKIE,
                    self._session,
                    path=self.path,
                    httponly=True,
                    samesite="Strict",
                    secure=request.is_secure,
                )
                return response
        return _plain(
            "Rampart dashboard: open it with ?token=<dashboard token>, or send "
            "'Authorization: Bearer <token>'.\n",
            401,
        )

    def check_csrf(self) -> None:
        """A cookie-authenticated POST must carry the page's CSRF token and, when the browser
        says where it came from, come from this origin."""
        if self._bearer():
            return
        origin = request.headers.get("Origin")
        # The host only: behind a TLS-terminating proxy the browser's scheme (https) is not the
        # one the app sees.
        if origin is not None and urlsplit(origin).netloc != request.host:
            abort(_plain("cross-origin request refused\n", 403))
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            abort(_plain("missing or wrong CSRF token\n", 403))

    # Views --------------------------------------------------------------------------------

    def page(self) -> Response:
        html = (ASSETS / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{csrf}}", self.csrf).replace("{{base}}", self.path)
        response = Response(html, mimetype="text/html")
        return _locked_down(response)

    def asset(self, name: str) -> Response:
        types = {
            "dashboard.js": "text/javascript",
            "dashboard.css": "text/css",
            "favicon.svg": "image/svg+xml",
        }
        if name not in types:
            abort(404)
        response = Response((ASSETS / name).read_bytes(), mimetype=types[name])
        return _locked_down(response)

    def _store_keys(self) -> int:
        """The store's key count, taken again every :data:`STORE_COUNT_EVERY` seconds."""
        taken = self._keys
        if taken is None or time.monotonic() - taken[1] >= STORE_COUNT_EVERY:
            counts, _ = self.state.engine.store_health()
            taken = self._keys = (counts.get("keys", 0), time.monotonic())
        return taken[0]

    def api_state(self) -> Response:
        from .extension import live_stats

        engine = self.state.engine
        now = time.time()
        bans = [
            {"ip": ip, "until": until, "remaining": max(0.0, until - now), "reason": reason}
            for ip, until, reason in engine.bans()
        ]
        stats = live_stats(self.state, len(bans))
        keys = self._store_keys()
        problem = engine.store_problem()
        kind = stats["store"]["backend"]
        config = self.state.config
        limits = {
            "enabled": bool(config.enable_rate_limiting),
            "rate_limit": config.rate_limit,
            "window": config.rate_limit_window,
            "algorithm": config.rate_limit_algorithm,
            "rules": [_describe_limit(r) for r in (config.rate_limits or [])],
            "endpoints": {
                str(path): list(value) if isinstance(value, (list, tuple)) else value
                for path, value in (config.endpoint_rate_limits or {}).items()
            },
            "limited": stats["blocked"].get("rate_limited", 0),
            "tracked_keys": keys,
        }
        body = {
            "now": now,
            "stats": stats,
            "store": {
                "backend": kind,
                "healthy": problem is None,
                "problem": problem,
                "keys": keys,
                "shared": kind != "memory",
            },
            "bans": bans,
            "limits": limits,
            "passive_mode": self.state.passive_mode,
            **self.recent.snapshot(),
        }
        response = jsonify(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    def api_limits(self) -> Response:
        """Where one client stands against every rate limit (read without counting)."""
        ip = request.args.get("ip", "").strip()
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _plain(f"not an IP address: {ip!r}\n", 400)
        try:
            found = self.state.extension.limits(ip)
        except RuntimeError as error:
            return _plain(f"{error}\n", 503)
        response = jsonify({"ip": ip, "limits": [limit._asdict() for limit in found]})
        response.headers["Cache-Control"] = "no-store"
        return response

    def api_unban(self) -> Response:
        self.check_csrf()
        data = request.get_json(silent=True)
        ip = data.get("ip") if isinstance(data, dict) else None
        if not isinstance(ip, str) or not ip:
            return _plain('send {"ip": "<address>"}\n', 400)
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _plain(f"not an IP address: {ip!r}\n", 400)
        lifted = self.state.extension.unban(ip)
        response = jsonify({"ip": ip, "lifted": lifted})
        response.headers["Cache-Control"] = "no-store"
        return response

    def blueprint(self) -> Blueprint:
        bp = Blueprint("rampart_dashboard", __name__, url_prefix=self.path)
        bp.before_request(self.guard)
        bp.add_url_rule("/", "page", self.page, methods=["GET"])
        bp.add_url_rule("/assets/<name>", "asset", self.asset, methods=["GET"])
        bp.add_url_rule("/api/state", "state", self.api_state, methods=["GET"])
        bp.add_url_rule("/api/limits", "limits", self.api_limits, methods=["GET"])
        bp.add_url_rule("/api/unban", "unban", self.api_unban, methods=["POST"])
        return bp


def _describe_limit(rule: Any) -> dict[str, Any]:
    if isinstance(rule, dict):
        return {k: v for k, v in rule.items() if isinstance(v, (str, int, float, bool))}
    return {"rule": str(rule)}


def _plain(text: str, status: int) -> Response:
    response = Response(text, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


def _locked_down(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def check_settings(path: object, token: object, allow: object) -> tuple[str, str, list[Network]]:
    """Validates the dashboard's settings: one ``ConfigError`` names every bad one."""
    errors: list[tuple[str, str]] = []
    if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
        errors.append(("dashboard", "a URL path below the root, such as '/_rampart'"))
    if not isinstance(token, str) or len(token) < 16:
        errors.append(
            (
                "dashboard_token",
                "a secret of at least 16 characters (or RAMPART_DASHBOARD_TOKEN in app.config)",
            )
        )
    networks: list[Network] = []
    if isinstance(allow, str) or not isinstance(allow, Iterable):
        errors.append(("dashboard_allow", "a list of IP addresses or CIDR ranges"))
    else:
        for i, item in enumerate(allow):
            try:
                networks.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                errors.append((f"dashboard_allow[{i}]", f"not an IP address or range: {item!r}"))
        if not networks and not errors:
            errors.append(("dashboard_allow", "names no address: nobody could open it"))
    if errors:
        raise ConfigError.from_pairs(errors)
    return str(path).rstrip("/"), str(token), networks


def mount(
    app: Flask, state: RampartState, path: str, token: str, allow: list[Network]
) -> Dashboard:
    """Registers the dashboard's blueprint on ``app`` (settings from :func:`check_settings`)."""
    dashboard = Dashboard(state, path, token, allow)
    app.register_blueprint(dashboard.blueprint())
    app.extensions["rampart_dashboard"] = dashboard
    return dashboard
