"""Penetration-attempt detection, Python side: the stream that replays a buffered body, and
the ``rampart.detector`` API. The detection, and the reading of the body, are in the Rust
engine."""

from __future__ import annotations

import io
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
