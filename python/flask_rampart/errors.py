"""Exceptions raised by Rampart."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration: ``errors`` lists every bad field as ``(field, reason)``.

    Raised by the Rust engine when it validates a config, so one error always names every
    problem at once.
    """

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[tuple[str, str]] = list(errors or [])

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        return (type(self), (str(self), self.errors))
