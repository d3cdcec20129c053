"""Exact int64 helpers: floor(log2), rounding right shifts, saturating left shifts and the integer square root.

These are the integer primitives used by the integer-only kernels of I-ViT (arXiv 2207.01405, Sec. 3.3-3.5)
and the Log-Int-Softmax of FQ-ViT (arXiv 2111.13824, Sec. 3.3). All functions operate on ``torch.int64``
tensors and never go through floating point, so they are exact for every int64 input they accept.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits

__all__ = [
    "RoundingMode",
    "floor_log2",
    "grid_refinement",
    "isqrt_newton",
    "refine_codes",
    "round_shift",
    "saturating_shl",
]

RoundingMode = Literal["half_up", "half_even", "truncate"]
"""Rounding of a right shift: ``half_up`` = floor(x/2^s + 1/2); ``half_even`` = ties to even (``torch.round``);
``truncate`` = arithmetic shift, i.e. floor toward -inf (TVM ``qnn.requantize(rounding="TRUNCATE")`` on
two's complement)."""

_ROUNDING_MODES = ("half_up", "half_even", "truncate")


def grid_refinement(scale: float, limit: float, *, strict: bool = False) -> int:
    """The least ``k >= 0`` with ``scale / 2^k <= limit`` (``< limit`` when ``strict``).

    An integer kernel whose constants need a fine input grid (I-ViT's ``I0 = floor(-1/S)`` needs ``S <= 1``,
    I-BERT's i-exp ``x0 = floor(-ln2/S)`` needs ``S < ln 2``) runs exactly on a coarser grid by taking the codes
    ``x << k`` at scale ``S / 2^k``: the same real values, so nothing is rounded. Coarse grids arise at 6 bits
    and below (a 6-bit attention-logit grid of the reference model has ``S = 1.01``).
    """
    if not (math.isfinite(scale) and scale > 0.0 and limit > 0.0):
        raise ValueError(f"grid_refinement needs a positive finite scale and limit, got {scale}, {limit}")
    k = 0
    while scale / 2.0**k > limit or (strict and scale / 2.0**k == limit):
        k += 1
    return k


def refine_codes(
    x_int: torch.Tensor, scale: float, limit: float, *, strict: bool = False, factor: float = 1.0
) -> tuple[torch.Tensor, float]:
    """``(x_int << k, scale / 2^k)`` with ``k = grid_refinement(factor * scale, limit, strict=strict)``."""
    k = grid_refinement(factor * scale, limit, strict=strict)
    if k == 0:
        return x_int, scale
    return x_int.to(torch.int64) << k, scale / 2.0**k


def floor_log2(v: torch.Tensor) -> torch.Tensor:
    """Exact ``floor(log2(v))`` for positive int64 values (the index of the most significant bit).

    Uses a 6-step binary search on the bit position (no float ``log2``, which misrounds near powers of two
    above 2^53).

    Args:
        v: int64 tensor with all elements ``>= 1``.

    Returns:
        int64 tensor of the same shape with values in ``[0, 62]``.

    Raises:
        ValueError: If ``v`` is not int64 or has an element ``< 1``.
    """
    if v.dtype != torch.int64:
        raise ValueError(f"floor_log2 expects an int64 tensor, got dtype {v.dtype}")
    if v.numel() and bool((v < 1).any()):
        raise ValueError(f"floor_log2 expects values >= 1, got min {int(v.min())}")
    msb = torch.zeros_like(v)
    for step in (32, 16, 8, 4, 2, 1):
        hit = (v >> (msb + step)) > 0
        msb = msb + step * hit.to(torch.int64)
    return msb


def round_shift(x: torch.Tensor, shift: torch.Tensor | int, mode: RoundingMode = "half_up") -> torch.Tensor:
    """Divide an int64 tensor by ``2**shift`` with the requested rounding, exactly.

    Args:
        x: int64 tensor.
        shift: Non-negative shift(s) in ``[0, 62]``; an int or an int64 tensor broadcastable to ``x``.
        mode: ``"half_up"``, ``"half_even"`` or ``"truncate"`` (floor), see :data:`RoundingMode`.

    Returns:
        int64 tensor ``round(x / 2**shift)`` with the broadcast shape.

    Raises:
        ValueError: On an unknown ``mode``, a negative or too large ``shift``, or if the half-up
            addition would overflow int64.
    """
    if mode not in _ROUNDING_MODES:
        raise ValueError(f"rounding mode must be one of {_ROUNDING_MODES}, got {mode!r}")
    s = torch.as_tensor(shift, dtype=torch.int64, device=x.device)
    if s.numel() and (bool((s < 0).any()) or bool((s > 62).any())):
        raise ValueError(f"shift must be in [0, 62], got range [{int(s.min())}, {int(s.max())}]")
    if mode == "truncate":
        return x >> s
    one = torch.ones((), dtype=torch.int64, device=x.device)
    half = torch.where(s > 0, one << (s - 1).clamp(min=0), torch.zeros_like(s))
    if mode == "half_up":
        limit = torch.iinfo(torch.int64).max - half
        if x.numel() and bool((x > limit).any()):
            raise ValueError("round_shift(half_up): x + 2**(shift-1) overflows int64")
        return (x + half) >> s
    q = x >> s
    r = x - (q << s)
    up = (r > half) | ((r == half) & ((q & 1) == 1) & (s > 0))
    return q + up.to(torch.int64)


def saturating_shl(v: torch.Tensor, shift: torch.Tensor, cap: int) -> torch.Tensor:
    """Compute ``min(v << shift, cap)`` for non-negative int64 ``v`` without overflow.

    Args:
        v: Non-negative int64 tensor.
        shift: Non-negative int64 shift amounts (any size; shifts >= 63 saturate unless ``v == 0``).
        cap: Saturation value, ``0 < cap < 2**63``.

    Returns:
        int64 tensor with the broadcast shape.
    """
    s = shift.clamp(min=0, max=62)
    # scalars, not full_like tensors: a traced ONNX graph would otherwise store each as a constant of the
    # activation's shape (hundreds of MB for an I-ViT model)
    fits = (v <= (torch.tensor(cap, dtype=torch.int64, device=v.device) >> s)) & ((shift <= 62) | (v == 0))
    shifted = torch.where(fits, v, 0) << s
    return torch.where(fits, shifted.clamp(max=cap), cap)


def isqrt_newton(
    v: torch.Tensor, iters: int = 10, *, init: Literal["auto", "official"] = "auto"
) -> torch.Tensor:
    """Integer square root by Newton iteration ``k <- floor((k + floor(v / k)) / 2)``.

    Args:
        v: Non-negative int64 tensor.
        iters: Newton steps. With ``init="auto"`` at least 8 are run (enough for all int64 inputs).
        init: ``"auto"``: start at ``2^ceil(bits(v)/2)`` and correct by +-1 -> exact ``floor(sqrt(v))``.
            ``"official"``: start at ``2^16`` and run exactly ``iters`` steps (I-ViT), not exact in general.

    Returns:
        int64 tensor of the same shape.

    Raises:
        ValueError: On a non-int64 tensor, negative values, ``iters < 1`` or an unknown ``init``.
    """
    if v.dtype != torch.int64:
        raise ValueError(f"isqrt_newton expects an int64 tensor, got dtype {v.dtype}")
    check_bits(iters, lo=1, hi=1000, what="iters")
    if v.numel() and bool((v < 0).any()):
        raise ValueError(f"isqrt_newton expects v >= 0, got min {int(v.min())}")
    if init == "official":
        k = torch.full_like(v, 2**16)
        for _ in range(iters):
            k = torch.div(k + torch.div(v, k, rounding_mode="floor"), 2, rounding_mode="floor").clamp(min=1)
        return k
    if init != "auto":
        raise ValueError(f"init must be 'auto' or 'official', got {init!r}")
    vv = v.clamp(min=1)
    half_bits = torch.div(floor_log2(vv) + 2, 2, rounding_mode="floor")
    k = torch.ones_like(v) << half_bits
    for _ in range(max(iters, 8)):
        k = torch.div(k + torch.div(vv, k, rounding_mode="floor"), 2, rounding_mode="floor").clamp(min=1)
    k = k - (k > torch.div(vv, k, rounding_mode="floor")).to(torch.int64)
    k1 = k + 1
    k = k + (k1 <= torch.div(vv, k1, rounding_mode="floor")).to(torch.int64)
    return torch.where(v == 0, 0, k)
