"""Name registries in the style of timm (``register``/``list``/``get``) with NNCF-style strict errors.

A :class:`Registry` maps a unique name to an entry (a spec dataclass). Registering a name twice raises
:class:`DuplicateNameError` naming both owners; looking up an unknown name raises
:class:`UnknownNameError` listing close matches.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from collections.abc import Iterator
import fnmatch
from typing import Generic
from typing import TypeVar
from typing import overload

from vitq_plugins.core.errors import DuplicateNameError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import close_matches

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A typed name → entry registry.

    Args:
        kind: what the registry holds ("quantizer", "recipe", ...); used in error messages.

    Example:
        >>> reg: Registry[int] = Registry("number")
        >>> reg.register("one", 1, owner="doc")
        1
        >>> reg.list("o*")
        ['one']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self.current_owner: str = "<python>"

    @overload
    def register(self, name: str, entry: T, *, owner: str | None = None) -> T: ...

    @overload
    def register(self, name: str, entry: None = None, *, owner: str | None = None) -> Callable[[T], T]: ...

    def register(
        self, name: str, entry: T | None = None, *, owner: str | None = None
    ) -> T | Callable[[T], T]:
        """Register ``entry`` under ``name``; without ``entry`` return a decorator.

        Raises:
            DuplicateNameError: ``name`` is already registered (the message names both owners).
            ValueError: ``name`` is empty or not a string.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        who = owner or self.current_owner

        def _do(obj: T) -> T:
            if name in self._entries:
                raise DuplicateNameError(
                    f"{self.kind} {name!r} is already registered by {self._owners[name]!r}; "
                    f"{who!r} tried to register it again"
                )
            self._entries[name] = obj
            self._owners[name] = who
            return obj

        if entry is None:
            return _do
        return _do(entry)

    def unregister(self, name: str) -> T:
        """Remove and return the entry registered under ``name``."""
        entry = self.get(name)
        del self._entries[name]
        del self._owners[name]
        return entry

    def get(self, name: str) -> T:
        """Return the entry for ``name``.

        Raises:
            UnknownNameError: no such name; the message lists close matches and the valid names.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        hints = close_matches(str(name), self._entries)
        hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        valid = ", ".join(sorted(self._entries)) or "(none registered)"
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} (registered: {valid})")

    def owner(self, name: str) -> str:
        """Return the plugin that registered ``name``."""
        self.get(name)
        return self._owners[name]

    def list(self, filter: str | None = None) -> list[str]:  # noqa: A002 - timm's spelling
        """Sorted registered names, optionally filtered by an fnmatch glob (``"int8*"``)."""
        names = sorted(self._entries)
        if filter:
            names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
        return names

    def items(self) -> builtins.list[tuple[str, T]]:
        """``(name, entry)`` pairs sorted by name."""
        return [(n, self._entries[n]) for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
