"""Where clients are: geolocation handlers for ``geo_ip_handler``.

* :class:`MaxMindDB` reads a MaxMind-format file you already have (GeoLite2/GeoIP2 Country or
  City, or an IPInfo ``.mmdb``). Lookups run in Rust, with a cache in front.
* :class:`IPInfoManager` downloads IPInfo's free country database with your token, keeps it on
  disk, refreshes it when it is older than a day, and shares it through Redis when Rampart uses
  Redis.
* Anything with ``get_country(ip) -> str | None`` works too (the :class:`GeoIPHandler` protocol);
  Rampart calls it only when a country rule applies.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import _native
from ._fetch import FetchError, age, atomic_write, fetch, host_lock, redact
from ._refresh import SCHEDULER

if TYPE_CHECKING:
    from ._native import Engine

logger = logging.getLogger("flask_rampart")

IPINFO_URL = "https://ipinfo.io/data/free/country_asn.mmdb?token={token}"
IPINFO_DEFAULT_PATH = "data/ipinfo/country_asn.mmdb"
DAY = 86_400.0


@runtime_checkable
class GeoIPHandler(Protocol):
    """flaskapi-guard's geolocation protocol. Only ``get_country`` is required by Rampart; the
    others are called when present: ``initialize_redis`` (with a :class:`SharedState`) when
    Rampart uses Redis, then ``initialize()`` unless ``is_initialized`` is already true."""

    @property
    def is_initialized(self) -> bool: ...

    def initialize(self) -> None: ...

    def initialize_redis(self, redis_handler: Any) -> None: ...

    def get_country(self, ip: str) -> str | None: ...


class SharedState:
    """What ``initialize_redis`` receives: values shared with every host through Rampart's Redis
    connection, under ``{redis_prefix}{namespace}:{key}``. Values are bytes."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get_key(self, namespace: str, key: str) -> bytes | None:
        return self._engine.shared_get(f"{namespace}:{key}")

    def set_key(
        self, namespace: str, key: str, value: bytes | str, ttl: float | None = None
    ) -> bool:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return self._engine.shared_set(f"{namespace}:{key}", data, DAY if ttl is None else ttl)


class MaxMindDB:
    """A MaxMind-format database file as ``geo_ip_handler``::

        SecurityConfig(geo_ip_handler=MaxMindDB("GeoLite2-Country.mmdb"), blocked_countries=["XX"])

    The file is read when Rampart starts (a missing or broken file is a configuration error)
    and read again when it changes on disk, checked every ``check_every`` seconds (``None``:
    never), so a ``geoipupdate`` cron job is picked up without a restart.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_every: float | None = 3600.0) -> None:
        self.path = Path(path)
        self.check_every = check_every
        self._db = _native.GeoDatabase()
        self._mtime: float | None = None
        self._scheduled = False

    def __repr__(self) -> str:
        return f"MaxMindDB({str(self.path)!r})"

    @property
    def is_initialized(self) -> bool:
        return self._db.loaded

    def initialize(self) -> None:
        """Reads the file; ``ValueError`` says why it cannot be used."""
        self._load()
        if self.check_every and not self._scheduled:
            self._scheduled = True
            SCHEDULER.every(self, "reload", self.check_every)

    def initialize_redis(self, redis_handler: Any) -> None:
        """Nothing to share: the file is local."""

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as e:
            raise ValueError(f"cannot read {self.path}: {e.strerror}") from None
        self._db.load(self.path)
        self._mtime = mtime

    def reload(self) -> bool:
        """Reads the file again if it changed; whether it did. A broken new file is logged and
        the database in use stays."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._mtime:
            return False
        try:
            self._load()
        except ValueError as e:
            logger.warning("geolocation: keeping the database in use: %s", e)
            return False
        logger.info("geolocation: reloaded %s", self.path)
        return True

    def get_country(self, ip: str) -> str | None:
        """The ISO country code of ``ip``; ``None`` when not placed or not an address."""
        try:
            return self._db.country(ip)
        except ValueError:
            return None

    def get_asn(self, ip: str) -> int | None:
        """The autonomous system number of ``ip``, when the database has ASN data."""
        try:
            return self._db.asn(ip)
        except ValueError:
            return None

    @property
    def info(self) -> dict[str, Any] | None:
        """The loaded database's type, build time, size; ``None`` before loading."""
        return self._db.info()

    @property
    def _rampart_database(self) -> _native.GeoDatabase:
        return self._db


class IPInfoManager(MaxMindDB):
    """IPInfo's free IP-to-country database, downloaded with your token::

        SecurityConfig(geo_ip_handler=IPInfoManager("your-token"), blocked_countries=["XX"])

    At start-up the file at ``db_path`` is used when it is younger than ``max_age`` seconds;
    otherwise it is taken from Redis (when Rampart uses Redis and another host shared it) or
    downloaded (``tries`` attempts). A download is written beside the file, checked, then
    renamed over it, so a half-written file is never used; a failed refresh keeps the last good
    file. A background check every hour refreshes the file once it is older than ``max_age``.
    """

    def __init__(
        self,
        token: str,
        db_path: str | os.PathLike[str] | None = None,
        *,
        url: str = IPINFO_URL,
        max_age: float = DAY,
        timeout: float = 30.0,
        tries: int = 3,
        retry_delay: float = 1.0,
    ) -> None:
        if not token or not str(token).strip():
            raise ValueError("IPInfo token is required!")
        super().__init__(db_path or IPINFO_DEFAULT_PATH, check_every=None)
        self.token = str(token).strip()
        self.url = url
        self.max_age = max_age
        self.timeout = timeout
        self.tries = max(1, tries)
        self.retry_delay = retry_delay
        self._shared: SharedState | None = None

    def __repr__(self) -> str:
        return f"IPInfoManager(token='***', db_path={str(self.path)!r})"

    @property
    def db_path(self) -> Path:
        return self.path

    def initialize_redis(self, redis_handler: Any) -> None:
        """Shares the database between hosts under ``{redis_prefix}ipinfo:database``."""
        self._shared = redis_handler

    def initialize(self) -> None:
        self.refresh(force=False)
        if not self._scheduled:
            self._scheduled = True
            SCHEDULER.every(self, "_check", min(3600.0, max(60.0, self.max_age / 4)))

    def _check(self) -> None:
        self.refresh(force=False)

    def refresh(self, force: bool = True) -> bool:
        """Brings the database up to date: downloads it when ``force`` or when the file is
        missing or older than ``max_age``. Whether a usable database is loaded afterwards."""
        with host_lock(self.path):
            fresh = (a := age(self.path, time.time())) is not None and a < self.max_age
            if fresh and not force:
                self.reload()
                return self.is_initialized
            if not force and self._from_shared():
                return True
            try:
                self._download()
            except FetchError as e:
                if self.path.exists():
                    logger.warning(
                        "geolocation: IPInfo refresh failed, keeping %s: %s", self.path, e
                    )
                    self.reload()
                else:
                    logger.error(
                        "geolocation: no IPInfo database (%s); countries are unknown until a "
                        "download succeeds",
                        e,
                    )
                return self.is_initialized
        return True

    def _from_shared(self) -> bool:
        if self._shared is None:
            return False
        data = self._shared.get_key("ipinfo", "database")
        if not data:
            return False
        try:
            self._install(data)
        except FetchError as e:
            logger.warning("geolocation: the database shared in Redis is unusable: %s", e)
            return False
        logger.info("geolocation: IPInfo database taken from Redis (%d bytes)", len(data))
        return True

    def _download(self) -> None:
        url = self.url.format(token=self.token)
        last: FetchError | None = None
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.retry_delay * attempt)
            try:
                data = fetch(url, timeout=self.timeout)
                self._install(data)
            except FetchError as e:
                last = e
                continue
            logger.info(
                "geolocation: downloaded the IPInfo database (%d bytes) from %s",
                len(data),
                redact(url),
            )
            if self._shared is not None:
                self._shared.set_key("ipinfo", "database", data, self.max_age)
            return
        raise last or FetchError(redact(url))

    def _install(self, data: bytes) -> None:
        """Checks ``data`` is a database, then puts it in place of the file and loads it."""
        try:
            atomic_write(self.path, data, check=_native.GeoDatabase.check)
        except ValueError as e:
            raise FetchError(f"not a usable database: {e}") from None
        self._load()


def attach(engine: Engine, handler: Any) -> None:
    """Makes ``handler`` the engine's source of countries: Rampart's own databases directly,
    anything else through its ``get_country``."""
    if engine.shares_blobs and callable(getattr(handler, "initialize_redis", None)):
        handler.initialize_redis(SharedState(engine))
    if not getattr(handler, "is_initialized", False) and callable(
        getattr(handler, "initialize", None)
    ):
        handler.initialize()
    database = getattr(handler, "_rampart_database", None)
    if isinstance(database, _native.GeoDatabase):
        engine.set_geo_database(database)
    else:
        engine.set_geo_handler(handler)
