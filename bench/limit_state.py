"""Rate-limit state: bytes per tracked client, and check cost after a long history.

Run from the repository root (``make bench`` runs it after ``overhead.py``)::

    .venv/bin/python bench/limit_state.py            # 1,000,000 clients, 1,000,000 prior requests
    .venv/bin/python bench/limit_state.py --quick    # 100,000 of each

Two questions from the rate-limiting issue, answered for each algorithm:

1. **Memory.** One engine per algorithm, limit 100 per 60 s. Requests from N distinct client
   IPs go through the engine (``Engine.inspect`` on a WSGI environ, as the middleware calls it),
   each in a fresh process, with the clock stopped so that every client stays tracked.
   Reported: the store's own count of bytes (table capacity times entry size, plus log
   buffers) and the process's resident-memory growth, each divided by N.
2. **Cost after history.** The median cost of one check for a client that has made one request,
   and for a client that has already made M requests (limit 10**9, so all are admitted and the
   sliding window really holds M timestamps). Equal medians mean the cost does not grow with a
   client's history. flask-gatekeeper, when installed, is measured the same way for comparison
   (its per-IP deque is filtered on every request).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "limit_state.md"
ALGORITHMS = ("gcra", "fixed_window", "sliding_window_counter", "sliding_window")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE


def environ(ip: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/hello",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": ip,
    }


def client_ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def memory_worker(algorithm: str, clients: int) -> dict[str, float]:
    from flask_rampart import _native

    config = {"rate_limit": 100, "rate_limit_window": 60, "rate_limit_algorithm": algorithm}
    config["max_tracked_keys"] = max(clients, 1000)
    # A stopped clock: every client stays tracked while the table fills (GCRA state would
    # otherwise expire after W/N, here 0.6 s, and be swept as the loop runs).
    engine = _native.Engine(json.dumps(config), _native.ManualClock(1_700_000_000.0))
    envs = [environ(client_ip(i)) for i in range(clients)]
    before = rss_bytes()
    start = time.perf_counter()
    for env in envs:
        engine.inspect(env)
    elapsed = time.perf_counter() - start
    after = rss_bytes()
    stats = engine.store_stats()
    return {
        "keys": stats["keys"],
        "store_bytes_per_client": stats["bytes"] / clients,
        "rss_bytes_per_client": (after - before) / clients,
        "us_per_new_client": elapsed / clients * 1e6,
    }


def median_check_us(call: Any, env: dict[str, Any], samples: int = 2000) -> float:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        call(env)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def history_worker(algorithm: str, history: int) -> dict[str, float]:
    from flask_rampart import _native

    config = {"rate_limit": 10**9, "rate_limit_window": 3600, "rate_limit_algorithm": algorithm}
    engine = _native.Engine(json.dumps(config))
    fresh = [environ(client_ip(i + 1)) for i in range(2000)]
    # Cost after one prior request: each sample is a client on its second request.
    for env in fresh:
        engine.inspect(env)
    times = []
    for env in fresh:
        t0 = time.perf_counter_ns()
        engine.inspect(env)
        times.append(time.perf_counter_ns() - t0)
    after_one = statistics.median(times) / 1000
    busy = environ("192.0.2.1")
    for _ in range(history):
        engine.inspect(busy)
    after_many = median_check_us(engine.inspect, busy)
    return {"after_one_us": after_one, "after_many_us": after_many}


def gatekeeper_worker(history: int) -> dict[str, float] | None:
    try:
        import inspect as pyinspect

        from flask import Flask
        from flask_gatekeeper import GateKeeper
    except ImportError:
        return None
    app = Flask("gk")

    @app.get("/hello")
    def hello() -> str:
        return "ok"

    if "rate_limit_rules" in pyinspect.signature(GateKeeper).parameters:
        GateKeeper(app, rate_limit_rules=[{"count": 10**9, "window": 3600}])
    else:
        GateKeeper(app, rate_limit_rule=[10**9, 3600])
    client = app.test_client()

    def one(env: dict[str, Any]) -> None:
        client.get("/hello", environ_base={"REMOTE_ADDR": env["REMOTE_ADDR"]})

    busy = environ("192.0.2.1")
    first = median_check_us(one, busy, samples=200)
    for _ in range(history):
        one(busy)
    after = median_check_us(one, busy, samples=50)
    return {"after_one_us": first, "after_many_us": after}


def run(clients: int, history: int, gk_history: int) -> str:
    ctx = multiprocessing.get_context("spawn")
    rows_mem: dict[str, dict[str, float]] = {}
    rows_hist: dict[str, dict[str, float]] = {}
    for algorithm in ALGORITHMS:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            rows_mem[algorithm] = pool.submit(memory_worker, algorithm, clients).result()
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            rows_hist[algorithm] = pool.submit(history_worker, algorithm, history).result()
        print(f"[limits] {algorithm} done", file=sys.stderr)
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        gk = pool.submit(gatekeeper_worker, gk_history).result()

    lines = [
        "# Rate-limit state: memory and cost after history",
        "",
        f"Generated by `bench/limit_state.py` on {time.strftime('%Y-%m-%d')}; "
        f"{clients:,} distinct clients, limit 100 per 60 s, one request each.",
        "",
        "| algorithm | keys tracked | store bytes / client | RSS growth / client "
        "| µs per new client |",
        "|---|---:|---:|---:|---:|",
    ]
    for algorithm, m in rows_mem.items():
        lines.append(
            f"| {algorithm} | {int(m['keys']):,} | {m['store_bytes_per_client']:.0f} "
            f"| {m['rss_bytes_per_client']:.0f} | {m['us_per_new_client']:.2f} |"
        )
    lines += [
        "",
        f"Check cost (median µs per `Engine.inspect`) for a client after one request and after "
        f"{history:,} requests (limit 10**9 per hour, so every request is admitted and kept):",
        "",
        "| algorithm | after 1 | after history | ratio |",
        "|---|---:|---:|---:|",
    ]
    for algorithm, h in rows_hist.items():
        ratio = h["after_many_us"] / h["after_one_us"]
        lines.append(
            f"| {algorithm} | {h['after_one_us']:.2f} | {h['after_many_us']:.2f} | {ratio:.2f}x |"
        )
    if gk is not None:
        ratio = gk["after_many_us"] / gk["after_one_us"]
        lines.append(
            f"| flask-gatekeeper (whole request, after {gk_history:,}) | {gk['after_one_us']:.1f} "
            f"| {gk['after_many_us']:.1f} | {ratio:.2f}x |"
        )
    lines += [
        "",
        "Store bytes count the hash tables' capacity (which grows in powers of two, so the "
        "figure depends on where N falls) and the sliding window's timestamp buffers. RSS growth "
        "also includes the allocator's own overhead. The sliding window keeps 8 bytes per request "
        "in the window, so its cost per client grows with the client's own rate, not with its "
        "history.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100,000 clients and requests")
    parser.add_argument("--out", type=Path, help=f"write the report here (full run: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    clients = history = 100_000 if args.quick else 1_000_000
    report = run(clients, history, gk_history=10_000 if args.quick else 30_000)
    sys.stdout.write(report)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
