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
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._intmath import saturating_shl

__all__ = ["GELU_SIGMOID_FACTOR", "shift_exp", "shiftgelu", "shiftmax"]

GELU_SIGMOID_FACTOR = 1.702
"""``GELU(x) ~= x * sigmoid(1.702 x)``."""
_INT31_MAX = 2**31 - 1


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
        scale: Positive per-tensor scale ``S``; must be ``<= 1`` so that ``I0 = floor(-1/S) <= -1``.
        n: Left-shift budget (Shiftmax 15, ShiftGELU 23), 0..62.
        cap: Saturation value of the result, ``0 < cap <= 2^62`` (never reached for ``x_int <= 0`` unless
            ``S < 2^-(62 - n)``).

    Returns:
        ``(exp_int, exp_scale)``: int64 tensor ``>= 0`` and the float scale ``S / 2^n``.

    Raises:
        ValueError: On a non-integer/empty input, a bad ``n``/``cap`` or ``S > 1``.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(n, lo=0, hi=62, what="n")
    if not 0 < cap <= 2**62:
        raise ValueError(f"cap must be in (0, 2^62], got {cap}")
    s = _scalar_scale(scale)
    if s > 1.0:
        raise ValueError(f"scale must be <= 1 so that I0 = floor(-1/scale) represents -1, got {s}")
    x = x_int.to(torch.int64)
    x = x + (x >> 1) - (x >> 4)
    x0 = math.floor(-1.0 / s)
    x = torch.maximum(x, torch.full_like(x, n * x0))
    q = torch.div(x, x0, rounding_mode="floor")
    r = x - x0 * q
    base = r - 2 * x0
    sh = n - q
    up = saturating_shl(base, (sh - 1).clamp(min=0), cap)
    exp_int = torch.where(sh >= 1, up, (base >> 1).clamp(max=cap))
    return exp_int, s / 2.0**n


def _normalise(num: torch.Tensor, den: torch.Tensor, out_bits: int) -> torch.Tensor:
    den = den.clamp(min=1, max=_INT31_MAX)
    factor = torch.div(torch.full_like(den, _INT31_MAX), den, rounding_mode="floor")
    return (num * factor) >> (32 - out_bits)


def shiftmax(
    x_int: torch.Tensor, scale: torch.Tensor | float, *, n: int = 15, out_bits: int = 8, dim: int = -1
) -> tuple[torch.Tensor, float]:
    """Integer-only softmax (I-ViT Shiftmax).

    Args:
        x_int: Integer logits, real value ``x_int * scale``.
        scale: Per-tensor logit scale ``S`` (``<= 1``).
        n: Shift budget of :func:`shift_exp` (PyTorch code 15, TVM 16).
        out_bits: ``k_out``, 2..31 (official PyTorch ViT 16, Swin/TVM 8).
        dim: Softmax dimension.

    Returns:
        ``(out_int, out_scale)``: int64 in ``[0, 2^(k_out-1) - 1]`` and ``2^-(k_out - 1)``.

    Raises:
        ValueError: On bad inputs (see :func:`shift_exp`).
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    x = x_int.to(torch.int64)
    x = x - x.amax(dim=dim, keepdim=True)
    exp_int, _ = shift_exp(x, scale, n, cap=_INT31_MAX)
    total = exp_int.sum(dim=dim, keepdim=True)
    return _normalise(exp_int, total, out_bits), 2.0 ** -(out_bits - 1)


def shiftgelu(
    x_int: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    n: int = 23,
    out_bits: int = 8,
    stabilizer: Literal["row_max", "element"] = "row_max",
) -> tuple[torch.Tensor, float]:
    """Integer-only GELU ``x * sigmoid(1.702 x)`` (I-ViT ShiftGELU), max taken over the last dimension.

    Args:
        x_int: Integer input ``(..., D)``, real value ``x_int * scale``; ``|x_int| < 2^31``.
        scale: Per-tensor input scale ``S`` (``1.702 S <= 1``).
        n: Shift budget of :func:`shift_exp` (official 23).
        out_bits: Bits ``k_out`` of the integer sigmoid, 2..31 (official 8).
        stabilizer: ``"row_max"`` (official): subtract the per-row maximum ``m``; ``"element"``: use
            ``m = max(x, 0)`` per element, i.e. ``sigmoid(z) = 1 / (1 + e^-z)`` for ``z >= 0`` and
            ``e^z / (e^z + 1)`` otherwise. With ``"row_max"`` both exponentials are floored at ``~2^-n`` by
            the ``I_p >= n I0`` clamp, so for rows with a large maximum (``1.702 x_max > n ln 2``, or
            ``e^(-1.702 x_max)`` comparable to ``2^-n``) strongly negative inputs get ``sigmoid ~ 0.5`` instead
            of 0 (error ``~|x| / 2``); ``"element"`` always has one exponential equal to ``e^0`` and avoids it.

    Returns:
        ``(out_int, out_scale)``: int64 ``x_int * sigma_int`` and the float scale ``S / 2^(k_out - 1)``.

    Raises:
        ValueError: On bad inputs.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    s = _scalar_scale(scale)
    x = x_int.to(torch.int64)
    if bool((x.abs() >= 2**31).any()):
        raise ValueError(f"|x_int| must be < 2^31, got max {int(x.abs().max())}")
    s_sig = s * GELU_SIGMOID_FACTOR
    if stabilizer == "row_max":
        x_max = x.amax(dim=-1, keepdim=True)
    elif stabilizer == "element":
        x_max = x.clamp(min=0)
    else:
        raise ValueError(f"stabilizer must be 'row_max' or 'element', got {stabilizer!r}")
    exp_int, _ = shift_exp(x - x_max, s_sig, n, cap=_INT31_MAX)
    exp_max, _ = shift_exp(-x_max, s_sig, n, cap=_INT31_MAX)
    sigma = _normalise(exp_int, exp_int + exp_max, out_bits)
    return x * sigma, s / 2.0 ** (out_bits - 1)
