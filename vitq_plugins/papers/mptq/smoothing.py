"""SQ-b (SmoothQuant with a bias term) folded into every LayerNorm -> Linear pair of a ViT.

MPTQ-style reconstruction of MPTQ-ViT's SQ-b (arXiv 2401.14895, §3; no public code, see
``vitq_plugins.papers.mptq.sqb``): per channel ``j`` of a LayerNorm output ``X``, shift ``z_j = (max_j + min_j) / 2`` and
scale ``s_j = max|X_j - z_j|^alpha / max|W_:,j|^(1 - alpha)`` (SmoothQuant, arXiv 2211.10438, eq. 4), folded as
``gamma' = gamma / s``, ``beta' = (beta - z) / s``, ``W' = W diag(s)``, ``b' = b + W z``. The float function is
unchanged; the LN output becomes symmetric and flatter, which helps per-tensor activation quantization.

Statistics are collected in **one** streaming pass with forward hooks (per-channel running min/max via
``ops.uniform.MinMaxObserver``; memory independent of the number of images).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops.uniform import MinMaxObserver
from vitq_plugins.papers.mptq.sqb import fold_sqb_
from vitq_plugins.papers.mptq.sqb import sqb_alpha_errors
from vitq_plugins.papers.mptq.sqb import sqb_params
from vitq_plugins.sites import is_attention
from vitq_plugins.sites import is_block
from vitq_plugins.transforms.stream import run_hooked

__all__ = ["ALPHA_GRID", "apply_sqb", "ln_linear_pairs"]


def ln_linear_pairs(model: nn.Module) -> list[tuple[str, nn.LayerNorm, nn.Linear]]:
    """``(ln_fqn, ln, linear)`` for every LayerNorm feeding a Linear: ``norm1 -> attn.qkv``, ``norm2 -> mlp.fc1``.

    Raises:
        VitqError: the model has no transformer block (``attn``/``mlp``/``norm1``/``norm2``) with these layers.
    """
    pairs: list[tuple[str, nn.LayerNorm, nn.Linear]] = []
    for fqn, m in model.named_modules():
        if not is_block(m):
            continue
        prefix = f"{fqn}." if fqn else ""
        attn, mlp = m.attn, m.mlp
        norm1, norm2 = m.norm1, m.norm2
        qkv = attn.qkv if is_attention(attn) else None
        fc1 = getattr(mlp, "fc1", None)
        if isinstance(norm1, nn.LayerNorm) and isinstance(qkv, nn.Linear):
            pairs.append((prefix + "norm1", norm1, qkv))
        if isinstance(norm2, nn.LayerNorm) and isinstance(fc1, nn.Linear):
            pairs.append((prefix + "norm2", norm2, fc1))
    if not pairs:
        raise VitqError(
            f"SQ-b found no LayerNorm -> Linear pair in {type(model).__name__}: it needs blocks with "
            "norm1 -> attn.qkv (nn.LayerNorm -> nn.Linear) and/or norm2 -> mlp.fc1"
        )
    return pairs


ALPHA_GRID: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_SEARCH_ROWS = 2048  # LN-output rows per batch used by the alpha search (a strided subsample)


@torch.no_grad()
def apply_sqb(
    model: nn.Module,
    calib_batches: Iterable[Any],
    alpha: float = 0.5,
    alpha_search: bool = False,
    a_bits: int = 8,
    w_bits: int = 8,
) -> nn.Module:
    """Collect LN-output ranges in one pass and fold SQ-b into each LN -> Linear pair, **in place**.

    With ``alpha_search`` (opt-in, ``QuantConfig.options["sqb_alpha_search"] = True``) a second streaming pass
    picks ``alpha`` per LN -> Linear pair from :data:`ALPHA_GRID` by the lowest quantized output error of that
    Linear (:func:`vitq_plugins.papers.mptq.sqb.sqb_alpha_errors` at ``a_bits``/``w_bits``, on at most 2,048 LN-output
    rows per batch), instead of one global ``alpha``. The chosen values are left in ``model.vitq_sqb_alphas``.

    Args:
        model: a float ViT (timm layout or the same structure); modified in place.
        calib_batches: image batches (tensors or ``(images, labels)`` tuples); read twice when searching.
        alpha: migration strength in ``[0, 1]`` (ignored when searching).
        alpha_search: search ``alpha`` per layer.
        a_bits: activation bits of the search's error model (the wings pass the config's ``a_bits``).
        w_bits: weight bits of the search's error model (the config's ``w_bits``).

    Returns:
        ``model`` (the same object; its training flag is restored).

    Raises:
        VitqError: no LN -> Linear pair, no calibration batch, or a bad ``alpha_search``.

    Example:
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> m = apply_sqb(vit_test_tiny(), [torch.randn(2, 3, 32, 32)])
    """
    if not isinstance(alpha_search, bool):
        raise VitqError(f"options['sqb_alpha_search']={alpha_search!r} is invalid: true or false")
    pairs = ln_linear_pairs(model)
    observers = {fqn: MinMaxObserver(per_channel_axis=-1) for fqn, _, _ in pairs}
    was_training = model.training
    model.eval()
    n = _stream_ln_outputs(model, calib_batches, pairs, lambda fqn, _lin, rows: observers[fqn].update(rows))
    if n == 0:
        raise VitqError("SQ-b needs at least one calibration batch; calib_batches was empty")
    alphas = {fqn: float(alpha) for fqn, _, _ in pairs}
    if alpha_search:
        alphas = _search_alphas(model, calib_batches, pairs, observers, a_bits, w_bits)
        setattr(model, "vitq_sqb_alphas", dict(alphas))  # noqa: B010 - plain attribute on an nn.Module
    for fqn, ln, lin in pairs:
        z, s = sqb_params(observers[fqn].min, observers[fqn].max, lin.weight, alpha=alphas[fqn])
        fold_sqb_(ln, [lin], z, s)
    model.train(was_training)
    return model


def _search_alphas(
    model: nn.Module,
    calib_batches: Iterable[Any],
    pairs: list[tuple[str, nn.LayerNorm, nn.Linear]],
    observers: dict[str, MinMaxObserver],
    a_bits: int,
    w_bits: int,
) -> dict[str, float]:
    """Second pass: accumulate each pair's error per candidate alpha (streaming), return the argmin per pair."""
    errors = {fqn: torch.zeros(len(ALPHA_GRID), dtype=torch.float64) for fqn, _, _ in pairs}

    def accumulate(fqn: str, lin: nn.Linear, rows: torch.Tensor) -> None:
        rows = rows[:: max(1, rows.shape[0] // _SEARCH_ROWS)]
        obs = observers[fqn]
        errors[fqn] += sqb_alpha_errors(rows, obs.min, obs.max, lin.weight, ALPHA_GRID, a_bits, w_bits)

    n = _stream_ln_outputs(model, calib_batches, pairs, accumulate)
    if n == 0:
        raise VitqError(
            "the SQ-b alpha search reads the calibration batches twice: pass a list or a re-iterable"
        )
    return {fqn: ALPHA_GRID[int(torch.argmin(err))] for fqn, err in errors.items()}


def _stream_ln_outputs(
    model: nn.Module,
    calib_batches: Iterable[Any],
    pairs: list[tuple[str, nn.LayerNorm, nn.Linear]],
    fn: Callable[[str, nn.Linear, torch.Tensor], None],
) -> int:
    """One pass over ``calib_batches`` calling ``fn(ln_fqn, linear, rows)`` with each LayerNorm's output as
    ``(tokens, channels)`` rows (forward hooks, removed afterwards); returns the number of batches."""
    hooks = []
    for fqn, ln, lin in pairs:

        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor, fqn: str = fqn, lin: nn.Linear = lin) -> None:
            fn(fqn, lin, out.detach().reshape(-1, out.shape[-1]))

        hooks.append(ln.register_forward_hook(hook))
    return run_hooked(model, calib_batches, hooks)
