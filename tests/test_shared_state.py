"""Shared state: limits and bans across worker processes (``shm://``) and across hosts (Redis).

Real components only: ``redis-server`` and gunicorn are started by these tests on free loopback
ports; Flask apps are driven through their test clients or over HTTP.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from flask import Flask
from flask_rampart import ConfigError, Rampart, SecurityConfig
from servers import Gunicorn, RedisCluster, RedisServer, Sentinel
from werkzeug.test import TestResponse

CLIENT = {"REMOTE_ADDR": "127.0.0.1"}
T = TypeVar("T")
# The longest window the config accepts. Its fixed window started at the epoch and ends in
# 2106, so tests that count exactly with fixed windows never see one roll over.
ONE_WINDOW_FOREVER = 2**32 - 1


@pytest.fixture
def shm_path(tmp_path: Path) -> str:
    return f"shm://{tmp_path}/state.shm"


def make_app(**fields: object) -> tuple[Flask, Rampart]:
    app = Flask("shared_state_app")
    fields.setdefault("rate_limit", 5)
    fields.setdefault("rate_limit_window", 60)
    fields.setdefault("enable_penetration_detection", False)
    fields.setdefault("trusted_proxies", ["127.0.0.1"])
    rampart = Rampart(app, SecurityConfig(**fields))

    @app.get("/")
    def index() -> str:
        return "ok"

    return app, rampart


def inside(app: Flask, fn: Callable[..., T], *args: object) -> T:
    """Calls a Rampart API function within ``app``'s application context."""
    with app.app_context():
        return fn(*args)


def get(app: Flask, ip: str = "192.0.2.1") -> TestResponse:
    return app.test_client().get("/", headers={"X-Forwarded-For": ip}, environ_base=CLIENT)


def hit(app: Flask, ip: str = "192.0.2.1", n: int = 1) -> list[int]:
    client = app.test_client()
    return [
        client.get("/", headers={"X-Forwarded-For": ip}, environ_base=CLIENT).status_code
        for _ in range(n)
    ]


# ----- configuration ---------------------------------------------------------------------------


def test_bad_storage_settings_are_named_together() -> None:
    with pytest.raises(ConfigError) as err:
        SecurityConfig(storage_uri="mongodb://x", storage_outage="maybe", redis_prefix="")
    fields = {f for f, _ in err.value.errors}
    assert fields == {"storage_uri", "storage_outage", "redis_prefix"}
    assert "memory://" in str(err.value)
    with pytest.raises(ConfigError, match="absolute path"):
        SecurityConfig(storage_uri="shm://relative/path")
    with pytest.raises(ConfigError, match="slots"):
        SecurityConfig(storage_uri="shm:///tmp/x?slots=many")
    with pytest.raises(ConfigError, match="braces"):
        SecurityConfig(storage_uri="redis+cluster://h:7000", redis_prefix="{app}:")
    with pytest.raises(ConfigError, match="names no service"):
        Rampart(Flask("x"), SecurityConfig(storage_uri="redis+sentinel://h:26379"))
    with pytest.raises(ConfigError, match="conflicts"):
        SecurityConfig(storage_uri="redis://a:1", enable_redis=True, redis_url="redis://b:2")


def test_a_store_that_cannot_be_opened_fails_at_init_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "state.shm"
    with pytest.raises(ConfigError) as err:
        make_app(storage_uri=f"shm://{missing}")
    assert err.value.errors[0][0] == "storage_uri"
    assert str(missing) in str(err.value)


def test_memory_is_the_default_and_per_app() -> None:
    a, _ = make_app()
    b, _ = make_app()
    assert hit(a, n=6) == [200] * 5 + [429]
    assert hit(b, n=1) == [200]


# ----- shared memory ---------------------------------------------------------------------------


def test_two_apps_on_one_shm_file_share_limits_and_bans(shm_path: str) -> None:
    a, ra = make_app(storage_uri=shm_path)
    b, rb = make_app(storage_uri=shm_path)
    assert hit(a, n=3) + hit(b, n=3) == [200] * 5 + [429]
    inside(a, ra.ban, "198.51.100.7", 60, "seen everywhere")
    assert hit(b, "198.51.100.7") == [403]
    assert [ban.ip for ban in inside(b, rb.bans)] == ["198.51.100.7"]
    assert inside(b, rb.bans)[0].reason == "seen everywhere"
    assert inside(b, rb.unban, "198.51.100.7")
    assert hit(a, "198.51.100.7") == [200]
    inside(b, rb.reset_limits, "192.0.2.1")
    assert hit(a, n=1) == [200]


def test_storage_uri_from_flask_config(shm_path: str) -> None:
    apps = []
    for _ in range(2):
        app = Flask("configured_by_flask")
        app.config["RAMPART_STORAGE_URI"] = shm_path
        app.config["RAMPART_RATE_LIMIT"] = 2
        app.config["RAMPART_TRUSTED_PROXIES"] = ["127.0.0.1"]
        Rampart(app)
        app.add_url_rule("/", "index", lambda: "ok")
        apps.append(app)
    assert hit(apps[0]) + hit(apps[1]) + hit(apps[0]) == [200, 200, 429]


def test_shm_state_survives_a_restart(shm_path: str) -> None:
    a, ra = make_app(storage_uri=shm_path)
    assert hit(a, n=5) == [200] * 5
    inside(a, ra.ban, "198.51.100.8", 60)
    del a, ra
    b, rb = make_app(storage_uri=shm_path)
    assert hit(b) == [429]
    assert inside(b, rb.is_banned, "198.51.100.8")


def test_shm_directory_uri_and_every_algorithm(tmp_path: Path) -> None:
    for algorithm in ("sliding_window", "fixed_window", "sliding_window_counter", "gcra"):
        uri = f"shm://{tmp_path}"
        fields = {"rate_limit_algorithm": algorithm, "rate_limit_window": ONE_WINDOW_FOREVER}
        a, _ = make_app(storage_uri=uri, rate_limit=4, **fields)
        b, _ = make_app(storage_uri=uri, rate_limit=4, **fields)
        ip = f"203.0.113.{len(algorithm)}"
        got = hit(a, ip, 2) + hit(b, ip, 3)
        assert got == [200] * 4 + [429], algorithm
    assert (tmp_path / "rampart.shm").exists()


def test_auto_ban_strikes_are_shared(shm_path: str) -> None:
    a, ra = make_app(storage_uri=shm_path, auto_ban_threshold=3)
    b, rb = make_app(storage_uri=shm_path, auto_ban_threshold=3)
    ip = "198.51.100.30"
    assert not inside(a, ra.report, ip)
    assert not inside(b, rb.report, ip)
    assert inside(a, ra.report, ip)
    assert hit(b, ip) == [403]


def test_a_full_shm_table_admits_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(storage_uri=f"shm://{tmp_path}/small.shm?slots=64", rate_limit=1)
    caplog.set_level(logging.WARNING, logger="flask_rampart")
    statuses = [hit(app, f"10.1.{n // 250}.{n % 250}", 2)[1] for n in range(200)]
    # The first 64 clients got a slot and are limited; the rest pass uncounted.
    assert statuses.count(429) <= 64
    assert statuses.count(200) >= 200 - 64
    warnings = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "slots=" in warnings[0]


def _counting_app(uri: str) -> tuple[Flask, Rampart]:
    # One fixed window that never ends: a minute boundary crossed mid-test would start a new
    # window and the count would look lost.
    return make_app(
        storage_uri=uri,
        rate_limit=1_000_000,
        rate_limit_window=ONE_WINDOW_FOREVER,
        rate_limit_algorithm="fixed_window",
    )


def _count_hits(uri: str, n: int) -> None:
    app, _ = _counting_app(uri)
    client = app.test_client()
    for _ in range(n):
        assert client.get("/", environ_base=CLIENT).status_code == 200


def test_four_processes_lose_no_update(tmp_path: Path) -> None:
    import multiprocessing

    uri = f"shm://{tmp_path}/count.shm"
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_count_hits, args=(uri, 1500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    app, _ = _counting_app(uri)
    r = app.test_client().get("/", environ_base=CLIENT)
    assert r.headers["X-RateLimit-Remaining"] == str(1_000_000 - 6001)


def test_gunicorn_four_workers_share_one_limit_exactly(tmp_path: Path) -> None:
    server = Gunicorn(4, {"RAMPART_STORAGE_URI": f"shm://{tmp_path}/g.shm", "LIMIT": "50"})
    try:
        assert len(server.pids) == 4, "every worker should be up and answering"
        sequential = collections.Counter(server.get("/")[0] for _ in range(400))
        assert sequential == {200: 50, 429: 350}

        # Concurrent clients, another IP: still exactly the limit.
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: server.get("/", ip="192.0.2.2")[0], range(400)))
        assert collections.Counter(codes) == {200: 50, 429: 350}

        # A ban made through one worker is enforced by every worker.
        server.get("/ban/192.0.2.3")
        assert {server.get("/", ip="192.0.2.3")[0] for _ in range(40)} == {403}
    finally:
        log = server.stop()
    assert "Traceback" not in log


def test_gunicorn_preload_shares_the_parents_mapping(tmp_path: Path) -> None:
    server = Gunicorn(
        3, {"RAMPART_STORAGE_URI": f"shm://{tmp_path}/p.shm", "LIMIT": "30"}, preload=True
    )
    try:
        codes = collections.Counter(server.get("/")[0] for _ in range(90))
        assert codes == {200: 30, 429: 60}
    finally:
        server.stop()


# ----- Redis -----------------------------------------------------------------------------------


def test_redis_limits_and_bans_are_shared_by_two_apps(redis: RedisServer) -> None:
    a, ra = make_app(storage_uri=redis.url, redis_prefix="t1:")
    b, rb = make_app(storage_uri=redis.url, redis_prefix="t1:")
    assert hit(a, n=3) + hit(b, n=3) == [200] * 5 + [429]
    inside(b, rb.ban, "198.51.100.9", 120, "from b")
    assert hit(a, "198.51.100.9") == [403]
    assert [(x.ip, x.reason) for x in inside(a, ra.bans)] == [("198.51.100.9", "from b")]
    # Every key carries the prefix and a TTL.
    keys = redis.keys()
    assert keys and all(k.startswith("t1:") for k in keys), keys
    for key in keys:
        assert redis.command("PTTL", key) > 0 or key == "t1:bans", key
    assert inside(a, ra.unban, "198.51.100.9")
    assert hit(b, "198.51.100.9") == [200]
    inside(a, ra.reset_limits, "192.0.2.1")
    assert hit(b) == [200]


def test_seed_redis_fields_map_onto_storage(redis: RedisServer) -> None:
    a, _ = make_app(enable_redis=True, redis_url=redis.url, redis_prefix="seed:")
    assert hit(a, n=6) == [200] * 5 + [429]
    assert any(k.startswith("seed:rl:") for k in redis.keys())


def test_one_round_trip_per_request(redis: RedisServer) -> None:
    app, _ = make_app(storage_uri=redis.url, rate_limit=1000, endpoint_rate_limits={"/": [500, 60]})
    hit(app)  # connects and reads the server's clock

    def trips() -> int:
        # The engine's own counter (``rampart.stats`` would also list the bans: a round trip).
        return int(app.extensions["rampart"].engine.live_stats()["store"]["round_trips"])

    server_reads: list[int] = []
    with redis.session() as session:
        for _ in range(3):
            session.command("CONFIG", "RESETSTAT")
            before, sent = session.reads(), trips()
            hit(app, n=50)
            # One pipeline per request (the ban and both limits), as Rampart counts them...
            assert trips() - sent == 50
            # ...and as the server reads them, plus the asking. A loaded machine can hand the
            # server one pipeline's bytes in two reads, so the server's count may run over
            # once in a while; one exact run of three shows nothing more is sent.
            server_reads.append(session.reads() - before)
            if server_reads[-1] == 51:
                break
        assert 51 in server_reads, server_reads
    stats = redis.commandstats()
    # Plain commands, no script: two sliding-window logs counted per request.
    assert stats.get("zcard") == 100, stats
    assert set(stats) <= {
        "hmget",
        "zremrangebyscore",
        "zcard",
        "zrange",
        "zadd",
        "pexpire",
        "time",
        "info",
        "config|resetstat",
    }, stats


def test_gcra_is_one_script_call_per_request(redis: RedisServer) -> None:
    app, _ = make_app(storage_uri=redis.url, rate_limit=1000, rate_limit_algorithm="gcra")
    hit(app)  # loads the script
    with redis.session() as session:
        session.command("CONFIG", "RESETSTAT")
        before = session.reads()
        hit(app, n=20)
        assert session.reads() - before == 21
    assert redis.commandstats().get("evalsha") == 20


@pytest.mark.parametrize("algorithm", ["sliding_window", "fixed_window", "sliding_window_counter"])
def test_refused_requests_are_not_counted_on_redis(redis: RedisServer, algorithm: str) -> None:
    # Each limit counts a request before it knows whether another refuses it; a refused or
    # banned request's counts are taken back, so a flood leaves the other limits untouched.
    fields: dict[str, object] = {
        "storage_uri": redis.url,
        "rate_limit": 3,
        "rate_limit_algorithm": algorithm,
        "rate_limits": [{"limit": 50, "window": 60, "key": "global"}],
        "rate_limit_draft_headers": True,
    }
    a, ra = make_app(**fields)
    b, _ = make_app(**fields)
    assert hit(a, n=3) + hit(b, n=20) == [200] * 3 + [429] * 20
    inside(a, ra.ban, "192.0.2.78", 60, "by hand")
    assert hit(b, "192.0.2.78", n=10) == [403] * 10
    assert inside(a, ra.unban, "192.0.2.78")
    response = get(b, "192.0.2.78")
    assert response.status_code == 200
    # The global limit counted the four admitted requests, nothing refused or banned.
    quotas = dict(re.findall(r'"([^"]+)";r=(\d+)', response.headers["RateLimit"]))
    assert sorted(quotas.values()) == ["2", "46"], response.headers["RateLimit"]


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window_counter", "gcra"])
def test_redis_counts_every_algorithm(redis: RedisServer, algorithm: str) -> None:
    fields = {"rate_limit_algorithm": algorithm, "rate_limit_window": ONE_WINDOW_FOREVER}
    a, _ = make_app(storage_uri=redis.url, rate_limit=4, **fields)
    b, _ = make_app(storage_uri=redis.url, rate_limit=4, **fields)
    assert hit(a, n=2) + hit(b, n=3) == [200] * 4 + [429]


def test_redis_auto_ban_is_shared(redis: RedisServer) -> None:
    a, ra = make_app(storage_uri=redis.url, auto_ban_threshold=2)
    b, rb = make_app(storage_uri=redis.url, auto_ban_threshold=2)
    assert not inside(a, ra.report, "198.51.100.40")
    assert inside(b, rb.report, "198.51.100.40")
    assert hit(a, "198.51.100.40") == [403]


def test_two_gunicorn_masters_share_one_redis(redis: RedisServer) -> None:
    env = {"RAMPART_STORAGE_URI": redis.url, "LIMIT": "30"}
    one, two = Gunicorn(2, env), Gunicorn(2, env)
    try:
        codes = collections.Counter((one if i % 2 else two).get("/")[0] for i in range(100))
        assert codes == {200: 30, 429: 70}
        one.get("/ban/192.0.2.77")
        assert {two.get("/", ip="192.0.2.77")[0] for _ in range(10)} == {403}
    finally:
        one.stop()
        two.stop()


def test_workers_forked_after_the_master_connected_use_their_own_connections(
    redis: RedisServer,
) -> None:
    env = {"RAMPART_STORAGE_URI": redis.url, "LIMIT": "100", "TOUCH_STORE_AT_IMPORT": "1"}
    server = Gunicorn(3, env, preload=True)
    try:
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: server.get("/")[0], range(300)))
        assert collections.Counter(codes) == {200: 100, 429: 200}
    finally:
        log = server.stop()
    assert "Traceback" not in log


def test_redis_over_a_unix_socket(tmp_path: Path) -> None:
    import shutil
    import subprocess

    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", "0", "--unixsocket",
         str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        a, _ = make_app(storage_uri=f"redis+unix://{sock}", rate_limit=2)
        b, _ = make_app(storage_uri=f"unix://{sock}", rate_limit=2)
        assert hit(a) + hit(b) + hit(a) == [200, 200, 429]
    finally:
        proc.kill()
        proc.wait()


def test_an_outage_fails_open_locally_and_recovers(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_rampart")
    a, ra = make_app(storage_uri=redis.url, rate_limit=3)
    b, _ = make_app(storage_uri=redis.url, rate_limit=3)
    assert hit(a, n=2) == [200, 200]
    redis.kill()
    # Redis is gone: no 500, and each process enforces the limit on its own counters.
    assert hit(a, n=4) == [200] * 3 + [429]
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    # A ban made during the outage is kept...
    inside(a, ra.ban, "198.51.100.50", 300, "during the outage")
    assert hit(a, "198.51.100.50") == [403]
    redis.start()
    time.sleep(0.6)
    # ...and written back when Redis returns, so the other app sees it too.
    assert hit(a, "192.0.2.99") == [200]
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert hit(b, "198.51.100.50") == [403]
    assert redis.command("HGET", "rampart:ban:{198.51.100.50}", "reason") == b"during the outage"
    # Shared counting resumed.
    assert hit(a, "192.0.2.5", 2) + hit(b, "192.0.2.5", 2) == [200] * 3 + [429]


def test_bans_met_before_an_outage_still_hold_during_it(redis: RedisServer) -> None:
    a, ra = make_app(storage_uri=redis.url)
    b, _ = make_app(storage_uri=redis.url)
    inside(a, ra.ban, "198.51.100.60", 300, "before the outage")
    inside(a, ra.ban, "198.51.100.61", 300, "lifted before the outage")
    assert hit(b, "198.51.100.60") + hit(b, "198.51.100.61") == [403, 403]
    inside(a, ra.unban, "198.51.100.61")
    assert hit(b, "198.51.100.61") == [200]
    redis.kill()
    # b met the first ban through Redis and keeps enforcing it; the lifted one stays lifted.
    assert hit(b, "198.51.100.60") + hit(a, "198.51.100.60") == [403, 403]
    assert hit(b, "198.51.100.61") == [200]


def test_an_outage_fails_closed_when_asked(redis: RedisServer) -> None:
    app, _ = make_app(storage_uri=redis.url, storage_outage="block")
    assert hit(app) == [200]
    redis.kill()
    client = app.test_client()
    r = client.get("/", headers={"X-Forwarded-For": "192.0.2.1"}, environ_base=CLIENT)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    redis.start()
    time.sleep(0.6)
    assert hit(app) == [200]


def test_redis_down_at_start_is_an_outage_not_a_crash() -> None:
    from servers import free_port

    app, _ = make_app(storage_uri=f"redis://127.0.0.1:{free_port()}/0", rate_limit=2)
    assert hit(app, n=3) == [200, 200, 429]


def test_redis_killed_under_gunicorn_load(redis: RedisServer) -> None:
    server = Gunicorn(4, {"RAMPART_STORAGE_URI": redis.url, "LIMIT": "1000000"})
    codes: collections.Counter[int] = collections.Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            codes[server.get("/", ip=f"192.0.2.{threading.get_ident() % 200}")[0]] += 1

    try:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        redis.kill()
        time.sleep(1.0)
        redis.start()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        # Counting resumed in Redis after the restart.
        assert any(k.startswith("rampart:rl:") for k in redis.keys())
    finally:
        stop.set()
        log = server.stop()
    assert codes[500] == 0, codes
    assert codes[200] > 100, codes
    assert "Traceback" not in log
    assert "unreachable" in log and "reachable again" in log


def test_sentinel_finds_the_primary_and_follows_a_failover() -> None:
    primary = RedisServer()
    replica = RedisServer(replica_of=primary.port)
    sentinel = Sentinel(primary)
    try:
        a, ra = make_app(storage_uri=sentinel.url(), rate_limit=3)
        b, _ = make_app(storage_uri=sentinel.url(), rate_limit=3)
        assert hit(a, n=2) + hit(b, n=2) == [200, 200, 200, 429]
        assert any(k.startswith("rampart:rl:") for k in primary.keys())
        inside(a, ra.ban, "198.51.100.80", 300, "before the failover")
        deadline = time.monotonic() + 10
        while "rampart:ban:{198.51.100.80}" not in replica.keys() and time.monotonic() < deadline:
            time.sleep(0.1)  # the replica's first sync and then the ban reach it
        primary.kill()
        deadline = time.monotonic() + 15
        while sentinel.master_port() != replica.port and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sentinel.master_port() == replica.port, "the Sentinel did not fail over"
        # The apps notice, ask the Sentinel again and carry on with the new primary.
        statuses = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            statuses += hit(b, "192.0.2.50")
            if any(k.startswith("rampart:rl:{192.0.2.50}") for k in replica.keys()):
                break
            time.sleep(0.2)
        assert 500 not in statuses
        assert any(k.startswith("rampart:rl:{192.0.2.50}") for k in replica.keys())
        assert hit(b, "198.51.100.80") == [403]
    finally:
        sentinel.stop()
        replica.stop()
        primary.stop()


def test_a_cluster_shares_limits_spread_over_its_nodes() -> None:
    cluster = RedisCluster()
    try:
        fields = {
            "storage_uri": cluster.url,
            "rate_limit": 2,
            "rate_limits": [{"limit": 10, "window": 60, "key": "global"}],
        }
        a, ra = make_app(**fields)
        b, _ = make_app(**fields)
        codes = [hit(a if n % 2 else b, f"10.1.0.{n}", 3) for n in range(8)]
        flat = [c for three in codes for c in three]
        # Two per client, ten in all: the first five clients get two each, the rest nothing,
        # and a refusal by the global limit is not counted against the client's own.
        assert flat.count(200) == 10, codes
        assert codes[0] == [200, 200, 429]
        keys = cluster.keys()
        assert "rampart:rl:{::}:" in " ".join(keys)
        per_node = [len(cluster.call(p, "KEYS", "*")) for p in cluster.ports]
        assert sum(1 for n in per_node if n) >= 2, per_node
        inside(a, ra.ban, "198.51.100.90", 60, "cluster")
        assert hit(b, "198.51.100.90") == [403]
        assert [x.ip for x in inside(a, ra.bans)] == ["198.51.100.90"]
    finally:
        cluster.stop()


def test_a_bad_redis_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        make_app(storage_uri="redis://[not-a-host")
    assert err.value.errors[0][0] == "storage_uri"


def test_rediss_talks_tls_to_a_server_it_trusts(monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer(tls=True)
    try:
        # A private CA is trusted through SSL_CERT_FILE, as with most TLS clients.
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        a, ra = make_app(storage_uri=server.url, rate_limit=2)
        b, _ = make_app(storage_uri=server.url, rate_limit=2)
        assert hit(a) + hit(b) + hit(a) == [200, 200, 429]
        inside(a, ra.ban, "198.51.100.70", 60, "over TLS")
        assert hit(b, "198.51.100.70") == [403]
        # Without the CA the certificate is refused: an outage, failing open on local counters.
        monkeypatch.delenv("SSL_CERT_FILE")
        c, _ = make_app(storage_uri=server.url, rate_limit=2)
        assert hit(c, "192.0.2.1", 3) == [200, 200, 429]
    finally:
        server.stop()
