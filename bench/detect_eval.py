"""Detection quality through a real Flask app: true-positive rate per attack category and
false-positive rate per benign category, overall and by location.

Run from the repository root (``make detect-eval``)::

    .venv/bin/python bench/detect_eval.py [CORPUS.jsonl ...] [--misses] [--out FILE]

Each case of a labelled JSONL corpus (``label``, ``category``, ``location``, ``field``,
``payload``; see ``../shared/corpus/README.md``) becomes one HTTP request through Flask's
test client to an app protected by ``Rampart(app)`` with default detection settings (rate
limiting and banning off, so cases do not affect each other). A case counts as detected
when the answer is 403. Default corpora: ``../shared/corpus/dev.jsonl`` when present, and
the project's own ``tests/detection/regression.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

from flask import Flask
from flask_rampart import Rampart, SecurityConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPORA = [
    ROOT.parent / "shared" / "corpus" / "dev.jsonl",
    ROOT / "tests" / "detection" / "regression.jsonl",
]


def make_app() -> Flask:
    app = Flask("detect-eval")
    methods = ["GET", "POST", "PUT"]

    @app.route("/", defaults={"p": ""}, methods=methods)
    @app.route("/<path:p>", methods=methods)
    def anything(p: str) -> str:
        return "ok"

    Rampart(app, SecurityConfig(enable_rate_limiting=False, enable_ip_banning=False))
    app.logger.disabled = True
    return app


def send(client, case: dict) -> int:  # type: ignore[no-untyped-def]
    location, field, payload = case["location"], case.get("field") or "q", case["payload"]
    if location == "query":
        return client.get(f"/search?{quote(field, safe='')}={quote(payload, safe='')}").status_code
    if location == "body":
        return client.post("/submit", data={field: payload}).status_code
    if location == "json_body":
        return client.post(
            "/api/items", data=payload.encode(), content_type="application/json"
        ).status_code
    if location == "path":
        # PATH_INFO as a server passes it: decoded once, bytes as latin-1 (PEP 3333).
        path_info = "/" + payload.encode("utf-8").decode("latin-1")
        return client.get("/", environ_overrides={"PATH_INFO": path_info}).status_code
    if location == "header":
        return client.get("/", headers={field: payload}).status_code
    raise ValueError(f"unknown location {location!r}")


def evaluate(path: Path, show_misses: bool) -> list[str]:
    import logging

    logging.getLogger("flask_rampart").disabled = True
    client = make_app().test_client()
    per_cat: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_loc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_src: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    for case in cases:
        status = send(client, case)
        if status not in (200, 403, 404, 405):
            raise SystemExit(f"unexpected status {status} for {case!r}")
        blocked = status == 403
        keys = (
            (per_cat, case["category"]),
            (per_loc, case["location"]),
            (per_src, case.get("source", "unnamed")),
        )
        for table, key in keys:
            entry = table[(case["label"], key)]
            entry[0] += 1
            entry[1] += blocked
        if blocked != (case["label"] == "attack"):
            kind = "missed" if case["label"] == "attack" else "false positive"
            shown = repr(case["payload"][:120])
            misses.append(f"- {kind}, {case['category']}, {case['location']}: `{shown}`")
    elapsed = time.perf_counter() - started
    lines = [f"## {path.name} ({len(cases)} cases, {elapsed:.1f} s through Flask)", ""]
    totals = {"attack": [0, 0], "benign": [0, 0]}
    for title, table in (("category", per_cat), ("location", per_loc), ("source", per_src)):
        lines += [f"| label | {title} | cases | blocked | rate |", "|---|---|---:|---:|---:|"]
        for (label, key), (n, hit) in sorted(table.items()):
            what = "TPR" if label == "attack" else "FPR"
            lines.append(f"| {label} | {key} | {n} | {hit} | {what} {100 * hit / n:.2f} % |")
            if title == "category":
                totals[label][0] += n
                totals[label][1] += hit
        lines.append("")
    (na, ta), (nb, fb) = totals["attack"], totals["benign"]
    lines.append(
        f"**Overall: TPR {100 * ta / max(na, 1):.2f} % ({ta}/{na}), "
        f"FPR {100 * fb / max(nb, 1):.3f} % ({fb}/{nb}).**"
    )
    lines.append("")
    if show_misses and misses:
        lines += ["Misses and false positives:", "", *misses, ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpora", nargs="*", type=Path)
    parser.add_argument("--misses", action="store_true", help="list misses and false positives")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    corpora = args.corpora or [p for p in DEFAULT_CORPORA if p.exists()]
    lines = ["# Detection quality", ""]
    for path in corpora:
        if not path.exists():
            print(f"corpus {path} not found; skipped", file=sys.stderr)
            continue
        lines += evaluate(path, args.misses)
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
