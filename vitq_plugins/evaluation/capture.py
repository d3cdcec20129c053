"""Capture the activations the ViT quantizers act on, from a real model on real images.

The three papers' quantizers each target one activation of a transformer block (FQ-ViT arXiv 2111.13824
§3.2-3.3, I-ViT arXiv 2207.01405 §3.3-3.5, MPTQ-ViT arXiv 2401.14895 §3): the LayerNorm inputs (PTS,
I-LayerNorm, SQ-b), the attention logits ``q k^T * scale`` before softmax (LIS, Shiftmax) and the fc1
outputs entering GELU (ShiftGELU, OPT-m). :func:`capture_block_activations` records those tensors for
chosen blocks of a timm-style ViT (``blocks[i].norm1/attn.qkv/norm2/mlp.fc1``) with forward hooks, so
numerics can be checked on what a trained model actually produces rather than on synthetic data.

Memory is bounded by the caller: it keeps the tensors of ``len(blocks)`` blocks for the given images.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError

__all__ = ["capture_block_activations"]


def _block(model: nn.Module, i: int) -> nn.Module:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList):
        raise VitqError(
            f"{type(model).__name__} has no 'blocks' sequence; capture needs a timm-style VisionTransformer"
        )
    if not -len(blocks) <= i < len(blocks):
        raise VitqError(
            f"block index {i} out of range: the model has {len(blocks)} blocks (0..{len(blocks) - 1})"
        )
    out: nn.Module = blocks[i]
    return out


def capture_block_activations(
    model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor], blocks: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Record LayerNorm inputs, attention logits and GELU inputs of ``blocks`` on ``images``.

    Args:
        model: a timm ``VisionTransformer`` (or any model with ``blocks[i].norm1``, ``.attn.qkv``,
            ``.attn.num_heads``, ``.attn.scale``, ``.norm2`` and ``.mlp.fc1``); not modified.
        images: one batch ``(B, 3, H, W)`` or an iterable of batches.
        blocks: block indices (negative counts from the end).

    Returns:
        ``{"blocks.<i>.norm1": (B, N, C), "blocks.<i>.norm2": (B, N, C),
        "blocks.<i>.attn.logits": (B, H, N, N), "blocks.<i>.mlp.fc1": (B, N, 4C)}`` (float32, CPU),
        batches concatenated along dim 0.

    Raises:
        VitqError: the model lacks the expected structure, a block index is out of range, or no images.
    """
    got: dict[str, list[torch.Tensor]] = {}
    handles: list[Any] = []

    def keep(name: str, t: torch.Tensor) -> None:
        got.setdefault(name, []).append(t.detach().float().cpu())

    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    if not batches or sum(int(b.shape[0]) for b in batches) == 0:
        raise VitqError("no images to capture activations from: pass at least one image")
    n_blocks = len(getattr(model, "blocks", ()))
    targets = [(f"blocks.{i % max(n_blocks, 1)}", _block(model, i)) for i in blocks]  # validate all first
    parts_of: list[tuple[str, int, float, tuple[nn.Module, ...]]] = []
    for pre, blk in targets:
        try:
            attn = getattr(blk, "attn")  # noqa: B009
            mlp = getattr(blk, "mlp")  # noqa: B009
            parts: tuple[nn.Module, ...] = (getattr(blk, "norm1"), attn.qkv, getattr(blk, "norm2"), mlp.fc1)  # noqa: B009
            parts_of.append((pre, int(attn.num_heads), float(attn.scale), parts))
        except AttributeError as exc:
            raise VitqError(
                f"{pre} is not a timm ViT block ({exc}); capture needs norm1/attn.qkv/norm2/mlp.fc1"
            ) from exc
    for pre, heads, scale, parts in parts_of:

        def qkv_hook(
            _m: nn.Module, _inp: Any, out: torch.Tensor, pre: str = pre, h: int = heads, s: float = scale
        ) -> None:
            b, n, c3 = out.shape
            q, k, _v = out.reshape(b, n, 3, h, c3 // (3 * h)).permute(2, 0, 3, 1, 4)
            keep(f"{pre}.attn.logits", (q @ k.transpose(-2, -1)) * s)

        handles += [
            parts[0].register_forward_pre_hook(lambda _m, inp, pre=pre: keep(f"{pre}.norm1", inp[0])),
            parts[1].register_forward_hook(qkv_hook),
            parts[2].register_forward_pre_hook(lambda _m, inp, pre=pre: keep(f"{pre}.norm2", inp[0])),
            parts[3].register_forward_hook(lambda _m, _inp, out, pre=pre: keep(f"{pre}.mlp.fc1", out)),
        ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for b in batches:
                model(b)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {k: torch.cat(v) for k, v in got.items()}
