"""Exhaustive lookup tables of the integer program's bounded-domain integer functions (for the ONNX export).

On a calibrated model the inputs of the non-linear integer units (softmax exponentials, GELU) are codes of a
clamped grid (8 bits for the reference model's attention logits and fc1 outputs), so an integer function of
them has few distinct inputs and can be evaluated once, for every input, into an integer table (the papers'
integer forms build theirs with these helpers, e.g. I-ViT arXiv 2207.01405 Shiftmax eqs. 9-14):

* :func:`max_subtracted_table`: ``fn(d)`` for every ``d = x - max(x)`` of a row, laid out so that ONNX
  ``Gather`` indexes it with ``d`` itself (negative indices count from the end).
* :func:`byte_planes`: a table of non-negative integers split into uint8 planes, so that ``p @ v`` for a
  probability table ``p`` runs as one ``MatMulInteger`` per plane instead of an int64 ``MatMul``.

The tables are built by calling the same kernels the PyTorch executor runs, so a lookup returns the value the
executor computes, bit for bit; a ``Gather`` replaces a chain of some thirty elementwise int64 ops. Nothing here
is floating point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitq_plugins.intexec.requant import Requant

__all__ = [
    "MAX_TABLE_SPAN",
    "byte_planes",
    "code_span",
    "max_subtracted_table",
]

#: widest input grid (``qmax - qmin``) that gets a table: 1-D tables hold ``span + 1`` entries, the 2-D
#: ShiftGELU table ``(span + 1)^2`` (65,536 bytes for an 8-bit grid)
MAX_TABLE_SPAN = 255


def code_span(rq: Requant) -> int | None:
    """``qmax - qmin`` of a clamping requant's output grid, or ``None`` when its output is not bounded."""
    return rq.qmax - rq.qmin if rq.do_clamp else None


def max_subtracted_table(
    rq: Requant, in_shift: int, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor | None:
    """``fn(d << in_shift)`` for ``d = -span..0``, reordered so that ``table[d]`` (negative indices count from the
    end) is that value; ``None`` when ``rq``'s grid is unbounded or wider than :data:`MAX_TABLE_SPAN`."""
    span = code_span(rq)
    if span is None or span > MAX_TABLE_SPAN:
        return None
    values = fn(torch.arange(-span, 1, dtype=torch.int64) << in_shift)
    return torch.cat([values[-1:], values[:-1]])


def byte_planes(table: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """``[(k, plane_k)]`` with uint8 ``plane_k = (table >> 8k) & 255``, all-zero planes left out, so that
    ``table == sum_k plane_k << 8k``.

    Raises:
        ValueError: a negative entry (the planes hold non-negative values only).
    """
    t = table.to(torch.int64)
    if bool((t < 0).any()):
        raise ValueError(f"byte_planes needs non-negative entries, got min {int(t.min())}")
    planes = []
    for k in range(max(1, (int(t.max()).bit_length() + 7) // 8)):
        plane = (t >> (8 * k)) & 255
        if bool(plane.any()) or k == 0:
            planes.append((k, plane.to(torch.uint8)))
    return planes
