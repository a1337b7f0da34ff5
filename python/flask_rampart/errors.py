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

    @classmethod
    def from_pairs(cls, errors: list[tuple[str, str]]) -> ConfigError:
        """One error for every ``(field, reason)``, worded as the engine words its own."""
        n = len(errors)
        lines = "".join(f"\n  - {field}: {reason}" for field, reason in errors)
        return cls(f"{n} invalid configuration field{'' if n == 1 else 's'}:{lines}", errors)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        return (type(self), (str(self), self.errors))
