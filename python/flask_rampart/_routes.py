"""Route policies: what decorators attach to view functions, collected once per app.

A decorator records its policy against the view function itself, so it works in any order with
``@app.route``, on blueprint views and on ``MethodView.as_view`` functions. When the app serves
its first request, the middleware walks ``app.view_functions`` (endpoint → function) and hands
the engine one policy per endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

Policy = dict[str, Any]


class RouteRegistry:
    """Policies keyed by view function, merged when several decorators apply."""

    def __init__(self) -> None:
        self._policies: dict[Callable[..., Any], Policy] = {}
        self._lock = threading.Lock()

    def add(self, view: Callable[..., Any], policy: Policy) -> None:
        with self._lock:
            current = self._policies.setdefault(view, {})
            for key, value in policy.items():
                if isinstance(value, list):
                    current.setdefault(key, [])
                    current[key] = current[key] + [v for v in value if v not in current[key]]
                elif isinstance(value, bool):
                    current[key] = current.get(key, False) or value
                else:
                    current[key] = value

    def collect(self, view_functions: Mapping[str, Callable[..., Any]]) -> dict[str, Policy]:
        """Endpoint → policy for every registered view the app routes to."""
        out: dict[str, Policy] = {}
        with self._lock:
            for endpoint, view in view_functions.items():
                policy = self._policies.get(view)
                if policy is None:
                    # Wrapped views (functools.wraps) carry the original in __wrapped__.
                    inner = getattr(view, "__wrapped__", None)
                    policy = self._policies.get(inner) if inner is not None else None
                if policy:
                    out[endpoint] = dict(policy)
        return out

    def __bool__(self) -> bool:
        return bool(self._policies)
