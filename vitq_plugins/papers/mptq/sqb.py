"""MPTQ-style SQ-b: SmoothQuant with a bias (shift) term, folded into LayerNorm and the following Linears.

MPTQ-ViT (arXiv 2401.14895, Sec. 3 "SQ-b") has no public code; this is an *MPTQ-style* reconstruction
(every choice is a parameter). Post-LayerNorm activations are asymmetric and have outlier channels, so each
input channel ``j`` of the LN-fed Linear(s) is first centred and then smoothed:

* shift ``z_j = (max_j + min_j) / 2`` (centres the channel's range, removing the asymmetry);
* smoothing ``s_j = max|X_j - z_j|^alpha / max|W_:,j|^(1 - alpha)`` (SmoothQuant, arXiv 2211.10438, eq. 4,
  applied to the centred range ``max|X_j - z_j| = (max_j - min_j) / 2``);
* ``X' = (X - z) / s`` and ``W' = W diag(s)``, ``b' = b + W z`` (original ``W``), so ``W' X' + b' = W X + b``;
* folded into the LayerNorm affine: ``gamma' = gamma / s``, ``beta' = (beta - z) / s``.

The float network function is unchanged (up to float rounding); only the quantization difficulty moves.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops.uniform import fake_quant
from vitq_plugins.ops.uniform import qparams_from_minmax
from vitq_plugins.ops.uniform import qrange

__all__ = ["fold_sqb_", "sqb_alpha_errors", "sqb_params"]


def sqb_params(
    x_min: torch.Tensor,
    x_max: torch.Tensor,
    weight: torch.Tensor | Sequence[torch.Tensor],
    alpha: float = 0.5,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel shift ``z`` and smoothing scale ``s`` of SQ-b.

    Args:
        x_min: Per-channel minimum of the LN output ``(C,)``.
        x_max: Per-channel maximum ``(C,)``.
        weight: Weight ``(out, C)`` of the consuming Linear, or several (concatenated along ``out``, e.g.
            q/k/v of separate projections).
        alpha: Migration strength in ``[0, 1]`` (SmoothQuant: 0.5).
        eps: Floor for both ``max|X - z|`` and ``max|W|`` (and the resulting ``s``) to avoid 0 and inf.

    Returns:
        ``(z, s)`` float32 ``(C,)`` each, ``s > 0``.

    Raises:
        ValueError: On shape mismatches, non-finite values, ``x_min > x_max`` or bad ``alpha``/``eps``.
    """
    w = (
        torch.cat([t.detach() for t in weight], dim=0)
        if not isinstance(weight, torch.Tensor)
        else weight.detach()
    )
    if x_min.dim() != 1 or x_min.shape != x_max.shape:
        raise ValueError(
            f"x_min/x_max must be 1-d of equal shape, got {tuple(x_min.shape)}/{tuple(x_max.shape)}"
        )
    check_nonempty(x_min, "x_min")
    if w.dim() != 2 or w.shape[1] != x_min.shape[0]:
        raise ValueError(f"weight must be (out, {x_min.shape[0]}), got {tuple(w.shape)}")
    for t, name in ((x_min, "x_min"), (x_max, "x_max"), (w, "weight")):
        check_finite(t, name)
    if bool((x_min > x_max).any()):
        raise ValueError("x_min must be <= x_max in every channel")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    check_positive(eps, "eps")
    mn, mx = x_min.double(), x_max.double()
    z = (mx + mn) / 2.0
    act = ((mx - mn) / 2.0).clamp(min=eps)
    wmax = w.double().abs().amax(dim=0).clamp(min=eps)
    s = (act.pow(alpha) / wmax.pow(1.0 - alpha)).clamp(min=eps)
    return z.float(), s.float()


@torch.no_grad()
def fold_sqb_(ln: nn.LayerNorm, linears: Sequence[nn.Linear], z: torch.Tensor, s: torch.Tensor) -> None:
    """Fold SQ-b into a LayerNorm and the Linears it feeds, in place (float function preserved).

    ``gamma' = gamma / s``, ``beta' = (beta - z) / s``; for each Linear ``W' = W diag(s)`` and
    ``b' = b + W z`` with the original ``W`` (a zero bias is created if the Linear has none). Computed in
    float64 and cast back to the parameter dtype.

    Args:
        ln: LayerNorm over the last dimension with ``elementwise_affine=True``.
        linears: Linears whose input is exactly ``ln``'s output.
        z: Shift ``(C,)``.
        s: Positive smoothing scale ``(C,)``.

    Raises:
        ValueError: If the LN is not affine/1-d, shapes mismatch, ``s <= 0`` or inputs are non-finite.
    """
    if len(ln.normalized_shape) != 1 or ln.weight is None:
        raise ValueError(f"ln must be an affine LayerNorm over one dimension, got {ln}")
    c = ln.normalized_shape[0]
    if z.shape != (c,) or s.shape != (c,):
        raise ValueError(f"z and s must have shape ({c},), got {tuple(z.shape)} and {tuple(s.shape)}")
    check_finite(z, "z")
    check_positive(s, "s")
    if len(linears) == 0:
        raise ValueError("linears must contain at least one nn.Linear")
    for lin in linears:
        if not isinstance(lin, nn.Linear) or lin.in_features != c:
            raise ValueError(f"every linear must be nn.Linear with in_features={c}, got {lin}")
    zd, sd = z.double(), s.double()
    ln_bias: nn.Parameter | None = ln.bias
    if ln_bias is None:
        ln.bias = nn.Parameter(torch.zeros_like(ln.weight))
    ln.weight.copy_((ln.weight.double() / sd).to(ln.weight.dtype))
    ln.bias.copy_(((ln.bias.double() - zd) / sd).to(ln.bias.dtype))
    for lin in linears:
        w = lin.weight.double()
        shift = w @ zd
        lin_bias: nn.Parameter | None = lin.bias
        if lin_bias is None:
            lin.bias = nn.Parameter(
                torch.zeros(lin.out_features, dtype=lin.weight.dtype, device=lin.weight.device)
            )
        lin.bias.copy_((lin.bias.double() + shift).to(lin.bias.dtype))
        lin.weight.copy_((w * sd.unsqueeze(0)).to(lin.weight.dtype))


@torch.no_grad()
def sqb_alpha_errors(
    x: torch.Tensor,
    x_min: torch.Tensor,
    x_max: torch.Tensor,
    weight: torch.Tensor,
    alphas: Sequence[float],
    a_bits: int,
    w_bits: int,
) -> torch.Tensor:
    """Summed squared output error of one LN-fed Linear after SQ-b at each migration strength ``alpha``.

    For each ``alpha``: ``(z, s) = sqb_params(x_min, x_max, weight, alpha)``, the smoothed input ``X' = (X - z) / s``
    is fake-quantized per tensor, asymmetric at ``a_bits`` over its calibrated range (``[min_j, max_j]`` mapped
    through the fold), ``W' = W diag(s)`` per output channel, symmetric at ``w_bits`` (the wings' MinMax
    conventions, :mod:`vitq_plugins.ops.uniform`), and the error is ``||Q(X') Q(W')^T + W z - X W^T||^2`` (the bias
    cancels). Used to pick ``alpha`` per layer (SmoothQuant, arXiv 2211.10438, §4 chooses one ``alpha`` per
    model; MPTQ-ViT, arXiv 2401.14895, searches it; here per LayerNorm -> Linear pair). Summed over batches it is
    a streaming statistic.

    Args:
        x: LN output rows ``(N, C)``.
        x_min: Per-channel minimum over all calibration data ``(C,)``.
        x_max: Per-channel maximum ``(C,)``.
        weight: ``(out, C)`` weight of the Linear.
        alphas: Candidate strengths in ``[0, 1]``.
        a_bits: Activation bits (unsigned codes).
        w_bits: Weight bits (signed codes).

    Returns:
        float64 errors ``(len(alphas),)``.
    """
    xd = x.reshape(-1, x.shape[-1]).float()
    w = weight.detach().float()
    ref = xd @ w.T
    a_lo, a_hi = qrange(a_bits, signed=False)
    w_lo, w_hi = qrange(w_bits, signed=True)
    out = torch.empty(len(alphas), dtype=torch.float64)
    for i, alpha in enumerate(alphas):
        z, s = sqb_params(x_min, x_max, w, alpha=float(alpha))
        lo = ((x_min - z) / s).min().clamp(max=0.0)
        hi = ((x_max - z) / s).max().clamp(min=0.0)
        a_scale, a_zp = qparams_from_minmax(lo, hi, a_bits, symmetric=False, signed=False)
        xq = fake_quant((xd - z) / s, a_scale, a_zp, a_lo, a_hi)
        ws = w * s[None, :]
        w_scale, _ = qparams_from_minmax(
            ws.min(dim=1).values, ws.max(dim=1).values, w_bits, symmetric=True, signed=True
        )
        wq = fake_quant(ws, w_scale, 0, w_lo, w_hi, axis=0)
        out[i] = float((xq @ wq.T + (w @ z)[None, :] - ref).double().pow(2).sum())
    return out
