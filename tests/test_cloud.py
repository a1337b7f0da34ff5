"""Cloud-provider blocking end to end: the providers' own file formats (written here), downloads
from a loopback server standing in for the providers, the cache directory, Redis sharing, and
refreshes that fail."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppFactory, RampartLog, request_as
from flask import Flask
from flask_rampart import ConfigError, Rampart, SecurityConfig
from flask_rampart._refresh import Scheduler
from servers import FileServer, RedisServer

AWS_IP, GCP_IP, AZURE_IP, AZURE_V6, OTHER = (
    "52.94.76.9",
    "34.80.1.2",
    "20.33.4.4",
    "2603:1000::9",
    "198.51.100.7",
)


def aws_json(*prefixes: str) -> bytes:
    return json.dumps(
        {
            "syncToken": "1763000000",
            "createDate": "2026-11-20-10-00-00",
            "prefixes": [
                {"ip_prefix": p, "region": "us-west-2", "service": "EC2",
                 "network_border_group": "us-west-2"}
                for p in prefixes
            ],
            "ipv6_prefixes": [
                {"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "AMAZON",
                 "network_border_group": "us-west-2"}
            ],
        }
    ).encode()  # fmt: skip


GCP_JSON = json.dumps(
    {
        "syncToken": "1763000000",
        "creationTime": "2026-11-20T10:00:00.000000",
        "prefixes": [
            {"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"},
            {
                "ipv6Prefix": "2600:1900:4000::/44",
                "service": "Google Cloud",
                "scope": "us-central1",
            },
        ],
    }
).encode()

AZURE_JSON = json.dumps(
    {
        "changeNumber": 321,
        "cloud": "Public",
        "values": [
            {"name": "ActionGroup", "id": "ActionGroup",
             "properties": {"changeNumber": 3, "region": "", "regionId": 0, "platform": "Azure",
                            "systemService": "ActionGroup", "addressPrefixes": ["13.66.60.119/32"],
                            "networkFeatures": ["API", "NSG"]}},
            {"name": "AzureCloud", "id": "AzureCloud",
             "properties": {"changeNumber": 40, "region": "", "regionId": 0, "platform": "Azure",
                            "systemService": "", "addressPrefixes": ["20.33.0.0/16",
                                                                     "2603:1000::/25"],
                            "networkFeatures": ["API", "NSG"]}},
        ],
    }
).encode()  # fmt: skip


@pytest.fixture
def provider_files(tmp_path: Path) -> dict[str, str]:
    files = {
        "AWS": tmp_path / "ip-ranges.json",
        "GCP": tmp_path / "cloud.json",
        "Azure": tmp_path / "ServiceTags_Public_20261117.json",
    }
    files["AWS"].write_bytes(aws_json("52.94.76.0/22", "3.5.140.0/22"))
    files["GCP"].write_bytes(GCP_JSON)
    files["Azure"].write_bytes(AZURE_JSON)
    return {p: str(f) for p, f in files.items()}


def config(**fields: object) -> SecurityConfig:
    return SecurityConfig(**fields)


def test_each_providers_own_file_format_blocks_its_addresses(
    make_app: AppFactory, provider_files: dict[str, str], rampart_log: RampartLog, tmp_path: Path
) -> None:
    app = make_app(
        config(
            block_cloud_providers={"AWS", "GCP", "Azure"},
            cloud_ranges_files=provider_files,
            cloud_ranges_cache_dir=str(tmp_path / "cache"),
        )
    )
    for ip in (AWS_IP, "2600:1f14::1", GCP_IP, "2600:1900:4000::1", AZURE_IP, AZURE_V6,
               "13.66.60.119"):  # fmt: skip
        r = request_as(app, "/", ip)
        assert r.status_code == 403, ip
        assert r.get_data(as_text=True) == "Cloud provider IP not allowed"
    assert request_as(app, "/", OTHER).status_code == 200
    assert request_as(app, "/", "34.82.0.1").status_code == 200, "just outside GCP's range"
    providers = [e["cloud.provider"] for e in rampart_log.event_dicts if "cloud.provider" in e]
    assert providers[:2] == ["AWS", "AWS"]
    assert set(providers) == {"AWS", "GCP", "Azure"}
    assert rampart_log.event_dicts[0]["rule.id"] == "cloud:AWS"
    status = app.extensions["rampart"].extension
    with app.app_context():
        s = status.cloud_ranges_status()
    assert s["AWS"]["source"].startswith("file ")
    assert s["GCP"]["ranges"] == 2
    assert not (tmp_path / "cache").exists(), "files are never downloaded nor cached"


def test_only_the_blocked_providers_are_blocked(
    make_app: AppFactory, provider_files: dict[str, str]
) -> None:
    app = make_app(config(block_cloud_providers=["GCP"], cloud_ranges_files=provider_files))
    assert request_as(app, "/", GCP_IP).status_code == 403
    assert request_as(app, "/", AWS_IP).status_code == 200
    assert request_as(app, "/", AZURE_IP).status_code == 200


def test_whitelisted_and_passive(
    make_app: AppFactory, provider_files: dict[str, str], rampart_log: RampartLog
) -> None:
    app = make_app(
        config(
            block_cloud_providers=["AWS"],
            cloud_ranges_files=provider_files,
            whitelist=[AWS_IP, OTHER],
        )
    )
    assert request_as(app, "/", AWS_IP).status_code == 200, "the IP whitelist wins"
    app = make_app(
        config(block_cloud_providers=["AWS"], cloud_ranges_files=provider_files, passive_mode=True)
    )
    assert request_as(app, "/", AWS_IP).status_code == 200
    assert rampart_log.event_dicts[-1]["event.outcome"] == "passive"


def test_bad_provider_names_and_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(block_cloud_providers={"AWS", "DigitalOcean", "gcp"})
    errors = dict(excinfo.value.errors)
    assert "unknown cloud provider 'DigitalOcean'" in errors["block_cloud_providers[1]"]
    assert "did you mean 'GCP'" in errors["block_cloud_providers[2]"]
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(cloud_ranges_files={"Oracle": "x.json"}, cloud_ip_refresh_interval=10)
    assert sorted(dict(excinfo.value.errors)) == [
        "cloud_ip_refresh_interval",
        "cloud_ranges_files.Oracle",
    ]

    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(GCP_JSON)
    app = Flask("cloud_errors")
    with pytest.raises(ConfigError) as excinfo:
        Rampart(
            app,
            config(
                block_cloud_providers={"AWS", "GCP"},
                cloud_ranges_files={"AWS": str(wrong), "GCP": str(tmp_path / "missing.json")},
            ),
        )
    errors = dict(excinfo.value.errors)
    assert "AWS ip-ranges.json" in errors["cloud_ranges_files.AWS"]
    assert "No such file" in errors["cloud_ranges_files.GCP"]


def test_a_changed_file_is_read_again(make_app: AppFactory, provider_files: dict[str, str]) -> None:
    app = make_app(config(block_cloud_providers=["AWS"], cloud_ranges_files=provider_files))
    assert request_as(app, "/", OTHER).status_code == 200
    path = Path(provider_files["AWS"])
    path.write_bytes(aws_json("198.51.100.0/24"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    app.extensions["rampart"].clouds.refresh_due()
    assert request_as(app, "/", OTHER).status_code == 403
    assert request_as(app, "/", AWS_IP).status_code == 200, "the old ranges are gone"


# -- downloads ------------------------------------------------------------------------------


@pytest.fixture
def providers_site() -> Iterator[FileServer]:
    server = FileServer(
        {
            "/ip-ranges.json": aws_json("52.94.76.0/22"),
            "/ipranges/cloud.json": GCP_JSON,
            "/download/details.aspx": (
                b'<html><a href="http://127.0.0.1:PORT/download/7/ServiceTags_Public_20261117'
                b'.json">click here to download manually</a></html>'
            ),
            "/download/7/ServiceTags_Public_20261117.json": AZURE_JSON,
        }
    )
    page = server.files["/download/details.aspx"]
    assert isinstance(page, bytes)
    server.files["/download/details.aspx"] = page.replace(b"PORT", str(server.port).encode())
    yield server
    server.stop()


def site_urls(site: FileServer) -> dict[str, str]:
    return {
        "AWS": site.url("/ip-ranges.json"),
        "GCP": site.url("/ipranges/cloud.json"),
        "Azure": site.url("/download/details.aspx?id=56519"),
    }


def wait_loaded(app: Flask, providers: set[str], timeout: float = 15.0) -> dict[str, dict]:
    rampart: Rampart = app.extensions["rampart"].extension
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            status = rampart.cloud_ranges_status()
        if all(status[p]["ranges"] for p in providers):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.02)


def test_ranges_are_downloaded_in_the_background_then_cached(
    make_app: AppFactory, providers_site: FileServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    fields = dict(
        block_cloud_providers={"AWS", "GCP", "Azure"},
        cloud_ranges_urls=site_urls(providers_site),
        cloud_ranges_cache_dir=str(cache),
    )
    app = make_app(config(**fields))
    status = wait_loaded(app, {"AWS", "GCP", "Azure"})
    assert {s["source"] for s in status.values()} == {"download"}
    assert providers_site.count("/download/7/ServiceTags_Public_20261117.json") == 1
    for ip in (AWS_IP, GCP_IP, AZURE_IP, AZURE_V6):
        assert request_as(app, "/", ip).status_code == 403, ip
    assert request_as(app, "/", OTHER).status_code == 200
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".cidrs") == [
        "AWS.cidrs",
        "Azure.cidrs",
        "GCP.cidrs",
    ]
    assert "34.80.0.0/15" in (cache / "GCP.cidrs").read_text().splitlines()

    # A restart (or another worker) starts from the fresh cache: nothing is downloaded.
    before = len(providers_site.requests)
    again = make_app(config(**fields))
    with again.app_context():
        status = again.extensions["rampart"].extension.cloud_ranges_status()
    assert {s["source"] for s in status.values()} == {"cache"}
    assert request_as(again, "/", GCP_IP).status_code == 403
    time.sleep(0.2)
    assert len(providers_site.requests) == before


def test_a_stale_cache_is_used_until_the_download_arrives(
    make_app: AppFactory, providers_site: FileServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "AWS.cidrs").write_text("198.51.100.0/24\n")
    old = time.time() - 7200
    os.utime(cache / "AWS.cidrs", (old, old))
    providers_site.files["/ip-ranges.json"] = 503
    app = make_app(
        config(
            block_cloud_providers={"AWS"},
            cloud_ranges_urls=site_urls(providers_site),
            cloud_ranges_cache_dir=str(cache),
        )
    )
    assert request_as(app, "/", OTHER).status_code == 403, "the stale copy is in use"
    deadline = time.monotonic() + 10
    while providers_site.count("/ip-ranges.json") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    assert request_as(app, "/", OTHER).status_code == 403, "a failed download keeps it"


def test_refresh_downloads_now_and_a_failure_keeps_the_ranges(
    make_app: AppFactory, providers_site: FileServer, tmp_path: Path
) -> None:
    app = make_app(
        config(
            block_cloud_providers={"AWS"},
            cloud_ranges_urls=site_urls(providers_site),
            cloud_ranges_cache_dir=str(tmp_path / "cache"),
        )
    )
    wait_loaded(app, {"AWS"})
    rampart: Rampart = app.extensions["rampart"].extension
    providers_site.files["/ip-ranges.json"] = aws_json("198.51.100.0/24")
    with app.app_context():
        assert rampart.refresh_cloud_ip_ranges() == {"AWS": 2}
    assert request_as(app, "/", OTHER).status_code == 403
    assert request_as(app, "/", AWS_IP).status_code == 200
    assert providers_site.count("/ip-ranges.json") == 2

    for failure in (500, b'{"prefixes": []}', b"<html>maintenance</html>"):
        providers_site.files["/ip-ranges.json"] = failure
        with app.app_context():
            rampart.refresh_cloud_ip_ranges()
            status = rampart.cloud_ranges_status()["AWS"]
        assert status["error"], failure
        assert status["ranges"] == 2
        assert request_as(app, "/", OTHER).status_code == 403, "the ranges in use stay"


def test_ranges_are_shared_between_hosts_through_redis(
    make_app: AppFactory, providers_site: FileServer, tmp_path: Path, redis: RedisServer
) -> None:
    fields = dict(
        block_cloud_providers={"GCP"},
        cloud_ranges_urls=site_urls(providers_site),
        storage_uri=redis.url,
        cloud_ip_refresh_interval=600,
    )
    first = make_app(config(**fields, cloud_ranges_cache_dir=str(tmp_path / "a")))
    wait_loaded(first, {"GCP"})
    assert redis.keys("rampart:cloud_ranges:*") == ["rampart:cloud_ranges:GCP"]
    assert 0 < int(redis.command("TTL", "rampart:cloud_ranges:GCP")) <= 600
    shared = redis.command("GET", "rampart:cloud_ranges:GCP").decode()
    assert shared.split(",") == ["34.80.0.0/15", "2600:1900:4000::/44"]

    providers_site.files["/ipranges/cloud.json"] = 500
    second = make_app(config(**fields, cloud_ranges_cache_dir=str(tmp_path / "b")))
    with second.app_context():
        status = second.extensions["rampart"].extension.cloud_ranges_status()
    assert status["GCP"]["source"] == "redis"
    assert request_as(second, "/", GCP_IP).status_code == 403
    assert providers_site.count("/ipranges/cloud.json") == 1


# -- the refresh thread ---------------------------------------------------------------------


class Ticker:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks == 2:
            raise RuntimeError("a failing refresh is tried again next turn")


def test_the_scheduler_repeats_tasks_and_drops_them_with_their_owner() -> None:
    scheduler = Scheduler()
    ticker = Ticker()
    scheduler.every(ticker, "tick", 0.05, first=0.0)
    deadline = time.monotonic() + 10
    while ticker.ticks < 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    thread = scheduler._thread
    assert thread is not None and thread.is_alive()
    del ticker
    thread.join(timeout=10)
    assert not thread.is_alive(), "no owner left: the thread ends"
