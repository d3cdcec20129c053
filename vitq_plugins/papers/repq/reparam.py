"""RepQ-ViT scale reparameterization of post-LayerNorm activations (arXiv 2212.08254, §3.2, eqs. 5-8).

A per-channel *asymmetric* ``b``-bit quantizer of the LayerNorm output ``X`` (channel ``c``: step ``Δ_c``,
zero point ``z_c``) is exactly a per-tensor one (``Δ̃ = mean(Δ_c)``, ``z̃ = round(mean(z_c))``) on

    ``X̃_c = X_c / r_c - b_c``   with ``r_c = Δ_c / Δ̃`` and ``b_c = Δ̃ (z̃ - z_c)``,

since ``Δ_c (q - z_c) / r_c - Δ̃ (z̃ - z_c) = Δ̃ (q - z̃)``. The transform is folded so that the float
network is unchanged (RepQ-ViT eqs. 6-8; ``zkkli/RepQ-ViT`` ``quant/quant_model.py``):

* LayerNorm affine: ``γ' = γ / r``, ``β' = β / r - b``;
* every Linear fed by it: ``W' = W diag(r)``, ``bias' = bias + W' b`` (``= bias + W (r ⊙ b)``).

The activation quantizer of the Linear's input can then stay per-tensor (deployable), and the per-channel
ranges of the post-LayerNorm activations (outlier channels, asymmetric) are preserved. The weight quantizer
sees the rescaled columns ``W diag(r)``; RepQ-ViT re-calibrates the weights after the fold, which vitq's
wings do anyway (the fold happens before calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops.uniform import qparams_from_minmax

__all__ = ["fold_reparam_", "reparam_params"]


def reparam_params(x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RepQ-ViT's per-channel ratio ``r`` and shift ``b`` (eq. 6) from per-channel ranges at ``bits``.

    Args:
        x_min: per-channel minimum ``(C,)`` of the LayerNorm output.
        x_max: per-channel maximum ``(C,)``.
        bits: activation bits of the (per-tensor, asymmetric, unsigned) quantizer after the fold.

    Each channel's range is widened to hold 0, so its zero point ``z_c`` lies in ``[0, 2^b - 1]``: a channel
    whose calibration range excludes 0 would otherwise get a clamped zero point and, after the fold, stretch
    the per-tensor range.

    Returns:
        ``(r, b)`` float32 ``(C,)`` each, ``r > 0``: fold with :func:`fold_reparam_`.

    Raises:
        ValueError: shapes differ or are not 1-d, values are not finite, ``x_min > x_max`` or bad ``bits``.

    Example:
        >>> r, b = reparam_params(torch.tensor([-1.0, -4.0]), torch.tensor([1.0, 12.0]), 4)
        >>> [round(float(v), 3) for v in r]
        [0.222, 1.778]
    """
    if x_min.dim() != 1 or x_min.shape != x_max.shape:
        raise ValueError(
            f"x_min/x_max must be 1-d of equal shape, got {tuple(x_min.shape)}/{tuple(x_max.shape)}"
        )
    check_nonempty(x_min, "x_min")
    check_finite(x_min, "x_min")
    check_finite(x_max, "x_max")
    if bool((x_min > x_max).any()):
        raise ValueError("x_min must be <= x_max in every channel")
    # the range holds 0 (as an asymmetric quantizer's does), so every zero point lies on the grid, unclamped
    mn, mx = x_min.double().clamp(max=0.0), x_max.double().clamp(min=0.0)
    scale, zp = qparams_from_minmax(mn, mx, bits, symmetric=False, signed=False)
    scale, zp = scale.double(), zp.double()
    s_t = scale.mean()
    z_t = torch.round(zp.mean())
    r = scale / s_t
    b = s_t * (z_t - zp)
    return r.float(), b.float()


@torch.no_grad()
def fold_reparam_(ln: nn.LayerNorm, linears: Sequence[nn.Linear], r: torch.Tensor, b: torch.Tensor) -> None:
    """Fold ``X̃ = X / r - b`` into ``ln`` (``γ / r``, ``β / r - b``) and its consumers (``W diag(r)``,
    ``bias + W diag(r) b``), **in place**; the composed float function is unchanged.

    Raises:
        ValueError: ``ln`` has no affine parameters, or a shape does not match the channel count.
    """
    if ln.weight is None or ln.bias is None:
        raise ValueError("the reparameterization needs a LayerNorm with elementwise_affine=True and a bias")
    c = ln.weight.shape[-1]
    if r.shape != (c,) or b.shape != (c,):
        raise ValueError(f"r and b must be ({c},), got {tuple(r.shape)} and {tuple(b.shape)}")
    r64, b64 = r.double(), b.double()
    ln.weight.copy_((ln.weight.double() / r64).to(ln.weight.dtype))
    ln.bias.copy_((ln.bias.double() / r64 - b64).to(ln.bias.dtype))
    for lin in linears:
        if lin.weight.shape[1] != c:
            raise ValueError(f"Linear weight {tuple(lin.weight.shape)} does not take {c} input channels")
        w = lin.weight.double() * r64
        shift = w @ b64
        bias = cast("torch.Tensor | None", lin.bias)
        if bias is None:
            lin.bias = nn.Parameter(shift.to(lin.weight.dtype))
        else:
            bias.copy_((bias.double() + shift).to(bias.dtype))
        lin.weight.copy_(w.to(lin.weight.dtype))
