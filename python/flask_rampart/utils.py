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
    """The full detection result for ``request`` (``None`` when its path is excluded).

    Never raises because of the request: a body that cannot be read (over Flask's
    ``MAX_CONTENT_LENGTH``, a client gone away, a broken stream) is left out and the rest of the
    request (path, query, cookies, headers) is inspected; an environ the engine cannot read
    at all gives ``None``.
    """
    environ = request.environ
    if BODY_KEY not in environ:
        try:
            body = request.get_data(cache=True)
        except Exception:  # the request's fault, not the caller's: no body
            environ = {**environ, BODY_KEY: b""}
        else:
            environ[BODY_KEY] = body
    try:
        result = _engine().detect(environ)
    except Exception:  # a malformed environ: nothing could be inspected
        return None
    return None if result is None else ScanResult.from_native(result)


def detect_penetration_attempt(request: Request) -> tuple[bool, str]:
    """Whether ``request`` looks like an attack, and why: ``(is_suspicious, trigger_info)``.

    ``trigger_info`` names the categories, locations, rule ids and redacted excerpts of the
    strongest findings (empty when nothing matched). Nothing is blocked or logged. It never
    raises because of the request: a body that cannot be read is left out (see
    :func:`scan_request`), and a request that cannot be inspected at all answers
    ``(False, "")``, as the reference does.
    """
    result = scan_request(request)
    if result is None:
        return False, ""
    return result.attack, result.summary
