"""Dyadic (integer mantissa + right shift) requantization, as in I-ViT.

I-ViT (arXiv 2207.01405, Sec. 3.2, "dyadic arithmetic") replaces every floating-point rescale
``S_in / S_out`` by ``m / 2**shift`` with a 31-bit integer mantissa ``m``, obtained with ``frexp``
(official code: ``batch_frexp`` + ``fixedpoint_mul`` in ``quant_utils.py``). This module reproduces that
conversion vectorised, and performs the integer-only multiply-and-shift with configurable rounding.

Conventions:
    * ``(f, e) = frexp(scale)`` with ``f`` in ``[0.5, 1)``; ``mantissa = round_half_up(f * 2**31)``;
      ``shift = 31 - e``. Rounding can produce ``mantissa == 2**31`` (``f`` just below 1); the official
      code keeps that 32-bit value, we renormalise it to ``(2**30, shift - 1)`` so that the mantissa
      always fits in 31 bits (the represented value is identical).
    * Final rounding: the official PyTorch code uses ``torch.round`` (ties to even, ``"half_even"``) on a
      float64 product (which is inexact above 2**53); TVM uses ``TRUNCATE`` (``"truncate"``, floor).
      ``"half_up"`` (default, ties toward +inf) is the usual hardware choice. All modes here are exact.
"""

from __future__ import annotations

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._intmath import RoundingMode
from vitq_plugins.ops._intmath import round_shift

__all__ = ["MANTISSA_BITS", "dyadic_from_scale", "dyadic_requant", "dyadic_to_float"]

MANTISSA_BITS = 31
"""Number of bits of the dyadic mantissa (I-ViT ``batch_frexp(max_bit=31)``)."""

_MIN_SCALE = 2.0**-31
_MAX_SCALE = 2.0**30


def dyadic_from_scale(scale: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert positive real scale(s) to dyadic numbers ``mantissa / 2**shift``.

    Args:
        scale: Positive scale(s), e.g. ``S_in / S_out``; any shape. Computed in float64.
            Valid range: ``[2**-31, 2**30]``, so that ``shift`` lies in ``[0, 62]`` even after a rounding
            carry.

    Returns:
        ``(mantissa, shift)``: int64 tensors of the same shape as ``scale`` with
        ``2**30 <= mantissa < 2**31`` and ``scale ~= mantissa / 2**shift`` (relative error <= 2**-31).

    Raises:
        ValueError: If a scale is non-finite, ``<= 0`` or outside ``[2**-31, 2**30]``.
    """
    s = torch.as_tensor(scale, dtype=torch.float64)
    check_positive(s, "scale")
    if bool((s < _MIN_SCALE).any()) or bool((s > _MAX_SCALE).any()):
        raise ValueError(
            f"scale must be in [2**-31, 2**30] for a shift in [0, 62], got range [{s.min().item()}, {s.max().item()}]"
        )
    frac, exp = torch.frexp(s)
    mant = torch.floor(frac * float(2**MANTISSA_BITS) + 0.5).to(torch.int64)
    shift = MANTISSA_BITS - exp.to(torch.int64)
    overflow = mant == 2**MANTISSA_BITS
    mant = torch.where(overflow, torch.full_like(mant, 2 ** (MANTISSA_BITS - 1)), mant)
    shift = torch.where(overflow, shift - 1, shift)
    return mant, shift


def dyadic_to_float(mantissa: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Return the float64 value ``mantissa / 2**shift`` of a dyadic number.

    Args:
        mantissa: int64 mantissa(s).
        shift: int64 shift(s), broadcastable to ``mantissa``.

    Returns:
        float64 tensor.
    """
    return mantissa.to(torch.float64) * torch.pow(2.0, -shift.to(torch.float64))


def dyadic_requant(
    x_int: torch.Tensor,
    mantissa: torch.Tensor,
    shift: torch.Tensor,
    *,
    rounding: RoundingMode = "half_up",
    out_bits: int = 8,
    signed: bool = True,
) -> torch.Tensor:
    """Integer-only rescale ``clamp(round(x_int * mantissa / 2**shift))`` (I-ViT ``fixedpoint_mul``).

    Args:
        x_int: Integer tensor (any integer dtype; computed in int64). ``|x_int|`` must be ``< 2**32`` so
            that ``x_int * mantissa`` fits in int64.
        mantissa: int64 mantissa(s) from :func:`dyadic_from_scale`, broadcastable to ``x_int``
            (per-tensor scalar or per-channel).
        shift: int64 shift(s) in ``[0, 62]``, broadcastable to ``x_int``.
        rounding: ``"half_up"`` (default), ``"half_even"`` (official PyTorch ``torch.round``) or
            ``"truncate"`` (TVM, floor).
        out_bits: Output bit-width in ``[2, 32]``.
        signed: Clamp to ``[-2**(b-1), 2**(b-1)-1]`` if True, else to ``[0, 2**b - 1]``.

    Returns:
        int64 tensor with the broadcast shape, clamped to the ``out_bits`` range.

    Raises:
        ValueError: On a non-integer/empty input, out-of-range ``out_bits``, a mantissa outside
            ``[0, 2**31]`` or an input magnitude that would overflow the int64 product.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=32, what="out_bits")
    m = torch.as_tensor(mantissa, dtype=torch.int64, device=x_int.device)
    sh = torch.as_tensor(shift, dtype=torch.int64, device=x_int.device)
    if bool((m < 0).any()) or bool((m > 2**MANTISSA_BITS).any()):
        raise ValueError(f"mantissa must be in [0, 2**31], got range [{int(m.min())}, {int(m.max())}]")
    x = x_int.to(torch.int64)
    lo_x, hi_x = torch.aminmax(x)
    if int(lo_x) <= -(2**32) or int(hi_x) >= 2**32:
        raise ValueError(
            f"|x_int| must be < 2**32 to avoid int64 overflow, got max {max(-int(lo_x), int(hi_x))}"
        )
    y = round_shift(x * m, sh, rounding)
    if signed:
        lo, hi = -(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1
    else:
        lo, hi = 0, 2**out_bits - 1
    return y.clamp(lo, hi)
