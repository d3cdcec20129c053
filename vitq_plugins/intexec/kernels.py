"""Generic integer kernels of the integer IR, with per-layer constants precomputed at conversion time.

* :func:`layernorm_bias` / :func:`layernorm_scale`: the integer LayerNorm output convention shared by every
  LayerNorm form, ``y = x_hat 2^30 / sqrt(C) + floor((beta / gamma) / (sqrt(C) / 2^30))`` at the per-channel
  scale ``sqrt(C) / 2^30 * gamma`` (I-ViT arXiv 2207.01405 eq. 18 uses it; computed once here, in float64).
* :func:`layernorm_exact_int`: the integer LayerNorm used where the fake-quant model runs a *float* LayerNorm
  on quantized inputs (e.g. FQ-ViT's PTS inputs, arXiv 2111.13824 Sec. 3.2): the mean is not rounded
  (``y = C x - sum x``), so the only approximation left is the 2^30-step output grid.
* :func:`exp_tables` / :func:`table_exp`: ``round(2^30 e^(-t S))`` from two tables (used by log2 softmax codes).
"""

from __future__ import annotations

import math

import torch

from vitq_plugins.ops._intmath import isqrt_newton

__all__ = [
    "EXACT_SQRT_FRAC",
    "EXP_FRAC_BITS",
    "EXP_LO_BITS",
    "exp_tables",
    "layernorm_bias",
    "layernorm_exact_int",
    "layernorm_scale",
    "table_exp",
]

_GAMMA_MIN = 1e-6


def _gamma_safe(weight: torch.Tensor, gamma_min: float) -> torch.Tensor:
    g = weight.detach().double()
    return torch.where(g.abs() < gamma_min, torch.where(g < 0, -gamma_min, gamma_min), g)


def layernorm_bias(weight: torch.Tensor, bias: torch.Tensor, gamma_min: float = _GAMMA_MIN) -> torch.Tensor:
    """int64 ``floor(beta / gamma_safe / (sqrt(C) / 2^30))`` (I-LayerNorm's integer bias, ``(C,)``)."""
    c = int(weight.shape[-1])
    norm_scale = math.sqrt(c) / 2**30
    out = torch.floor(bias.detach().double() / _gamma_safe(weight, gamma_min) / norm_scale)
    if bool((out.abs() >= 2**62).any()):
        raise ValueError("I-LayerNorm bias/gamma too large for int64")
    return out.to(torch.int64)


def layernorm_scale(weight: torch.Tensor, gamma_min: float = _GAMMA_MIN) -> torch.Tensor:
    """float32 per-channel output scale ``sqrt(C) / 2^30 * gamma_safe`` (as ``i_layernorm`` returns it)."""
    c = int(weight.shape[-1])
    return (math.sqrt(c) / 2**30 * _gamma_safe(weight, gamma_min)).float()


#: fraction bits of the square root in :func:`layernorm_exact_int` (``isqrt(var << 2 P) = 2^P sqrt(var)``)
EXACT_SQRT_FRAC = 7


def layernorm_exact_int(x_int: torch.Tensor, bias_int: torch.Tensor, sqrt_iters: int = 10) -> torch.Tensor:
    """Integer LayerNorm without mean rounding; output convention of :func:`layernorm_bias`.

    ``y = C x - sum(x) = C (x - mean)``, ``var = sum y^2``, ``r = isqrt(var << 14) = 2^7 sqrt(var)``,
    ``out = floor((y << 37) / r) = x_hat * 2^30 / sqrt(C)`` (scale :func:`layernorm_scale`), one exact
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
