"""Integer-only non-linear kernels with per-layer constants precomputed at conversion time.

The numerics are those of :mod:`vitq_plugins.ops` (I-ViT arXiv 2207.01405): Shiftmax (Sec. 3.3, eqs. 9-14)
and ShiftGELU (Sec. 3.4, eqs. 15-17) via ``papers.ivit.shift.shiftmax_unit`` / ``shiftgelu_unit``; I-LayerNorm
(Sec. 3.5, eq. 18) via ``papers.ivit.ilayernorm``'s exact helpers. ``papers.ivit.ilayernorm.i_layernorm`` derives its
integer bias ``floor((beta / gamma) / (sqrt(C) / 2^30))`` in float64 on every call; here it is computed once
(:func:`ilayernorm_bias`) so the per-call path (:func:`ilayernorm_int`) has integer tensor ops only and is
bit-identical to ``i_layernorm(x, s, gamma, beta)[0]``.

:func:`layernorm_exact_int` is the integer LayerNorm used where the fake-quant model runs a *float*
LayerNorm on quantized inputs (FQ-ViT PTS inputs, arXiv 2111.13824 Sec. 3.2): I-LayerNorm's steps, but the
mean is not rounded (``y = C x - sum x``), so the only approximation left is the 2^30-step output grid.
"""

from __future__ import annotations

import math

import torch

from vitq_plugins.ops._intmath import floor_log2
from vitq_plugins.ops._intmath import isqrt_newton
from vitq_plugins.ops._intmath import round_shift
from vitq_plugins.papers.ivit.ilayernorm import round_div_half_even
from vitq_plugins.papers.ivit.shift import shiftgelu_unit
from vitq_plugins.papers.ivit.shift import shiftmax_unit

__all__ = [
    "ilayernorm_bias",
    "ilayernorm_int",
    "ilayernorm_scale",
    "EXACT_SQRT_FRAC",
    "exp_tables",
    "layernorm_exact_int",
    "pts_layernorm_constants",
    "pts_layernorm_int",
    "table_exp",
    "shiftgelu_unit",
    "shiftmax_unit",
]

_INT31_MAX = 2**31 - 1
_GAMMA_MIN = 1e-6


def _gamma_safe(weight: torch.Tensor, gamma_min: float) -> torch.Tensor:
    g = weight.detach().double()
    return torch.where(g.abs() < gamma_min, torch.where(g < 0, -gamma_min, gamma_min), g)


def ilayernorm_bias(weight: torch.Tensor, bias: torch.Tensor, gamma_min: float = _GAMMA_MIN) -> torch.Tensor:
    """int64 ``floor(beta / gamma_safe / (sqrt(C) / 2^30))`` (I-LayerNorm's integer bias, ``(C,)``)."""
    c = int(weight.shape[-1])
    norm_scale = math.sqrt(c) / 2**30
    out = torch.floor(bias.detach().double() / _gamma_safe(weight, gamma_min) / norm_scale)
    if bool((out.abs() >= 2**62).any()):
        raise ValueError("I-LayerNorm bias/gamma too large for int64")
    return out.to(torch.int64)


def ilayernorm_scale(weight: torch.Tensor, gamma_min: float = _GAMMA_MIN) -> torch.Tensor:
    """float32 per-channel output scale ``sqrt(C) / 2^30 * gamma_safe`` (as ``i_layernorm`` returns it)."""
    c = int(weight.shape[-1])
    return (math.sqrt(c) / 2**30 * _gamma_safe(weight, gamma_min)).float()


def ilayernorm_int(x_int: torch.Tensor, bias_int: torch.Tensor, sqrt_iters: int = 10) -> torch.Tensor:
    """I-LayerNorm over the last dim with a precomputed integer bias (``sqrt_mode="exact"``).

    Args:
        x_int: integer input ``(..., C)``, ``|x| < 2^31``.
        bias_int: :func:`ilayernorm_bias` ``(C,)``.
        sqrt_iters: Newton steps of ``isqrt_newton`` (``init="auto"``).

    Returns:
        int64 ``(..., C)``, scale :func:`ilayernorm_scale`; ``|y| <= 2^31 + max|bias_int|``.
    """
    c = int(x_int.shape[-1])
    x = x_int.to(torch.int64)
    mean = round_div_half_even(x.sum(dim=-1, keepdim=True), c)
    y = x - mean
    var = (y * y).sum(dim=-1, keepdim=True)
    std = isqrt_newton(var, sqrt_iters, init="auto")
    factor = torch.div(torch.full_like(std, _INT31_MAX), std.clamp(min=1), rounding_mode="floor")
    y = torch.div(y * factor, 2, rounding_mode="floor")
    return y + bias_int


#: fraction bits of the square root in :func:`layernorm_exact_int` (``isqrt(var << 2 P) = 2^P sqrt(var)``)
EXACT_SQRT_FRAC = 7


def layernorm_exact_int(x_int: torch.Tensor, bias_int: torch.Tensor, sqrt_iters: int = 10) -> torch.Tensor:
    """Integer LayerNorm without mean rounding; same output convention as :func:`ilayernorm_int`.

    ``y = C x - sum(x) = C (x - mean)``, ``var = sum y^2``, ``r = isqrt(var << 14) = 2^7 sqrt(var)``,
    ``out = floor((y << 37) / r) = x_hat * 2^30 / sqrt(C)`` (scale :func:`ilayernorm_scale`), one exact
    division per element (relative error about ``2^-7 / sqrt(var)``, vs. ``1 / sqrt(var)`` for I-LayerNorm's
    truncated reciprocal). Needs ``C * max|x| * 2 < 2^26`` and ``var < 2^48`` (checked by the converter's
    bound: PTS codes ``<= 255 * 8`` with ``C <= 768``).
    """
    c = int(x_int.shape[-1])
    x = x_int.to(torch.int64)
    y = x * c - x.sum(dim=-1, keepdim=True)
    var = (y * y).sum(dim=-1, keepdim=True)
    r = isqrt_newton(var << (2 * EXACT_SQRT_FRAC), sqrt_iters, init="auto")
    out = torch.div(y << (30 + EXACT_SQRT_FRAC), r.clamp(min=1), rounding_mode="floor")
    return out + bias_int


#: fixed-point bits of :func:`table_exp` (``e^0 = 2^30``) and low-table width
EXP_FRAC_BITS = 30
EXP_LO_BITS = 10


def exp_tables(scale: float, floor_bits: int = 32) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Tables of :func:`table_exp` for inputs at scale ``S``: ``(hi, lo, t_max)`` (computed once, float64).

    ``lo[j] = round(2^30 e^(-j S))`` (``j < 2^10``), ``hi[i] = round(2^30 e^(-i 2^10 S))``; ``t_max`` is where
    ``e^(-t S) < 2^-floor_bits`` (treated as 0).
    """
    t_max = math.ceil(floor_bits * math.log(2.0) / scale)
    n_hi = (t_max >> EXP_LO_BITS) + 1
    one = float(2**EXP_FRAC_BITS)
    lo = torch.round(one * torch.exp(-torch.arange(2**EXP_LO_BITS, dtype=torch.float64) * scale))
    hi = torch.round(one * torch.exp(-torch.arange(n_hi, dtype=torch.float64) * (2**EXP_LO_BITS * scale)))
    return hi.to(torch.int64), lo.to(torch.int64), t_max


def table_exp(t: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor, t_max: int) -> torch.Tensor:
    """``round(2^30 e^(-t S))`` for integer ``t >= 0`` as ``hi[t >> 10] * lo[t & 1023] >> 30`` (0 from ``t_max``).

    Relative error about ``2^-29``; used for FQ-ViT LIS (arXiv 2111.13824 eqs. 11-13) so that the log2 codes
    match the fake-quant model's float softmax (I-BERT's i-exp polynomial is off by up to ~1e-3).
    """
    tc = t.clamp(min=0, max=t_max)
    e = (hi[tc >> EXP_LO_BITS] * lo[tc & (2**EXP_LO_BITS - 1)]) >> EXP_FRAC_BITS
    return torch.where(tc >= t_max, torch.zeros_like(e), e)


#: fraction bits of ``sqrt(Q)`` in :func:`pts_layernorm_int` (``Q = (A 2^N)^2``) and of the bias constant
PTS_SQRT_FRAC = 23
PTS_BIAS_FRAC = 40
#: bits per step of the long division ``floor(Hm 2^u / D)`` (needs ``D < 2^(62 - 16)``) and its step count
PTS_DIV_STEP = 16
PTS_DIV_STEPS = 4


def pts_layernorm_int(
    x: torch.Tensor,
    sign: torch.Tensor,
    h_mant: torch.Tensor,
    h_exp: torch.Tensor,
    beta_fix: torch.Tensor,
    eps_int: int,
    mantissa_bits: int = 8,
) -> torch.Tensor:
    """``papers.fqvit.pts.pts_int_layernorm`` (before the zero point) with integer ops only.

    The reference derives, per token and channel, ``A = C gamma / (sqrt(D) S_out)``, ``N = clamp(mb - 1 -
    floor(log2 |A|), 0, 31)``, ``M = floor(|A| 2^N)`` and ``B = round((beta - S1 gamma / sqrt(D)) / S_out 2^N)``
    in float64; here ``Q = (A 2^N)^2 = H 2^(2N) / D`` with ``H = (C gamma / S_out)^2 = h_mant 2^-h_exp``
    (per channel, ``h_mant`` in ``[2^60, 2^61)``) is formed by an exact long division, ``sqrt(Q)`` to
    ``2^-23`` by an integer square root plus its first-order remainder, so ``M``, ``N`` and ``B`` differ from
    the float64 ones only where those lie within float64 precision of a rounding boundary.

    Args:
        x: aligned codes ``(x_q - zp) << (alpha_c - min alpha)`` ``(..., C)``, int64.
        sign: ``sign(gamma)`` ``(C,)``; ``beta_fix``: ``round(beta / S_out * C * 2^40)`` ``(C,)``.
        eps_int: the integer epsilon of the reference (``ceil(eps C^2 / s_min^2)``).

    Returns:
        int64 ``y`` (the reference's output before ``+ zero point`` and the clamp).
    """
    c = int(x.shape[-1])
    x = x.to(torch.int64)
    s1 = x.sum(dim=-1, keepdim=True)
    d = (c * (x * x).sum(dim=-1, keepdim=True) - s1 * s1 + eps_int).clamp(min=1)
    q = torch.div(h_mant, d, rounding_mode="floor")
    rem = h_mant - q * d
    lg = torch.div(floor_log2(q) - h_exp, 2, rounding_mode="floor")
    n = (mantissa_bits - 1 - lg).clamp(0, 31)
    p = (30 - lg - n).clamp(0, PTS_SQRT_FRAC)
    u = 2 * n + 2 * p - h_exp
    # floor(h_mant 2^u / d): a right shift of q for u <= 0, else a long division in 16-bit steps
    v = q >> (-u).clamp(min=0)
    left = u.clamp(min=0)
    for _ in range(PTS_DIV_STEPS):
        step = left.clamp(max=PTS_DIV_STEP)
        num = rem << step
        v = (v << step) + torch.div(num, d, rounding_mode="floor")
        rem = num - torch.div(num, d, rounding_mode="floor") * d
        left = left - step
    w = isqrt_newton(v, 10, init="auto")
    m = (w >> p).clamp(max=2**mantissa_bits - 1)
    r = v - w * w
    t = s1 * w + torch.div(s1 * r, 2 * w.clamp(min=1), rounding_mode="floor")
    sh = n + p - PTS_BIAS_FRAC
    b_sh = torch.where(
        sh >= 0,
        beta_fix * (torch.ones_like(sh) << sh.clamp(min=0)),
        torch.div(beta_fix, torch.ones_like(sh) << (-sh).clamp(min=0), rounding_mode="floor"),
    )
    den = c * (torch.ones_like(p) << p)
    b = torch.div(2 * (b_sh - sign * t) + den, 2 * den, rounding_mode="floor")
    return round_shift(sign * m * x + b, n, "half_even")


def pts_layernorm_constants(
    weight: torch.Tensor, bias: torch.Tensor, out_scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sign, h_mant, h_exp, beta_fix)`` of :func:`pts_layernorm_int` (exact rationals, computed once).

    Raises:
        ValueError: a zero ``gamma`` or a ``beta / S_out`` too large for the fixed-point bias.
    """
    from fractions import Fraction

    c = int(weight.shape[-1])
    osc = Fraction(float(out_scale))
    sign, mant, exp, beta = [], [], [], []
    for g, b in zip(weight.detach().double().tolist(), bias.detach().double().tolist(), strict=True):
        if g == 0:
            raise ValueError("PTS LayerNorm with a zero gamma has no integer form here")
        h = (c * Fraction(g) / osc) ** 2
        e = h.numerator.bit_length() - h.denominator.bit_length()
        e = e if Fraction(2) ** e <= h else e - 1  # floor(log2 h)
        f = 60 - e
        hm = math.floor(h * Fraction(2) ** f)
        sign.append(1 if g > 0 else -1)
        mant.append(hm)
        exp.append(f)
        bf = round(Fraction(b) / osc * c * 2**PTS_BIAS_FRAC)
        if abs(bf) >= 2**61:
            raise ValueError(f"PTS LayerNorm bias / output scale too large ({float(b) / float(osc):.3g})")
        beta.append(bf)
    return (
        torch.tensor(sign, dtype=torch.int64),
        torch.tensor(mant, dtype=torch.int64),
        torch.tensor(exp, dtype=torch.int64),
        torch.tensor(beta, dtype=torch.int64),
    )
