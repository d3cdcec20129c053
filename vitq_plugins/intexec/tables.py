"""Exhaustive lookup tables of the integer program's bounded-domain integer functions (for the ONNX export).

I-ViT (arXiv 2207.01405) computes ``exp`` by shifts (Shiftmax, eqs. 9-14) and GELU as ``x * sigmoid(1.702 x)``
with the same shift exponential (ShiftGELU, eqs. 15-17). On a calibrated model their inputs are codes of a
clamped grid (8 bits for the reference model's attention logits and fc1 outputs), so the integer functions
have few distinct inputs and can be evaluated once, for every input, into an integer table:

* :func:`shift_exp_table`: ``shift_exp_unit(d)`` for every ``d = x - max(x)`` of a Shiftmax row, laid out so
  that ONNX ``Gather`` indexes it with ``d`` itself (negative indices count from the end).
* :func:`shiftgelu_requant_table`: ShiftGELU followed by the requantization to fc2's input grid, as a function
  of an element and its row maximum (the stabiliser): a 2-D table of uint8 codes.
* :func:`iexp_table`: FQ-ViT's integer-only LIS (arXiv 2111.13824 Sec. 3.3) exponential, I-BERT's i-exp, in the
  layout of :func:`shift_exp_table`.
* :func:`byte_planes`: a table of non-negative integers split into uint8 planes, so that ``p @ v`` for a
  probability table ``p`` (LIS's ``2^(F - code)``) runs as one ``MatMulInteger`` per plane instead of an int64
  ``MatMul``.

The tables are built by calling the same kernels the PyTorch executor runs, so a lookup returns the value the
executor computes, bit for bit; a ``Gather`` replaces a chain of some thirty elementwise int64 ops. Nothing here
is floating point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitq_plugins.intexec.requant import Requant
from vitq_plugins.papers.fqvit.lis import iexp_unit
from vitq_plugins.papers.ivit.shift import shift_exp_unit
from vitq_plugins.papers.ivit.shift import shiftgelu_unit

__all__ = [
    "MAX_TABLE_SPAN",
    "byte_planes",
    "code_span",
    "iexp_table",
    "lis_power_table",
    "shift_exp_table",
    "shiftgelu_requant_table",
]

#: widest input grid (``qmax - qmin``) that gets a table: 1-D tables hold ``span + 1`` entries, the 2-D
#: ShiftGELU table ``(span + 1)^2`` (65,536 bytes for an 8-bit grid)
MAX_TABLE_SPAN = 255
_INT31_MAX = 2**31 - 1


def code_span(rq: Requant) -> int | None:
    """``qmax - qmin`` of a clamping requant's output grid, or ``None`` when its output is not bounded."""
    return rq.qmax - rq.qmin if rq.do_clamp else None


def shift_exp_table(rq_logits: Requant, x0: int, n: int, in_shift: int = 0) -> torch.Tensor | None:
    """Shiftmax's exponential of ``d = x - max(x)`` for every ``d`` in ``[-span, 0]`` (int64).

    Entry ``0`` holds ``d = 0`` and entry ``span + 1 - k`` holds ``d = -k``, so ``table[d]`` with Python's (and
    ONNX ``Gather``'s) negative indexing is ``shift_exp_unit(d << in_shift, x0, n, cap=2^31 - 1)`` (``in_shift``:
    a refined coarse grid, ``IntAttention.in_shift``). ``None`` when the logit grid is unbounded or wider than
    :data:`MAX_TABLE_SPAN`.
    """
    return _max_subtracted_table(rq_logits, in_shift, lambda d: shift_exp_unit(d, x0, n, cap=_INT31_MAX))


def iexp_table(
    rq_logits: Requant, constants: tuple[int, int, int], n: int, in_shift: int = 0
) -> torch.Tensor | None:
    """``papers.fqvit.lis.iexp_unit(d << in_shift, constants, n)`` for every ``d`` in ``[-span, 0]``, indexed like
    :func:`shift_exp_table` (``None`` on an unbounded or too wide logit grid)."""
    return _max_subtracted_table(rq_logits, in_shift, lambda d: iexp_unit(d, constants, n))


def _max_subtracted_table(
    rq: Requant, in_shift: int, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor | None:
    """``fn(d << in_shift)`` for ``d = -span..0``, reordered so that ``table[d]`` (negative indices count from the
    end) is that value; ``None`` when ``rq``'s grid is unbounded or wider than :data:`MAX_TABLE_SPAN`."""
    span = code_span(rq)
    if span is None or span > MAX_TABLE_SPAN:
        return None
    values = fn(torch.arange(-span, 1, dtype=torch.int64) << in_shift)
    return torch.cat([values[-1:], values[:-1]])


def lis_power_table(out_bits: int, frac: int) -> torch.Tensor:
    """LIS probabilities ``2^(frac - code)`` for codes ``0..2^b`` (0 above ``frac``, and for the underflow code)."""
    codes = torch.arange(0, 2**out_bits + 1, dtype=torch.int64)
    one = torch.ones_like(codes) << (frac - codes).clamp(min=0)
    return torch.where(codes <= frac, one, torch.zeros_like(codes))


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


def shiftgelu_requant_table(
    rq_gelu: Requant, rq_out: Requant, x0: int, n: int, out_bits: int, division: str, in_shift: int = 0
) -> tuple[torch.Tensor, int, int] | None:
    """ShiftGELU then ``rq_out`` as a 2-D table over (element, row maximum), flattened.

    Entry ``(a - lo) * width + (m - lo)`` is the uint8 code ``rq_out(shiftgelu(a | row max m))`` for centered
    GELU-input codes ``lo <= a <= m <= hi`` (entries with ``a > m`` cannot occur and hold the ``m = a`` value);
    ShiftGELU takes ``[a, m] << in_shift`` (a refined coarse grid, ``IntMlp.in_shift``).

    Returns:
        ``(table (uint8), lo, width)``, or ``None`` when a grid is unbounded, wider than
        :data:`MAX_TABLE_SPAN`, the output is not uint8 or its rescale is per channel.
    """
    span = code_span(rq_gelu)
    if span is None or span > MAX_TABLE_SPAN or not rq_out.do_clamp or rq_out.pre is not None:
        return None
    if rq_out.mantissa.numel() != 1 or rq_out.qmin < 0 or rq_out.qmax > 255:
        return None
    lo = rq_gelu.qmin - rq_gelu.zero_point
    v = torch.arange(lo, lo + span + 1, dtype=torch.int64)
    a = v.view(-1, 1).expand(-1, v.numel())
    m = torch.maximum(a, v.view(1, -1))
    rows = torch.stack([a, m], dim=-1) << in_shift  # a row [a, m] has maximum m: the kernel's stabiliser
    y = shiftgelu_unit(rows, x0, n=n, out_bits=out_bits, division=division)[..., 0]  # type: ignore[arg-type]
    codes = (rq_out.raw(y) + rq_out.zero_point).clamp(rq_out.qmin, rq_out.qmax)
    return codes.reshape(-1).to(torch.uint8), lo, int(v.numel())
