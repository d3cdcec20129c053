"""I-ViT integer-only LayerNorm (I-LayerNorm) and an exact integer square root.

I-ViT (arXiv 2207.01405, Sec. 3.5 "I-LayerNorm"; official ``IntLayerNorm`` in ``quant_modules.py``):

1. ``mean = round(sum(I) / C)``, ``y = I - mean``, ``var = sum_c y^2`` (a sum, not a mean; int64 here -
   16-bit inputs over C = 768 channels overflow 32 bits).
2. ``std = isqrt(var)`` by integer Newton iterations.
3. ``factor = floor((2^31 - 1) / std)``; ``y = floor(y * factor / 2)`` represents ``y / std * 2^30``,
   i.e. the normalised value with scale ``sqrt(C) / 2^30``.
4. ``bias_int = floor((beta / gamma) / scale)``; ``y += bias_int``; output scale ``scale * gamma``
   (**per channel**, the next quantizer requantizes it to per-tensor).

Deviations, all documented and switchable:
    * The official code runs exactly 10 Newton steps from ``k = 2^16`` in float32, which is *not* exact
      when ``sqrt(var)`` is far from 2^16 (e.g. ``var = 0`` gives 64, and ``var >= 2^40`` is not converged
      after 10 steps). :func:`isqrt_newton` with ``init="auto"`` starts from ``2^ceil(bits(v)/2) >= sqrt(v)``,
      runs at least 8 steps (quadratic convergence: 6 suffice for 63-bit inputs) and applies a final
      +-1 correction, so it returns ``floor(sqrt(v))`` for every int64 ``v >= 0``. ``init="official"``
      reproduces the official iteration (no correction).
    * ``gamma`` with ``|gamma| < gamma_min`` is replaced by ``+-gamma_min`` before ``beta / gamma``
      (the official code divides by zero); the output changes by at most ``|x_hat| * gamma_min``.
    * The mean is rounded exactly (ties to even, like ``torch.round`` on an exact float mean).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._intmath import isqrt_newton

__all__ = ["i_layernorm", "isqrt_newton", "round_div_half_even"]

_INT31_MAX = 2**31 - 1


def round_div_half_even(num: torch.Tensor, den: int) -> torch.Tensor:
    """Exact ``round(num / den)`` with ties to even for int64 ``num`` and a positive int ``den``.

    Args:
        num: int64 numerators.
        den: Positive denominator.

    Returns:
        int64 tensor.
    """
    q = torch.div(num, den, rounding_mode="floor")
    r2 = 2 * (num - q * den)
    up = (r2 > den) | ((r2 == den) & (torch.remainder(q, 2) == 1))
    return q + up.to(torch.int64)


def i_layernorm(
    x_int: torch.Tensor,
    scale: torch.Tensor | float,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    out_bits: int | None = None,
    sqrt_mode: Literal["exact", "official"] = "exact",
    sqrt_iters: int = 10,
    gamma_min: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-only LayerNorm over the last dimension (I-ViT I-LayerNorm).

    Args:
        x_int: Integer input ``(..., C)`` (I-ViT feeds 16-bit values); ``|x_int| < 2^31``.
        scale: Input scale (positive). LayerNorm is scale invariant, so it only gets validated.
        weight: LayerNorm ``gamma`` ``(C,)``.
        bias: LayerNorm ``beta`` ``(C,)``.
        out_bits: If given (2..64), saturate the output to the signed ``out_bits`` range; ``None`` returns
            the raw int64 accumulator values (magnitude about ``2^30 * |x_hat| / sqrt(C) + |bias_int|``).
        sqrt_mode: ``"exact"`` (:func:`isqrt_newton` ``init="auto"``) or ``"official"`` (10 Newton steps
            from 2^16, as in the I-ViT code).
        sqrt_iters: Newton steps.
        gamma_min: ``|gamma|`` floor used for ``beta / gamma``.

    Returns:
        ``(y_int, out_scale)``: int64 ``(..., C)`` and the per-channel float32 scale
        ``sqrt(C) / 2^30 * gamma`` ``(C,)``, so that ``y_int * out_scale ~= LayerNorm(x)``.

    Raises:
        ValueError: On bad dtypes/shapes, empty or non-finite inputs, or values that would overflow int64.
            The data-dependent checks are skipped while a TorchScript/ONNX trace runs
            (``torch.jit.is_tracing()``, as used by ``torch.onnx.export``): they read tensor values into Python, which a trace cannot record;
            the traced graph then computes the same values without them.
    """
    tracing = bool(torch._C._get_tracing_state())
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    if not tracing:
        check_positive(torch.as_tensor(scale), "scale")
    c = x_int.shape[-1] if x_int.dim() else 0
    for t, name in ((weight, "weight"), (bias, "bias")):
        if t.shape != (c,):
            raise ValueError(
                f"{name} must have shape ({c},) to match x_int {tuple(x_int.shape)}, got {tuple(t.shape)}"
            )
        if not tracing:
            check_finite(t, name)
    check_positive(gamma_min, "gamma_min")
    if out_bits is not None:
        check_bits(out_bits, lo=2, hi=64, what="out_bits")
    x = x_int.to(torch.int64)
    if not tracing:
        lo, hi = torch.aminmax(x)
        if int(lo) <= -(2**31) or int(hi) >= 2**31:
            raise ValueError(f"|x_int| must be < 2^31, got max {max(-int(lo), int(hi))}")

    mean = round_div_half_even(x.sum(dim=-1, keepdim=True), c)
    y = x - mean
    ymax = 0 if tracing else max(-int(y.min()), int(y.max()))
    if not tracing and ymax * ymax * c >= 2**63:
        raise ValueError(f"sum of squares overflows int64: max |x - mean| = {ymax} with C = {c}")
    var = (y * y).sum(dim=-1, keepdim=True)
    if sqrt_mode == "exact":
        std = isqrt_newton(var, sqrt_iters, init="auto")
    elif sqrt_mode == "official":
        std = isqrt_newton(var, sqrt_iters, init="official")
    else:
        raise ValueError(f"sqrt_mode must be 'exact' or 'official', got {sqrt_mode!r}")
    factor = torch.div(torch.tensor(_INT31_MAX, device=std.device), std.clamp(min=1), rounding_mode="floor")
    y = torch.div(y * factor, 2, rounding_mode="floor")  # == >> 1; floor div exports exactly to ONNX
    norm_scale = math.sqrt(c) / 2**30

    g = weight.detach().double()
    g_safe = torch.where(g.abs() < gamma_min, torch.where(g < 0, -gamma_min, gamma_min), g)
    bias_f = torch.floor(bias.detach().double() / g_safe / norm_scale)
    if not tracing and bool((bias_f.abs() >= 2**62).any()):
        raise ValueError(
            f"bias/gamma too large for int64: max |beta/gamma| = {(bias.double() / g_safe).abs().max().item()}"
        )
    y = y + bias_f.to(torch.int64)
    if out_bits is not None:
        y = y.clamp(-(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1)
    return y, (norm_scale * g_safe).float()
