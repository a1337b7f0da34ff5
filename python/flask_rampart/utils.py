"""flaskapi-guard's ``utils`` helpers, on Rampart's engine."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flask import current_app, has_app_context

from . import _native
from .detection import BODY_KEY, ScanResult
from .extension import EXTENSION_KEY

if TYPE_CHECKING:
    from flask import Request

_default_engine: _native.Engine | None = None
_default_lock = threading.Lock()


def _engine() -> _native.Engine:
    """The current app's engine when it detects; otherwise one with the default detection
    settings (the helper works in apps that switched detection off, as the reference's does)."""
    if has_app_context():
        state = current_app.extensions.get(EXTENSION_KEY)
        if state is not None and state.engine.detection_enabled:
            return state.engine
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = _native.Engine("{}")
        return _default_engine


def scan_request(request: Request) -> ScanResult | None:
    """The full detection result for ``request`` (``None`` when its path is excluded)."""
    environ = request.environ
    if BODY_KEY not in environ:
        environ[BODY_KEY] = request.get_data(cache=True)
    result = _engine().detect(environ)
    return None if result is None else ScanResult.from_native(result)


def detect_penetration_attempt(request: Request) -> tuple[bool, str]:
    """Whether ``request`` looks like an attack, and why: ``(is_suspicious, trigger_info)``.

    ``trigger_info`` names the categories, locations, rule ids and redacted excerpts of the
    strongest findings (empty when nothing matched). Nothing is blocked or logged.
    """
    result = scan_request(request)
    if result is None:
        return False, ""
    return result.attack, result.summary
