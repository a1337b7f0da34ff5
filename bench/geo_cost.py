"""Cost of country and cloud-provider checks: a 500,000-range cloud set and a country database.

Run from the repository root (part of ``make bench``)::

    .venv/bin/python bench/geo_cost.py [--quick] [--out FILE]

What it builds (in a temporary directory, nothing downloaded):

* an AWS ``ip-ranges.json`` of 500,000 disjoint IPv4 ranges (none merge), the largest real
  feed being about 10,000;
* a country database of 200,000 networks in MaxMind's layout (written by Rampart's own
  ``.mmdb`` writer; the lookups are the ``maxminddb`` crate's).

What it measures:

1. loading: parsing and merging the 500,000-range file, and opening the database;
2. one lookup, in the engine, through its Python binding: the time of ``cloud_provider_of`` and
   ``GeoDatabase.country`` minus the same call on an empty set/database (so the Python call and
   the address parsing, which a request does not pay twice, are left out); the country lookup
   both repeated (the cache) and for a new address each time (a cache miss: the tree walk);
3. per request, through real Flask apps called as WSGI, in alternating batches: bare Flask,
   Rampart without geo rules, with the cloud rule, with the country rule (one client, and a new
   client each request), and with both. Reported as added microseconds and ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask_rampart import MaxMindDB, Rampart, SecurityConfig, _native
from flask_rampart.testing import write_country_db
from werkzeug.test import EnvironBuilder

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "geo_cost.md"
CLOUD_RANGES = 500_000
COUNTRY_NETWORKS = 200_000
COUNTRIES = ["US", "CN", "DE", "FR", "GB", "JP", "BR", "IN", "RU", "CA", "AU", "NL"]


def ipv4(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def cloud_file(path: Path) -> Path:
    """500,000 /28 ranges, 4,096 addresses apart: from 0.0.0.0 up to 128.0.0.0."""
    prefixes = [
        {"ip_prefix": f"{ipv4(i * 4096)}/28", "region": "bench", "service": "EC2"}
        for i in range(CLOUD_RANGES)
    ]
    path.write_text(json.dumps({"syncToken": "0", "prefixes": prefixes, "ipv6_prefixes": []}))
    return path


def country_file(path: Path) -> Path:
    rng = random.Random(7)
    networks = [(f"{ipv4(i * 8192)}/20", rng.choice(COUNTRIES)) for i in range(COUNTRY_NETWORKS)]
    write_country_db(path, networks)
    return path


def per_call_ns(fn: Callable[[str], object], ips: list[str], rounds: int) -> float:
    best = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for ip in ips:
            fn(ip)
        best.append((time.perf_counter_ns() - started) / len(ips))
    return statistics.median(best)


def app_with(config: SecurityConfig | None) -> Flask:
    app = Flask(f"geo_bench_{id(config)}")

    @app.get("/")
    def index() -> str:
        return "ok"

    if config is not None:
        Rampart(app, config)
    return app


def environ(ip: str) -> dict:  # type: ignore[type-arg]
    builder = EnvironBuilder(path="/", method="GET", environ_base={"REMOTE_ADDR": ip})
    try:
        return builder.get_environ()
    finally:
        builder.close()


def time_requests(app: Flask, environs: list[dict], reps: int) -> float:  # type: ignore[type-arg]
    """Median per-request seconds over ``reps`` passes through ``environs``."""
    call = app.wsgi_app

    def start(status: str, headers: list, exc_info: object = None) -> None:  # type: ignore[type-arg]
        return None

    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        for env in environs:
            for _chunk in call(dict(env), start):
                pass
        samples.append((time.perf_counter() - started) / len(environs))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    lines: list[str] = []

    with tempfile.TemporaryDirectory(prefix="rampart-geo-bench-") as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        cloud = cloud_file(d / "ip-ranges.json")
        country = country_file(d / "countries.mmdb")
        built = time.perf_counter() - t
        print(f"built the data in {built:.1f} s")

        engine = _native.Engine("{}")
        data = cloud.read_bytes()
        t = time.perf_counter()
        entries, ranges, _ = engine.load_cloud_ranges("AWS", data)
        parse_s = time.perf_counter() - t
        assert ranges == CLOUD_RANGES, ranges
        db = _native.GeoDatabase()
        t = time.perf_counter()
        db.load(country)
        open_s = time.perf_counter() - t
        empty_engine = _native.Engine("{}")
        empty_db = _native.GeoDatabase()

        rng = random.Random(11)
        misses = [ipv4(rng.randrange(0, 1 << 31)) for _ in range(50_000)]
        hits = [misses[0]] * 50_000
        cloud_ns = per_call_ns(engine.cloud_provider_of, misses, rounds) - per_call_ns(
            empty_engine.cloud_provider_of, misses, rounds
        )
        warm_ns = per_call_ns(db.country, hits, rounds) - per_call_ns(
            empty_db.country, hits, rounds
        )
        # New addresses each round, so every lookup walks the tree (the cache holds 65,536).
        cold = []
        for _ in range(rounds):
            fresh = [ipv4(rng.randrange(0, 1 << 31)) for _ in range(20_000)]
            cold.append(per_call_ns(db.country, fresh, 1) - per_call_ns(empty_db.country, fresh, 1))
        cold_ns = statistics.median(cold)

        lines += [
            "# Country and cloud lookups",
            "",
            "Written by `bench/geo_cost.py` (`make bench`). Machine: see `latest.md`.",
            "",
            "## Loading",
            "",
            "| what | size | time |",
            "|---|---:|---:|",
            f"| parse and merge an AWS `ip-ranges.json` of {entries:,} ranges | "
            f"{len(data) / 1e6:.1f} MB | {parse_s * 1000:.0f} ms |",
            f"| open a country database of {COUNTRY_NETWORKS:,} networks | "
            f"{country.stat().st_size / 1e6:.1f} MB | {open_s * 1000:.1f} ms |",
            "",
            "## One lookup, in the engine",
            "",
            "| lookup | ns |",
            "|---|---:|",
            f"| cloud provider, {CLOUD_RANGES:,} ranges (binary search) | {cloud_ns:.0f} |",
            f"| country, repeated client (cache) | {warm_ns:.0f} |",
            f"| country, new client each time (tree walk) | {cold_ns:.0f} |",
            "",
        ]

        outside = "200.1.2.3"  # in no cloud range, placed in no country
        configs: dict[str, SecurityConfig | None] = {
            "bare Flask": None,
            "rampart, no geo rules": SecurityConfig(enable_penetration_detection=False),
            "+ block_cloud_providers (500k ranges)": SecurityConfig(
                enable_penetration_detection=False,
                block_cloud_providers={"AWS"},
                cloud_ranges_files={"AWS": str(cloud)},
            ),
            "+ blocked_countries": SecurityConfig(
                enable_penetration_detection=False,
                geo_ip_handler=MaxMindDB(country, check_every=None),
                blocked_countries=["KP"],
            ),
            "+ both": SecurityConfig(
                enable_penetration_detection=False,
                geo_ip_handler=MaxMindDB(country, check_every=None),
                blocked_countries=["KP"],
                block_cloud_providers={"AWS"},
                cloud_ranges_files={"AWS": str(cloud)},
            ),
        }
        apps = {name: app_with(c) for name, c in configs.items()}
        same = [environ(outside)] * 200
        results: dict[str, list[float]] = {name: [] for name in apps}
        results["rampart, no geo rules, a new client each request"] = []
        results["+ blocked_countries, a new client each request"] = []
        reps = 10 if args.quick else 40
        for _ in range(reps):
            for name, app in apps.items():
                results[name].append(time_requests(app, same, 1))
            # Fresh addresses for every pass: misses for the country cache.
            many_ips = [environ(ipv4(rng.randrange(1 << 30, 1 << 31))) for _ in range(200)]
            results["rampart, no geo rules, a new client each request"].append(
                time_requests(apps["rampart, no geo rules"], many_ips, 1)
            )
            results["+ blocked_countries, a new client each request"].append(
                time_requests(apps["+ blocked_countries"], many_ips, 1)
            )
        med = {name: statistics.median(v) * 1e6 for name, v in results.items()}
        bare, base = med["bare Flask"], med["rampart, no geo rules"]
        lines += [
            "## Per request, through Flask",
            "",
            "Medians of alternating batches of 200 GET requests in one process; the client is "
            "allowed (the whole check runs). The last column compares with Rampart without geo "
            "rules under the same traffic (one client, or a new client each request).",
            "",
            "| configuration | µs/request | added to bare Flask | ratio | added by the geo rules |",
            "|---|---:|---:|---:|---:|",
        ]
        base_new = med["rampart, no geo rules, a new client each request"]
        for name, us in med.items():
            if name.startswith(("bare Flask", "rampart, no geo rules")):
                geo = ""
            elif "new client" in name:
                geo = f"{us - base_new:+.2f}"
            else:
                geo = f"{us - base:+.2f}"
            lines.append(f"| {name} | {us:.1f} | +{us - bare:.1f} | {us / bare:.2f}x | {geo} |")
        lines.append("")

    text = "\n".join(lines)
    print(text)
    if not args.quick or args.out != DEFAULT_OUT:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
