"""flask-gatekeeper's API on Rampart's engine.

Switch by changing the import::

    from flask_rampart import GateKeeper     # was: from flask_gatekeeper import GateKeeper

    gk = GateKeeper(app, ip_header="X-Forwarded-For",
                    ban_rule=[3, 60, 600],       # 0.3; {"count", "window", "duration"} too
                    rate_limit_rule=[100, 60])   # or rate_limit_rules=[{"count", "window"}]

Both documented forms are accepted: 0.3's ``ban_rule=[count, window, duration]`` and
``rate_limit_rule=[count, window]``, and 1.0's dicts with ``rate_limit_rules`` and
``excluded_methods``. Limits are exact sliding windows, as in flask-gatekeeper; refused requests
are not counted; answers are 403 (ban) and 429 (limit) with ``Retry-After`` and a plain-text body
naming the rule. Where Rampart differs (see ``docs/differences.md``): memory is bounded, the check
cost does not grow with a client's history, ``report()`` never fails for an unseen IP,
``@bypass`` works on blueprint views, a ``standalone`` route still honours bans, and ``ip_header``
is read from its rightmost entry (the one your proxy wrote).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import Flask

from . import _native
from ._routes import RouteRegistry
from .config import SecurityConfig
from .errors import ConfigError
from .extension import BanControl, install

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "gatekeeper"

#: Engine field → the GateKeeper argument it comes from, for error messages.
_FIELD_NAMES = {
    "auto_ban_threshold": "ban_rule.count",
    "auto_ban_window": "ban_rule.window",
    "auto_ban_duration": "ban_rule.duration",
    "rate_limits": "rate_limit_rules",
    "exclude_methods": "excluded_methods",
    "client_ip_header": "ip_header",
}


def _rename(field: str, *, single_rule: bool, ours: str = "rate_limits") -> str:
    """An engine field name as the GateKeeper argument it came from. With ``single_rule``, the
    engine's first rule is the 0.3-style ``rate_limit_rule`` and the others shift down by one."""
    if field.startswith(ours + "["):
        index, _, rest = field[len(ours) + 1 :].partition("]")
        if index.isdigit():
            i = int(index)
            if single_rule:
                if i == 0:
                    return "rate_limit_rule" + rest
                i -= 1
            return f"rate_limit_rules[{i}]{rest}"
    for name, theirs in _FIELD_NAMES.items():
        if field == name or field.startswith((name + "[", name + ".")):
            return theirs + field[len(name) :]
    return field


def _rules(single: Any, many: Any, errors: list[tuple[str, str]], where: str = "") -> list[Any]:
    """Both spellings of the rate rules, as one list of engine limit specs."""
    rules: list[Any] = []
    if single is not None:
        if isinstance(single, (list, tuple, dict)):
            rules.append(_rule(single))
        else:
            errors.append((f"{where}rate_limit_rule", f"must be [count, window], not {single!r}"))
    if many is not None:
        if isinstance(many, (list, tuple)):
            rules.extend(_rule(r) for r in many)
        else:
            errors.append((f"{where}rate_limit_rules", f"must be a list of rules, not {many!r}"))
    return rules


def _rule(rule: Any) -> Any:
    if isinstance(rule, Mapping):
        return dict(rule)
    if isinstance(rule, tuple):
        return list(rule)
    return rule


def _ban_fields(ban_rule: Any, errors: list[tuple[str, str]]) -> dict[str, Any]:
    if ban_rule is None:
        return {"enable_ip_banning": False}
    if isinstance(ban_rule, Mapping):
        unknown = sorted(set(ban_rule) - {"count", "window", "duration"})
        for key in unknown:
            errors.append((f"ban_rule.{key}", "unknown key (expected count, window, duration)"))
        missing = [k for k in ("count", "window", "duration") if k not in ban_rule]
        for key in missing:
            errors.append((f"ban_rule.{key}", "is required"))
        count, window, duration = (ban_rule.get(k) for k in ("count", "window", "duration"))
    elif isinstance(ban_rule, (list, tuple)) and len(ban_rule) == 3:
        count, window, duration = ban_rule
    else:
        errors.append(
            ("ban_rule", f"must be [count, window, duration] or a dict of them, not {ban_rule!r}")
        )
        return {"enable_ip_banning": False}
    fields: dict[str, Any] = {"enable_ip_banning": True}
    for name, value in (
        ("auto_ban_threshold", count),
        ("auto_ban_window", window),
        ("auto_ban_duration", duration),
    ):
        if value is not None:
            fields[name] = value
    return fields


def _raise(errors: list[tuple[str, str]]) -> None:
    if errors:
        n = len(errors)
        lines = "".join(f"\n  - {f}: {m}" for f, m in errors)
        plural = "" if n == 1 else "s"
        raise ConfigError(f"{n} invalid GateKeeper argument{plural}:{lines}", errors)


class GateKeeper(BanControl):
    """flask-gatekeeper's ``GateKeeper``: report-driven bans and rolling rate limits."""

    _extension_key = EXTENSION_KEY

    def __init__(
        self,
        app: Flask | None = None,
        ip_header: str | None = None,
        ban_rule: Any = None,
        rate_limit_rule: Any = None,
        rate_limit_rules: Any = None,
        excluded_methods: Iterable[str] | None = None,
        *,
        clock: _native.ManualClock | None = None,
    ) -> None:
        errors: list[tuple[str, str]] = []
        fields: dict[str, Any] = {
            # GateKeeper does limits and bans only: no headers of its own, every path checked.
            "security_headers": {"enabled": False},
            "exclude_paths": [],
            "block_messages": "detailed",
            "rate_limit_headers": False,
            "rate_limit_algorithm": "sliding_window",
            # flask-gatekeeper has no attack detection; switching imports must not add blocks.
            "enable_penetration_detection": False,
        }
        fields.update(_ban_fields(ban_rule, errors))
        rules = _rules(rate_limit_rule, rate_limit_rules, errors)
        if rules:
            fields["rate_limits"] = rules
        if ip_header is not None:
            fields["client_ip_header"] = ip_header
        if excluded_methods is not None:
            if isinstance(excluded_methods, str):
                errors.append(("excluded_methods", "must be a list of methods, not a string"))
            else:
                fields["exclude_methods"] = list(excluded_methods)
        try:
            self._config = SecurityConfig(**fields)
        except ConfigError as e:
            single = rate_limit_rule is not None
            errors.extend((_rename(f, single_rule=single), m) for f, m in e.errors)
        _raise(errors)
        self._clock = clock
        self._routes = RouteRegistry()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        install(
            app,
            self._config,
            owner=self,
            key=EXTENSION_KEY,
            clock=self._clock,
            routes=self._routes,
            # GateKeeper takes its settings from its arguments only; RAMPART_* keys are Rampart's.
            use_app_config=False,
        )

    def specific(
        self,
        rate_limit_rule: Any = None,
        rate_limit_rules: Any = None,
        standalone: bool = False,
    ) -> Callable[[F], F]:
        """Adds rate limits to one route, on top of the global ones (or instead of them with
        ``standalone=True``)."""
        errors: list[tuple[str, str]] = []
        rules = _rules(rate_limit_rule, rate_limit_rules, errors)
        policy = {"limits": rules, "standalone": bool(standalone)}
        if not errors:
            # Validated now, so a bad rule fails at import time, not at the first request.
            try:
                _native.Engine("{}").set_routes(json.dumps({"route": policy}))
            except ConfigError as e:
                single = rate_limit_rule is not None
                errors.extend(
                    (_rename(f, single_rule=single, ours="route.limits"), m) for f, m in e.errors
                )
        _raise(errors)

        def decorate(view: F) -> F:
            self._routes.add(view, policy)
            return view

        return decorate

    def bypass(self, view: F) -> F:
        """Exempts a route from bans and rate limits."""
        self._routes.add(view, {"bypass": ["all"]})
        return view
