"""The Flask extension: wires the engine into the WSGI stack and Flask's hooks."""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Flask, current_app, has_request_context, request

from . import _native, geo, signals, tracing
from ._routes import Hook, RouteRegistry
from .cloud import CloudRanges
from .config import SecurityConfig
from .detection import DetectorControl
from .errors import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Response

    from .dashboard import Network
    from .decorators import SecurityDecorator

EXTENSION_KEY = "rampart"
NONCE_KEY = "rampart.csp_nonce"
#: Where the route stage leaves its response headers (rate-limit state) for the middleware.
ROUTE_HEADERS_KEY = "rampart.route_headers"
LOGGER_NAME = "flask_rampart"
#: Bytes of a response body that ``return_monitor`` patterns look at.
RETURN_BODY_LIMIT = 1 << 20

logger = logging.getLogger(LOGGER_NAME)


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message and the event's keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "rampart", {}) or {})
        return json.dumps(data)


_TEXT_FORMAT = "[%(name)s] %(asctime)s - %(levelname)s - %(message)s"


def _formatter(as_json: bool) -> logging.Formatter:
    return _JsonFormatter() if as_json else logging.Formatter(_TEXT_FORMAT)


def _ensure_console(as_json: bool) -> None:
    """Console output is always on (as in the reference), unless logging is already set up."""
    base = logging.getLogger(LOGGER_NAME)
    if base.level == logging.NOTSET:
        base.setLevel(logging.DEBUG)
    if base.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter(as_json))
    base.addHandler(handler)


def _level(name: str | None) -> int | None:
    return None if name is None else logging.getLevelName(name)


@dataclass
class RampartState:
    """What Rampart keeps per app, in ``app.extensions["rampart"]``."""

    extension: Rampart
    config: SecurityConfig
    engine: _native.Engine
    logger: logging.Logger
    suspicious_level: int | None
    request_level: int | None
    passive_mode: bool
    fail_secure: bool
    handlers: list[logging.Handler] = field(default_factory=list)
    #: Route policies from decorators, handed to the engine at the first request.
    routes: RouteRegistry = field(default_factory=RouteRegistry)
    #: Whether bans and limits run in a ``before_request`` hook (set at the first request).
    route_mode: bool = False
    #: Python-side route checks (credential verifiers, ``custom_validation``) by endpoint.
    route_hooks: dict[str, list[Hook]] = field(default_factory=dict)
    #: The ``geo_ip_handler`` in use (or the ``IPInfoManager`` built from ``ipinfo_token``).
    geo_handler: Any = None
    #: The blocked cloud providers' ranges (``None`` when no provider is blocked).
    clouds: CloudRanges | None = None
    #: The app, weakly (the signals' sender; the state lives in the app's extensions).
    app_ref: Callable[[], Flask | None] = lambda: None
    #: In-process consumers of every event (the dashboard's recent events, metrics, tracing),
    #: called after the signals, whatever the log level.
    event_sinks: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    #: Called after each engine inspection with its duration (seconds) and answer; ``None``
    #: leaves the hot path untimed.
    request_observer: Callable[[float, Any], None] | None = None

    def emit(self, level: int, event: dict[str, Any], msg: str, *args: object) -> None:
        """Logs one record on ``flask_rampart`` and into this app's own file handlers."""
        record = self.logger.makeRecord(
            self.logger.name, level, __file__, 0, msg, args, None, extra={"rampart": event}
        )
        if self.logger.isEnabledFor(level):
            self.logger.handle(record)
        for handler in self.handlers:
            if level >= handler.level:
                handler.handle(record)

    def log_refusal(self, action: str, rule: str, status: int | None, message: str) -> None:
        """Logs (and signals) a refusal decided in Python for the current request: outcome
        ``blocked`` (counted in ``stats``), or ``passive`` in passive mode."""
        if not self.passive_mode:
            self.engine.count_refusal(action)
        self.log_events(
            [
                {
                    "event.action": action,
                    "event.outcome": "passive" if self.passive_mode else "blocked",
                    "source.ip": self.engine.client_ip(request.environ),
                    "http.request.method": request.method,
                    "url.path": request.path,
                    "http.response.status_code": status,
                    "rule.id": rule,
                    "message": message,
                }
            ]
        )

    def error_response(self, status: int, body: str | None = None) -> Response:
        """A response of Rampart's own for the current request (security and CORS headers,
        ``custom_error_responses``)."""
        return _as_response(self.engine.error_response(status, request.environ, body))

    def log_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Sends each event's signals, then logs it (at ``log_suspicious_level``)."""
        if signals.connected() or self.event_sinks:
            events = list(events)
        if signals.connected():
            app = self.app_ref()
            for event in events:
                signals.dispatch(app, event)
        if self.event_sinks:
            for sink in self.event_sinks:
                for event in events:
                    try:
                        sink(event)
                    except Exception:
                        # A broken consumer must not turn a decision into a 500.
                        self.logger.exception("event consumer %r failed", sink)
        level = self.suspicious_level
        if level is None:
            return
        for event in events:
            if event["event.outcome"] == "alert":
                # A behavioural monitor with action="alert".
                self.emit(
                    max(level, logging.ERROR),
                    event,
                    "alert %s: %s",
                    event["event.action"],
                    event["message"],
                )
                continue
            if event["event.action"] in ("storage_degraded", "storage_recovered"):
                # The shared store is full, unreachable or back: the operator must hear of it.
                self.emit(max(level, logging.WARNING), event, "storage: %s", event["message"])
                continue
            if event["event.outcome"] == "noted":
                # Nothing was blocked: a note (a value too long to inspect whole).
                self.emit(
                    min(level, logging.INFO),
                    event,
                    "noted %s: %s (%s %s from %s)",
                    event["event.action"],
                    event["message"],
                    event["http.request.method"],
                    event["url.path"],
                    event["source.ip"],
                )
                continue
            if not event.get("http.request.method"):
                # Made outside a request (a ban through the API): no method or path to show.
                self.emit(
                    level,
                    event,
                    "%s: %s (rule %s)",
                    event["event.action"],
                    event["message"],
                    event["rule.id"],
                )
                continue
            self.emit(
                level,
                event,
                "%s %s: %s (%s %s from %s, rule %s)",
                event["event.outcome"],
                event["event.action"],
                event["message"],
                event["http.request.method"],
                event["url.path"],
                event["source.ip"],
                event["rule.id"],
            )


def _merge(
    headers: list[tuple[str, str]], extra: list[tuple[str, str]], names: frozenset[str]
) -> None:
    """Appends Rampart's headers to a response's, leaving those the view set alone.

    ``names`` holds the lower-case names in ``extra`` that a view's header overrides (all but
    repeatable ones such as ``Vary``). When the response has none of them, the usual case, the
    whole prebuilt list is appended at once.
    """
    for name, _ in headers:
        if name.lower() in names:
            break
    else:
        headers.extend(extra)
        return
    present = {name.lower() for name, _ in headers}
    for item in extra:
        lower = item[0].lower()
        if lower not in present or lower not in names:
            headers.append(item)


_LIMIT_NAMES = frozenset(
    {
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "ratelimit-policy",
        "ratelimit",
    }
)


def _route_stage(state: RampartState) -> Callable[[], Response | None]:
    """The ``before_request`` hook of route mode: bans and rate limits, endpoint known."""
    inspect_route = state.engine.inspect_route

    hooks = state.route_hooks

    def rampart_route_stage() -> Response | None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        environ = req.environ
        endpoint = req.endpoint
        decision = inspect_route(environ, endpoint)
        if decision is not None:
            events = decision.events
            if events:
                state.log_events(events)
            if decision.respond:
                return _as_response(decision)
            environ[ROUTE_HEADERS_KEY] = decision.headers
        if hooks and endpoint in hooks:
            return _run_hooks(state, hooks[endpoint])
        return None

    return rampart_route_stage


def _as_response(decision: _native.Decision) -> Response:
    """A Flask response for a decision that responds."""
    return current_app.response_class(
        decision.body, status=decision.status, headers=decision.headers or []
    )


def _run_hooks(state: RampartState, hooks: list[Hook]) -> Response | None:
    """The route's Python checks, Rampart's own (credential verifiers) first, then
    ``custom_validation``; the first response wins (logged only in passive mode). A check that
    raises is logged; with ``fail_secure`` the request gets 500, otherwise it goes on."""
    if state.engine.is_skipped(request.method, request.path):
        return None
    for hook in hooks:
        try:
            response = hook(request)
        except Exception:
            name = getattr(hook, "__qualname__", "route check")
            state.logger.exception("route check %s raised", name)
            if not state.fail_secure:
                continue
            return state.error_response(500)
        if response is None:
            continue
        if not getattr(hook, "rampart_builtin", False):
            # A user's custom_validation: log it as the engine logs its blocks.
            name = getattr(hook, "__qualname__", "validator")
            state.log_refusal(
                "custom_validation",
                "route.custom_validation",
                getattr(response, "status_code", None),
                f"{name} returned a response",
            )
            if state.passive_mode:
                continue
        return response
    return None


def _return_monitor(
    state: RampartState, monitors: dict[str, bool]
) -> Callable[[Response], Response]:
    """The ``after_request`` hook of ``return_monitor``: counts matching responses."""
    observe = state.engine.observe_response

    def rampart_return_monitor(response: Response) -> Response:
        needs_body = monitors.get(request.endpoint or "")
        if needs_body is None:
            return response
        body = b""
        if needs_body and not response.is_streamed:
            body = response.get_data()[:RETURN_BODY_LIMIT]
        events = observe(request.environ, request.endpoint, response.status_code, body)
        if events:
            state.log_events(events)
        return response

    return rampart_return_monitor


class RampartMiddleware:
    """The WSGI wrapper around ``app.wsgi_app``: the hot path of every request.

    The engine answers ``None`` (add the static headers), a prebuilt ``(headers, names)`` pair
    (add those: the common CORS answers), or a ``Decision`` (events to log, a nonce, or a
    response of Rampart's own).
    """

    __slots__ = (
        "_app",
        "_flask",
        "_inspect",
        "_lock",
        "_ready",
        "_state",
        "_static",
    )

    def __init__(self, wsgi_app: WSGIApplication, flask_app: Flask, state: RampartState) -> None:
        self._app = wsgi_app
        self._flask = flask_app
        self._state = state
        self._inspect = state.engine.inspect
        self._static = state.engine.static_headers
        self._ready = False
        self._lock = threading.Lock()

    def _finalize(self) -> None:
        """At the first request, when the routes are final: hands the engine the route
        policies, and moves bans and limits into a ``before_request`` hook if they need the
        endpoint."""
        with self._lock:
            if self._ready:
                return
            state = self._state
            # A multipart body over the inspection limit is read whole, up to what the app
            # accepts at all.
            cap = self._flask.config.get("MAX_CONTENT_LENGTH")
            state.engine.set_spool_cap(cap if isinstance(cap, int) and cap >= 0 else None)
            routes, hooks = state.routes.collect(self._flask.view_functions)
            if routes:
                try:
                    state.engine.set_routes(json.dumps(routes))
                except ConfigError:
                    state.logger.exception("route policies: the decorators' settings are invalid")
                    raise
            # Route-only cloud providers: loaded before any hook is added, so a bad source
            # fails this request (and the next) without leaving half-installed hooks.
            clouds = state.engine.route_clouds()
            if clouds:
                _load_route_clouds(state, clouds)
            for endpoint, found in hooks.items():
                # Rampart's own checks first, then the user's, each in stacking order.
                found.sort(key=lambda h: not getattr(h, "rampart_builtin", False))
                state.route_hooks[endpoint] = found
            _warn_unconnected(state, self._flask)
            if state.engine.route_mode or hooks:
                state.route_mode = True
                funcs = self._flask.before_request_funcs.setdefault(None, [])
                funcs.insert(0, _route_stage(state))
            monitors = state.engine.response_monitors()
            if monitors:
                self._flask.after_request_funcs.setdefault(None, []).insert(
                    0, _return_monitor(state, monitors)
                )
            self._ready = True

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self._ready:
            self._finalize()
        # With detection on, the engine also reads the body (up to the limit) and puts back a
        # `wsgi.input` that replays it.
        observer = self._state.request_observer
        if observer is None:
            decision = self._inspect(environ)
        else:
            started = perf_counter()
            decision = self._inspect(environ)
            observer(perf_counter() - started, decision)
        if self._state.request_level is not None:
            self._log_request(environ)
        if decision is None:
            extra, names = self._static
        elif decision.__class__ is tuple:
            if len(decision) == 3:
                extra, names, more = decision
                return self._call_app(environ, start_response, extra, names, more)
            extra, names = decision
        else:
            return self._decided(environ, start_response, decision)
        return self._call_app(environ, start_response, extra, names)

    def _call_app(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        extra: list[tuple[str, str]],
        names: frozenset[str],
        more: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        """Calls the application, adding ``extra`` (and ``more``: rate-limit headers) to its
        response headers, and in route mode the headers the route stage left in the environ."""
        if self._state.route_mode:

            def add_route_headers(
                status: str, headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Callable[[bytes], object]:
                route_headers = environ.get(ROUTE_HEADERS_KEY)
                if route_headers:
                    # The route stage adds only rate-limit headers.
                    _merge(headers, route_headers, _LIMIT_NAMES)
                _merge(headers, extra, names)
                return start_response(status, headers, exc_info)

            return self._app(environ, add_route_headers)
        if more:

            def add_all_headers(
                status: str, headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Callable[[bytes], object]:
                for name, _ in headers:
                    lower = name.lower()
                    if lower in names or lower in _LIMIT_NAMES:
                        _merge(headers, extra, names)
                        _merge(headers, more, _LIMIT_NAMES)
                        break
                else:
                    headers += extra
                    headers += more
                return start_response(status, headers, exc_info)

            return self._app(environ, add_all_headers)
        if not extra:
            return self._app(environ, start_response)

        def add_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            _merge(headers, extra, names)
            return start_response(status, headers, exc_info)

        return self._app(environ, add_headers)

    def _decided(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        decision: _native.Decision,
    ) -> Iterable[bytes]:
        events = decision.events
        if events:
            self._state.log_events(events)
        if decision.respond:
            return self.respond(environ, start_response, decision)
        nonce = decision.nonce
        if nonce is not None:
            environ[NONCE_KEY] = nonce
        extra, names = decision.merged_headers(self._state.engine)
        return self._call_app(environ, start_response, extra, names)

    def respond(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        decision: _native.Decision,
    ) -> Iterable[bytes]:
        """Sends Rampart's own response, through ``custom_response_modifier`` when configured."""
        modifier = self._state.config.custom_response_modifier
        if modifier is None:
            start_response(decision.status_line, decision.headers or [])
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [decision.body]
        with self._flask.request_context(environ):
            response = self._flask.response_class(
                decision.body, status=decision.status, headers=decision.headers or []
            )
            response = modifier(response)
            return response(environ, start_response)

    def _log_request(self, environ: WSGIEnvironment) -> None:
        level = self._state.request_level
        if level is None:
            return
        ip = self._state.engine.client_ip(environ)
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        event = {
            "event.action": "request",
            "event.outcome": "seen",
            "source.ip": ip,
            "http.request.method": method,
            "url.path": path,
        }
        self._state.emit(level, event, "request %s %s from %s", method, path, ip)


class Ban(NamedTuple):
    """A ban in force: the client, when it ends (seconds since the epoch) and why."""

    ip: str
    until: float
    reason: str


class LimitState(NamedTuple):
    """Where one rate limit stands for a client (:meth:`BanControl.limits`), read without
    counting a request.

    ``name`` is the limit's as events and rate-limit headers give it: ``global`` (``rate_limit``,
    or the first of ``rate_limits`` without it), ``global-2``… (the ``rate_limits`` in order),
    ``path:/login``, ``route:<endpoint>#1``, ``route:<endpoint>:geo:US``,
    ``monitor:<endpoint>:usage_monitor#0``. ``endpoint`` is the Flask endpoint the count is
    about (``None``: every endpoint; ``""``: requests no route matched). ``key`` says whose
    requests count together (``ip``, ``ip_endpoint``; ``endpoint`` and ``global`` are shared by
    every client). ``used`` requests of ``limit`` per ``window`` seconds (``algorithm``), and
    ``remaining`` now; ``reset``: seconds until the quota grows again (0 when nothing is used);
    ``retry_after``: when nothing remains, seconds until a request would pass.
    """

    name: str
    endpoint: str | None
    key: str
    limit: int
    window: int
    algorithm: str
    used: int
    remaining: int
    reset: float
    retry_after: float


def install(
    app: Flask,
    config: SecurityConfig,
    *,
    owner: Any,
    key: str = EXTENSION_KEY,
    clock: _native.ManualClock | None = None,
    routes: RouteRegistry | None = None,
    use_app_config: bool = True,
) -> RampartState:
    """Builds the engine for ``app`` and wires it in: the WSGI wrapper, hooks, logging.
    ``RAMPART_*`` keys of ``app.config`` apply unless ``use_app_config`` is false."""
    if key in app.extensions:
        raise RuntimeError(f"{type(owner).__name__} is already initialised on app {app.name!r}")
    effective = config.merged_with(app.config) if use_app_config else config
    engine = _native.Engine(effective.to_json(), clock, open_store=True)
    settings = engine.settings()
    state = RampartState(
        extension=owner,
        config=effective,
        engine=engine,
        logger=logger,
        suspicious_level=_level(settings["log_suspicious_level"]),
        request_level=_level(settings["log_request_level"]),
        passive_mode=settings["passive_mode"],
        fail_secure=settings["fail_secure"],
        routes=routes if routes is not None else RouteRegistry(),
    )
    state.app_ref = weakref.ref(app)
    _setup_logging(state, settings)
    tracing.attach(state)
    _setup_sources(state, settings)
    app.extensions[key] = state
    app.wsgi_app = RampartMiddleware(app.wsgi_app, app, state)  # type: ignore[method-assign]
    app.jinja_env.globals.setdefault("csp_nonce", csp_nonce)
    if effective.custom_request_check is not None:
        app.before_request_funcs.setdefault(None, []).insert(0, _run_custom_check)
    if effective.custom_response_modifier is not None:
        app.after_request(_run_modifier)
    for warning in engine.warnings:
        state.logger.warning("configuration: %s", warning)
    return state


def _setup_sources(state: RampartState, settings: dict[str, Any]) -> None:
    """Connects the geolocation handler and loads the blocked cloud providers' ranges; one
    ``ConfigError`` names every source that cannot be used."""
    errors: list[tuple[str, str]] = []
    handler = state.config.geo_ip_handler
    if handler is None and settings["ipinfo_token"]:
        handler = geo.IPInfoManager(settings["ipinfo_token"], settings["ipinfo_db_path"])
    if handler is not None:
        if not callable(getattr(handler, "get_country", None)):
            errors.append(
                (
                    "geo_ip_handler",
                    f"a {type(handler).__name__} has no get_country(ip) method",
                )
            )
        else:
            try:
                geo.attach(state.engine, handler)
            except (OSError, ValueError) as e:
                errors.append(("geo_ip_handler", str(e)))
            state.geo_handler = handler
    if settings["block_cloud_providers"]:
        clouds = CloudRanges(state.engine, settings)
        errors.extend(clouds.start())
        state.clouds = clouds
    if errors:
        raise ConfigError.from_pairs(errors)


def _warn_unconnected(state: RampartState, app: Flask) -> None:
    """A ``SecurityDecorator`` whose decorators are on this app's views but that was never
    connected (``set_decorator_handler``) would protect nothing: say so."""
    from .decorators import all_registries

    for registry in all_registries():
        if registry.included_in(state.routes):
            continue
        policies, hooks = registry.collect(app.view_functions)
        if policies or hooks:
            names = ", ".join(sorted(set(policies) | set(hooks)))
            state.logger.warning(
                "route decorators on %s belong to a SecurityDecorator that is not connected to "
                "this app, so they do nothing: call rampart.set_decorator_handler(decorator) "
                "before the first request",
                names,
            )


def storage_backend(config: SecurityConfig) -> tuple[str, str]:
    """The store's kind (``memory``, ``shm``, ``redis``, …) and URI."""
    uri = str(config.storage_uri or config.redis_url or "memory://")
    return uri.split(":", 1)[0], uri


def live_stats(state: RampartState, bans_active: int) -> dict[str, Any]:
    """The engine's live counters with the version, the store's backend and ``bans_active``
    (counted by the caller, which may already hold the bans)."""
    from . import __version__

    out = state.engine.live_stats()
    out["version"] = __version__
    out["bans_active"] = bans_active
    out["store"]["backend"] = storage_backend(state.config)[0]
    return out


def _load_route_clouds(state: RampartState, providers: list[str]) -> None:
    """Loads the ranges of providers that only route policies block (``block_clouds``)."""
    settings = state.engine.settings()
    have = set(state.clouds.providers) if state.clouds is not None else set()
    if set(providers) <= have:
        return
    settings["block_cloud_providers"] = sorted(have | set(providers))
    clouds = CloudRanges(state.engine, settings)
    errors = clouds.start()
    state.clouds = clouds
    if errors:
        raise ConfigError.from_pairs(errors)


def _setup_logging(state: RampartState, settings: dict[str, Any]) -> None:
    as_json = bool(settings["log_json"])
    _ensure_console(as_json)
    path = settings["custom_log_file"]
    if path:
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(_formatter(as_json))
        state.handlers.append(handler)


class BanControl:
    """Bans, reports and counters of the current app's engine (``current_app``)."""

    _extension_key: str = EXTENSION_KEY

    def _state(self) -> RampartState:
        try:
            return current_app.extensions[self._extension_key]
        except RuntimeError:
            raise RuntimeError(
                f"{type(self).__name__} needs an application context: call it inside a "
                "request, or within `with app.app_context():`"
            ) from None
        except KeyError:
            raise RuntimeError(
                f"{type(self).__name__} is not initialised on app {current_app.name!r}"
            ) from None

    def _client(self, state: RampartState, ip: str | None, what: str) -> str:
        if ip is not None:
            return str(ip)
        if not has_request_context():
            raise RuntimeError(f"{what}() without an IP needs a request context")
        client = state.engine.client_ip(request.environ)
        if client is None:
            raise RuntimeError(f"{what}(): the client IP of this request is unknown")
        return client

    def report(self, ip: str | None = None) -> bool:
        """Counts a suspicious event from ``ip`` (default: the current request's client)
        toward the automatic ban. Returns whether this report caused a ban."""
        state = self._state()
        _count, banned_until, event = state.engine.report(self._client(state, ip, "report"))
        if event is not None:
            state.log_events([event])
        return banned_until is not None

    def ban(self, ip: str, seconds: float | None = None, reason: str = "") -> float:
        """Bans ``ip`` for ``seconds`` (default ``auto_ban_duration``); returns when it ends."""
        state = self._state()
        until, event = state.engine.ban(str(ip), seconds, reason)
        state.log_events([event])
        return until

    def unban(self, ip: str) -> bool:
        """Lifts the ban of ``ip``; whether there was one."""
        state = self._state()
        lifted = state.engine.unban(str(ip))
        if lifted:
            state.log_events(
                [
                    {
                        "event.action": "ip_unbanned",
                        "event.outcome": "success",
                        "source.ip": str(ip),
                        "http.request.method": "",
                        "url.path": "",
                        "http.response.status_code": None,
                        "rule.id": "ip_ban",
                        "message": f"IP address {ip} unbanned",
                    }
                ]
            )
        return lifted

    def is_banned(self, ip: str) -> bool:
        return self._state().engine.ban_info(str(ip)) is not None

    def bans(self) -> list[Ban]:
        """Every ban in force, soonest to end first."""
        return [Ban(*b) for b in self._state().engine.bans()]

    @property
    def stats(self) -> dict[str, Any]:
        """Live counters of the current app in this process, read now: ``version``,
        ``requests`` seen, ``blocked`` by event action (and ``blocked_total``), ``detections``
        by category, ``bans_active`` (from the store, so every worker's with ``shm://`` or
        Redis), ``inspection`` (engine calls timed, ``p50_us``/``p99_us``) and ``store``
        (backend, round trips and errors). The role flaskapi-guard's ``agent_stats`` plays."""
        state = self._state()
        return live_stats(state, len(state.engine.bans()))

    def reset_limits(self, ip: str) -> None:
        """Forgets the rate-limit counters of ``ip``."""
        self._state().engine.reset_limits(str(ip))

    def limits(self, ip: str) -> list[LimitState]:
        """Where ``ip`` stands against every rate limit that can apply to it (global, per path,
        per route, the routes' monitors), read from the store without counting a request.
        ``ValueError`` for an IP that does not parse; ``RuntimeError`` when Redis is
        unreachable (its shared counters are unknown)."""
        state = self._state()
        views = current_app.view_functions
        routes, _hooks = state.routes.collect(views)
        found = state.engine.limits_of(str(ip), list(views), json.dumps(routes) if routes else None)
        return [LimitState(**limit) for limit in found]

    def reset(self) -> None:
        """Forgets every counter and ban."""
        self._state().engine.reset_state()


class Rampart(BanControl):
    """The Rampart Flask extension.

    ``Rampart(app, config=SecurityConfig(...))`` or, with an app factory,
    ``rampart = Rampart()`` then ``rampart.init_app(app, config)``. Per-app state lives in
    ``app.extensions["rampart"]``; the extension object itself keeps no app. ``clock`` (a
    :class:`flask_rampart.testing.ManualClock`) replaces the wall clock, for tests.

    ``dashboard="/_rampart"`` mounts the operator's dashboard at that path (off by default),
    open to ``dashboard_allow`` (IPs and CIDR ranges; loopback by default) with
    ``dashboard_token``. Each can also come from ``app.config`` (``RAMPART_DASHBOARD``,
    ``RAMPART_DASHBOARD_TOKEN``, ``RAMPART_DASHBOARD_ALLOW``); see ``docs/operating.md``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        config: SecurityConfig | None = None,
        *,
        clock: _native.ManualClock | None = None,
        dashboard: str | None = None,
        dashboard_token: str | None = None,
        dashboard_allow: Sequence[str] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._routes = RouteRegistry()
        self._decorator: SecurityDecorator | None = None
        self._dashboard = (dashboard, dashboard_token, dashboard_allow)
        if app is not None:
            self.init_app(app, config)

    def init_app(self, app: Flask, config: SecurityConfig | None = None) -> None:
        base = config if config is not None else self._config
        if base is not None and not isinstance(base, SecurityConfig):
            raise TypeError(f"config must be a SecurityConfig, not {type(base).__name__}")
        path, token, allow = self._dashboard
        path = path if path is not None else app.config.get("RAMPART_DASHBOARD")
        settings: tuple[str, str, list[Network]] | None = None
        if path is not None:
            from .dashboard import LOOPBACK, check_settings

            token = token if token is not None else app.config.get("RAMPART_DASHBOARD_TOKEN")
            if allow is None:
                allow = app.config.get("RAMPART_DASHBOARD_ALLOW", LOOPBACK)
            # Before anything is installed: a bad dashboard setting leaves the app untouched.
            settings = check_settings(path, token, allow)
        state = install(
            app, base or SecurityConfig(), owner=self, clock=self._clock, routes=self._routes
        )
        if settings is not None:
            from .dashboard import mount

            mount(app, state, *settings)

    def set_decorator_handler(self, decorator: SecurityDecorator) -> None:
        """Connects a :class:`SecurityDecorator`: its route policies apply to the apps this
        extension protects (call it before the first request)."""
        from .decorators import SecurityDecorator

        if not isinstance(decorator, SecurityDecorator):
            raise TypeError(
                f"set_decorator_handler takes a SecurityDecorator, not {type(decorator).__name__}"
            )
        self._routes.include(decorator.registry)
        self._decorator = decorator

    @property
    def decorators(self) -> SecurityDecorator:
        """A :class:`SecurityDecorator` already connected to this extension::

        secure = rampart.decorators

        @app.post("/login")
        @secure.rate_limit(requests=5, window=60)
        def login(): ...
        """
        if self._decorator is None:
            from .decorators import SecurityDecorator

            deco = SecurityDecorator(self._config)
            deco.registry = self._routes
            # Without a config yet (app factory), country decorators are checked at start-up.
            deco._config_pending = self._config is None
            self._decorator = deco
        return self._decorator

    @property
    def detector(self) -> DetectorControl:
        """Explain values and add or remove detection rules at runtime (current app)."""
        return DetectorControl(self._extension_key)

    def refresh_cloud_ip_ranges(self) -> dict[str, int]:
        """Downloads the blocked providers' ranges now (files are read again), whatever the
        caches hold; ``{provider: ranges in use}``. A provider whose download fails keeps its
        ranges."""
        clouds = self._state().clouds
        return clouds.refresh(force=True) if clouds is not None else {}

    def cloud_ranges_status(self) -> dict[str, dict[str, Any]]:
        """For each blocked provider: ranges in use, where they came from, when, last error."""
        clouds = self._state().clouds
        return clouds.status() if clouds is not None else {}

    def country_of(self, ip: str) -> str | None:
        """The country of ``ip`` as the country rules see it (``None``: not placed)."""
        return self._state().engine.country_of(str(ip))

    @staticmethod
    def client_ip() -> str | None:
        """The current request's client IP, after trusted-proxy resolution."""
        state: RampartState = current_app.extensions[EXTENSION_KEY]
        return state.engine.client_ip(request.environ)


def _state() -> RampartState:
    return current_app.extensions[EXTENSION_KEY]


def _run_custom_check() -> Response | None:
    state = _state()
    if state.engine.is_excluded(request.path):
        return None
    check = state.config.custom_request_check
    try:
        response = check(request)
    except Exception:
        state.logger.exception("custom_request_check raised")
        if not state.fail_secure:
            return None
        return state.error_response(500)
    if response is None:
        return None
    state.log_refusal(
        "custom_request_check",
        "custom_request_check",
        getattr(response, "status_code", None),
        "custom_request_check returned a response",
    )
    return None if state.passive_mode else response


def _run_modifier(response: Response) -> Response:
    modifier = _state().config.custom_response_modifier
    return modifier(response)


def csp_nonce() -> str:
    """The CSP nonce of the current request (empty when the policy has none)."""
    return str(request.environ.get(NONCE_KEY, "")) if request else ""
