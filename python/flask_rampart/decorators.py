"""Route-level policies: flaskapi-guard's ``SecurityDecorator``, on Rampart's engine.

::

    guard_deco = SecurityDecorator(config)
    rampart = Rampart(app, config=config)
    rampart.set_decorator_handler(guard_deco)

    @app.route("/api/limited")
    @guard_deco.rate_limit(requests=10, window=300)
    def limited(): ...

Each decorator records a policy for its view; the engine compiles every route's policy once, when
the app serves its first request, and finds it by endpoint in one lookup per request. Arguments
are checked when the decorator is applied: a bad one raises :class:`ConfigError` naming it
(``rate_limit.limits[0].limit: …``), at import time rather than at the first request. Decorators
stack in any order, on app and blueprint views. Decorator settings win over the global
configuration: ``rate_limit`` replaces the global limits on its route, ``suspicious_detection``
the global switch; ``bypass`` skips global checks. See ``docs/decorators.md``.
"""

from __future__ import annotations

import io
import json
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import current_app

from . import _native
from ._routes import Hook, Policy, RouteRegistry
from .config import SecurityConfig
from .errors import ConfigError

if TYPE_CHECKING:
    from flask import Request, Response

F = TypeVar("F", bound=Callable[..., Any])

#: Every decorator's registry, so an app can warn about one that was never connected.
_REGISTRIES: weakref.WeakSet[RouteRegistry] = weakref.WeakSet()


def all_registries() -> list[RouteRegistry]:
    return list(_REGISTRIES)


def _strings(value: Any, name: str) -> list[str]:
    """A list of strings from a list, tuple or set; a lone string is refused (it would read as
    one entry per character)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError.from_pairs([(name, f"must be a list of strings, not {value!r}")])
    return [str(v) for v in value]


class SecurityDecorator:
    """Per-route security policies, as flaskapi-guard's ``SecurityDecorator(config)``.

    ``config`` is the app's :class:`SecurityConfig`: decorators are checked against it (country
    decorators need its ``geo_ip_handler``). Connect it with ``rampart.set_decorator_handler``;
    ``rampart.decorators`` is one already connected.
    """

    def __init__(self, config: SecurityConfig | None = None) -> None:
        if config is not None and not isinstance(config, SecurityConfig):
            raise TypeError(f"config must be a SecurityConfig, not {type(config).__name__}")
        self.config = config or SecurityConfig()
        self.registry = RouteRegistry()
        _REGISTRIES.add(self.registry)
        self._checker: _native.Engine | None = None
        #: Set for ``rampart.decorators`` before ``init_app`` gave the config: a geolocation
        #: source is assumed here and checked when the app starts.
        self._config_pending = False

    def _check(self, name: str, policy: Policy) -> None:
        if self._checker is None:
            fields = json.loads(self.config.to_json())
            if self._config_pending and not fields.get("geo_ip_handler"):
                fields["geo_ip_handler"] = {"$object": "checked at start-up"}
            self._checker = _native.Engine(json.dumps(fields))
        self._checker.check_routes(json.dumps({name: policy}))

    def _apply(
        self, name: str, policy: Policy, hooks: list[Hook] | None = None
    ) -> Callable[[F], F]:
        self._check(name, policy)

        def decorate(view: F) -> F:
            self.registry.add(view, policy, hooks)
            return view

        return decorate

    # Access control

    def require_ip(
        self, whitelist: Iterable[str] | None = None, blacklist: Iterable[str] | None = None
    ) -> Callable[[F], F]:
        """Only clients in ``whitelist`` (when given), never those in ``blacklist``: 403."""
        policy: Policy = {}
        if whitelist:
            policy["whitelist"] = _strings(whitelist, "require_ip.whitelist")
        if blacklist:
            policy["blacklist"] = _strings(blacklist, "require_ip.blacklist")
        return self._apply("require_ip", policy)

    def block_countries(self, countries: Iterable[str]) -> Callable[[F], F]:
        """Refuses clients from these countries (ISO 3166 codes): 403."""
        codes = _strings(countries, "block_countries.countries")
        return self._apply("block_countries", {"blocked_countries": codes})

    def allow_countries(self, countries: Iterable[str]) -> Callable[[F], F]:
        """Serves only clients from these countries; an address with no known country is
        refused: 403."""
        codes = _strings(countries, "allow_countries.countries")
        return self._apply("allow_countries", {"allowed_countries": codes})

    def block_clouds(self, providers: Iterable[str] | None = None) -> Callable[[F], F]:
        """Refuses clients in these providers' published ranges (default: AWS, GCP, Azure): 403."""
        names = (
            ["AWS", "GCP", "Azure"]
            if providers is None
            else _strings(providers, "block_clouds.providers")
        )
        return self._apply("block_clouds", {"blocked_clouds": names})

    def bypass(self, checks: Iterable[str]) -> Callable[[F], F]:
        """Skips checks on this route: ``all``, ``https``, ``ip``, ``countries``, ``clouds``,
        ``user_agent``, ``ip_ban``, ``rate_limit``, ``penetration``. Emergency mode still
        applies."""
        return self._apply("bypass", {"bypass": _strings(checks, "bypass.checks")})

    # Rate limiting

    def rate_limit(self, requests: int, window: int = 60) -> Callable[[F], F]:
        """At most ``requests`` per client in ``window`` seconds on this route (instead of the
        global limits): 429 with ``Retry-After``."""
        limit = {"limit": requests, "window": window}
        return self._apply("rate_limit", {"limits": [limit], "standalone": True})

    def geo_rate_limit(self, limits: Mapping[str, Any], window: int = 60) -> Callable[[F], F]:
        """A limit by the client's country: ``{"US": 100, "default": 50}`` (per ``window``
        seconds) or ``{"US": (100, 60), "*": (50, 60)}``. The client's entry replaces the
        global limits on this route; a client with no entry (and no default) gets the global
        limits."""
        if not isinstance(limits, Mapping):
            raise ConfigError.from_pairs(
                [("geo_rate_limit.limits", f"must be a dict of country to limit, not {limits!r}")]
            )
        spec = {k: list(v) if isinstance(v, tuple) else v for k, v in limits.items()}
        policy = {"geo_limits": spec, "geo_window": window}
        return self._apply("geo_rate_limit", policy)

    # Authentication and headers

    def require_https(self) -> Callable[[F], F]:
        """Plain HTTP is redirected to HTTPS (301), whatever ``enforce_https`` says."""
        return self._apply("require_https", {"require_https": True})

    def require_auth(
        self,
        type: str = "bearer",
        *,
        tokens: Iterable[str] | None = None,
        verifier: Callable[[str], bool] | None = None,
    ) -> Callable[[F], F]:
        """An ``Authorization`` header of this scheme: 401 with ``WWW-Authenticate`` when it is
        missing. ``tokens`` lists the accepted credentials (compared in constant time);
        ``verifier(credential)`` decides in Python. With neither, any credential of the scheme
        passes: the view must check it."""
        auth: dict[str, Any] = {"type": type}
        if tokens is not None:
            auth["accepted"] = _strings(tokens, "require_auth.tokens")
        hooks = None
        if verifier is not None:
            hooks = [_verify("Authorization", verifier, scheme=type, api_key=False)]
        return self._apply("require_auth", {"auth": auth}, hooks)

    def api_key_auth(
        self,
        header_name: str = "X-API-Key",
        *,
        keys: Iterable[str] | None = None,
        verifier: Callable[[str], bool] | None = None,
    ) -> Callable[[F], F]:
        """An API key in ``header_name``: 401 when missing, or not in ``keys`` / refused by
        ``verifier(key)``."""
        api_key: dict[str, Any] = {"header": header_name}
        if keys is not None:
            api_key["accepted"] = _strings(keys, "api_key_auth.keys")
        hooks = None
        if verifier is not None:
            hooks = [_verify(header_name, verifier, scheme=None, api_key=True)]
        return self._apply("api_key_auth", {"api_key": api_key}, hooks)

    def require_headers(self, headers: Mapping[str, str]) -> Callable[[F], F]:
        """Headers that must be present (value ``"required"``) or equal a value: 400 naming
        the header."""
        if not isinstance(headers, Mapping):
            raise ConfigError.from_pairs(
                [("require_headers.headers", f"must be a dict of header to value, not {headers!r}")]
            )
        return self._apply("require_headers", {"required_headers": dict(headers)})

    # Content

    def block_user_agents(self, patterns: Iterable[str]) -> Callable[[F], F]:
        """User agents matching these patterns (case-insensitive regular expressions), on top
        of ``blocked_user_agents``: 403."""
        agents = _strings(patterns, "block_user_agents.patterns")
        return self._apply("block_user_agents", {"blocked_user_agents": agents})

    def content_type_filter(self, allowed_types: Iterable[str]) -> Callable[[F], F]:
        """Bodies must be of these media types (``application/json``, ``text/*``): 415.
        Requests without a body pass."""
        types = _strings(allowed_types, "content_type_filter.allowed_types")
        return self._apply("content_type_filter", {"content_types": types})

    def max_request_size(self, size_bytes: int) -> Callable[[F], F]:
        """Bodies larger than ``size_bytes``: 413 (by ``Content-Length``, and while reading a
        body sent without one)."""
        policy = {"max_request_size": size_bytes}
        return self._apply("max_request_size", policy, [_limit_body(size_bytes)])

    def require_referrer(self, allowed_domains: Iterable[str]) -> Callable[[F], F]:
        """A ``Referer`` from one of these domains or their subdomains: 403."""
        domains = _strings(allowed_domains, "require_referrer.allowed_domains")
        return self._apply("require_referrer", {"referrers": domains})

    # Behaviour

    def usage_monitor(
        self, max_calls: int, window: int = 3600, action: str = "ban"
    ) -> Callable[[F], F]:
        """More than ``max_calls`` calls by one client in ``window`` seconds: ``action``
        (``log``, ``alert`` or ``ban``). The call that crosses the line is served."""
        monitor = {"type": "usage", "max_calls": max_calls, "window": window, "action": action}
        return self._apply("usage_monitor", {"monitors": [monitor]})

    def return_monitor(
        self, pattern: str, max_occurrences: int, window: int = 86400, action: str = "ban"
    ) -> Callable[[F], F]:
        """More than ``max_occurrences`` responses to one client matching ``pattern`` in
        ``window`` seconds: ``action``. Patterns: ``status:404``, ``json:a.b==v``
        (``a[]`` for any element), ``regex:…``, or text the body contains."""
        monitor = {
            "type": "return",
            "pattern": pattern,
            "max_occurrences": max_occurrences,
            "window": window,
            "action": action,
        }
        return self._apply("return_monitor", {"monitors": [monitor]})

    def suspicious_frequency(
        self, max_frequency: float, window: int = 300, action: str = "ban"
    ) -> Callable[[F], F]:
        """More than ``max_frequency`` calls per second by one client, averaged over ``window``
        seconds: ``action``."""
        monitor = {
            "type": "frequency",
            "max_frequency": max_frequency,
            "window": window,
            "action": action,
        }
        return self._apply("suspicious_frequency", {"monitors": [monitor]})

    # Advanced

    def time_window(
        self, start_time: str, end_time: str, timezone: str = "UTC"
    ) -> Callable[[F], F]:
        """Served only from ``start_time`` to ``end_time`` (``HH:MM``, wall clock of the IANA
        ``timezone``; an end before the start runs past midnight): 403 otherwise."""
        window = {"start": start_time, "end": end_time, "timezone": timezone}
        return self._apply("time_window", {"time_window": window})

    def honeypot_detection(self, trap_fields: Iterable[str]) -> Callable[[F], F]:
        """A POST/PUT/PATCH form or JSON body that fills one of these hidden fields: 403, and a
        strike toward the automatic ban."""
        fields = _strings(trap_fields, "honeypot_detection.trap_fields")
        return self._apply("honeypot_detection", {"honeypot_fields": fields})

    def suspicious_detection(self, enabled: bool = True) -> Callable[[F], F]:
        """Attack detection on this route, whatever ``enable_penetration_detection`` says."""
        return self._apply("suspicious_detection", {"detection": bool(enabled)})

    def custom_validation(
        self, validator: Callable[[Request], Response | None]
    ) -> Callable[[F], F]:
        """``validator(request)`` runs after Rampart's checks; a response it returns is sent."""
        if not callable(validator):
            raise ConfigError.from_pairs(
                [("custom_validation.validator", f"must be callable, not {validator!r}")]
            )
        return self._apply("custom_validation", {}, [validator])


def _verify(
    header: str, verifier: Callable[[str], bool], *, scheme: str | None, api_key: bool
) -> Hook:
    """A hook running ``verifier`` on a credential the engine found present."""
    where = "api_key_auth" if api_key else "require_auth"
    if not callable(verifier):
        raise ConfigError.from_pairs([(f"{where}.verifier", f"must be callable, not {verifier!r}")])
    if api_key:
        body, action, rule = "Invalid API key", "api_key_invalid", "route.api_key"
    else:
        body, action, rule = "Invalid credentials", "auth_failed", "route.auth"
    # The same WWW-Authenticate challenge as the engine's refusals.
    challenge = None
    if not api_key and scheme:
        basic = scheme.lower() == "basic"
        challenge = 'Basic realm="restricted", charset="UTF-8"' if basic else scheme.capitalize()

    def verify_credential(req: Request) -> Response | None:
        value = (req.headers.get(header) or "").strip()
        if scheme is not None:
            value = value.split(" ", 1)[1].strip() if " " in value else ""
        if verifier(value):
            return None
        response = _refuse(401, body, action, rule, f"{header} refused by the verifier")
        if response is not None and challenge:
            response.headers["WWW-Authenticate"] = challenge
        return response

    verify_credential.rampart_builtin = True  # type: ignore[attr-defined]
    return verify_credential


def _limit_body(size: int) -> Hook:
    """A body sent without ``Content-Length`` (chunked) is read here, up to one byte past
    ``size``: over it, 413; otherwise the view reads the same bytes. (The engine has already
    refused a ``Content-Length`` over the limit.)"""

    def limit_body(req: Request) -> Response | None:
        environ = req.environ
        if environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated"):
            # A declared length was checked; an unterminated stream reaches the view empty.
            return None
        stream = environ["wsgi.input"]
        chunks: list[bytes] = []
        got = 0
        while got <= size:
            chunk = stream.read(size + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > size:
            message = f"a body sent without Content-Length is over this route's {size} bytes"
            return _refuse(
                413,
                "Request too large",
                "request_too_large",
                "route.max_request_size",
                message,
            )
        data = b"".join(chunks)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        return None

    limit_body.rampart_builtin = True  # type: ignore[attr-defined]
    return limit_body


def _refuse(status: int, body: str, action: str, rule: str, message: str) -> Response | None:
    """A response of Rampart's (security headers, ``custom_error_responses``) for a hook's
    refusal, logged like the engine's; in passive mode only the log line."""
    from .extension import EXTENSION_KEY

    state = current_app.extensions[EXTENSION_KEY]
    state.log_refusal(action, rule, status, message)
    return None if state.passive_mode else state.error_response(status, body)
