"""Cost of detection on hostile inputs, 1 KB to 1 MB, through a real Flask app.

Run from the repository root (part of ``make bench``)::

    .venv/bin/python bench/detect_cost.py [--out FILE]

Each input is posted (or, for the long query, requested) to an app protected by
``Rampart(app)`` with default detection settings, and to the same app without Rampart,
through their WSGI callables; the table shows the median time Rampart adds per request and
the time per KB, so linear growth shows as a flat last column. The issue's bound is 5 ms
per request at 1 MB. A backtracking engine shows up here as a column that explodes.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from flask import Flask
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


def make_app(protected: bool) -> Flask:
    app = Flask("detect-cost")

    @app.route("/", methods=["GET", "POST"])
    def index() -> str:
        return "ok"

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


def environ_for(content_type: str, body: bytes) -> dict:  # type: ignore[type-arg]
    builder = EnvironBuilder(path="/", method="POST", data=body, content_type=content_type)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    return environ


def time_app(app: Flask, environ: dict, body: bytes, rounds: int) -> float:  # type: ignore[type-arg]
    samples = []
    for _ in range(rounds):
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        started = time.perf_counter()
        result = app.wsgi_app(env, lambda status, headers, exc_info=None: None)
        for _chunk in result:
            pass
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    bare, guarded = make_app(False), make_app(True)
    lines = [
        "# Detection cost on hostile inputs",
        "",
        "Rampart's added time per request (median), and per KB. Bound: "
        f"{BOUND_MS:g} ms per request at 1 MB.",
        "",
        "| input | " + " | ".join(f"{n // 1000} KB" for n in SIZES) + " | µs per KB at 1 MB |",
        "|---|" + "---:|" * (len(SIZES) + 1),
    ]
    worst = 0.0
    for name, (content_type, build) in INPUTS.items():
        cells = []
        per_kb = 0.0
        for n in SIZES:
            body = build(n)
            environ = environ_for(content_type, body)
            rounds = 30 if n <= 100_000 else 7
            added = time_app(guarded, environ, body, rounds) - time_app(bare, environ, body, rounds)
            added_ms = max(added, 0.0) * 1000
            cells.append(f"{added_ms:.3f} ms")
            if n == SIZES[-1]:
                worst = max(worst, added_ms)
                per_kb = added_ms * 1000 / (n / 1000)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {per_kb:.2f} |")
    long_query = "q=" + quote("a" * 100_000 + "' union select 1--", safe="")
    env = EnvironBuilder(path="/", query_string=long_query).get_environ()
    added = time_app(guarded, env, b"", 15) - time_app(bare, env, b"", 15)
    lines += [
        "",
        f"A 100 KB query parameter with the attack at its end: {max(added, 0) * 1000:.3f} ms added "
        "(the head and tail of an over-long value are inspected; the middle is counted).",
        "",
        f"Worst at 1 MB: {worst:.2f} ms ({'within' if worst <= BOUND_MS else '**over**'} the "
        f"{BOUND_MS:g} ms bound).",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
