"""Errors raised by vitq, each naming the bad value and what would be valid."""

from __future__ import annotations

from collections.abc import Iterable
import difflib

__all__ = ["VitqError", "UnknownNameError", "DuplicateNameError", "ConfigError", "close_matches"]


class VitqError(Exception):
    """Base class of every error vitq raises on bad user input (the CLI maps it to exit code 2)."""


class UnknownNameError(VitqError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(VitqError, KeyError):
    """A second registration under a name that is already taken."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(VitqError, ValueError):
    """A quantization config that is malformed or does not fit the model/registry."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` registered names that look like ``name`` (difflib ratio, then substring)."""
    pool = list(choices)
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    low = name.lower()
    for c in pool:
        if len(found) >= n:
            break
        if c not in found and low and (low in c.lower() or c.lower() in low):
            found.append(c)
    return found
