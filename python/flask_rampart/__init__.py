"""Rampart: a fast security layer for Flask, with its engine in Rust.

Public API::

    from flask_rampart import Rampart, SecurityConfig

    Rampart(app, config=SecurityConfig(blacklist=["203.0.113.0/24"]))

``FlaskAPIGuard`` is an alias of :class:`Rampart` for users of flaskapi-guard, and
:class:`GateKeeper` offers flask-gatekeeper's API on the same engine.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import signals
from .config import SecurityConfig
from .decorators import SecurityDecorator
from .errors import ConfigError
from .extension import Ban, LimitState, Rampart, RampartState, csp_nonce
from .gatekeeper import GateKeeper
from .geo import GeoIPHandler, IPInfoManager, MaxMindDB

try:
    __version__: str = version("flask-rampart")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    from ._native import VERSION as __version__

FlaskAPIGuard = Rampart

__all__ = [
    "Ban",
    "ConfigError",
    "FlaskAPIGuard",
    "GateKeeper",
    "GeoIPHandler",
    "IPInfoManager",
    "LimitState",
    "MaxMindDB",
    "Rampart",
    "RampartState",
    "SecurityConfig",
    "SecurityDecorator",
    "__version__",
    "csp_nonce",
    "signals",
]
