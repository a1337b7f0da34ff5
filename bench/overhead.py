"""Per-request overhead of flask-rampart and peer Flask security extensions.

Run from the repository root::

    .venv/bin/python bench/overhead.py            # ~4 s per config and route
    .venv/bin/python bench/overhead.py --quick    # ~1 s per config and route

Every configuration is measured in a few freshly spawned processes (its own
heap and GC). Inside each, a bare Flask app and the app under test are driven
directly through their WSGI callables with a prebuilt environ, in alternating
batches, and the per-request times are reported as medians, p99 and ratios to
bare Flask. Peers that are not
installed are listed as such (``pip install -r bench/requirements-peers.txt``).
A full run of every configuration also writes the report to
``bench/results/latest.md``; ``--quick`` and ``--only`` runs only print it
unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import io
import json
import math
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from werkzeug.test import EnvironBuilder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "latest.md"

FULL_SECONDS = 4.0
QUICK_SECONDS = 1.0
MAX_BATCH = 200
MIN_ROUNDS = 3
TARGET_ROUNDS = 20
WARMUP_REQUESTS = 500
PROCESSES = 3
RAMPART_TARGET_US = 5.0
RATELIMIT_TARGET_US = 2.0
#: `shm://` over `memory://`, and Redis over `memory://` beyond one round trip.
SHM_TARGET_US = 1.0
REDIS_TARGET_US = 10.0
#: Detection on (the `rampart` row): the GET with three short parameters, then the 10 KB JSON.
DETECT_TARGET_US = (10.0, 25.0)
WHOLE_US_FROM = 1000.0
WHOLE_RATIO_FROM = 100.0

CLIENT_ADDR = "127.0.0.1"
HOST = "api.example.com"
BROWSER_HEADERS: dict[str, str] = {
    "Host": HOST,
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
    "Accept": "application/json, text/plain, */*",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Accept-Language": "en-GB,en-US;q=0.9,en;q=0.8",
    "X-Forwarded-Proto": "https",
    "Origin": "https://app.example.com",
}


class BenchError(RuntimeError):
    """A configuration did not answer the way the benchmark requires."""


# --------------------------------------------------------------------------
# Requests and the app
# --------------------------------------------------------------------------


def order_document() -> dict[str, Any]:
    """Return a ~10 KB JSON order: a customer and 23 line items."""
    items = [
        {
            "sku": f"SKU-{1000 + i}",
            "name": f"Stainless steel widget, model {i}",
            "description": (
                "A durable, dishwasher-safe widget with a brushed stainless finish, "
                "suitable for everyday use in home and professional kitchens. "
                f"Batch {i:04d}, inspected twice before shipping; see the care sheet."
            ),
            "tags": ["kitchen", "steel", "bestseller", "gift-idea", f"batch-{i % 5}"],
            "dimensions_mm": {"width": 40 + i, "height": 120, "depth": 35},
            "price": round(4.99 + i * 1.25, 2),
            "quantity": 1 + i % 4,
            "in_stock": i % 7 != 0,
        }
        for i in range(23)
    ]
    customer = {
        "id": "c-58213",
        "name": "Ada Example",
        "email": "ada@example.com",
        "address": {
            "street": "1 Example Road",
            "city": "Exampleton",
            "postcode": "EX1 2AB",
            "country": "GB",
        },
    }
    return {
        "order_id": "o-77231",
        "currency": "EUR",
        "customer": customer,
        "items": items,
    }


@dataclass(frozen=True)
class Route:
    """One benchmarked request: a prebuilt environ plus the expected answer."""

    label: str
    environ: dict[str, Any]
    body: bytes
    expected_json: object

    def fresh_environ(self) -> dict[str, Any]:
        """Copy the environ for one request, with an unread body stream."""
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(self.body)
        return environ


def build_route(
    method: str,
    path: str,
    payload: object,
    expected_json: object,
    header_overrides: dict[str, str] | None = None,
) -> Route:
    """Build the environ once with werkzeug; it is copied for every request."""
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {**BROWSER_HEADERS, **(header_overrides or {})}
    builder = EnvironBuilder(
        path=path,
        method=method,
        headers=list(headers.items()),
        data=body or None,
        content_type="application/json" if body else None,
        environ_overrides={"REMOTE_ADDR": CLIENT_ADDR, "REMOTE_PORT": "50123"},
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ.pop("wsgi.input", None)
    label = f"{method} {path}"
    if body:
        label += f" ({len(body) / 1024:.1f} KB JSON)"
    return Route(label=label, environ=environ, body=body, expected_json=expected_json)


#: The GET carries three short query parameters, which detection inspects.
SEARCH_PATH = "/hello?q=wireless+headphones&page=2&sort=price"


def build_routes() -> list[Route]:
    """Build the two benchmarked requests."""
    order = order_document()
    return [
        build_route("GET", SEARCH_PATH, None, {"message": "hello"}),
        build_route("POST", "/submit", order, {"items": len(order["items"])}),
    ]


def make_app(name: str) -> Flask:
    """Build the app every configuration wraps: /hello and /submit."""
    app = Flask(name)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"message": "hello"}

    @app.post("/submit")
    def submit() -> dict[str, int]:
        data = request.get_json()
        return {"items": len(data["items"])}

    return app


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A configuration under test.

    ``setup`` installs the extension(s) on an app and may return a callable
    that reports a piece of the extension's state after each route, which the
    report shows under Notes, introduced by ``note_label``.
    ``expect_headers`` are response headers that prove the extension is active;
    a request with ``blocked_user_agent`` must be refused with 403.
    """

    name: str
    description: str
    modules: tuple[str, ...]
    packages: tuple[str, ...]
    setup: Callable[[Flask], Callable[[], str] | None]
    expect_headers: tuple[str, ...] = ()
    blocked_user_agent: str | None = None
    note_label: str = ""
    #: Whether an SQL injection and an XSS must be refused (penetration detection is on).
    detects: bool = False
    #: A program the configuration needs (a server the benchmark starts).
    needs_binary: str | None = None


def load(module: str, name: str) -> Callable[..., Any]:
    """Import ``module.name`` lazily: each worker loads only its extension."""
    loaded: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return loaded


def setup_rampart(app: Flask, *, detection: bool = True) -> None:
    """Set up Rampart with the issue's target configuration (detection on, as by default)."""
    rampart, security_config = (
        load("flask_rampart", "Rampart"),
        load("flask_rampart", "SecurityConfig"),
    )
    config = security_config(
        blacklist=["203.0.113.0/24", "2001:db8::/32"],
        whitelist=None,
        trusted_proxies=["10.0.0.0/8"],
        blocked_user_agents=["sqlmap", "nikto", "masscan"],
        enable_cors=True,
        cors_allow_origins=["https://app.example.com"],
        enforce_https=False,
        enable_penetration_detection=detection,
    )
    rampart(app, config=config)


def setup_rampart_nodetect(app: Flask) -> None:
    """The `rampart` row with penetration detection switched off."""
    setup_rampart(app, detection=False)


def setup_rampart_metrics(app: Flask) -> None:
    """The `rampart-nodetect` row plus Prometheus metrics (its own registry)."""
    setup_rampart(app, detection=False)
    registry = load("prometheus_client", "CollectorRegistry")()
    load("flask_rampart.metrics", "RampartMetrics")(app, registry=registry)


def setup_rampart_ratelimit(app: Flask, storage_uri: str | None = None) -> None:
    """The `rampart` configuration plus a global rate limit (never reached) and ban checks."""
    rampart, security_config = (
        load("flask_rampart", "Rampart"),
        load("flask_rampart", "SecurityConfig"),
    )
    config = security_config(
        blacklist=["203.0.113.0/24", "2001:db8::/32"],
        trusted_proxies=["10.0.0.0/8"],
        blocked_user_agents=["sqlmap", "nikto", "masscan"],
        enable_cors=True,
        cors_allow_origins=["https://app.example.com"],
        rate_limit=10**9,
        rate_limit_window=60,
        enable_penetration_detection=False,
        **({"storage_uri": storage_uri} if storage_uri else {}),
    )
    rampart(app, config=config)


def setup_rampart_shm(app: Flask) -> None:
    """`rampart-ratelimit` with its counters and bans in a shared-memory file."""
    directory = tempfile.mkdtemp(prefix="rampart-bench-")
    setup_rampart_ratelimit(app, f"shm://{directory}/bench.shm")


def setup_redis_ping(app: Flask) -> None:
    """No extension: one PING to the same Redis per request, over one open socket: what one
    round trip costs a Flask request on this machine (the reference for `rampart-redis`)."""
    url = os.environ[REDIS_ENV]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inner = app.wsgi_app

    def pinging(environ: dict[str, Any], start_response: Any) -> Any:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        sock.recv(64)
        return inner(environ, start_response)

    app.wsgi_app = pinging  # type: ignore[method-assign]


def setup_rampart_redis(app: Flask) -> Callable[[], str]:
    """`rampart-ratelimit` on the loopback Redis the parent started; reports Redis's own counts:
    round trips (request reads), script calls and server time per request this app served."""
    url = os.environ[REDIS_ENV]
    setup_rampart_ratelimit(app, url)
    served = [0]
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        served[0] += 1
        return inner(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    # What asking costs in reads (each question is a connection: its command, its close), in
    # the order `describe` asks.
    first = redis_reads(port)
    before = redis_stats(port)
    reads = [redis_reads(port)]
    asking = reads[0] - first

    def describe() -> str:
        after = redis_stats(port)
        now = redis_reads(port)
        trips = now - reads[0] - asking
        reads[0] = now
        calls = {k: after[k][0] - before.get(k, (0, 0))[0] for k in after}
        usec = {k: after[k][1] - before.get(k, (0, 0))[1] for k in after}
        before.update(after)
        n = max(served[0], 1)
        served[0] = 0
        scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
        # A script's inner calls are counted too, under their own names: with scripts, only the
        # script's own time is the server's time.
        if scripts:
            server = usec.get("evalsha", 0) + usec.get("eval", 0)
        else:
            server = sum(v for k, v in usec.items() if k != "info")
        return (
            f"{trips / n:.2f} round trips per request (Redis's count of request reads), "
            f"{scripts / n:.2f} script calls, {server / n:.1f} µs of server time"
        )

    return describe


def setup_rampart_gatekeeper(app: Flask) -> None:
    """Rampart's GateKeeper, configured as the flask-gatekeeper row."""
    load("flask_rampart", "GateKeeper")(app, rate_limit_rules=[{"count": 10**9, "window": 60}])


def setup_rampart_defaults(app: Flask) -> None:
    """Set up Rampart with default settings: security headers and detection."""
    rampart, security_config = (
        load("flask_rampart", "Rampart"),
        load("flask_rampart", "SecurityConfig"),
    )
    rampart(app, config=security_config())


def setup_talisman_cors(app: Flask) -> None:
    """Set up flask-talisman (force_https=False) plus flask-cors defaults."""
    load("flask_talisman", "Talisman")(app, force_https=False)
    load("flask_cors", "CORS")(app)


def setup_limiter(app: Flask) -> None:
    """Set up flask-limiter, in memory, with a limit that is never reached."""
    limiter = load("flask_limiter", "Limiter")
    limiter(
        load("flask_limiter.util", "get_remote_address"),
        app=app,
        default_limits=["1000000000 per minute"],
        storage_uri="memory://",
    )


def setup_gatekeeper(app: Flask) -> Callable[[], str]:
    """Set up flask-gatekeeper with a global limit that is never reached."""
    gatekeeper = load("flask_gatekeeper", "GateKeeper")
    if "rate_limit_rules" in inspect.signature(gatekeeper).parameters:
        # 1.x: a list of {"count", "window"} rules
        keeper = gatekeeper(app, rate_limit_rules=[{"count": 10**9, "window": 60}])
    else:
        # 0.x: a single [count, window] rule
        keeper = gatekeeper(app, rate_limit_rule=[10**9, 60])

    def remembered() -> str:
        ips = getattr(keeper, "ips", {})
        count = sum(len(getattr(ip, "rate_entries", ())) for ip in ips.values())
        return f"{count:,}"

    return remembered


def setup_guard(*, detection: bool) -> Callable[[Flask], None]:
    """Set up flaskapi-guard in memory, penetration detection on or off."""

    def setup(app: Flask) -> None:
        options: dict[str, Any] = {
            "enable_redis": False,
            "rate_limit": 10**9,
            "rate_limit_window": 60,
        }
        if not detection:
            options["enable_penetration_detection"] = False
        config = load("flaskapi_guard", "SecurityConfig")(**options)
        load("flaskapi_guard", "FlaskAPIGuard")(app, config=config)

    return setup


def decorate_routes(app: Flask, deco: Any) -> None:
    """The same route decorators, through flaskapi-guard's or Rampart's ``SecurityDecorator``:
    on /hello a route rate limit (never reached), two blocked UAs, a required header and a
    usage monitor; on /submit a content-type filter, a size limit, a honeypot field in the JSON
    body and a rate limit."""
    views = app.view_functions
    for decorator in (
        deco.rate_limit(requests=10**9, window=60),
        deco.block_user_agents(["curl", "wget"]),
        deco.require_headers({"Accept": "required"}),
        deco.usage_monitor(max_calls=10**9, window=3600, action="log"),
    ):
        views["hello"] = decorator(views["hello"])
    for decorator in (
        deco.content_type_filter(["application/json"]),
        deco.max_request_size(1 << 20),
        deco.honeypot_detection(["website"]),
        deco.rate_limit(requests=10**9, window=60),
    ):
        views["submit"] = decorator(views["submit"])


def setup_rampart_decorated(app: Flask) -> None:
    """The `rampart-nodetect` row with `decorate_routes` through `rampart.decorators`."""
    setup_rampart(app, detection=False)
    decorate_routes(app, app.extensions["rampart"].extension.decorators)


def setup_guard_decorated(app: Flask) -> None:
    """flaskapi-guard without detection, with `decorate_routes` through its decorator."""
    setup_guard(detection=False)(app)
    ext = app.extensions["flaskapi_guard"]
    deco = load("flaskapi_guard", "SecurityDecorator")(ext["config"])
    ext["guard"].set_decorator_handler(deco)
    decorate_routes(app, deco)


RAMPART = ("flask_rampart",)
GUARD = ("flaskapi_guard",)
GUARD_PACKAGES = ("flaskapi-guard", "guard-core")

CONFIGS: tuple[Config, ...] = (
    Config(
        "rampart",
        "blacklist (v4+v6), trusted proxies, 3 blocked UAs, CORS for one origin, "
        "default security headers, penetration detection (default; every query parameter, "
        "header and JSON value inspected)",
        RAMPART,
        ("flask-rampart",),
        setup_rampart,
        ("X-Content-Type-Options", "Access-Control-Allow-Origin"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
        detects=True,
    ),
    Config(
        "rampart-nodetect",
        "the `rampart` row with `enable_penetration_detection=False`",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_nodetect,
        ("X-Content-Type-Options", "Access-Control-Allow-Origin"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
    ),
    Config(
        "rampart-metrics",
        "the `rampart-nodetect` row plus `RampartMetrics` (Prometheus: a counter and a "
        "histogram per request, the engine call timed)",
        (*RAMPART, "prometheus_client"),
        ("flask-rampart", "prometheus-client"),
        setup_rampart_metrics,
        ("X-Content-Type-Options", "Access-Control-Allow-Origin"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
    ),
    Config(
        "rampart-ratelimit",
        "the `rampart-nodetect` row plus `rate_limit=10**9` per 60 s (exact sliding window, "
        "X-RateLimit-* headers) and the ban check",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_ratelimit,
        ("X-Content-Type-Options", "X-RateLimit-Remaining"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
    ),
    Config(
        "rampart-shm",
        "the `rampart-ratelimit` row with `storage_uri=shm:///tmp/…/bench.shm` (every worker of "
        "a host shares the counters)",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_shm,
        ("X-Content-Type-Options", "X-RateLimit-Remaining"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
    ),
    Config(
        "rampart-redis",
        "the `rampart-ratelimit` row with `storage_uri=redis://127.0.0.1:<port>` (a local "
        "`redis-server` this benchmark starts)",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_redis,
        ("X-Content-Type-Options", "X-RateLimit-Remaining"),
        "sqlmap/1.8.4#stable (https://sqlmap.org)",
        note_label="Redis's own command counts",
        needs_binary="redis-server",
    ),
    Config(
        "redis-ping",
        "no extension: one PING per request to the same local Redis over an open socket (what "
        "one round trip costs a Flask request here; the reference for `rampart-redis`)",
        (),
        (),
        setup_redis_ping,
        needs_binary="redis-server",
    ),
    Config(
        "rampart-gatekeeper",
        "`flask_rampart.GateKeeper`, configured as the flask-gatekeeper row",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_gatekeeper,
    ),
    Config(
        "rampart-decorated",
        "the `rampart-nodetect` row plus route decorators (`SecurityDecorator`): on /hello "
        "`rate_limit`, `block_user_agents`, `require_headers`, `usage_monitor`; on /submit "
        "`content_type_filter`, `max_request_size`, `honeypot_detection` (reads the JSON body), "
        "`rate_limit`",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_decorated,
        ("X-Content-Type-Options", "X-RateLimit-Remaining"),
        "curl/8.4.0",
    ),
    Config(
        "rampart-defaults",
        "`SecurityConfig()` defaults: security headers and penetration detection",
        RAMPART,
        ("flask-rampart",),
        setup_rampart_defaults,
        ("X-Content-Type-Options",),
        detects=True,
    ),
    Config(
        "talisman+cors",
        "`Talisman(app, force_https=False)` + `CORS(app)`",
        ("flask_talisman", "flask_cors"),
        ("flask-talisman", "flask-cors"),
        setup_talisman_cors,
        ("Content-Security-Policy", "Access-Control-Allow-Origin"),
    ),
    Config(
        "limiter",
        "memory://, 1000000000 per minute, `get_remote_address`",
        ("flask_limiter",),
        ("Flask-Limiter", "limits"),
        setup_limiter,
    ),
    Config(
        "gatekeeper",
        "global limit never reached: `rate_limit_rules=[{count: 10**9, window: 60}]` "
        "(1.x; 0.x takes `rate_limit_rule=[10**9, 60]`)",
        ("flask_gatekeeper",),
        ("flask-gatekeeper",),
        setup_gatekeeper,
        note_label="request timestamps remembered for the client IP",
    ),
    Config(
        "guard-nodetect",
        "in-memory, rate limit 10**9/60 s, penetration detection OFF",
        GUARD,
        GUARD_PACKAGES,
        setup_guard(detection=False),
        ("X-Content-Type-Options",),
    ),
    Config(
        "guard-decorated",
        "the `guard-nodetect` row plus the same route decorators as `rampart-decorated`",
        GUARD,
        GUARD_PACKAGES,
        setup_guard_decorated,
        ("X-Content-Type-Options",),
        "curl/8.4.0",
    ),
    Config(
        "guard-detect",
        "in-memory, rate limit 10**9/60 s, penetration detection ON (default)",
        GUARD,
        GUARD_PACKAGES,
        setup_guard(detection=True),
        ("X-Content-Type-Options",),
    ),
)
CONFIG_BY_NAME = {config.name: config for config in CONFIGS}


def is_installed(config: Config) -> bool:
    """Whether every module the configuration needs can be imported."""
    if config.needs_binary is not None and shutil.which(config.needs_binary) is None:
        return False
    return all(importlib.util.find_spec(module) is not None for module in config.modules)


# --------------------------------------------------------------------------
# The Redis server of the `rampart-redis` row
# --------------------------------------------------------------------------

REDIS_ENV = "RAMPART_BENCH_REDIS_URL"


def redis_call(port: int, *args: str) -> bytes:
    """One command over RESP; the raw reply (enough for INFO and PING)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        parts = [a.encode() for a in args]
        sock.sendall(
            b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        )
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def redis_stats(port: int) -> dict[str, tuple[int, int]]:
    """(calls, µs of server time) per command, from Redis's INFO commandstats."""
    out: dict[str, tuple[int, int]] = {}
    for line in redis_call(port, "INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_") :].split(":", 1)
            fields = dict(f.split("=") for f in rest.split(","))
            out[name] = (int(fields["calls"]), int(fields["usec"]))
    return out


def redis_reads(port: int) -> int:
    """Requests the server has read (INFO stats `total_reads_processed`): a pipeline sent in one
    write is one read, so this counts round trips. Asking is a read too."""
    for line in redis_call(port, "INFO", "stats").decode().splitlines():
        if line.startswith("total_reads_processed:"):
            return int(line.split(":", 1)[1])
    return 0


def start_redis() -> tuple[subprocess.Popen[bytes], int] | None:
    """A throwaway redis-server on a free loopback port, or None when not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis_call(port, "PING").startswith(b"+PONG"):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


# --------------------------------------------------------------------------
# Driving one request
# --------------------------------------------------------------------------


@dataclass
class Response:
    """What one WSGI call produced."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def call_app(app: Flask, environ: dict[str, Any], *, keep_body: bool = False) -> Response:
    """Call the WSGI app, drain and close the iterable, return the response."""
    response = Response()

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        del exc_info
        response.status = status
        response.headers = headers
        return lambda _data: None

    chunks = app(environ, start_response)
    try:
        if keep_body:
            response.body = b"".join(chunks)
        else:
            for _chunk in chunks:
                pass
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return response


def check_response(app: Flask, route: Route, expect_headers: Iterable[str]) -> None:
    """Fail unless the app answers 200 with the right JSON and headers."""
    response = call_app(app, route.fresh_environ(), keep_body=True)
    if not response.status.startswith("200"):
        msg = f"{route.label}: status {response.status!r}, body {response.body[:200]!r}"
        raise BenchError(msg)
    try:
        payload = json.loads(response.body)
    except ValueError:
        payload = None
    if payload != route.expected_json:
        msg = f"{route.label}: unexpected body {response.body[:200]!r}"
        raise BenchError(msg)
    present = {name.lower() for name, _value in response.headers}
    missing = [name for name in expect_headers if name.lower() not in present]
    if missing:
        msg = f"{route.label}: extension not active, missing headers {missing}"
        raise BenchError(msg)


def check_blocked(app: Flask, user_agent: str) -> None:
    """Fail unless a request with this User-Agent is refused with 403."""
    route = build_route("GET", "/hello", None, None, {"User-Agent": user_agent})
    response = call_app(app, route.fresh_environ(), keep_body=True)
    if not response.status.startswith("403"):
        msg = f"User-Agent {user_agent!r} was not blocked: status {response.status!r}"
        raise BenchError(msg)


def check_detects(app: Flask) -> None:
    """Fail unless an SQL injection in the query and an XSS in the JSON body get 403."""
    for route in (
        build_route("GET", "/hello?q=1%27%20OR%20%271%27%3D%271", None, None),
        build_route("POST", "/submit", {"items": ["<svg onload=alert(1)>"]}, None),
    ):
        response = call_app(app, route.fresh_environ(), keep_body=True)
        if not response.status.startswith("403"):
            msg = f"{route.label}: attack not blocked, status {response.status!r}"
            raise BenchError(msg)


def timed_batch(app: Flask, route: Route, count: int, out: list[int]) -> None:
    """Serve ``count`` requests, appending each call's duration in ns."""
    clock = time.perf_counter_ns
    for _ in range(count):
        environ = route.fresh_environ()
        start = clock()
        response = call_app(app, environ)
        elapsed = clock() - start
        if not response.status.startswith("200"):
            msg = f"{route.label}: status {response.status!r} during the timed run"
            raise BenchError(msg)
        out.append(elapsed)


# --------------------------------------------------------------------------
# Interleaved measurement (worker side)
# --------------------------------------------------------------------------


@dataclass
class Samples:
    """Per-request times (ns) of bare Flask and the configuration, one route, one process."""

    route: str
    bare_ns: list[int]
    config_ns: list[int]
    note: str | None = None


def warm_up(apps: Sequence[Flask], route: Route, seconds: float) -> list[float]:
    """Alternate single requests until time or count runs out; return medians in ns."""
    samples: list[list[int]] = [[] for _ in apps]
    deadline = time.perf_counter() + seconds
    while len(samples[0]) < WARMUP_REQUESTS and time.perf_counter() < deadline:
        for app, out in zip(apps, samples, strict=True):
            timed_batch(app, route, 1, out)
    return [statistics.median(out) for out in samples]


def batch_size(cost_ns: float, seconds: float) -> int:
    """Size one app's batch so that it fills half a round.

    A round lasts about ``seconds / TARGET_ROUNDS``; both apps get the same
    share of wall time, so a slow configuration gets small batches (down to one
    request) while bare Flask still gets a batch long enough to be measured away
    from the slow app's after-effects.
    """
    half_round_ns = seconds * 1e9 / TARGET_ROUNDS / 2
    return max(1, min(MAX_BATCH, int(half_round_ns / max(1.0, cost_ns))))


def measure_route(bare: Flask, app: Flask, route: Route, seconds: float) -> Samples:
    """Alternate batches of bare and configured requests for ``seconds``."""
    bare_cost, app_cost = warm_up((bare, app), route, seconds / 4)
    bare_batch, app_batch = batch_size(bare_cost, seconds), batch_size(app_cost, seconds)
    samples = Samples(route=route.label, bare_ns=[], config_ns=[])
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < MIN_ROUNDS or time.perf_counter() < deadline:
        if rounds % 2:
            timed_batch(app, route, app_batch, samples.config_ns)
            timed_batch(bare, route, bare_batch, samples.bare_ns)
        else:
            timed_batch(bare, route, bare_batch, samples.bare_ns)
            timed_batch(app, route, app_batch, samples.config_ns)
        rounds += 1
    return samples


def run_worker(name: str, seconds: float) -> list[Samples]:
    """Measure one configuration against bare Flask, in this (fresh) process."""
    config = CONFIG_BY_NAME[name]
    bare = make_app("bare")
    app = make_app(name)
    describe = config.setup(app)
    routes = build_routes()
    for route in routes:
        check_response(bare, route, ())
        check_response(app, route, config.expect_headers)
    if config.blocked_user_agent is not None:
        check_blocked(app, config.blocked_user_agent)
    if config.detects:
        check_detects(app)
    results = []
    for route in routes:
        samples = measure_route(bare, app, route, seconds)
        if describe is not None:
            samples.note = describe()
        results.append(samples)
    return results


# --------------------------------------------------------------------------
# Orchestration and statistics (parent side)
# --------------------------------------------------------------------------


@dataclass
class RouteStats:
    """One route of one configuration, over all its processes (times in µs)."""

    route: str
    bare_median_us: float
    config_median_us: float
    config_p99_us: float
    added_us: float
    ratio: float
    added_per_process_us: list[float]
    n_bare: int
    n_config: int
    notes: list[str]


@dataclass
class ConfigResult:
    """A configuration's routes, or the error that stopped it."""

    config: str
    routes: list[RouteStats] = field(default_factory=list)
    error: str | None = None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of unsorted values."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def aggregate(per_process: Sequence[Samples]) -> RouteStats:
    """Combine one route's samples from several processes.

    Medians, the added cost and the ratio are computed per process and the
    median across processes is kept, so one process with an unlucky memory
    layout cannot move the result; p99 and n use the pooled samples.
    """
    bare = [statistics.median(s.bare_ns) / 1000 for s in per_process]
    config = [statistics.median(s.config_ns) / 1000 for s in per_process]
    added = [c - b for b, c in zip(bare, config, strict=True)]
    ratios = [c / b for b, c in zip(bare, config, strict=True)]
    pooled = [ns for s in per_process for ns in s.config_ns]
    return RouteStats(
        route=per_process[0].route,
        bare_median_us=statistics.median(bare),
        config_median_us=statistics.median(config),
        config_p99_us=percentile(pooled, 0.99) / 1000,
        added_us=statistics.median(added),
        ratio=statistics.median(ratios),
        added_per_process_us=added,
        n_bare=sum(len(s.bare_ns) for s in per_process),
        n_config=len(pooled),
        notes=[s.note for s in per_process if s.note],
    )


def run_config(config: Config, seconds: float, processes: int) -> ConfigResult:
    """Measure a configuration in ``processes`` processes, ``seconds`` per route in all."""
    runs: list[list[Samples]] = []
    for _ in range(processes):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future = pool.submit(run_worker, config.name, seconds / processes)
            # A failing or crashing worker is reported in the table, not raised.
            error = future.exception()
            if error is not None:
                return ConfigResult(config.name, error=f"{type(error).__name__}: {error}")
            runs.append(future.result())
    routes = [aggregate(per_process) for per_process in zip(*runs, strict=True)]
    return ConfigResult(config.name, routes=routes)


def run_all(
    configs: Sequence[Config], seconds: float, processes: int
) -> dict[str, ConfigResult | None]:
    """Run each installed configuration; None marks one that is not installed."""
    results: dict[str, ConfigResult | None] = {}
    for config in configs:
        if not is_installed(config):
            results[config.name] = None
            log(f"{config.name}: not installed")
            continue
        started = time.perf_counter()
        log(f"{config.name}: running ...")
        results[config.name] = run_config(config, seconds, processes)
        log(f"{config.name}: done in {time.perf_counter() - started:.1f} s")
    return results


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays pure markdown."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def package_version(name: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_section(seconds: float, processes: int, *, quick: bool) -> list[str]:
    """Header, machine table and package versions."""
    mode = "quick" if quick else "full"
    flask_versions = f"{package_version('flask')} / {package_version('werkzeug')}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# flask-rampart: per-request overhead vs bare Flask",
        "",
        (
            f"Generated {stamp} by `bench/overhead.py` ({mode} mode: about "
            f"{seconds:g} s of interleaved measurement per configuration and route, "
            f"split over {processes} fresh processes, plus warm-up)."
        ),
        "",
        "## Machine",
        "",
        "| item | value |",
        "|---|---|",
        f"| CPU | {cpu_model()} |",
        f"| nproc | {usable_cpus()} |",
        f"| OS | {platform.system()} {platform.release()} ({platform.machine()}) |",
        f"| Python | {platform.python_implementation()} {platform.python_version()} |",
        f"| flask / werkzeug | {flask_versions} |",
        "",
        "## Configurations and package versions",
        "",
        "| configuration | setup | packages |",
        "|---|---|---|",
    ]
    for config in CONFIGS:
        versions = ", ".join(f"{name} {package_version(name)}" for name in config.packages)
        lines.append(f"| `{config.name}` | {config.description} | {versions} |")
    return [*lines, ""]


def fmt_us(value: float) -> str:
    """µs with one decimal below 1 ms, whole µs with separators above."""
    return f"{value:.1f}" if abs(value) < WHOLE_US_FROM else f"{value:,.0f}"


def fmt_added(value: float) -> str:
    """Signed µs."""
    sign = "+" if value >= 0 else "-"
    return sign + fmt_us(abs(value))


def fmt_ratio(value: float) -> str:
    """Ratio to bare Flask."""
    return f"{value:.2f}x" if value < WHOLE_RATIO_FROM else f"{value:,.0f}x"


def result_rows(route: str, results: dict[str, ConfigResult | None]) -> list[str]:
    """One table row per configuration for one route."""
    rows = []
    for config in CONFIGS:
        if config.name not in results:
            continue
        result = results[config.name]
        label = f"`{config.name}`"
        if result is None:
            rows.append(f"| {label} | not installed | | | | | | |")
            continue
        if result.error is not None:
            rows.append(f"| {label} | error: {result.error} | | | | | | |")
            continue
        found = next((r for r in result.routes if r.route == route), None)
        if found is None:
            rows.append(f"| {label} | no result | | | | | | |")
            continue
        rows.append(format_row(label, found))
    return rows


def format_row(label: str, stats: RouteStats) -> str:
    """Format a measured row: medians, p99, added µs, ratio, sample counts."""
    cells = [
        label,
        fmt_us(stats.bare_median_us),
        fmt_us(stats.config_median_us),
        fmt_us(stats.config_p99_us),
        f"**{fmt_added(stats.added_us)}**",
        fmt_ratio(stats.ratio),
        ", ".join(fmt_added(added) for added in stats.added_per_process_us),
        f"{stats.n_bare:,} / {stats.n_config:,}",
    ]
    return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| configuration | bare median | config median | config p99 | added "
    "| ratio | added, per process | n (bare / config) |"
)


def tables_section(routes: Sequence[str], results: dict[str, ConfigResult | None]) -> list[str]:
    """One markdown table per route."""
    lines = ["## Per-request cost (µs)", ""]
    for route in routes:
        lines += [
            f"### {route}",
            "",
            TABLE_HEADER,
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *result_rows(route, results),
            "",
        ]
    return lines


def target_section(results: dict[str, ConfigResult | None]) -> list[str]:
    """Check the targets: with detection on, rampart adds at most 10 µs to the GET with three
    parameters and 25 µs to the 10 KB JSON POST; without detection at most 5 µs; a global rate
    limit with the ban check adds at most 2 µs on top of `rampart-nodetect`."""
    lines = ["## Targets", ""]
    result = results.get("rampart")
    if result is not None and result.error is None:
        for route, target in zip(result.routes, DETECT_TARGET_US, strict=False):
            verdict = "met" if route.added_us <= target else "**missed**"
            lines.append(
                f"- `rampart` (detection on), {route.route}: {fmt_added(route.added_us)} µs "
                f"added (target ≤ {target:g} µs): {verdict}"
            )
    base_result = results.get("rampart-nodetect")
    if base_result is None or base_result.error is not None or not base_result.routes:
        return [*lines, "`rampart-nodetect` was not measured.", ""]
    for route in base_result.routes:
        verdict = "met" if route.added_us <= RAMPART_TARGET_US else "**missed**"
        lines.append(
            f"- `rampart-nodetect`, {route.route}: {fmt_added(route.added_us)} µs added "
            f"(target ≤ {RAMPART_TARGET_US:g} µs): {verdict}"
        )
    lines += over_target(results, "rampart-ratelimit", "rampart-nodetect", RATELIMIT_TARGET_US)
    lines += shared_targets(results)
    return [*lines, ""]


def over_target(
    results: dict[str, ConfigResult | None], name: str, base_name: str, target: float
) -> list[str]:
    """One line per route: what `name` adds over `base_name`, against `target` µs."""
    result, base_result = results.get(name), results.get(base_name)
    if result is None or result.error is not None or base_result is None or base_result.error:
        return []
    base = {route.route: route.added_us for route in base_result.routes}
    lines = []
    for route in result.routes:
        extra = route.added_us - base.get(route.route, 0.0)
        verdict = "met" if extra <= target else "**missed**"
        lines.append(
            f"- `{name}` over `{base_name}`, {route.route}: "
            f"{fmt_added(extra)} µs (target ≤ {target:g} µs): {verdict}"
        )
    return lines


def shared_targets(results: dict[str, ConfigResult | None]) -> list[str]:
    """`shm://` within 1 µs of `memory://`; Redis within one round trip + 10 µs of it."""
    memory = results.get("rampart-ratelimit")
    if memory is None or memory.error is not None:
        return []
    base = {route.route: route.added_us for route in memory.routes}
    lines = over_target(results, "rampart-shm", "rampart-ratelimit", SHM_TARGET_US)
    redis, ping = results.get("rampart-redis"), results.get("redis-ping")
    if redis is not None and redis.error is None and ping is not None and ping.error is None:
        trip = {route.route: route.added_us for route in ping.routes}
        for route in redis.routes:
            extra = route.added_us - base.get(route.route, 0.0) - trip.get(route.route, 0.0)
            verdict = "met" if extra <= REDIS_TARGET_US else "**missed**"
            lines.append(
                f"- `rampart-redis` over `rampart-ratelimit` plus one round trip (`redis-ping`, "
                f"{fmt_added(trip.get(route.route, 0.0))} µs), {route.route}: "
                f"{fmt_added(extra)} µs (target ≤ {REDIS_TARGET_US:g} µs): {verdict}"
            )
    return lines


def notes_section(results: dict[str, ConfigResult | None]) -> list[str]:
    """State notes some configurations report after each route, one per process."""
    notes = [
        f"- `{name}`, {CONFIG_BY_NAME[name].note_label} after {route.route}, "
        f"per process: {', '.join(route.notes)}"
        for name, result in results.items()
        if result is not None
        for route in result.routes
        if route.notes
    ]
    if not notes:
        return []
    return ["## Notes", "", *notes, ""]


HOW_TO_READ = """\
## How to read this

Each configuration was measured in PROCESSES freshly spawned Python processes. In
each, a bare Flask app and the configured app (same two routes) were called
directly through their WSGI callables (no server, no sockets, no HTTP parsing)
with a prebuilt environ carrying the same seven browser-like headers, in
alternating batches (bare first on even rounds, configuration first on odd ones)
after a warm-up, both getting the same wall time. Every response had to be 200,
and once per route the JSON body and the extension's marker headers were checked
(and, for `rampart`, that an sqlmap User-Agent gets 403), so a misconfigured app
cannot look fast. "added" is the configuration's median minus bare Flask's
median in the same process, and "ratio" their quotient; both are the median over
the processes, listed one by one under "added, per process" (so "added" can
differ by a few tenths from the difference of the two median columns, which are
medians over processes too). Processes that disagree by more than a µs or two
mean the machine was noisy: rerun before drawing conclusions about a µs-level
target. p99 is over all processes' requests and includes garbage-collection
pauses and machine noise. Absolute µs depend on the machine; the ratios and the
differences between configurations are the transferable part. Every
configuration is bounded by time, not by request count, so slow configurations
show a small n. flask-gatekeeper keeps every request timestamp per IP and
filters them all on each request, so its cost grows with the requests already
served in that process (see Notes).
"""


def render(
    results: dict[str, ConfigResult | None], seconds: float, processes: int, *, quick: bool
) -> str:
    """Render the whole markdown report."""
    routes = [route.label for route in build_routes()]
    lines = [
        *machine_section(seconds, processes, quick=quick),
        *tables_section(routes, results),
        *target_section(results),
        *notes_section(results),
        HOW_TO_READ.replace("PROCESSES", str(processes)),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="about 1 s per config and route")
    parser.add_argument(
        "--seconds", type=float, help="measurement time per config and route, all processes"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=PROCESSES,
        help=f"fresh processes per configuration (default {PROCESSES})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(CONFIG_BY_NAME),
        help="run only this configuration (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"also write the report here (a full run defaults to {DEFAULT_OUT})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print (and maybe save) the report."""
    args = parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    processes = max(1, args.processes)
    configs = [CONFIG_BY_NAME[name] for name in args.only] if args.only else list(CONFIGS)
    redis = None
    if any(c.needs_binary == "redis-server" for c in configs):
        redis = start_redis()
        if redis is not None:
            os.environ[REDIS_ENV] = f"redis://127.0.0.1:{redis[1]}/0"
    try:
        results = run_all(configs, seconds, processes)
    finally:
        if redis is not None:
            redis[0].kill()
            redis[0].wait()
    report = render(results, seconds, processes, quick=args.quick)
    sys.stdout.write(report)
    out = args.out or (None if args.quick or args.only else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        log(f"report written to {out}")
    failed = [name for name, result in results.items() if result and result.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
