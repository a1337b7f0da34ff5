"""Country blocking end to end: ``.mmdb`` databases (built here with the independent
``mmdb-writer`` package and with Rampart's own writer), ``IPInfoManager`` downloading from a
loopback server, sharing through a real Redis, and users' own handlers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppFactory, RampartLog, request_as
from flask_rampart import ConfigError, IPInfoManager, MaxMindDB, Rampart, SecurityConfig
from flask_rampart.testing import write_country_db
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from servers import FileServer, RedisServer

CN, US, FR, NOWHERE = "203.0.113.7", "198.51.100.7", "2001:db8::7", "192.0.2.7"


def mmdb(path: Path, networks: dict[str, dict[str, object]], kind: str) -> Path:
    """A database written by mmdb-writer (not Rampart's code)."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=kind,
        languages=["en"],
        description="rampart test",
    )
    for cidr, data in networks.items():
        writer.insert_network(IPSet([cidr]), data)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geolite(tmp_path: Path) -> Path:
    return mmdb(
        tmp_path / "GeoLite2-Country.mmdb",
        {
            "203.0.113.0/24": {"country": {"iso_code": "CN", "names": {"en": "China"}}},
            "198.51.100.0/24": {"country": {"iso_code": "US"}},
            "2001:db8::/32": {"country": {"iso_code": "FR"}},
        },
        "GeoLite2-Country",
    )


def ipinfo_bytes(tmp_path: Path, country_for_cn_block: str = "CN") -> bytes:
    path = mmdb(
        tmp_path / f"ipinfo-{country_for_cn_block}.mmdb",
        {
            "203.0.113.0/24": {"country": country_for_cn_block, "asn": "AS4134"},
            "198.51.100.0/24": {"country": "US", "asn": "AS15169"},
        },
        "ipinfo country_asn.mmdb",
    )
    return path.read_bytes()


def test_a_geolite_database_blocks_listed_countries(
    make_app: AppFactory, geolite: Path, rampart_log: RampartLog
) -> None:
    app = make_app(SecurityConfig(geo_ip_handler=MaxMindDB(geolite), blocked_countries=["CN"]))
    blocked = request_as(app, "/", CN)
    assert blocked.status_code == 403
    assert blocked.get_data(as_text=True) == "Forbidden"
    assert blocked.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert request_as(app, "/", US).status_code == 200
    assert request_as(app, "/", FR).status_code == 200
    assert request_as(app, "/", NOWHERE).status_code == 200, "not placed: passes a block list"
    event = next(e for e in rampart_log.event_dicts if e["event.action"] == "country_blocked")
    assert event["source.geo.country_iso_code"] == "CN"
    assert event["rule.id"] == "country:CN"
    assert event["source.ip"] == CN


def test_whitelist_countries_serves_only_those_countries(
    make_app: AppFactory, tmp_path: Path
) -> None:
    path = tmp_path / "ipinfo.mmdb"
    path.write_bytes(ipinfo_bytes(tmp_path))
    app = make_app(SecurityConfig(geo_ip_handler=MaxMindDB(path), whitelist_countries=["us"]))
    assert request_as(app, "/", US).status_code == 200
    assert request_as(app, "/", CN).status_code == 403
    assert request_as(app, "/", NOWHERE).status_code == 403, "not placed: fails an allow list"
    for private in ("127.0.0.1", "10.0.0.5", "192.168.1.20", "::1"):
        assert request_as(app, "/", private).status_code == 200, private


def test_the_ip_whitelist_exempts_from_country_rules(make_app: AppFactory, geolite: Path) -> None:
    app = make_app(
        SecurityConfig(
            geo_ip_handler=MaxMindDB(geolite),
            blocked_countries=["CN"],
            whitelist=["203.0.113.7", "198.51.100.0/24"],
        )
    )
    assert request_as(app, "/", CN).status_code == 200
    assert request_as(app, "/", "203.0.113.8").status_code == 403, "not on the IP whitelist"


def test_passive_mode_logs_a_country_block_and_serves(
    make_app: AppFactory, geolite: Path, rampart_log: RampartLog
) -> None:
    app = make_app(
        SecurityConfig(
            geo_ip_handler=MaxMindDB(geolite), blocked_countries=["CN"], passive_mode=True
        )
    )
    assert request_as(app, "/", CN).status_code == 200
    event = next(e for e in rampart_log.event_dicts if e["event.action"] == "country_blocked")
    assert event["event.outcome"] == "passive"


def test_emergency_mode_comes_before_country_rules(make_app: AppFactory, geolite: Path) -> None:
    app = make_app(
        SecurityConfig(
            geo_ip_handler=MaxMindDB(geolite),
            blocked_countries=["CN"],
            emergency_mode=True,
            emergency_whitelist=[US, CN],
        )
    )
    assert request_as(app, "/", FR).status_code == 503
    assert request_as(app, "/", US).status_code == 200
    assert request_as(app, "/", CN).status_code == 403, "let through emergency mode, still in CN"


def test_country_blocks_ban_only_with_geo_auto_ban(make_app: AppFactory, geolite: Path) -> None:
    def config(auto: bool) -> SecurityConfig:
        return SecurityConfig(
            geo_ip_handler=MaxMindDB(geolite),
            blocked_countries=["CN"],
            auto_ban_threshold=2,
            geo_auto_ban=auto,
        )

    app = make_app(config(False))
    for _ in range(3):
        request_as(app, "/", CN)
    with app.app_context():
        assert not app.extensions["rampart"].extension.is_banned(CN)
    app = make_app(config(True))
    request_as(app, "/", CN)
    second = request_as(app, "/", CN)
    assert second.status_code == 403
    with app.app_context():
        bans = app.extensions["rampart"].extension.bans()
    assert [b.ip for b in bans] == [CN]
    assert "reported 2 times" in bans[0].reason


def test_a_changed_database_file_is_read_again(make_app: AppFactory, tmp_path: Path) -> None:
    path = Path(write_country_db(tmp_path / "own.mmdb", {"203.0.113.0/24": "CN"}))
    handler = MaxMindDB(path)
    app = make_app(SecurityConfig(geo_ip_handler=handler, blocked_countries=["CN"]))
    assert request_as(app, "/", CN).status_code == 403
    write_country_db(tmp_path / "new.mmdb", {"203.0.113.0/24": "JP"})
    os.replace(tmp_path / "new.mmdb", path)
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert handler.reload() is True
    assert handler.reload() is False, "unchanged since"
    assert request_as(app, "/", CN).status_code == 200
    assert handler.get_country(CN) == "JP"
    # A broken replacement is refused and the database in use stays.
    path.write_bytes(b"garbage")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert handler.reload() is False
    assert handler.get_country(CN) == "JP"


def test_handler_methods_answer_without_an_app(tmp_path: Path) -> None:
    path = write_country_db(
        tmp_path / "asn.mmdb", [("203.0.113.0/24", ("CN", 4134))], layout="ipinfo"
    )
    db = MaxMindDB(path)
    db.initialize()
    assert db.is_initialized
    assert db.get_country(CN) == "CN"
    assert db.get_asn(CN) == 4134
    assert db.get_country("not an ip") is None
    assert db.get_country("8.8.8.8") is None
    assert db.info is not None and db.info["database_type"] == "ipinfo country_asn.mmdb"


def test_unusable_sources_are_one_config_error(make_app: AppFactory, tmp_path: Path) -> None:
    class NoLookup:
        pass

    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"\x00" * 64)
    for handler, words in [
        (MaxMindDB(tmp_path / "missing.mmdb"), "cannot read"),
        (MaxMindDB(bad), "MaxMind"),
        (NoLookup(), "no get_country"),
    ]:
        with pytest.raises(ConfigError) as excinfo:
            make_app(SecurityConfig(geo_ip_handler=handler, blocked_countries=["CN"]))
        assert [f for f, _ in excinfo.value.errors] == ["geo_ip_handler"]
        assert words in str(excinfo.value)
    with pytest.raises(ConfigError) as excinfo:
        make_app(
            SecurityConfig(
                geo_ip_handler=MaxMindDB(tmp_path / "missing.mmdb"),
                blocked_countries=["CN"],
                block_cloud_providers={"AWS"},
                cloud_ranges_files={"AWS": str(tmp_path / "missing.json")},
            )
        )
    fields = sorted(f for f, _ in excinfo.value.errors)
    assert fields == ["cloud_ranges_files.AWS", "geo_ip_handler"]


class CountingHandler:
    """A user's own handler in the documented protocol."""

    def __init__(self, answers: dict[str, object], fail_on: str | None = None) -> None:
        self.answers = answers
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.initialized = 0
        self.redis: object | None = None

    @property
    def is_initialized(self) -> bool:
        return self.initialized > 0

    def initialize(self) -> None:
        self.initialized += 1

    def initialize_redis(self, redis_handler: object) -> None:
        self.redis = redis_handler

    def get_country(self, ip: str) -> str | None:
        self.calls.append(ip)
        if ip == self.fail_on:
            raise RuntimeError("lookup service down")
        return self.answers.get(ip)  # type: ignore[return-value]


def test_a_custom_handler_is_asked_only_when_a_country_rule_applies(
    make_app: AppFactory, rampart_log: RampartLog
) -> None:
    handler = CountingHandler({CN: "CN", US: "US", "203.0.113.9": 42}, fail_on="203.0.113.8")
    app = make_app(
        SecurityConfig(
            geo_ip_handler=handler,
            blocked_countries=["CN"],
            whitelist=[CN, US, "203.0.113.8", "203.0.113.9", "10.0.0.1"],
        )
    )
    assert handler.initialized == 1
    assert handler.redis is None, "no Redis: initialize_redis is not called"
    # Whitelisted clients skip country rules: the handler is not asked.
    assert request_as(app, "/", CN).status_code == 200
    assert handler.calls == []

    app = make_app(SecurityConfig(geo_ip_handler=handler, blocked_countries=["CN"]))
    assert handler.initialized == 1, "already initialised: not again"
    assert request_as(app, "/", CN).status_code == 403
    assert request_as(app, "/", US).status_code == 200
    assert request_as(app, "/docs", CN).status_code == 200, "excluded path: no checks"
    assert request_as(app, "/", "10.0.0.1").status_code == 200, "private: never asked"
    assert handler.calls == [CN, US]
    # A handler that raises, or answers nonsense, leaves the country unknown and is logged.
    assert request_as(app, "/", "203.0.113.8").status_code == 200
    assert request_as(app, "/", "203.0.113.9").status_code == 200
    notes = [e for e in rampart_log.event_dicts if e["event.action"] == "geo_lookup_failed"]
    assert len(notes) == 2
    assert "lookup service down" in notes[0]["message"]
    assert "not a country code" in notes[1]["message"]

    app = make_app(SecurityConfig(geo_ip_handler=handler))
    handler.calls.clear()
    assert request_as(app, "/", CN).status_code == 200
    assert handler.calls == [], "no country rule: never asked"


def test_a_custom_handler_gets_the_shared_redis(make_app: AppFactory, redis: RedisServer) -> None:
    handler = CountingHandler({CN: "CN"})
    make_app(SecurityConfig(geo_ip_handler=handler, storage_uri=redis.url))
    assert handler.redis is not None
    assert handler.redis.set_key("mine", "k", "v", 60)  # type: ignore[attr-defined]
    assert handler.redis.get_key("mine", "k") == b"v"  # type: ignore[attr-defined]


# -- IPInfoManager --------------------------------------------------------------------------


@pytest.fixture
def ipinfo_site(tmp_path: Path) -> Iterator[FileServer]:
    server = FileServer({"/data/free/country_asn.mmdb": ipinfo_bytes(tmp_path)})
    yield server
    server.stop()


def manager(site: FileServer, path: Path, **kwargs: object) -> IPInfoManager:
    url = site.url("/data/free/country_asn.mmdb?token={token}")
    return IPInfoManager("s3cret-token", path, url=url, retry_delay=0.01, **kwargs)  # type: ignore[arg-type]


def test_ipinfo_needs_a_token() -> None:
    for token in ("", "  "):
        with pytest.raises(ValueError, match="IPInfo token is required!"):
            IPInfoManager(token)
    assert "s3cret" not in repr(IPInfoManager("s3cret"))


def test_ipinfo_downloads_once_and_uses_the_fresh_file(
    make_app: AppFactory, tmp_path: Path, ipinfo_site: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_rampart")
    path = tmp_path / "data" / "country_asn.mmdb"
    app = make_app(
        SecurityConfig(geo_ip_handler=manager(ipinfo_site, path), blocked_countries=["CN"])
    )
    assert ipinfo_site.requests == ["/data/free/country_asn.mmdb?token=s3cret-token"]
    assert path.is_file()
    assert request_as(app, "/", CN).status_code == 403
    assert request_as(app, "/", US).status_code == 200
    # A second start finds the file fresh: no download.
    make_app(SecurityConfig(geo_ip_handler=manager(ipinfo_site, path), blocked_countries=["CN"]))
    assert len(ipinfo_site.requests) == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no leftovers"
    assert "s3cret-token" not in caplog.text


def test_ipinfo_refreshes_a_stale_file(tmp_path: Path, ipinfo_site: FileServer) -> None:
    path = tmp_path / "country_asn.mmdb"
    path.write_bytes(ipinfo_bytes(tmp_path, "JP"))
    old = time.time() - 2 * 86_400
    os.utime(path, (old, old))
    m = manager(ipinfo_site, path)
    m.initialize()
    assert ipinfo_site.count("/data/free/country_asn.mmdb") == 1
    assert m.get_country(CN) == "CN", "the new file is in use"


def test_a_failed_ipinfo_refresh_keeps_the_last_good_file(
    tmp_path: Path, ipinfo_site: FileServer
) -> None:
    path = tmp_path / "country_asn.mmdb"
    good = ipinfo_bytes(tmp_path, "JP")
    path.write_bytes(good)
    old = time.time() - 2 * 86_400
    os.utime(path, (old, old))
    for failure in (503, b"<html>not a database</html>"):
        ipinfo_site.files["/data/free/country_asn.mmdb"] = failure
        before = len(ipinfo_site.requests)
        m = manager(ipinfo_site, path, tries=2)
        m.initialize()
        assert len(ipinfo_site.requests) - before == 2, "tried twice"
        assert path.read_bytes() == good, "never deleted nor replaced by a bad download"
        assert m.get_country(CN) == "JP", "the last good database is in use"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_no_database_at_all_leaves_countries_unknown(
    make_app: AppFactory, tmp_path: Path, ipinfo_site: FileServer
) -> None:
    ipinfo_site.files["/data/free/country_asn.mmdb"] = 500
    handler = manager(ipinfo_site, tmp_path / "none.mmdb", tries=1)
    blocking = make_app(SecurityConfig(geo_ip_handler=handler, blocked_countries=["CN"]))
    assert not handler.is_initialized
    assert request_as(blocking, "/", CN).status_code == 200, "unknown passes a block list"
    allowing = make_app(
        SecurityConfig(
            geo_ip_handler=manager(ipinfo_site, tmp_path / "none.mmdb", tries=1),
            whitelist_countries=["US"],
        )
    )
    assert request_as(allowing, "/", US).status_code == 403, "unknown fails an allow list"
    # The next refresh that succeeds brings it in.
    ipinfo_site.files["/data/free/country_asn.mmdb"] = ipinfo_bytes(tmp_path)
    assert handler.refresh() is True
    assert request_as(blocking, "/", CN).status_code == 403


def test_ipinfo_token_field_builds_the_manager(make_app: AppFactory, tmp_path: Path) -> None:
    path = tmp_path / "fresh.mmdb"
    path.write_bytes(ipinfo_bytes(tmp_path))
    app = make_app(
        SecurityConfig(ipinfo_token="t", ipinfo_db_path=str(path), blocked_countries=["CN"])
    )
    assert isinstance(app.extensions["rampart"].geo_handler, IPInfoManager)
    assert request_as(app, "/", CN).status_code == 403


def test_ipinfo_database_is_shared_between_hosts_through_redis(
    make_app: AppFactory, tmp_path: Path, ipinfo_site: FileServer, redis: RedisServer
) -> None:
    first = tmp_path / "host-a" / "db.mmdb"
    make_app(
        SecurityConfig(
            geo_ip_handler=manager(ipinfo_site, first),
            blocked_countries=["CN"],
            storage_uri=redis.url,
        )
    )
    assert ipinfo_site.count("/data/free/country_asn.mmdb") == 1
    assert redis.keys("rampart:ipinfo:*") == ["rampart:ipinfo:database"]
    assert 0 < int(redis.command("TTL", "rampart:ipinfo:database")) <= 86_400
    # Another host, its own disk empty, the download site now down: Redis has it.
    ipinfo_site.files["/data/free/country_asn.mmdb"] = 500
    second = tmp_path / "host-b" / "db.mmdb"
    app = make_app(
        SecurityConfig(
            geo_ip_handler=manager(ipinfo_site, second),
            blocked_countries=["CN"],
            storage_uri=redis.url,
        )
    )
    assert ipinfo_site.count("/data/free/country_asn.mmdb") == 1, "no second download"
    assert second.read_bytes() == first.read_bytes()
    assert request_as(app, "/", CN).status_code == 403


def test_the_extension_reports_countries(make_app: AppFactory, geolite: Path) -> None:
    app = make_app(SecurityConfig(geo_ip_handler=MaxMindDB(geolite), blocked_countries=["CN"]))
    rampart: Rampart = app.extensions["rampart"].extension
    with app.app_context():
        assert rampart.country_of(CN) == "CN"
        assert rampart.country_of("10.0.0.1") is None
        with pytest.raises(ValueError):
            rampart.country_of("nonsense")
