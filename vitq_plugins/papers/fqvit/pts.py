"""FQ-ViT Power-of-Two Factor (PTF, a.k.a. "PTS") quantization of LayerNorm inputs + the integer LayerNorm.

FQ-ViT (arXiv 2111.13824, Sec. 3.2, eqs. 9-10; official ``models/ptq/observer/ptf.py`` and
``models/ptq/layers.py::QIntLayerNorm``). LayerNorm inputs have severe inter-channel variation, so channel
``c`` gets the scale ``s * 2^alpha_c`` with one layer-wise base scale ``s`` and ``alpha_c in {0..K}``:

* ``s = (max_t - min_t) / (2^b - 1) / 2^K`` from the layer-wide range (min/max over all channels);
* ``zero_point``: ``"official"`` uses the 8x scale ``scale8 = s * 2^K`` -
  ``clamp(qmin - round(min_t / scale8))`` (what the released code does and its numbers need);
  ``"paper"`` uses ``s`` as in eqs. 9-10 (issue megvii-research/FQ-ViT#34);
* ``alpha_c = argmin_alpha || x_c - Q(x_c; s * 2^alpha) ||_2`` (ties -> smallest alpha).

The official code evaluates that L2 error on the *last* calibration batch only (``stats="last"`` here).
``stats="all"`` evaluates it on every calibration sample in a single pass with bounded memory via a per-channel
:class:`~vitq_plugins.ops.histogram.MomentHistogram` (count/sum/sum-of-squares per bin, exact bin merging when
the range grows). Its error estimate is exact for every bin that falls inside one rounding cell of a candidate
grid; bins straddling a rounding boundary are modelled as uniform with their exact mean and variance. On
LayerNorm-like data (384 channels, log-uniform channel scales, one 20x outlier) the default ``B = 512`` bins
per channel reproduce the exact all-data ``alpha`` of every channel, with candidate errors within ~2%.

The integer LayerNorm (:func:`pts_int_layernorm`) aligns the channels with a left shift by
``alpha_c - min(alpha)``, computes ``sum x`` and ``sum x^2`` in int64 and applies the per-token dyadic affine
of the official code (8-bit mantissa ``M``, shift ``N``). Note: the official code takes a **float** square
root of ``C * sum x^2 - (sum x)^2`` in float32 (catastrophic cancellation for large values); here it is formed
exactly in int64 and square-rooted either in float64 (``sqrt="float"``) or exactly with the I-LayerNorm Newton
routine (``sqrt="newton"``). The per-token multiplier ``A`` and offset ``B`` are derived in float64, like the
official code does in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._checks import check_same_last_dim
from vitq_plugins.ops._intmath import isqrt_newton
from vitq_plugins.ops._intmath import round_shift
from vitq_plugins.ops.histogram import MomentHistogram
from vitq_plugins.ops.uniform import FLOAT32_EPS
from vitq_plugins.ops.uniform import MinMaxObserver

__all__ = ["PTSObserver", "PTSParams", "pts_fake_quant", "pts_int_layernorm", "pts_quantize"]

_CHUNK_ELEMS = 1 << 22


@dataclass(frozen=True)
class PTSParams:
    """Power-of-two-factor quantization parameters (unsigned ``bits``-bit codes).

    Attributes:
        scale_base: Layer-wise base scale ``s`` (0-d float32).
        alpha: Per-channel power-of-two exponents ``(C,)`` int64 in ``[0, K]``.
        zero_point: Layer-wise zero point (0-d int64).
        bits: Bit-width of the unsigned codes.
    """

    scale_base: torch.Tensor
    alpha: torch.Tensor
    zero_point: torch.Tensor
    bits: int

    @property
    def scale(self) -> torch.Tensor:
        """Per-channel scales ``s * 2^alpha`` ``(C,)``."""
        return self.scale_base * torch.pow(2.0, self.alpha.to(self.scale_base.dtype))

    @property
    def qmin(self) -> int:
        """Smallest code (0)."""
        return 0

    @property
    def qmax(self) -> int:
        """Largest code ``2^bits - 1``."""
        return int(2**self.bits - 1)

    @property
    def num_channels(self) -> int:
        """Number of channels ``C``."""
        return int(self.alpha.shape[0])


def _candidate_scales(base: torch.Tensor, k: int) -> torch.Tensor:
    return base * torch.pow(2.0, torch.arange(k + 1, dtype=base.dtype))


class PTSObserver:
    """Streaming PTF observer for LayerNorm inputs of shape ``(..., C)``.

    Args:
        num_channels: Channel count ``C`` (last dimension).
        bits: Code bit-width (unsigned), 2..16.
        k: Largest power-of-two factor exponent ``K`` (FQ-ViT: 3).
        stats: ``"all"`` (histogram over all batches) or ``"last"`` (official: last batch only).
        zero_point: ``"official"`` (zero point from ``scale8 = s * 2^K``) or ``"paper"`` (from ``s``).
        bins: Histogram bins per channel for ``stats="all"`` (memory ``3 * C * bins`` float64).
    """

    def __init__(
        self,
        num_channels: int,
        bits: int = 8,
        k: int = 3,
        stats: Literal["all", "last"] = "all",
        zero_point: Literal["paper", "official"] = "official",
        bins: int = 512,
    ) -> None:
        check_bits(num_channels, lo=1, hi=2**24, what="num_channels")
        check_bits(bits, lo=2, hi=16, what="bits")
        check_bits(k, lo=0, hi=16, what="k")
        if stats not in ("all", "last"):
            raise ValueError(f"stats must be 'all' or 'last', got {stats!r}")
        if zero_point not in ("paper", "official"):
            raise ValueError(f"zero_point must be 'paper' or 'official', got {zero_point!r}")
        self.num_channels, self.bits, self.k = num_channels, bits, k
        self.stats, self.zero_point_mode = stats, zero_point
        self._minmax = MinMaxObserver(per_channel_axis=-1)
        self._hist = MomentHistogram(num_channels, bins) if stats == "all" else None
        self._last: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Accumulate a calibration batch ``(..., C)``.

        Raises:
            ValueError: On a wrong channel count, empty or non-finite input.
        """
        check_nonempty(x, "x")
        check_same_last_dim(x, self.num_channels, "x")
        x2 = x.detach().reshape(-1, self.num_channels)
        if x2.dtype not in (torch.float32, torch.float64):
            x2 = x2.float()
        if self._hist is not None:
            self._hist.update(x2)  # validates finiteness through the per-channel extrema
        else:
            self._minmax.update(x2)  # checks finiteness through the per-channel extrema
            self._last = x2.clone()

    @property
    def min(self) -> torch.Tensor:
        """Running per-channel minimum ``(C,)`` float32."""
        if self._hist is not None:
            if not self._hist.initialized:
                raise RuntimeError("PTSObserver read before any update()")
            return self._hist.min.float()
        return self._minmax.min.float()

    @property
    def max(self) -> torch.Tensor:
        """Running per-channel maximum ``(C,)`` float32."""
        if self._hist is not None:
            if not self._hist.initialized:
                raise RuntimeError("PTSObserver read before any update()")
            return self._hist.max.float()
        return self._minmax.max.float()

    def _base_and_zp(self) -> tuple[torch.Tensor, torch.Tensor]:
        qmax = 2**self.bits - 1
        min_t, max_t = self.min.min(), self.max.max()
        scale_top = ((max_t - min_t) / float(qmax)).clamp(min=FLOAT32_EPS)
        base = scale_top / float(2**self.k)
        zp_scale = scale_top if self.zero_point_mode == "official" else base
        zp = (0 - torch.round(min_t / zp_scale)).clamp(0, qmax).to(torch.int64)
        return base, zp

    def candidate_errors(self) -> torch.Tensor:
        """Mean squared error of every channel at every candidate ``alpha``, float64 ``(C, K + 1)``."""
        base, zp = self._base_and_zp()
        scales = _candidate_scales(base, self.k)
        qmax = 2**self.bits - 1
        if self._hist is not None:
            sc = scales.double().unsqueeze(0).expand(self.num_channels, -1)
            sse = self._hist.quant_sse(sc, float(zp), qmin=0, qmax=qmax)
            return sse / self._hist.total.clamp(min=1.0).unsqueeze(1)
        if self._last is None:
            raise RuntimeError("PTSObserver.candidate_errors called before any update()")
        data = self._last
        zpf = zp.to(data.dtype)
        sse = torch.zeros(self.num_channels, self.k + 1, dtype=torch.float64)
        rows = max(1, _CHUNK_ELEMS // (self.num_channels * (self.k + 1)))
        for start in range(0, data.shape[0], rows):
            part = data[start : start + rows].unsqueeze(-1)
            xq = (torch.clamp(torch.round(part / scales + zpf), 0, qmax) - zpf) * scales
            sse += ((part - xq) ** 2).sum(dim=0, dtype=torch.float64)
        return sse / data.shape[0]

    def compute(self) -> PTSParams:
        """Select ``alpha`` per channel and return the :class:`PTSParams`."""
        errors = self.candidate_errors()
        alpha = torch.argmin(errors, dim=1).to(torch.int64)
        base, zp = self._base_and_zp()
        return PTSParams(base.float(), alpha, zp, self.bits)


def pts_quantize(x: torch.Tensor, params: PTSParams) -> torch.Tensor:
    """Quantize ``(..., C)`` to unsigned PTF codes ``clamp(round(x / (s 2^alpha_c)) + zp, 0, 2^b - 1)``.

    Returns:
        int64 codes (zero point included).
    """
    check_nonempty(x, "x")
    check_same_last_dim(x, params.num_channels, "x")
    check_finite(x, "x")
    scale = params.scale.to(x.dtype) if x.is_floating_point() else params.scale
    return torch.clamp(torch.round(x / scale) + params.zero_point, params.qmin, params.qmax).to(torch.int64)


def pts_fake_quant(x: torch.Tensor, params: PTSParams) -> torch.Tensor:
    """PTF fake quantization with a straight-through estimator.

    Args:
        x: Float input ``(..., C)``.
        params: PTF parameters.

    Returns:
        ``dequant(quant(x))`` in value, identity gradient (``xq.detach() + (x - x.detach())``).
    """
    q = pts_quantize(x, params)
    xq = ((q - params.zero_point).to(x.dtype) * params.scale.to(x.dtype)).to(x.dtype)
    return xq.detach() + (x - x.detach())


def pts_int_layernorm(
    x_q: torch.Tensor,
    params: PTSParams,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    out_scale: torch.Tensor | float,
    *,
    sqrt: Literal["float", "newton"] = "float",
    mantissa_bits: int = 8,
    out_bits: int | None = None,
    out_zero_point: int = 0,
    out_signed: bool = False,
) -> torch.Tensor:
    """Integer LayerNorm on PTF codes (FQ-ViT ``QIntLayerNorm`` ``mode="int"``).

    Steps (``C`` channels, per token): ``x = (x_q - zp) << (alpha_c - min alpha)``;
    ``S1 = sum x``, ``D = C * sum x^2 - S1^2 + eps_int`` (int64, ``eps_int = ceil(eps C^2 / s_min^2)``);
    ``r = sqrt(D)``; ``A = C * gamma / (r * out_scale)``; ``(M, N) = get_MN(|A|)`` with
    ``N = clamp(mb - 1 - floor(log2 |A|), 0, 31)``, ``M = clamp(floor(|A| 2^N), 0, 2^mb - 1)``;
    ``B = round((beta - S1 * gamma / r) / out_scale * 2^N)``; ``y = round((sign(A) M x + B) / 2^N)``
    (ties to even, like the official ``torch.round``).

    Args:
        x_q: PTF codes ``(..., C)`` (zero point included), e.g. from :func:`pts_quantize`.
        params: The PTF parameters the codes were produced with.
        weight: LayerNorm ``gamma`` ``(C,)`` (kept in float, as in FQ-ViT).
        bias: LayerNorm ``beta`` ``(C,)``.
        eps: LayerNorm epsilon added to the variance; ``0`` reproduces the official code (no eps).
            A zero variance is floored to ``D = 1``.
        out_scale: Output quantizer scale, 0-d or ``(C,)``.
        sqrt: ``"float"`` (float64 sqrt, official uses float32) or ``"newton"`` (exact integer sqrt).
        mantissa_bits: Bits of the dyadic multiplier ``M`` (official: 8).
        out_bits: If given, return ``clamp(y + out_zero_point)`` in the ``out_bits`` range.
        out_zero_point: Output zero point (used only with ``out_bits``).
        out_signed: Signed output range (used only with ``out_bits``).

    Returns:
        int64 ``(..., C)``: ``y`` with ``y * out_scale ~= LayerNorm(dequant(x_q))`` (or codes if ``out_bits``).

    Raises:
        ValueError: On shape/dtype mismatches, empty or non-finite inputs, or codes outside the PTF range.
    """
    check_int_tensor(x_q, "x_q")
    check_nonempty(x_q, "x_q")
    c = params.num_channels
    check_same_last_dim(x_q, c, "x_q")
    for t, name in ((weight, "weight"), (bias, "bias")):
        if t.shape != (c,):
            raise ValueError(f"{name} must have shape ({c},), got {tuple(t.shape)}")
        check_finite(t, name)
    if eps < 0 or eps != eps:
        raise ValueError(f"eps must be >= 0, got {eps}")
    osc = torch.as_tensor(out_scale, dtype=torch.float64)
    check_positive(osc, "out_scale")
    if osc.dim() not in (0, 1) or (osc.dim() == 1 and osc.shape[0] not in (1, c)):
        raise ValueError(f"out_scale must be 0-d or of shape ({c},), got {tuple(osc.shape)}")
    check_bits(mantissa_bits, lo=2, hi=31, what="mantissa_bits")
    if sqrt not in ("float", "newton"):
        raise ValueError(f"sqrt must be 'float' or 'newton', got {sqrt!r}")
    xq = x_q.to(torch.int64)
    if bool((xq < params.qmin).any()) or bool((xq > params.qmax).any()):
        raise ValueError(f"x_q must hold codes in [0, {params.qmax}], got [{int(xq.min())}, {int(xq.max())}]")

    amin = int(params.alpha.min())
    x = (xq - params.zero_point) << (params.alpha - amin)
    xmax = int(x.abs().max())
    if c * xmax * xmax >= 2**62 or xmax * 2**mantissa_bits >= 2**61:
        raise ValueError(
            f"int64 overflow risk: max |aligned code| = {xmax} with C = {c}, mantissa_bits = {mantissa_bits}"
        )
    s1 = x.sum(dim=-1, keepdim=True)
    d = c * (x * x).sum(dim=-1, keepdim=True) - s1 * s1
    s_min = float(params.scale_base) * 2.0**amin
    if eps > 0:
        d = d + math.ceil(eps * c * c / (s_min * s_min))
    d = d.clamp(min=1)
    r = isqrt_newton(d).double() if sqrt == "newton" else torch.sqrt(d.double())

    g = weight.detach().double()
    beta = bias.detach().double()
    a = c * g / (r * osc)
    a_abs = a.abs()
    with torch.no_grad():
        # floor(log2|A|) = frexp exponent - 1, exact (no libm log2 rounding); |A| = 0 -> N = 31, M = 0
        log2_floor = torch.where(
            a_abs > 0, torch.frexp(a_abs).exponent.double() - 1, torch.full_like(a_abs, -1e9)
        )
        n_shift = torch.clamp(mantissa_bits - 1 - log2_floor, 0, 31)
        m = torch.clamp(torch.floor(a_abs * torch.pow(2.0, n_shift)), 0, 2**mantissa_bits - 1)
    b = torch.round((beta - s1.double() * g / r) / osc * torch.pow(2.0, n_shift))
    if bool((b.abs() >= 2**61).any()):
        raise ValueError(
            f"offset B overflows int64: max |B| = {b.abs().max().item():.3g}; out_scale={osc.min().item():.3g} too small?"
        )
    p = torch.sign(a).to(torch.int64) * m.to(torch.int64) * x + b.to(torch.int64)
    y = round_shift(p, n_shift.to(torch.int64), "half_even")
    if out_bits is None:
        return y
    check_bits(out_bits, lo=2, hi=32, what="out_bits")
    lo, hi = (-(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1) if out_signed else (0, 2**out_bits - 1)
    return (y + out_zero_point).clamp(lo, hi)
