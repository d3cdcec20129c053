"""How a sweep is cut into tasks."""

from __future__ import annotations

__all__ = ["split_round_robin"]


def split_round_robin(n: int, parts: int) -> list[tuple[int, ...]]:
    """``range(n)`` dealt into ``min(n, parts)`` non-empty groups, round robin (``0, k, 2k, ...``), so
    that each group gets early and late items alike.

    Example:
        >>> split_round_robin(5, 2)
        [(0, 2, 4), (1, 3)]
    """
    if n < 0 or parts < 1:
        raise ValueError(f"cannot split {n} items into {parts} parts")
    k = min(n, parts)
    return [tuple(range(j, n, k)) for j in range(k)]
