"""Cloud providers' IP ranges for ``block_cloud_providers``: loading, caching, refreshing.

For each blocked provider the ranges come from, in order:

1. ``cloud_ranges_files`` — your local copy in the provider's own format, read at start-up and
   again whenever it changes (no download ever happens for that provider);
2. Redis, when Rampart uses it and another host shared fresh ranges (``{prefix}cloud_ranges:X``);
3. the cache directory, when its copy is younger than ``cloud_ip_refresh_interval``;
4. a download from the provider (or ``cloud_ranges_urls``), in the background, never inside a
   request. Until the first one arrives, an older cached copy is used if there is one.

Parsing and lookups are Rust's: ranges are merged into one sorted set per provider, a lookup is a
binary search. A failed refresh keeps the ranges in use.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fetch import FetchError, age, atomic_write, default_cache_dir, fetch, host_lock, redact
from ._refresh import SCHEDULER

if TYPE_CHECKING:
    from ._native import Engine

logger = logging.getLogger("flask_rampart")

PROVIDERS = ("AWS", "GCP", "Azure")
DEFAULT_URLS = {
    "AWS": "https://ip-ranges.amazonaws.com/ip-ranges.json",
    "GCP": "https://www.gstatic.com/ipranges/cloud.json",
    # A download page that links the current weekly ServiceTags_Public_YYYYMMDD.json.
    "Azure": "https://www.microsoft.com/en-us/download/details.aspx?id=56519",
}
_AZURE_LINK = re.compile(rb"""https?://[^"'<>\s]+?ServiceTags_Public[^"'<>\s]*?\.json""")
TIMEOUT = 15.0


@dataclass
class ProviderState:
    """Where a provider's ranges in use came from."""

    ranges: int = 0
    entries: int = 0
    source: str = ""
    loaded_at: float | None = None
    error: str | None = None
    file_mtime: float | None = None


class CloudRanges:
    """The ranges of the blocked providers for one engine (one app)."""

    def __init__(self, engine: Engine, settings: dict[str, Any]) -> None:
        self.engine = engine
        self.providers: tuple[str, ...] = tuple(settings["block_cloud_providers"])
        self.interval = float(settings["cloud_ip_refresh_interval"])
        self.files: dict[str, str] = dict(settings["cloud_ranges_files"])
        self.urls: dict[str, str] = {**DEFAULT_URLS, **settings["cloud_ranges_urls"]}
        cache = settings["cloud_ranges_cache_dir"]
        self.cache_dir = Path(cache) if cache else default_cache_dir() / "cloud"
        self.state: dict[str, ProviderState] = {p: ProviderState() for p in self.providers}
        self._lock = threading.Lock()

    # -- start-up ---------------------------------------------------------------------------

    def start(self) -> list[tuple[str, str]]:
        """Loads what is at hand (files, Redis, cache) and schedules the rest. Returns the
        ``(field, reason)`` of every local file that cannot be used."""
        errors: list[tuple[str, str]] = []
        pending = False
        for p in self.providers:
            if p in self.files:
                try:
                    self._load_file(p)
                except (OSError, ValueError) as e:
                    errors.append((f"cloud_ranges_files.{p}", _why(e)))
                continue
            if not (self._from_shared(p) or self._from_cache(p, fresh_only=True)):
                pending = True
                if not self._from_cache(p, fresh_only=False):
                    logger.warning(
                        "cloud ranges: %s not loaded yet; its addresses pass until the "
                        "download in the background succeeds",
                        p,
                    )
        if errors:
            return errors
        SCHEDULER.every(self, "refresh_due", self.interval, first=0.0 if pending else None)
        return []

    # -- refreshing -------------------------------------------------------------------------

    def refresh_due(self) -> None:
        """The periodic refresh: files that changed, then providers whose ranges are stale."""
        self.refresh(force=False)

    def refresh(self, force: bool = True) -> dict[str, int]:
        """Refreshes every blocked provider now (``force``: download, whatever the caches
        hold). Returns ``{provider: ranges}`` of what is in use afterwards."""
        with self._lock:
            for p in self.providers:
                try:
                    if p in self.files:
                        self._load_file(p, only_if_changed=not force)
                    elif force or not self._fresh(p):
                        self._update(p, force)
                except (OSError, ValueError, FetchError) as e:
                    self.state[p].error = _why(e)
                    logger.warning(
                        "cloud ranges: %s refresh failed, keeping what is in use: %s", p, _why(e)
                    )
        return {p: s.ranges for p, s in self.state.items()}

    def _fresh(self, p: str) -> bool:
        loaded = self.state[p].loaded_at
        # A little short of the interval, so the periodic refresh never skips a turn.
        return loaded is not None and time.time() - loaded < self.interval * 0.9

    def _update(self, p: str, force: bool) -> None:
        cache = self._cache_path(p)
        with host_lock(cache):
            # Another process or host may have done it while this one waited.
            if not force and (self._from_shared(p) or self._from_cache(p, fresh_only=True)):
                return
            data = self._download(p)
            entries, ranges, skipped = self.engine.load_cloud_ranges(p, data)
            self._loaded(p, "download", entries, ranges)
            if skipped:
                logger.warning("cloud ranges: %s: %d entries were not CIDR ranges", p, skipped)
            text = self.engine.cloud_ranges(p) or ""
            atomic_write(cache, text.replace(",", "\n").encode() + b"\n")
            if self.engine.shares_blobs:
                self.engine.shared_set(f"cloud_ranges:{p}", text.encode(), self.interval)
        logger.info("cloud ranges: %s: %d ranges downloaded", p, ranges)

    def _download(self, p: str) -> bytes:
        url = self.urls[p]
        data = fetch(url, timeout=TIMEOUT)
        if p == "Azure" and not data.lstrip().startswith(b"{"):
            # The download page: follow its link to the current JSON file.
            match = _AZURE_LINK.search(data)
            if match is None:
                raise FetchError(f"{redact(url)}: no ServiceTags_Public JSON link on the page")
            data = fetch(match.group(0).decode("ascii", "replace"), timeout=TIMEOUT)
        return data

    # -- sources ----------------------------------------------------------------------------

    def _load_file(self, p: str, only_if_changed: bool = False) -> None:
        path = Path(self.files[p])
        mtime = path.stat().st_mtime
        if only_if_changed and mtime == self.state[p].file_mtime:
            return
        entries, ranges, _ = self.engine.load_cloud_ranges(p, path.read_bytes())
        self._loaded(p, f"file {path}", entries, ranges)
        self.state[p].file_mtime = mtime

    def _from_shared(self, p: str) -> bool:
        if not self.engine.shares_blobs:
            return False
        data = self.engine.shared_get(f"cloud_ranges:{p}")
        if not data:
            return False
        try:
            entries, ranges, _ = self.engine.load_cloud_ranges(p, data)
        except ValueError as e:
            logger.warning("cloud ranges: %s: the copy in Redis is unusable: %s", p, e)
            return False
        self._loaded(p, "redis", entries, ranges)
        return True

    def _from_cache(self, p: str, *, fresh_only: bool) -> bool:
        path = self._cache_path(p)
        now = time.time()
        a = age(path, now)
        if a is None or (fresh_only and a >= self.interval):
            return False
        try:
            entries, ranges, _ = self.engine.load_cloud_ranges(p, path.read_bytes())
        except (OSError, ValueError) as e:
            logger.warning("cloud ranges: %s: cache %s is unusable: %s", p, path, e)
            return False
        self._loaded(p, "cache", entries, ranges, at=now - a)
        return True

    def _cache_path(self, p: str) -> Path:
        return self.cache_dir / f"{p}.cidrs"

    def _loaded(
        self, p: str, source: str, entries: int, ranges: int, at: float | None = None
    ) -> None:
        s = self.state[p]
        s.entries, s.ranges, s.source = entries, ranges, source
        s.loaded_at = time.time() if at is None else at
        s.error = None

    def status(self) -> dict[str, dict[str, Any]]:
        """``{provider: {"ranges", "entries", "source", "loaded_at", "error"}}``."""
        return {
            p: {
                "ranges": s.ranges,
                "entries": s.entries,
                "source": s.source or None,
                "loaded_at": s.loaded_at,
                "error": s.error,
            }
            for p, s in self.state.items()
        }


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)
