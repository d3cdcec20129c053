"""The ``repq_reparam`` model transform: RepQ-ViT's scale reparameterization (arXiv 2212.08254, §3.2) applied
to every ``norm1 -> attn.qkv`` and ``norm2 -> mlp.fc1`` pair of a ViT.

One streaming calibration pass with forward hooks records each LayerNorm output's per-channel min/max
(``ops.uniform.MinMaxObserver``; memory independent of the number of images), then
:func:`~vitq_plugins.papers.repq.reparam.reparam_params` at the config's ``a_bits`` gives ``(r, b)`` and
:func:`~vitq_plugins.papers.repq.reparam.fold_reparam_` folds them. The float function is unchanged; the
per-tensor quantizer at the Linear's input then sees channels that share one step and one zero point.

Usable from any recipe (``RecipeSpec.transforms``); recipe ``repq`` lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops.uniform import MinMaxObserver
from vitq_plugins.papers.repq.reparam import fold_reparam_
from vitq_plugins.papers.repq.reparam import reparam_params
from vitq_plugins.sites import is_attention
from vitq_plugins.sites import is_block
from vitq_plugins.transforms.stream import run_hooked

__all__ = ["apply_repq_reparam", "post_ln_pairs"]


def post_ln_pairs(model: nn.Module) -> list[tuple[str, nn.LayerNorm, nn.Linear]]:
    """``(ln_fqn, ln, linear)`` for every LayerNorm feeding a Linear: ``norm1 -> attn.qkv``, ``norm2 -> mlp.fc1``.

    Raises:
        VitqError: the model has no transformer block with such a pair.
    """
    pairs: list[tuple[str, nn.LayerNorm, nn.Linear]] = []
    for fqn, m in model.named_modules():
        if not is_block(m):
            continue
        prefix = f"{fqn}." if fqn else ""
        qkv = m.attn.qkv if is_attention(m.attn) else None
        fc1 = getattr(m.mlp, "fc1", None)
        for ln_name, lin in (("norm1", qkv), ("norm2", fc1)):
            ln = getattr(m, ln_name)
            if isinstance(ln, nn.LayerNorm) and ln.elementwise_affine and isinstance(lin, nn.Linear):
                pairs.append((prefix + ln_name, ln, lin))
    if not pairs:
        raise VitqError(
            f"repq_reparam found no LayerNorm -> Linear pair in {type(model).__name__}: it needs blocks with "
            "norm1 -> attn.qkv and/or norm2 -> mlp.fc1 (affine nn.LayerNorm -> nn.Linear)"
        )
    return pairs


@torch.no_grad()
def apply_repq_reparam(
    model: nn.Module,
    calib_batches: Iterable[Any],
    w_bits: int = 8,
    a_bits: int = 8,
    bits: int | None = None,
) -> nn.Module:
    """Collect post-LayerNorm ranges in one pass and fold RepQ-ViT's reparameterization, **in place**.

    Args:
        model: a float ViT (timm layout); modified in place.
        calib_batches: image batches (tensors or ``(images, labels)`` tuples).
        w_bits: the config's weight bits (unused: the fold does not depend on them).
        a_bits: the config's activation bits: the grid the per-channel steps are computed on.
        bits: ``options["repq_reparam_bits"]``, overrides ``a_bits`` for the per-channel grid.

    Returns:
        ``model`` (its training flag restored); ``model.vitq_repq_ratio`` holds ``{ln_fqn: max r / min r}``.

    Raises:
        VitqError: no LN -> Linear pair, no calibration batch, or bad ``bits``.

    Example:
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> m = apply_repq_reparam(vit_test_tiny(), [torch.randn(2, 3, 32, 32)], a_bits=4)
    """
    grid = a_bits if bits is None else bits
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= 16:
        raise VitqError(f"options['repq_reparam_bits']={bits!r} is invalid: an integer in 2..16")
    pairs = post_ln_pairs(model)
    observers = {fqn: MinMaxObserver(per_channel_axis=-1) for fqn, _, _ in pairs}
    hooks = []
    for fqn, ln, _ in pairs:

        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor, fqn: str = fqn) -> None:
            observers[fqn].update(out.detach().reshape(-1, out.shape[-1]))

        hooks.append(ln.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    n = run_hooked(model, calib_batches, hooks)
    if n == 0:
        raise VitqError("repq_reparam needs at least one calibration batch; calib_batches was empty")
    ratios: dict[str, float] = {}
    for fqn, ln, lin in pairs:
        obs = observers[fqn]
        r, b = reparam_params(obs.min, obs.max, grid)
        fold_reparam_(ln, [lin], r, b)
        ratios[fqn] = float(r.max() / r.min())
    setattr(model, "vitq_repq_ratio", ratios)  # noqa: B010 - plain attribute on an nn.Module
    model.train(was_training)
    return model
