"""I-ViT Shiftmax and ShiftGELU: integer-only softmax and GELU built from bit shifts.

I-ViT (arXiv 2207.01405, Sec. 3.3 "Shiftmax", Sec. 3.4 "ShiftGELU"; official ``IntSoftmax`` / ``IntGELU``
in ``models/quantization_utils/quant_modules.py`` and ``TVM_benchmark/models/layers.py``).

:func:`shift_exp` (``int_exp_shift``), for ``I`` with real value ``I * S``:
    1. ``I_p = I + (I >> 1) - (I >> 4)`` (``x * log2(e)`` with ``1.4375 ~= 1.4427``), so ``2^(I_p S) ~= e^(I S)``;
    2. ``I0 = floor(-1 / S)`` (the integer of -1); clamp ``I_p >= n * I0``;
    3. ``q = floor(I_p / I0)``, ``r = I_p - q * I0`` in ``(I0, 0]``;
    4. ``2^(r S) ~= 1 + r S / 2`` -> ``r / 2 - I0`` in units of ``S``; the official float code multiplies the
       half-integer ``r / 2 - I0`` by ``2^(n - q)`` and floors, i.e. exactly ``((r - 2 I0) << (n - q)) >> 1``;
    5. result scale ``S / 2^n``.

Shiftmax: ``exp = shift_exp(I - max)``, ``sum = min(sum exp, 2^31 - 1)``,
``factor = floor((2^31 - 1) / sum)``, ``out = (exp * factor) >> (32 - k_out)`` with scale ``2^-(k_out - 1)``.

ShiftGELU: ``GELU(x) ~= x * sigmoid(1.702 x)``; ``1.702`` is folded into the exp scale (``S_sig = 1.702 S``);
``sigmoid(1.702 x) = e^(x - x_max) / (e^(x - x_max) + e^(-x_max))`` with the per-row (last-dim) max; the
sigmoid is normalised like Shiftmax to ``k_out`` bits; output ``I * sigma_int`` with scale ``S / 2^(k_out - 1)``.

Defaults and the official code's inconsistencies:
    * ``n``: Shiftmax 15 in the PyTorch code but 16 in the TVM code; ShiftGELU 23 in both. Defaults 15 / 23.
    * ``k_out`` (``out_bits``): the PyTorch ViT code builds ``IntSoftmax(16)`` (16-bit probabilities), the Swin
      and TVM code use 8 (and the paper figure says all non-INT32 streams are INT8). Default 8.
    * ``sum`` saturates at ``2^31 - 1`` (official); with a tiny ``S`` this under-estimates large rows.
    * ``e^(-x_max)`` of ShiftGELU is evaluated for a *positive* argument when ``x_max < 0`` (all-negative rows);
      the float official code then may produce huge values; here the left shift saturates at ``2^31 - 1``
      (the sum is clamped there anyway), so no int64 overflow can occur.
    * ``S > 1`` (a grid of 6 bits or fewer): the official ``I0 = floor(-1/S)`` is then -1, which stands for
      ``-S``, not -1. Here the codes are refined first, ``I << k`` at ``S / 2^k <= 1`` (:func:`refine_to_unit`):
      the same real values, so the kernel computes what it computes on a fine grid.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._intmath import refine_codes
from vitq_plugins.ops._intmath import saturating_shl

__all__ = [
    "GELU_SIGMOID_FACTOR",
    "Division",
    "exp_unit",
    "refine_to_unit",
    "shift_exp",
    "shift_exp_unit",
    "shiftgelu",
    "shiftgelu_unit",
    "shiftmax",
    "shiftmax_unit",
]

GELU_SIGMOID_FACTOR = 1.702
"""``GELU(x) ~= x * sigmoid(1.702 x)``."""
_INT31_MAX = 2**31 - 1

Division = Literal["official", "exact"]
"""How Shiftmax/ShiftGELU divide by the sum of exponentials (see :func:`_normalise`)."""


def _scalar_scale(scale: torch.Tensor | float) -> float:
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.numel() != 1:
        raise ValueError(f"scale must be a scalar (per-tensor), got shape {tuple(s.shape)}")
    check_positive(s, "scale")
    return float(s)


def shift_exp(
    x_int: torch.Tensor, scale: torch.Tensor | float, n: int = 15, *, cap: int = 2**62
) -> tuple[torch.Tensor, float]:
    """Shift-based integer exponential ``e^(x_int * scale)`` (I-ViT ``int_exp_shift``).

    Args:
        x_int: Integer input, normally ``<= 0`` (max-subtracted); positive values are allowed and saturate.
        scale: Positive per-tensor scale ``S``; a grid with ``S > 1`` is refined first (:func:`refine_to_unit`).
        n: Left-shift budget (Shiftmax 15, ShiftGELU 23), 0..62.
        cap: Saturation value of the result, ``0 < cap <= 2^62`` (never reached for ``x_int <= 0`` unless
            ``S < 2^-(62 - n)``).

    Returns:
        ``(exp_int, exp_scale)``: int64 tensor ``>= 0`` and the float scale ``S / 2^n``.

    Raises:
        ValueError: On a non-integer/empty input or a bad ``n``/``cap``.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(n, lo=0, hi=62, what="n")
    if not 0 < cap <= 2**62:
        raise ValueError(f"cap must be in (0, 2^62], got {cap}")
    x, s = refine_to_unit(x_int, _scalar_scale(scale))
    return shift_exp_unit(x, exp_unit(s), n, cap=cap), s / 2.0**n


def refine_to_unit(x_int: torch.Tensor, scale: float, factor: float = 1.0) -> tuple[torch.Tensor, float]:
    """``(x_int << k, scale / 2^k)`` with the least ``k`` that makes ``factor * scale / 2^k <= 1``.

    ``I0 = floor(-1/S)`` represents -1 only for ``S <= 1``; a coarser grid (6 bits and below) is refined by a
    power of two, which keeps every real value (``ops._intmath.grid_refinement``). I-ViT's code instead takes
    ``I0 = -1`` there, i.e. treats ``-S`` as -1.
    """
    return refine_codes(x_int, scale, 1.0, factor=factor)


def exp_unit(scale: float) -> int:
    """``I0 = floor(-1 / S)``, the integer representing -1 at scale ``S`` (``0 < S <= 1``).

    Precompute it once per layer to run :func:`shift_exp_unit`, :func:`shiftmax_unit` and
    :func:`shiftgelu_unit` without any floating-point tensor op (integer-only inference).

    Raises:
        ValueError: If ``S`` is not in ``(0, 1]``.
    """
    s = float(scale)
    if not (math.isfinite(s) and 0.0 < s <= 1.0):
        raise ValueError(f"scale must be in (0, 1] so that I0 = floor(-1/scale) represents -1, got {s}")
    return math.floor(-1.0 / s)


def shift_exp_unit(x_int: torch.Tensor, x0: int, n: int = 15, *, cap: int = 2**62) -> torch.Tensor:
    """:func:`shift_exp` with a precomputed ``I0 = exp_unit(S)``: integer tensor ops only.

    Returns:
        ``exp_int`` (int64, ``>= 0``), scale ``S / 2^n``.

    Raises:
        ValueError: On a non-integer input, ``x0 >= 0`` or a bad ``n``/``cap``.
    """
    check_int_tensor(x_int, "x_int")
    check_bits(n, lo=0, hi=62, what="n")
    if x0 >= 0:
        raise ValueError(f"x0 = floor(-1/S) must be negative, got {x0}")
    if not 0 < cap <= 2**62:
        raise ValueError(f"cap must be in (0, 2^62], got {cap}")
    x = x_int.to(torch.int64)
    x = x + (x >> 1) - (x >> 4)
    if -x0 * 2**n <= min(cap, 2**61) and not torch._C._get_tracing_state() and bool(x.max() <= 0):
        # the usual case (max-subtracted input): 0 <= q <= n, so sh = n - q is in [0, n] and
        # base << sh <= 2 |I0| 2^n cannot saturate; (base << sh) >> 1 is base << (sh - 1) for sh >= 1 and
        # base >> 1 for sh = 0. Same values as below in five in-place passes instead of ~20.
        x.clamp_(min=n * x0)
        r = torch.remainder(x, x0)  # in (I0, 0], the sign of the divisor
        sh = (x - r).div_(x0, rounding_mode="floor").neg_().add_(n)
        return r.sub_(2 * x0).bitwise_left_shift_(sh).bitwise_right_shift_(1)
    x = x.clamp(min=n * x0)
    q = torch.div(x, x0, rounding_mode="floor")
    r = x - x0 * q
    base = r - 2 * x0
    sh = n - q
    up = saturating_shl(base, (sh - 1).clamp(min=0), cap)
    return torch.where(sh >= 1, up, (base >> 1).clamp(max=cap))


def _normalise(num: torch.Tensor, den: torch.Tensor, out_bits: int, division: Division) -> torch.Tensor:
    """``num / den`` in units of ``2^-(out_bits - 1)`` (``0 <= num <= den``).

    ``"official"`` (I-ViT code): ``floor(num * floor((2^31 - 1) / den) / 2^(32 - out_bits))``. The reciprocal
    ``floor((2^31 - 1) / den)`` keeps only ``31 - log2(den)`` bits: with ShiftGELU's ``n = 23`` the sums reach
    ``~2^28`` and the reciprocal has ~3 bits, so sigmoid(4.25) = 0.986 comes out as 0.93 (a 10% relative
    GELU error measured on the reference model's fc1 outputs). ``"exact"``: ``floor(num * 2^(out_bits - 1) /
    den)`` in one int64 division (``num < 2^31`` so the product stays below ``2^62``), integer-only as well.
    """
    den = den.clamp(min=1, max=_INT31_MAX)
    if division == "exact":
        return torch.div(num << (out_bits - 1), den, rounding_mode="floor")
    if division != "official":
        raise ValueError(f"division must be 'official' or 'exact', got {division!r}")
    factor = torch.div(torch.tensor(_INT31_MAX, device=den.device), den, rounding_mode="floor")
    return (num * factor).bitwise_right_shift_(32 - out_bits)


def shiftmax(
    x_int: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    n: int = 15,
    out_bits: int = 8,
    dim: int = -1,
    division: Division = "official",
) -> tuple[torch.Tensor, float]:
    """Integer-only softmax (I-ViT Shiftmax).

    Args:
        x_int: Integer logits, real value ``x_int * scale``.
        scale: Per-tensor logit scale ``S`` (``S > 1`` is refined by a power of two: :func:`refine_to_unit`).
        n: Shift budget of :func:`shift_exp` (PyTorch code 15, TVM 16).
        out_bits: ``k_out``, 2..31 (official PyTorch ViT 16, Swin/TVM 8).
        dim: Softmax dimension.
        division: ``"official"`` (I-ViT's truncated reciprocal) or ``"exact"`` (one int64 floor division,
            see :func:`_normalise`).

    Returns:
        ``(out_int, out_scale)``: int64 in ``[0, 2^(k_out-1) - 1]`` and ``2^-(k_out - 1)``.

    Raises:
        ValueError: On bad inputs (see :func:`shift_exp`).
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    x, s = refine_to_unit(x_int, _scalar_scale(scale))
    out = shiftmax_unit(x, exp_unit(s), n=n, out_bits=out_bits, dim=dim, division=division)
    return out, 2.0 ** -(out_bits - 1)


def shiftgelu(
    x_int: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    n: int = 23,
    out_bits: int = 8,
    stabilizer: Literal["row_max", "element"] = "row_max",
    division: Division = "official",
) -> tuple[torch.Tensor, float]:
    """Integer-only GELU ``x * sigmoid(1.702 x)`` (I-ViT ShiftGELU), max taken over the last dimension.

    Args:
        x_int: Integer input ``(..., D)``, real value ``x_int * scale``; ``|x_int| < 2^31``.
        scale: Per-tensor input scale ``S`` (``1.702 S > 1`` is refined by a power of two, which also refines
            the output scale: :func:`refine_to_unit`).
        n: Shift budget of :func:`shift_exp` (official 23).
        out_bits: Bits ``k_out`` of the integer sigmoid, 2..31 (official 8).
        stabilizer: ``"row_max"`` (official): subtract the per-row maximum ``m``; ``"element"``: use
            ``m = max(x, 0)`` per element, i.e. ``sigmoid(z) = 1 / (1 + e^-z)`` for ``z >= 0`` and
            ``e^z / (e^z + 1)`` otherwise. With ``"row_max"`` both exponentials are floored at ``~2^-n`` by
            the ``I_p >= n I0`` clamp, so for rows with a large maximum (``1.702 x_max > n ln 2``, or
            ``e^(-1.702 x_max)`` comparable to ``2^-n``) strongly negative inputs get ``sigmoid ~ 0.5`` instead
            of 0 (error ``~|x| / 2``); ``"element"`` always has one exponential equal to ``e^0`` and avoids it.
        division: ``"official"`` (I-ViT's truncated reciprocal, up to ~8% sigmoid error at n = 23) or
            ``"exact"`` (one int64 floor division, see :func:`_normalise`).

    Returns:
        ``(out_int, out_scale)``: int64 ``(x_int << k) * sigma_int`` and the float scale ``S / 2^(k + k_out - 1)``
        (``k = 0`` unless the grid was refined).

    Raises:
        ValueError: On bad inputs.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    s = _scalar_scale(scale)
    x = x_int.to(torch.int64)
    lo, hi = torch.aminmax(x)  # one pass, no temporary (an abs() pass cost as much as the GELU)
    if int(lo) <= -(2**31) or int(hi) >= 2**31:
        raise ValueError(f"|x_int| must be < 2^31, got max {max(-int(lo), int(hi))}")
    x, s = refine_to_unit(x, s, GELU_SIGMOID_FACTOR)
    out = shiftgelu_unit(
        x, exp_unit(s * GELU_SIGMOID_FACTOR), n=n, out_bits=out_bits, stabilizer=stabilizer, division=division
    )
    return out, s / 2.0 ** (out_bits - 1)


def shiftmax_unit(
    x_int: torch.Tensor,
    x0: int,
    *,
    n: int = 15,
    out_bits: int = 8,
    dim: int = -1,
    division: Division = "official",
) -> torch.Tensor:
    """:func:`shiftmax` with a precomputed ``I0 = exp_unit(S)``: integer tensor ops only.

    Bit-identical to ``shiftmax(x_int, S, n=n, out_bits=out_bits, dim=dim)[0]``; the output scale is
    ``2^-(out_bits - 1)``.

    Raises:
        ValueError: On bad inputs (see :func:`shift_exp_unit`).
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    x = x_int.to(torch.int64)
    x = x - x.amax(dim=dim, keepdim=True)
    exp_int = shift_exp_unit(x, x0, n, cap=_INT31_MAX)
    total = exp_int.sum(dim=dim, keepdim=True)
    return _normalise(exp_int, total, out_bits, division)


def shiftgelu_unit(
    x_int: torch.Tensor,
    x0: int,
    *,
    n: int = 23,
    out_bits: int = 8,
    stabilizer: Literal["row_max", "element"] = "row_max",
    division: Division = "official",
) -> torch.Tensor:
    """:func:`shiftgelu` with a precomputed ``I0 = exp_unit(1.702 S)``: integer tensor ops only.

    Bit-identical to ``shiftgelu(x_int, S, ...)[0]`` (output scale ``S / 2^(out_bits - 1)``). The caller
    guarantees ``|x_int| < 2^31`` (checking it would read tensor data).

    Raises:
        ValueError: On bad inputs.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    x = x_int.to(torch.int64)
    if stabilizer == "row_max":
        x_max = x.amax(dim=-1, keepdim=True)
    elif stabilizer == "element":
        x_max = x.clamp(min=0)
    else:
        raise ValueError(f"stabilizer must be 'row_max' or 'element', got {stabilizer!r}")
    exp_int = shift_exp_unit(x - x_max, x0, n, cap=_INT31_MAX)
    exp_max = shift_exp_unit(-x_max, x0, n, cap=_INT31_MAX)
    sigma = _normalise(exp_int, exp_int + exp_max, out_bits, division)
    return x * sigma
