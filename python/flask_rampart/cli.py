"""``flask rampart …``: see and steer Rampart from the command line.

Registered through the ``flask.commands`` entry point, so ``flask --app myapp rampart status``
works in any project that has Rampart installed. Every command runs against the app's own engine
and store: with ``shm://`` or Redis it sees (and changes) what every worker sees; with the
default in-process memory store it sees only the CLI's own process, and says so.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from .extension import EXTENSION_KEY, LimitState, RampartState, storage_backend

#: Field names whose values are secrets.
_SECRET = re.compile(r"token|password|secret|api_key|apikey", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
LOCATIONS = ("query", "body", "header", "path", "cookie", "json", "form")


def _state() -> RampartState:
    for key in (EXTENSION_KEY, "gatekeeper"):
        state = current_app.extensions.get(key)
        if state is not None:
            return state
    raise click.ClickException(
        f"Rampart is not initialised on app {current_app.name!r}: call Rampart(app, config=...) "
        "in the app (or its factory) that --app names"
    )


def mask(name: str, value: Any) -> Any:
    """A config value fit to print: secrets replaced, passwords in URIs hidden."""
    if value is None or value == "" or value == [] or value == {}:
        return value
    if _SECRET.search(name):
        return "********"
    if isinstance(value, str):
        return _URI_PASSWORD.sub(r"\1********@", value)
    if callable(value):
        return f"<{getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, dict):
        return {str(k): mask(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask(name, v) for v in value]
    if isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


@click.group("rampart")
def rampart_cli() -> None:
    """Rampart: status, configuration, bans, rate limits and detection."""


@rampart_cli.command("status")
@with_appcontext
def status() -> None:
    """Version, store, enabled checks, bans and tracked clients."""
    from . import __version__

    state = _state()
    engine = state.engine
    kind, uri = storage_backend(state.config)
    uri = mask("storage_uri", uri)
    stats, problem = engine.store_health()
    health = "ok" if problem is None else f"DEGRADED: {problem}"
    config = state.config
    checks = {
        "emergency_mode": bool(config.emergency_mode),
        "passive_mode": bool(config.passive_mode),
        "enforce_https": bool(config.enforce_https),
        "blacklist": len(config.blacklist or []),
        "whitelist": None if config.whitelist is None else len(config.whitelist),
        "blocked_user_agents": len(config.blocked_user_agents or []),
        "blocked_countries": len(config.blocked_countries or []),
        "block_cloud_providers": sorted(config.block_cloud_providers or []),
        "rate_limiting": bool(config.enable_rate_limiting),
        "ip_banning": bool(config.enable_ip_banning),
        "penetration_detection": bool(engine.detection_enabled),
        "cors": bool(config.enable_cors),
    }
    click.echo(f"flask-rampart {__version__} on app {current_app.name!r}")
    click.echo(f"store: {kind} ({uri}), {health}")
    if kind == "memory":
        click.echo(
            "  note: the memory store is per process; this command sees its own process only, "
            "not the server's workers (use shm:// or Redis to share)"
        )
    click.echo(f"bans active: {stats.get('bans', 0)}")
    click.echo(f"tracked keys: {stats.get('keys', 0)}")
    click.echo("checks:")
    for name, value in checks.items():
        click.echo(f"  {name}: {value}")


@rampart_cli.command("config")
@with_appcontext
def show_config() -> None:
    """The effective configuration (fields, RAMPART_* keys and defaults), secrets masked."""
    fields = _state().config.to_dict()
    click.echo(json.dumps({k: mask(k, v) for k, v in sorted(fields.items())}, indent=2))


@rampart_cli.group("bans")
def bans() -> None:
    """List, add and remove bans."""


@bans.command("list")
@with_appcontext
def bans_list() -> None:
    """Every ban in force, soonest to end first."""
    state = _state()
    now = state.engine.now()
    found = state.engine.bans()
    if not found:
        click.echo("no bans")
        return
    for ip, until, reason in found:
        click.echo(f"{ip}\t{max(0, round(until - now))}s left\t{reason}")


@bans.command("add")
@click.argument("ip")
@click.option(
    "--for", "seconds", type=float, default=None, help="Duration (default: auto_ban_duration)."
)
@click.option("--reason", default="banned from the CLI", show_default=True)
@with_appcontext
def bans_add(ip: str, seconds: float | None, reason: str) -> None:
    """Bans IP."""
    state = _state()
    try:
        until = state.extension.ban(ip, seconds, reason)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"banned {ip} for {max(1, round(until - state.engine.now()))}s")


@bans.command("remove")
@click.argument("ip")
@with_appcontext
def bans_remove(ip: str) -> None:
    """Lifts the ban of IP."""
    try:
        lifted = _state().extension.unban(ip)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"unbanned {ip}" if lifted else f"{ip} was not banned")


@rampart_cli.group("limits")
def limits() -> None:
    """Rate-limit counters: show and reset."""


@limits.command("reset")
@click.argument("ip")
@with_appcontext
def limits_reset(ip: str) -> None:
    """Forgets IP's rate-limit counters (its ban, if any, stays)."""
    try:
        _state().extension.reset_limits(ip)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"rate-limit counters of {ip} reset")


@limits.command("show")
@click.argument("ip")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per limit, in a list.")
@with_appcontext
def limits_show(ip: str, as_json: bool) -> None:
    """Where IP stands against each rate limit; counts nothing."""
    state = _state()
    try:
        found = state.extension.limits(ip)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    note = None
    if storage_backend(state.config)[0] == "memory":
        note = (
            "note: the memory store is per process; these are this command's own counters, "
            "not the server's workers' (use shm:// or Redis to share)"
        )
    if as_json:
        click.echo(json.dumps([limit._asdict() for limit in found], indent=2))
        if note:
            click.echo(note, err=True)
        return
    if note:
        click.echo(note)
    if not found:
        click.echo(f"no rate limit applies to {ip}")
        return
    for line in _limits_table(found):
        click.echo(line.rstrip())


def _limits_table(found: list[LimitState]) -> list[str]:
    """``limits show`` as aligned columns."""

    def endpoint(name: str | None) -> str:
        return "*" if name is None else name or "(no route)"

    rows = [("LIMIT", "ENDPOINT", "KEY", "USED", "REMAINING", "WINDOW", "ALGORITHM", "RESETS IN")]
    for s in found:
        rows.append(
            (
                s.name,
                endpoint(s.endpoint),
                s.key,
                f"{s.used}/{s.limit}",
                str(s.remaining),
                f"{s.window}s",
                s.algorithm,
                f"{math.ceil(s.reset)}s" if s.reset > 0 else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def _explain(result: dict[str, Any]) -> list[str]:
    verdict = "ATTACK" if result["attack"] else "clean"
    lines = [f"{verdict}: score {result['score']} (threshold {result['threshold']})"]
    for f in result["findings"]:
        lines.append(
            f"  rule {f['rule']} [{f['category']}] +{f['score']} at {f['location']}: "
            f"{f['description']} — {f['excerpt']!r}"
        )
    return lines


@rampart_cli.command("check")
@click.argument("payload", required=False)
@click.option("--location", type=click.Choice(LOCATIONS), default="query", show_default=True)
@click.option("--name", default="", help="The parameter or header name the value comes with.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON lines: {"payload": ..., "location": ..., "name": ...} each.',
)
@with_appcontext
def check(payload: str | None, location: str, name: str, path: Path | None) -> None:
    """Runs the detector on PAYLOAD (or each line of --file) and explains the verdict."""
    from .utils import _engine

    engine = _engine()
    if (payload is None) == (path is None):
        raise click.UsageError("give a PAYLOAD or --file, not both")
    if payload is not None:
        for line in _explain(engine.scan_text(payload, location, name)):
            click.echo(line)
        return
    attacks = total = 0
    assert path is not None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            text = item["payload"]
            where = item.get("location", location)
            if where not in LOCATIONS:
                raise ValueError(f"location {where!r} is not one of {', '.join(LOCATIONS)}")
            result = engine.scan_text(str(text), where, str(item.get("name", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise click.ClickException(f"{path}:{number}: {e}") from None
        total += 1
        attacks += bool(result["attack"])
        click.echo(f"{number}: " + _explain(result)[0])
    click.echo(f"{attacks} of {total} flagged as attacks")
