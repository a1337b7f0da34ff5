"""``SecurityConfig``: flaskapi-guard's configuration names, validated by the Rust engine."""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import _native

_DEFAULTS: dict[str, Any] = json.loads(_native.config_defaults())
FIELD_NAMES: tuple[str, ...] = tuple(_native.field_names())
CONFIG_PREFIX = "RAMPART_"


def _encode(value: Any) -> Any:
    """Makes values JSON cannot carry readable to the engine (and its error messages)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network,
    ):
        return str(value)
    if callable(value):
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return {"$callable": name}
    return {"$object": type(value).__name__}


def to_json(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), default=_encode)


class SecurityConfig:
    """Rampart's configuration. Every field name is one of flaskapi-guard's ``SecurityConfig``.

    Only the fields you pass are stored; the others read as their defaults. The whole config is
    validated at once by the engine, raising :class:`flask_rampart.ConfigError` listing every bad
    field. See ``docs/configuration.md`` for each field.
    """

    __slots__ = ("_fields",)

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_fields", dict(fields))
        _native.Engine(to_json(self._fields))

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        if name in _DEFAULTS:
            return copy.deepcopy(_DEFAULTS[name])
        raise AttributeError(f"SecurityConfig has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _DEFAULTS:
            raise AttributeError(f"SecurityConfig has no field {name!r}")
        self._fields[name] = value

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"SecurityConfig({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecurityConfig) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def explicit_fields(self) -> dict[str, Any]:
        """The fields that were set (not defaults)."""
        return dict(self._fields)

    def to_dict(self) -> dict[str, Any]:
        """Every field, explicit values over defaults."""
        out = copy.deepcopy(_DEFAULTS)
        out.update(self._fields)
        return out

    def merged_with(self, app_config: Mapping[str, Any]) -> SecurityConfig:
        """A new config: ``RAMPART_*`` keys of ``app_config`` under this one's explicit fields."""
        fields = dict(from_app_config(app_config.items()))
        fields.update(self._fields)
        return SecurityConfig(**fields)

    def to_json(self) -> str:
        return to_json(self._fields)


#: ``RAMPART_*`` keys that configure the extension object, not the engine (the dashboard).
EXTENSION_KEYS = frozenset({"dashboard", "dashboard_token", "dashboard_allow"})


def from_app_config(items: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, Any]]:
    """``(field, value)`` for each ``RAMPART_<FIELD>`` key; unknown names are left to validation."""
    for key, value in items:
        if isinstance(key, str) and key.startswith(CONFIG_PREFIX):
            name = key[len(CONFIG_PREFIX) :].lower()
            if name not in EXTENSION_KEYS:
                yield name, value
