"""Route policies: what decorators attach to view functions, collected once per app.

A decorator records its policy against the view function itself, so it works in any order with
``@app.route``, on blueprint views and on ``MethodView.as_view`` functions. When the app serves
its first request, the middleware walks ``app.view_functions`` (endpoint → function) and hands
the engine one policy per endpoint. Checks that need Python (a credential ``verifier``,
``custom_validation``) are kept as hooks, run after the engine's checks pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Request, Response

Policy = dict[str, Any]
#: A Python-side route check: ``None`` to go on, or the response to send.
Hook = Callable[["Request"], "Response | None"]


def merge(current: Policy, policy: Policy) -> None:
    """Adds ``policy`` to ``current``: lists are joined, dicts merged, flags OR-ed, the rest
    replaced (the decorator nearest the function is applied first, so the outer one wins)."""
    for key, value in policy.items():
        if isinstance(value, list):
            old = current.get(key, [])
            current[key] = old + [v for v in value if v not in old]
        elif isinstance(value, dict) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        elif isinstance(value, bool) and key not in ("detection",):
            current[key] = current.get(key, False) or value
        else:
            current[key] = value


class RouteRegistry:
    """Policies and hooks keyed by view function; other registries (a ``SecurityDecorator``
    connected with ``set_decorator_handler``) are included when collecting."""

    def __init__(self) -> None:
        self._policies: dict[Callable[..., Any], Policy] = {}
        self._hooks: dict[Callable[..., Any], list[Hook]] = {}
        self._included: list[RouteRegistry] = []
        self._lock = threading.Lock()

    def add(
        self, view: Callable[..., Any], policy: Policy, hooks: list[Hook] | None = None
    ) -> None:
        with self._lock:
            merge(self._policies.setdefault(view, {}), policy)
            if hooks:
                self._hooks.setdefault(view, []).extend(hooks)

    def include(self, other: RouteRegistry) -> None:
        with self._lock:
            if other is not self and other not in self._included:
                self._included.append(other)

    def _registries(self) -> list[RouteRegistry]:
        return [self, *self._included]

    def included_in(self, other: RouteRegistry) -> bool:
        """Whether ``other`` collects this registry's policies."""
        return self in other._registries()

    @staticmethod
    def _find(table: Mapping[Callable[..., Any], Any], view: Callable[..., Any]) -> Any:
        found = table.get(view)
        if found is None:
            # Wrapped views (functools.wraps) carry the original in __wrapped__.
            inner = getattr(view, "__wrapped__", None)
            found = table.get(inner) if inner is not None else None
        return found

    def collect(
        self, view_functions: Mapping[str, Callable[..., Any]]
    ) -> tuple[dict[str, Policy], dict[str, list[Hook]]]:
        """Endpoint → policy, and endpoint → hooks, for every view the app routes to."""
        policies: dict[str, Policy] = {}
        hooks: dict[str, list[Hook]] = {}
        for registry in self._registries():
            with registry._lock:
                for endpoint, view in view_functions.items():
                    policy = self._find(registry._policies, view)
                    found = self._find(registry._hooks, view)
                    if policy or found:
                        merge(policies.setdefault(endpoint, {}), policy or {})
                    if found:
                        hooks.setdefault(endpoint, []).extend(found)
        return policies, hooks

    def __bool__(self) -> bool:
        return any(r._policies or r._hooks for r in self._registries())
