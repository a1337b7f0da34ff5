"""OpenTelemetry: Rampart's decisions on the span the application is already recording.

When ``opentelemetry-api`` is installed (the ``flask-rampart[opentelemetry]`` extra) and a span
is current and recording (an instrumented server or ``FlaskInstrumentor`` started it), the
request's decision sets ``rampart.*`` attributes on that span, and each event Rampart logs adds
a span event (``rampart.blocked``, ``rampart.passive``, ``rampart.detected``,
``rampart.ip_banned``, …). Rampart never starts a span of its own; without OpenTelemetry, or
with no span recording, this does nothing.

Only bounded values are recorded: the event's action, outcome, rule id, status and detection
categories. Never the client IP, the path or the message (which may quote the attack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import trace
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .extension import RampartState

#: Outcomes that say what happened to the request: these set the span's attributes.
_DECISIONS = frozenset({"blocked", "passive", "detected", "alert"})
#: Events beside the request's decision, named for their action: bans made or lifted (or that
#: passive mode would make), the store failing or coming back.
_SIDE_EVENTS = frozenset({"ip_banned", "ip_unbanned", "storage_degraded", "storage_recovered"})
#: Span event names by outcome; other outcomes give ``rampart.event``.
_EVENT_NAMES = {
    "blocked": "rampart.blocked",
    "passive": "rampart.passive",
    "noted": "rampart.noted",
    "detected": "rampart.detected",
    "alert": "rampart.alert",
}


def attach(state: RampartState) -> None:
    """Adds the span annotator to ``state.event_sinks`` when OpenTelemetry is importable."""
    if trace is None:
        return
    state.event_sinks.append(annotate_span)


def attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The ``rampart.*`` attributes of one event."""
    out: dict[str, Any] = {
        "rampart.action": str(event.get("event.action") or ""),
        "rampart.outcome": str(event.get("event.outcome") or ""),
        "rampart.rule": str(event.get("rule.id") or ""),
    }
    status = event.get("http.response.status_code")
    if isinstance(status, int):
        out["rampart.status"] = status
    findings = event.get("rampart.findings")
    if findings:
        out["rampart.categories"] = sorted({str(f.get("category")) for f in findings})
    return out


def annotate_span(event: dict[str, Any]) -> None:
    """The event sink: annotates the current span, if one is recording."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attrs = attributes(event)
    action = event.get("event.action")
    outcome = event.get("event.outcome")
    if action in _SIDE_EVENTS:
        span.add_event(f"rampart.{action}", attrs)
        return
    if outcome in _DECISIONS and event.get("http.request.method"):
        # The request's own decision; notes (a truncated inspection, a failed lookup) only add
        # span events.
        span.set_attributes(attrs)
    span.add_event(_EVENT_NAMES.get(outcome, "rampart.event"), attrs)  # type: ignore[arg-type]
