"""Downloads and files: what the geolocation and cloud-range sources share.

Standard library only (``urllib``). Files are replaced atomically (written beside the target, then
renamed over it), so a reader never sees half a file, and a lock file keeps the processes of one
host from downloading the same thing at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from ._native import VERSION

USER_AGENT = f"flask-rampart/{VERSION}"
#: The most a download may be: IPInfo's country database is about 40 MB, Azure's tags 5 MB.
MAX_BYTES = 256 * 1024 * 1024

_SECRET_QUERY = re.compile(r"(?i)\b(token|key|api_key|license_key)=[^&#]*")


def redact(url: str) -> str:
    """The URL with secrets in its query replaced, for logs and errors."""
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", url)


class FetchError(Exception):
    """A download failed; the message names the URL (secrets redacted) and why."""


def fetch(url: str, *, timeout: float, max_bytes: int = MAX_BYTES) -> bytes:
    """The body of ``url`` (GET, following redirects)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except Exception as e:  # URLError, HTTPError, timeouts, connection resets
        raise FetchError(f"{redact(url)}: {_reason(e)}") from None
    if len(data) > max_bytes:
        raise FetchError(f"{redact(url)}: larger than {max_bytes} bytes")
    return data


def _reason(e: Exception) -> str:
    text = str(getattr(e, "reason", "") or e)
    return redact(text) or type(e).__name__


def atomic_write(path: Path, data: bytes, check: Callable[[str], None] | None = None) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, whole.
    ``check(temporary_path)`` runs on the written copy first; if it raises, ``path`` is left
    as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """Holds ``<path>.lock`` (an advisory lock shared by the processes of this host)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def age(path: Path, now: float) -> float | None:
    """Seconds since ``path`` was last written, or ``None`` when it does not exist."""
    try:
        return max(0.0, now - path.stat().st_mtime)
    except OSError:
        return None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flask-rampart"
