"""Helpers for testing applications protected by Rampart.

``ManualClock`` replaces the wall clock the rate limits and bans run on, so a test can step past a
window instead of sleeping::

    from flask_rampart.testing import ManualClock

    clock = ManualClock()
    Rampart(app, SecurityConfig(rate_limit=2, rate_limit_window=60), clock=clock)
    ...
    clock.advance(60)   # the window has passed
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from ._native import ManualClock, build_country_db

__all__ = ["ManualClock", "write_country_db"]


def write_country_db(
    path: str | os.PathLike[str],
    networks: Mapping[str, str | tuple[str, int]] | Iterable[tuple[str, str | tuple[str, int]]],
    *,
    layout: str = "maxmind",
) -> str:
    """Writes a small ``.mmdb`` country database for tests, returns its path::

        write_country_db(tmp_path / "geo.mmdb", {"203.0.113.0/24": "CN", "2001:db8::/32": "FR"})
        SecurityConfig(geo_ip_handler=MaxMindDB(tmp_path / "geo.mmdb"), blocked_countries=["CN"])

    ``layout="maxmind"`` stores ``country.iso_code`` (GeoLite2's shape); ``"ipinfo"`` stores
    ``country`` (and ``asn`` when a value is ``(code, asn)``), IPInfo's shape.
    """
    items = list(networks.items()) if isinstance(networks, Mapping) else list(networks)
    data = build_country_db(items, layout)
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)
