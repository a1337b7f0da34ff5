"""``flask rampart …`` through Flask's CLI runner against real apps, and once through a real
``flask`` process (the entry point) sharing a shared-memory store with the test's app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CLIENT_IP, AppFactory, request_as
from flask import Flask
from flask_rampart import GateKeeper, Rampart, SecurityConfig
from flask_rampart.cli import rampart_cli
from servers import RedisServer


def run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(rampart_cli, list(args))
    return result.exit_code, result.output


def test_status_names_store_checks_and_counts(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.0/24"], blocked_user_agents=["sqlmap"]))
    with app.app_context():
        app.extensions["rampart"].extension.ban("192.0.2.1", 60)
    code, out = run(app, "status")
    assert code == 0
    assert "store: memory (memory://), ok" in out
    assert "sees its own process only" in out
    assert "bans active: 1" in out
    assert "blacklist: 1" in out and "blocked_user_agents: 1" in out
    assert "penetration_detection: True" in out


def test_config_masks_secrets(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(ipinfo_token="tok-123", rate_limit=7),
        flask_config={"RAMPART_REDIS_PREFIX": "myapp:"},
    )
    code, out = run(app, "config")
    assert code == 0
    fields = json.loads(out)
    assert fields["rate_limit"] == 7
    assert fields["redis_prefix"] == "myapp:"  # RAMPART_* keys are part of the effective config
    assert fields["ipinfo_token"] == "********"
    assert "tok-123" not in out
    from flask_rampart.cli import mask

    assert mask("storage_uri", "redis://:hunter2@db:6379/0") == "redis://:********@db:6379/0"


def test_bans_add_list_remove_reach_requests(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    assert run(app, "bans", "list") == (0, "no bans\n")
    code, out = run(app, "bans", "add", "192.0.2.9", "--for", "120", "--reason", "abuse")
    assert (code, out) == (0, "banned 192.0.2.9 for 120s\n")
    assert request_as(app, "/hello", ip="192.0.2.9").status_code == 403
    code, out = run(app, "bans", "list")
    assert out.startswith("192.0.2.9\t120s left\tabuse")
    assert run(app, "bans", "remove", "192.0.2.9") == (0, "unbanned 192.0.2.9\n")
    assert run(app, "bans", "remove", "192.0.2.9") == (0, "192.0.2.9 was not banned\n")
    assert request_as(app, "/hello", ip="192.0.2.9").status_code == 200
    code, out = run(app, "bans", "add", "not-an-ip")
    assert code != 0 and "not-an-ip" in out


def test_limits_reset(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(rate_limit=1))
    assert [request_as(app, "/hello").status_code for _ in range(2)] == [200, 429]
    code, _ = run(app, "limits", "reset", "198.51.100.7")
    assert code == 0
    assert request_as(app, "/hello").status_code == 200


def shown(app: Flask, ip: str) -> dict[tuple[str, str | None], dict]:
    """``limits show IP --json`` (its standard output only), by limit name and endpoint."""
    result = app.test_cli_runner().invoke(rampart_cli, ["limits", "show", ip, "--json"])
    assert result.exit_code == 0, result.output
    return {(s["name"], s["endpoint"]): s for s in json.loads(result.stdout)}


def test_limits_show_reads_every_limit_without_counting(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            rate_limit=5,
            rate_limit_window=60,
            endpoint_rate_limits={"/hello": {"limit": 3, "window": 60, "algorithm": "gcra"}},
        )
    )
    for _ in range(2):
        assert request_as(app, "/hello").status_code == 200
    code, out = run(app, "limits", "show", CLIENT_IP)
    assert code == 0
    assert "this command's own counters" in out  # the memory store is per process
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("LIMIT"))
    assert lines[header].split() == [
        "LIMIT", "ENDPOINT", "KEY", "USED", "REMAINING", "WINDOW", "ALGORITHM", "RESETS", "IN"
    ]  # fmt: skip
    assert lines[header + 1].split()[:7] == [
        "global", "*", "ip", "2/5", "3", "60s", "sliding_window"
    ]  # fmt: skip
    assert lines[header + 2].split()[:7] == ["path:/hello", "*", "ip", "2/3", "1", "60s", "gcra"]
    # Reading counted nothing: the same answer again, and the client has exactly one left.
    assert run(app, "limits", "show", CLIENT_IP) == (code, out)
    limits = shown(app, CLIENT_IP)
    assert limits["global", None]["used"] == 2 and limits["global", None]["remaining"] == 3
    assert limits["global", None]["limit"] == 5 and limits["global", None]["window"] == 60
    assert 0 < limits["global", None]["reset"] <= 60
    assert limits["path:/hello", None]["used"] == 2
    assert [request_as(app, "/hello").status_code for _ in range(2)] == [200, 429]
    # Another client is untouched.
    other = shown(app, "192.0.2.99")
    assert [(s["used"], s["remaining"], s["reset"]) for s in other.values()] == [
        (0, 5, 0),
        (0, 3, 0),
    ]
    # After a reset the client has used nothing.
    assert run(app, "limits", "reset", CLIENT_IP)[0] == 0
    assert [s["used"] for s in shown(app, CLIENT_IP).values()] == [0, 0]


def test_limits_show_refuses_a_bad_ip_and_says_when_no_limit_applies(
    make_app: AppFactory,
) -> None:
    app = make_app(SecurityConfig(rate_limit=5))
    code, out = run(app, "limits", "show", "not-an-ip")
    assert code != 0 and "not-an-ip" in out and "is not an IP address" in out
    assert "Traceback" not in out
    code, out = run(app, "limits", "show", "not-an-ip", "--json")
    assert code != 0 and "is not an IP address" in out
    bare = make_app(SecurityConfig())
    code, out = run(bare, "limits", "show", CLIENT_IP)
    assert code == 0 and "no rate limit applies to 198.51.100.7" in out


def test_limits_show_sees_another_workers_counts_over_shm(
    make_app: AppFactory, tmp_path: Path
) -> None:
    config = SecurityConfig(storage_uri=f"shm://{tmp_path}/limits.shm", rate_limit=10)
    worker, command = make_app(config), make_app(config)
    for _ in range(4):
        request_as(worker, "/hello")
    code, out = run(command, "limits", "show", CLIENT_IP)
    assert code == 0 and "own counters" not in out
    assert shown(command, CLIENT_IP)["global", None]["used"] == 4
    assert shown(command, "192.0.2.99")["global", None]["used"] == 0
    assert run(command, "limits", "reset", CLIENT_IP)[0] == 0
    assert shown(worker, CLIENT_IP)["global", None]["used"] == 0


def test_limits_show_reads_redis_and_reports_it_unreachable(
    make_app: AppFactory, redis: RedisServer
) -> None:
    config = SecurityConfig(
        storage_uri=redis.url,
        rate_limit=10,
        # An hour's window: no request of the test leaves it, and GCRA's bucket refills one
        # request every 72 s.
        rate_limits=[{"limit": 50, "window": 3600, "algorithm": "gcra"}],
    )
    host, other_host = make_app(config), make_app(config)
    for _ in range(3):
        request_as(host, "/hello")
    limits = shown(other_host, CLIENT_IP)
    assert limits["global", None]["used"] == 3 and limits["global", None]["remaining"] == 7
    assert limits["global-2", None]["used"] == 3 and limits["global-2", None]["algorithm"] == "gcra"
    assert [s["used"] for s in shown(other_host, "192.0.2.99").values()] == [0, 0]
    assert [request_as(host, "/hello").status_code for _ in range(7)] == [200] * 7
    assert request_as(host, "/hello").status_code == 429
    assert run(other_host, "limits", "reset", CLIENT_IP)[0] == 0
    assert [s["used"] for s in shown(host, CLIENT_IP).values()] == [0, 0]
    redis.kill()
    try:
        code, out = run(other_host, "limits", "show", CLIENT_IP)
        assert code != 0 and "Redis unreachable" in out and "Traceback" not in out
    finally:
        redis.start()


def test_check_explains_verdicts_and_batches(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(SecurityConfig())
    code, out = run(app, "check", "1' OR '1'='1")
    assert code == 0 and out.startswith("ATTACK: score")
    assert "[sqli]" in out
    code, out = run(app, "check", "wireless headphones")
    assert out.startswith("clean: score 0")
    code, out = run(app, "check", "<script>alert(1)</script>", "--location", "body")
    assert "[xss]" in out
    batch = tmp_path / "requests.jsonl"
    batch.write_text(
        '{"payload": "../../etc/passwd", "location": "path"}\n'
        '{"payload": "hello world"}\n'
        "\n"
        '{"payload": "; cat /etc/shadow", "location": "query", "name": "host"}\n'
    )
    code, out = run(app, "check", "--file", str(batch))
    assert code == 0 and out.endswith("2 of 3 flagged as attacks\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    code, out = run(app, "check", "--file", str(bad))
    assert code != 0 and "bad.jsonl:1" in out
    assert run(app, "check")[0] != 0  # neither a payload nor a file


def test_gatekeeper_apps_and_apps_without_rampart() -> None:
    app = Flask("gk")
    GateKeeper(app, ban_rule=[3, 60, 600])
    code, out = run(app, "bans", "add", "192.0.2.3", "--for", "30")
    assert code == 0 and "banned 192.0.2.3" in out
    bare = Flask("bare")
    code, out = run(bare, "status")
    assert code != 0 and "not initialised" in out


def test_the_flask_command_sees_the_workers_shared_store(tmp_path: Path) -> None:
    shm = f"shm://{tmp_path}/state.shm"
    (tmp_path / "served.py").write_text(
        "from flask import Flask\n"
        "from flask_rampart import Rampart, SecurityConfig\n"
        "app = Flask(__name__)\n"
        f"rampart = Rampart(app, config=SecurityConfig(storage_uri={shm!r}, rate_limit=50))\n"
        "@app.post('/login')\n"
        "@rampart.decorators.rate_limit(requests=3, window=60)\n"
        "def login():\n"
        "    return 'ok'\n"
    )
    app = Flask("worker")
    rampart = Rampart(app, config=SecurityConfig(storage_uri=shm, rate_limit=50))

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.post("/login")
    @rampart.decorators.rate_limit(requests=3, window=60)
    def login() -> str:
        return "ok"

    with app.app_context():
        rampart.ban("192.0.2.44", 300, "seen by the worker")

    def flask(*args: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "served", "rampart", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker = app.test_client()
    for _ in range(2):
        assert worker.post("/login", environ_base={"REMOTE_ADDR": "192.0.2.45"}).status_code == 200
    # A process that served no request still knows the routes' own limits (their decorators).
    table = flask("limits", "show", "192.0.2.45").splitlines()
    assert table[0].startswith("LIMIT")
    assert table[1].split()[:4] == ["global", "*", "ip", "0/50"]  # the route is standalone
    assert table[2].split()[:4] == ["route:login#1", "login", "ip", "2/3"]
    assert "192.0.2.44" in flask("bans", "list")
    assert "store: shm" in flask("status")
    flask("bans", "remove", "192.0.2.44")
    assert app.test_client().get("/", environ_base={"REMOTE_ADDR": "192.0.2.44"}).status_code == 200


def test_status_reports_an_unreachable_redis(make_app: AppFactory, redis: RedisServer) -> None:
    app = make_app(SecurityConfig(storage_uri=redis.url))
    code, out = run(app, "status")
    assert code == 0 and "store: redis (redis://127.0.0.1:" in out and "), ok" in out
    redis.kill()
    try:
        code, out = run(app, "status")
        assert code == 0 and "DEGRADED: Redis storage is unreachable" in out
    finally:
        redis.start()
