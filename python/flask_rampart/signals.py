"""Blinker signals: what Rampart decides, for code that wants to react (alerting, metrics).

Each signal is sent with the Flask app as sender and one keyword argument, ``event``: the same
structured event the log line carries (ECS-style keys: ``event.action``, ``event.outcome``,
``source.ip``, ``http.request.method``, ``url.path``, ``http.response.status_code``,
``rule.id``, ``message``, and for detections ``rampart.findings``: rule, category, location
and a redacted excerpt each)::

    from flask_rampart import signals

    @signals.request_blocked.connect_via(app)
    def on_block(sender, event, **extra):
        print(event["rule.id"], event["source.ip"])

Signals fire whatever the log level, and cost nothing when nobody is connected.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace, Signal

_signals = Namespace()

#: Every request Rampart refused (any check: lists, limits, bans, detection, decorators).
request_blocked: Signal = _signals.signal("rampart.request-blocked")
#: A request refused by a rate limit (also sent as ``request_blocked``).
rate_limited: Signal = _signals.signal("rampart.rate-limited")
#: A client banned: automatically, by a monitor, or through ``ban()``.
ip_banned: Signal = _signals.signal("rampart.ip-banned")
#: A ban lifted through ``unban()``.
ip_unbanned: Signal = _signals.signal("rampart.ip-unbanned")
#: Penetration-attempt detection found an attack (blocked, or only logged).
attack_detected: Signal = _signals.signal("rampart.attack-detected")
#: The shared store is full or unreachable.
storage_degraded: Signal = _signals.signal("rampart.storage-degraded")
#: The shared store works again.
storage_recovered: Signal = _signals.signal("rampart.storage-recovered")

ALL: tuple[Signal, ...] = (
    request_blocked,
    rate_limited,
    ip_banned,
    ip_unbanned,
    attack_detected,
    storage_degraded,
    storage_recovered,
)

_BY_ACTION: dict[str, Signal] = {
    "rate_limited": rate_limited,
    "ip_unbanned": ip_unbanned,
    "penetration_attempt": attack_detected,
    "storage_degraded": storage_degraded,
    "storage_recovered": storage_recovered,
}


def connected() -> bool:
    """Whether any signal has a receiver (events are not dispatched otherwise)."""
    return any(s.receivers for s in ALL)


def dispatch(app: Any, event: dict[str, Any]) -> None:
    """Sends the signals an event stands for."""
    action = event.get("event.action")
    outcome = event.get("event.outcome")
    specific = _BY_ACTION.get(action or "")
    if specific is not None:
        specific.send(app, event=event)
    elif action == "ip_banned" and outcome == "blocked":
        # "Would ban" events of passive mode are not bans.
        ip_banned.send(app, event=event)
    if outcome == "blocked" and event.get("http.request.method"):
        request_blocked.send(app, event=event)
