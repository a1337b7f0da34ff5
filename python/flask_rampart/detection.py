"""Penetration-attempt detection, Python side: the stream that replays a buffered body, and
the ``rampart.detector`` API. The detection, and the reading of the body, are in the Rust
engine."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from .extension import RampartState

#: Where the engine leaves the buffered body (and the count of bytes it did not read).
BODY_KEY = "rampart.body"
TRUNCATED_KEY = "rampart.body_truncated"


class _ReplayInput(io.RawIOBase):
    """``wsgi.input`` after the engine read the start of the body: that start, then the rest of
    the original stream, so the application reads the whole body as sent. Made by the engine
    (``buffer_body`` in ``crates/rampart-py``)."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = memoryview(head)
        self._pos = 0
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        if self._pos < len(self._head):
            chunk = self._head[self._pos : self._pos + size]
            buffer[: len(chunk)] = chunk
            self._pos += len(chunk)
            return len(chunk)
        data = self._rest.read(size)
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


#: Chunk size when spooling a large multipart body.
_SPOOL_CHUNK = 1 << 16


def _spool(head: bytes, rest: Any, length: int | None, cap: int) -> tuple[Any, Any, bool]:
    """A multipart body larger than the inspection limit, read whole into a temporary file so
    its text parts can be found wherever they are (file contents are not inspected, but a text
    field may come after them). ``head`` is what the engine read already, ``rest`` the stream,
    ``length`` the ``Content-Length`` (``None``: read to the end), ``cap`` the most to read
    (Flask's ``MAX_CONTENT_LENGTH``, beyond which the application refuses the body itself).

    Returns the stream the application reads instead of ``wsgi.input`` (the file, then what
    was not read), the file for the engine (which maps it read-only), and whether the whole
    body was read. Made by the engine (``buffer_body`` in ``crates/rampart-py``).
    """
    spool = tempfile.TemporaryFile()  # handed to the application as its input
    spool.write(head)
    size = len(head)
    want = cap if length is None else min(length, cap)
    complete = True
    while size < want:
        chunk = rest.read(min(_SPOOL_CHUNK, want - size))
        if not chunk:
            break
        spool.write(chunk)
        size += len(chunk)
    else:
        complete = length is not None and size >= length
    spool.flush()
    spool.seek(0)
    stream: Any = spool if complete else _ChainInput(spool, rest)
    return stream, spool, complete


class _ChainInput(io.RawIOBase):
    """A spooled start of the body, then the rest of the original stream."""

    def __init__(self, first: Any, rest: Any) -> None:
        self._first: Any = first
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._first is not None:
            n = self._first.readinto(buffer)
            if n:
                return int(n)
            self._first = None
        data = self._rest.read(len(buffer))
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class Finding:
    """One rule that matched one value."""

    rule: int
    category: str
    score: int
    location: str
    excerpt: str
    description: str

    def __str__(self) -> str:
        return (
            f"{self.category} at {self.location} (rule {self.rule} {self.description}, "
            f"score {self.score}): {self.excerpt}"
        )


@dataclass(frozen=True)
class ScanResult:
    """What detection made of a request or a value. True when it is an attack."""

    attack: bool
    score: int
    threshold: int
    findings: tuple[Finding, ...]
    summary: str
    truncated_bytes: int = 0

    def __bool__(self) -> bool:
        return self.attack

    @classmethod
    def from_native(cls, data: dict[str, Any]) -> ScanResult:
        return cls(
            attack=data["attack"],
            score=data["score"],
            threshold=data["threshold"],
            findings=tuple(Finding(**f) for f in data["findings"]),
            summary=data["summary"],
            truncated_bytes=data["truncated_bytes"],
        )


@dataclass(frozen=True)
class CustomPattern:
    """A user rule added with :meth:`DetectorControl.add_pattern`."""

    id: int
    pattern: str
    category: str
    score: int
    description: str


class DetectorControl:
    """``rampart.detector``: explain a value, and add or remove rules at runtime, on the current
    app's engine. Rules added here apply to every request from then on, in every thread."""

    def __init__(self, extension_key: str) -> None:
        self._extension_key = extension_key

    def _state(self) -> RampartState:
        try:
            return current_app.extensions[self._extension_key]
        except RuntimeError:
            raise RuntimeError(
                "rampart.detector needs an application context: call it inside a request, "
                "or within `with app.app_context():`"
            ) from None

    def scan(self, text: str, location: str = "query", name: str = "") -> ScanResult:
        """Inspects ``text`` as if it arrived at ``location`` (``query``, ``form``/``body``,
        ``json``, ``header``, ``cookie``, ``path``, ``key``) as parameter ``name``."""
        return ScanResult.from_native(self._state().engine.scan_text(text, location, name))

    def add_pattern(
        self,
        pattern: str,
        category: str = "custom",
        score: int = 5,
        id: int | None = None,
        description: str = "",
    ) -> CustomPattern:
        """Adds a rule: ``pattern`` is a Rust ``regex`` matched against the normalised value
        (lower case, decoded); it must not match the empty string. Raises ``ConfigError``."""
        rule = self._state().engine.add_pattern(pattern, category, score, id, description)
        return CustomPattern(**rule)

    def remove_pattern(self, rule: int | str) -> int:
        """Removes user rules by id or by pattern; how many were removed."""
        return self._state().engine.remove_pattern(rule)

    @property
    def patterns(self) -> list[CustomPattern]:
        """The user rules, in the order they were added."""
        return [CustomPattern(**r) for r in self._state().engine.custom_patterns()]
