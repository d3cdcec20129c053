"""Dyadic requantization of integer accumulators (I-ViT arXiv 2207.01405, Sec. 3.2, eq. 7).

A rescale ``y = round(x * S_in / S_out) + z`` is computed as ``(x * m + 2^(k-1)) >> k`` with an integer
mantissa ``m`` and shift ``k`` (``ops.dyadic.dyadic_from_scale``: frexp, 31-bit mantissa), then the zero point
is added and the result clamped to the output code range. Scales may be per output channel. When the input
bound is large the mantissa is shortened so that ``x * m`` always fits in int64 (``bits = 62 - bitlen(bound)``).

:class:`Requant` holds precomputed constants only; its forward uses integer ops (``ops._intmath.round_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitq_plugins.intexec.recorder import Recorder
from vitq_plugins.ops.dyadic import MANTISSA_BITS
from vitq_plugins.ops.dyadic import dyadic_from_scale

__all__ = ["QParams", "Requant", "dyadic_constants"]

_I64_BITS = 62


@dataclass(frozen=True)
class QParams:
    """An affine integer grid: ``real = scale * (code - zero_point)``, codes in ``[qmin, qmax]``.

    ``name`` is the fake-quant quantizer that defines it (used to match per-layer errors).
    """

    scale: float
    zero_point: int
    qmin: int
    qmax: int
    name: str = ""
    #: FQ-ViT PTS (arXiv 2111.13824 eqs. 9-10): channel ``c`` has scale ``scale * 2^alpha[c]`` (empty: per tensor)
    alpha: tuple[int, ...] = ()

    def vec(self) -> torch.Tensor | float:
        """The scale: a float, or the float64 per-channel scales ``scale * 2^alpha`` of a PTS grid."""
        if not self.alpha:
            return self.scale
        return self.scale * torch.pow(2.0, torch.tensor(self.alpha, dtype=torch.float64))


def dyadic_constants(ratio: torch.Tensor | float, max_input: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mantissa and shift of ``ratio`` (per element) such that ``|x| * m < 2^62`` for ``|x| <= max_input``.

    Returns:
        int64 ``(mantissa, shift)`` with ``ratio ~= mantissa / 2^shift``.

    A ratio below ``2^-31`` (e.g. a LayerNorm channel whose learned gain is almost zero, seen on the converged
    reference model at 4 bits) keeps the largest shift, 62, with a shorter mantissa ``round(ratio * 2^62)``:
    the rescale stays exact to ``2^-62`` absolute, which is all such a channel can hold (its outputs round to
    0 or +-1 code).

    Raises:
        ValueError: a ratio above ``2^30`` or not positive, or an input bound too large to keep 8 mantissa bits.
    """
    r = torch.as_tensor(ratio, dtype=torch.float64)
    tiny = r < 2.0**-31
    m, k = dyadic_from_scale(torch.where(tiny & (r > 0), torch.full_like(r, 2.0**-31), r))
    if bool(tiny.any()):
        m = torch.where(tiny, torch.floor(r * 2.0**62 + 0.5).to(torch.int64), m)
        k = torch.where(tiny, torch.full_like(k, 62), k)
    bits = min(MANTISSA_BITS, _I64_BITS - max(1, int(max_input)).bit_length())
    if bits < 8:
        raise ValueError(f"input bound {max_input} leaves only {bits} mantissa bits for a dyadic rescale")
    drop = MANTISSA_BITS - bits
    if drop > 0:
        m = torch.div(m + (1 << (drop - 1)), 1 << drop, rounding_mode="floor")
        k = k - drop
    if bool((k < 0).any()):
        raise ValueError(f"dyadic rescale needs a negative shift (ratio too large: max {float(r.max())})")
    return m, k


class Requant(nn.Module):
    """``clamp(round_half_up(x * m / 2^k) + z, qmin, qmax)`` with per-tensor or per-channel ``m, k``.

    ``frac`` (optional, per channel, ``|frac| <= 1/2``) is the part of a bias below one accumulator LSB that the
    int32 bias could not hold; it is added in the rounding offset, so the bias is exact to ``2^-k``.

    Args:
        ratio: ``S_in / S_out`` (scalar or per channel along the last dim).
        out: the output grid (its zero point and range are used; ``out.scale`` only for reporting).
        max_input: bound on ``|x|`` (keeps ``x * m`` inside int64).
        clamp: saturate to ``[out.qmin, out.qmax]`` (``False`` keeps the raw rounded value).
        pre: an earlier requant of a chain of grids: ``x`` first goes through ``pre`` (its clamped codes minus
            its zero point are this requant's input). torch.ao FX rounds to every intermediate grid (a Linear
            to its own output grid, then a ``quantize_per_tensor`` to its consumer's), so the chain does too.
    """

    mantissa: torch.Tensor
    shift: torch.Tensor
    offset: torch.Tensor

    def __init__(
        self,
        ratio: torch.Tensor | float,
        out: QParams,
        max_input: int,
        clamp: bool = True,
        frac: torch.Tensor | None = None,
        pre: Requant | None = None,
    ) -> None:
        super().__init__()
        self.pre = pre
        m, k = dyadic_constants(ratio, max_input + 1)
        self.register_buffer("mantissa", m)
        self.register_buffer("shift", k)
        half = torch.where(k > 0, torch.ones_like(k) << (k - 1).clamp(min=0), torch.zeros_like(k))
        if frac is not None:
            # the sub-LSB part of a folded bias, added at the mantissa's precision (|frac| <= 1/2)
            half = half + torch.round(frac.double() * m.double()).to(torch.int64)
        self.register_buffer("offset", half)
        self.out = out
        self.zero_point = int(out.zero_point)
        self.qmin, self.qmax = int(out.qmin), int(out.qmax)
        self.do_clamp = clamp
        self.max_input = int(max_input)
        self.recorder = Recorder()

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """``floor((x * m + 2^(k-1) + frac * m) / 2^k)`` (no zero point, no clamp; ``x`` after ``pre``)."""
        if self.pre is not None:
            x = self.pre(x) - self.pre.zero_point
        return (x.to(torch.int64) * self.mantissa + self.offset) >> self.shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.raw(x) + self.zero_point
        if not self.do_clamp:
            return y
        y = y.clamp(self.qmin, self.qmax)
        self.recorder.tap(self.out.name, y)
        return y
