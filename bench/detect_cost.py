"""Cost of detection on hostile inputs, 1 KB to 1 MB, through a real Flask app.

Run from the repository root (part of ``make bench``)::

    .venv/bin/python bench/detect_cost.py [--out FILE]

Each input is posted (or, for the long query, requested) to an app protected by
``Rampart(app)`` with default detection settings, and to the same app without Rampart,
through their WSGI callables; the table shows the median time Rampart adds per request and
the time per KB, so linear growth shows as a flat last column. The issue's bound is 5 ms
per request at 1 MB. A backtracking engine shows up here as a column that explodes.

A second table (issue 19) sends hostile 1 MB shapes (tag-, quote- and bracket-like floods, many
short values, one huge value; a 64 KB header, as WSGI servers cap headers well below 1 MB) to a
view that reads the request as an application would (``request.form``, ``request.get_json()``,
``request.get_data()``, the header), through both apps in the same run, and reports ms per
request for each and Rampart's ratio to bare Flask.

``--quick`` stops the size table at 100 KB, sends the hostile shapes at 100 KB and times fewer
rounds; ``--sizes`` and ``--hostile-size`` choose the sizes (bytes).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, request
from flask_rampart import Rampart, SecurityConfig
from werkzeug.test import EnvironBuilder

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "detect_cost.md"
SIZES = (1_000, 10_000, 100_000, 1_000_000)
BOUND_MS = 5.0

#: name → (content type, body builder for a size in bytes)
INPUTS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    '`"a"*N + "!"` (text)': ("text/plain", lambda n: b"a" * (n - 1) + b"!"),
    '`"<"*N` (text)': ("text/plain", lambda n: b"<" * n),
    '`"("*N + ")"*N` (text)': ("text/plain", lambda n: b"(" * (n // 2) + b")" * (n // 2)),
    '`"%"*N` (text)': ("text/plain", lambda n: b"%" * n),
    '`"a="*N` (form)': ("application/x-www-form-urlencoded", lambda n: b"a=" * (n // 2)),
    '`"["*N` (JSON)': ("application/json", lambda n: b"[" * n),
    'one JSON string of `"\' or 1=1 -- "*N`': (
        "application/json",
        lambda n: b'"' + b"' or 1=1 -- " * (n // 13) + b'"',
    ),
    # Prose values are matched in one batch, and the request is scanned again value by value
    # when the batch matches: the attack at the end makes every request take both passes.
    "JSON array of prose strings": (
        "application/json",
        lambda n: b'["' + b'", "'.join([b"a plain sentence of words"] * (n // 29)) + b'"]',
    ),
    "JSON array of prose strings, prose attack last": (
        "application/json",
        lambda n: (
            b'["'
            + b'", "'.join([b"a plain sentence of words"] * (n // 29))
            + b'", "1 union select password from users where id 1"]'
        ),
    ),
}


def _repeat(unit: bytes) -> Callable[[int], bytes]:
    return lambda n: unit * (n // len(unit))


def _numbered(template: bytes, sep: bytes, room: int, n: int) -> bytes:
    """``template % 0``, ``template % 1``, … joined by ``sep``, as many as fit in ``n`` bytes
    with ``room`` bytes left for the brackets around them."""
    out, size, i = [], room, 0
    while True:
        item = template % i
        if size + len(item) + len(sep) > n:
            break
        out.append(item)
        size += len(item) + len(sep)
        i += 1
    return sep.join(out)


def _many_pairs(n: int) -> bytes:
    """``k0=v&k1=v&...`` up to ``n`` bytes (100k pairs make about 1 MB)."""
    return _numbered(b"k%d=v", b"&", 0, n)


def _many_keys(n: int) -> bytes:
    """``{"k0":1,"k1":1,...}`` up to ``n`` bytes."""
    return b"{" + _numbered(b'"k%d":1', b",", 2, n) + b"}"


_PROSE = b"the quick brown fox jumps over the lazy dog "


def _huge_form_field(n: int) -> bytes:
    """One form field whose value looks like a query string: ``q=a%3D1%26b%3D2...``."""
    unit = quote("a=1&b=two words&c=", safe="").encode()
    return b"q=" + unit * ((n - 2) // len(unit))


def _huge_json_string(n: int) -> bytes:
    return b'{"q": "' + _PROSE * ((n - 9) // len(_PROSE)) + b'"}'


#: name → (content type, body builder for a size in bytes); posted to ``/read``.
HOSTILE: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "`<a>` repeated (text)": ("text/plain", _repeat(b"<a>")),
    "`<a>` repeated (XML)": ("text/xml", _repeat(b"<a>")),
    "`<a b=` repeated (text)": ("text/plain", _repeat(b"<a b=")),
    "`<a b=` repeated (XML)": ("text/xml", _repeat(b"<a b=")),
    "`<!--` repeated (text)": ("text/plain", _repeat(b"<!--")),
    "`<!--` repeated (XML)": ("text/xml", _repeat(b"<!--")),
    "`'\"` repeated (text)": ("text/plain", _repeat(b"'\"")),
    "`\\'` repeated (text)": ("text/plain", _repeat(b"\\'")),
    "`{[(` repeated (text)": ("text/plain", _repeat(b"{[(")),
    "`{{` repeated (text)": ("text/plain", _repeat(b"{{")),
    "many `k=v` pairs (form)": ("application/x-www-form-urlencoded", _many_pairs),
    "many short keys (JSON object)": ("application/json", _many_keys),
    "one query-string-like form field": ("application/x-www-form-urlencoded", _huge_form_field),
    "one JSON string of prose": ("application/json", _huge_json_string),
}
HEADER_SIZE = 65_536


def make_app(protected: bool) -> Flask:
    app = Flask("detect-cost")

    @app.route("/", methods=["GET", "POST"])
    def index() -> str:
        return "ok"

    @app.route("/read", methods=["GET", "POST"])
    def read() -> str:
        """Reads the request as an application would, so bare Flask pays for parsing too."""
        mimetype = request.mimetype
        if mimetype == "application/x-www-form-urlencoded":
            return str(len(request.form))
        if mimetype == "application/json":
            return str(len(request.get_json()))
        if request.method == "GET":
            return str(len(request.headers.get("X-Data", "")))
        return str(len(request.get_data()))

    if protected:
        Rampart(
            app,
            SecurityConfig(
                enable_rate_limiting=False,
                enable_ip_banning=False,
                log_suspicious_level=None,
                detection_max_body_size=2 * 1_048_576,
            ),
        )
    return app


def environ_for(content_type: str, body: bytes, path: str = "/") -> dict[str, Any]:
    builder = EnvironBuilder(path=path, method="POST", data=body, content_type=content_type)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    return environ


def time_app(app: Flask, environ: dict[str, Any], body: bytes, rounds: int) -> float:
    return time_app_status(app, environ, body, rounds)[0]


def time_app_status(
    app: Flask, environ: dict[str, Any], body: bytes, rounds: int
) -> tuple[float, str]:
    """The median seconds per request, and the status of the last answer."""
    samples = []
    status = ""
    for _ in range(rounds):
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        answered: list[str] = []
        started = time.perf_counter()
        result = app.wsgi_app(env, lambda s, h, e=None, _out=answered: _out.append(s))
        for _chunk in result:
            pass
        samples.append(time.perf_counter() - started)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        status = answered[-1].split()[0] if answered else "?"
    return statistics.median(samples), status


def hostile_rows(bare: Flask, guarded: Flask, size: int, rounds: int) -> list[str]:
    """The issue 19 table: each shape through bare Flask and Rampart, ms per request."""
    lines = [
        f"## Hostile shapes at {size // 1000} KB (headers at {HEADER_SIZE // 1024} KB)",
        "",
        "Posted to a view that reads the request as an application would (the form, the JSON, "
        "the raw body, the header), through bare Flask and through Rampart in the same run: "
        "median ms per request, and Rampart's time as a multiple of bare Flask's. The status is "
        "Rampart's answer (403: the flood itself was taken for an attack).",
        "",
        "| input | bytes | bare Flask | Rampart | ratio | added | status |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    cases: list[tuple[str, dict[str, Any], bytes]] = []
    for name, (content_type, build) in HOSTILE.items():
        body = build(size)
        cases.append((name, environ_for(content_type, body, "/read"), body))
    header = (_PROSE * (HEADER_SIZE // len(_PROSE) + 1))[:HEADER_SIZE].decode()
    env = EnvironBuilder(path="/read", headers={"X-Data": header}).get_environ()
    cases.append(("one header of prose", env, b""))
    for name, environ, body in cases:
        # Interleaved, alternating which app goes first, so drift and GC hit both alike.
        bare_samples, guarded_samples = [], []
        status = ""
        for i in range(rounds):
            order = ((bare, bare_samples), (guarded, guarded_samples))
            for app, samples in order if i % 2 == 0 else reversed(order):
                spent, answer = time_app_status(app, environ, body, 1)
                samples.append(spent)
                if app is guarded:
                    status = answer
        base, spent = statistics.median(bare_samples), statistics.median(guarded_samples)
        shown = len(body) or HEADER_SIZE
        lines.append(
            f"| {name} | {shown:,} | {base * 1000:.3f} ms | {spent * 1000:.3f} ms | "
            f"{spent / base if base else float('inf'):.1f}x | "
            f"{max(spent - base, 0.0) * 1000:.3f} ms | {status} |"
        )
    return lines


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="up to 100 KB, fewer rounds")
    parser.add_argument("--sizes", type=_sizes, help="comma-separated sizes for the first table")
    parser.add_argument("--hostile-size", type=int, help="body size of the hostile shapes")
    args = parser.parse_args(argv)
    sizes: tuple[int, ...] = args.sizes or (SIZES[:-1] if args.quick else SIZES)
    hostile_size: int = args.hostile_size or (100_000 if args.quick else 1_000_000)
    small_rounds, big_rounds = (10, 3) if args.quick else (30, 7)
    bare, guarded = make_app(False), make_app(True)
    largest = sizes[-1]
    lines = [
        "# Detection cost on hostile inputs",
        "",
        "Rampart's added time per request (median), and per KB. Bound: "
        f"{BOUND_MS:g} ms per request at 1 MB.",
        "",
        "| input | "
        + " | ".join(f"{n // 1000} KB" for n in sizes)
        + f" | µs per KB at {largest // 1000} KB |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    worst = 0.0
    for name, (content_type, build) in INPUTS.items():
        cells = []
        per_kb = 0.0
        for n in sizes:
            body = build(n)
            environ = environ_for(content_type, body)
            rounds = small_rounds if n <= 100_000 else big_rounds
            added = time_app(guarded, environ, body, rounds) - time_app(bare, environ, body, rounds)
            added_ms = max(added, 0.0) * 1000
            cells.append(f"{added_ms:.3f} ms")
            if n == largest:
                worst = max(worst, added_ms)
                per_kb = added_ms * 1000 / (n / 1000)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {per_kb:.2f} |")
    long_query = "q=" + quote("a" * 100_000 + "' union select 1--", safe="")
    env = EnvironBuilder(path="/", query_string=long_query).get_environ()
    rounds = small_rounds // 2
    added = time_app(guarded, env, b"", rounds) - time_app(bare, env, b"", rounds)
    lines += [
        "",
        f"A 100 KB query parameter with the attack at its end: {max(added, 0) * 1000:.3f} ms "
        "added.",
        "",
        f"Worst at {largest // 1000} KB: {worst:.2f} ms"
        + (
            f" ({'within' if worst <= BOUND_MS else '**over**'} the {BOUND_MS:g} ms bound)."
            if largest >= 1_000_000
            else "."
        ),
        "",
    ]
    lines += hostile_rows(bare, guarded, hostile_size, big_rounds)
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
