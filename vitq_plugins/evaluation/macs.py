"""Multiply-accumulates (MACs) per layer and the per-layer table the explorer shows.

Linear and Conv layers are measured with forward hooks on one example (so token counts, pooling and
the head's input are whatever the model really does). The two attention matmuls are counted
analytically per attention module (timm ``Attention``: any module with a ``qkv`` Linear and
``num_heads``): ``q @ kᵀ`` and ``attn @ v`` each cost ``N² · D`` MACs for ``N`` tokens and inner width
``D`` (= ``qkv.out_features / 3``), i.e. ``2 · N² · D`` per attention layer. They are keyed
``"<attention fqn>@qk"`` and ``"<attention fqn>@av"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    pass

__all__ = [
    "AV_SUFFIX",
    "COMPUTE_TYPES",
    "QK_SUFFIX",
    "attention_modules",
    "compute_layers",
    "count_macs",
    "split_key",
]

QK_SUFFIX = "@qk"
AV_SUFFIX = "@av"
#: module types whose weights are quantized and whose MACs are measured
COMPUTE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def compute_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and Conv modules by FQN, in ``named_modules`` order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, COMPUTE_TYPES)}


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Self-attention modules (a ``qkv`` Linear plus ``num_heads``) by FQN."""
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(getattr(m, "num_heads", None), int)
    }


def split_key(key: str) -> tuple[str, str]:
    """``("blocks.0.attn", "qk")`` for ``"blocks.0.attn@qk"``; ``(fqn, "")`` for a Linear/Conv key."""
    for suffix in (QK_SUFFIX, AV_SUFFIX):
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix[1:]
    return key, ""


def _example(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    size = tuple(int(v) for v in input_size)
    if len(size) == 4:
        size = size[1:]
    if len(size) != 3 or min(size) < 1:
        raise VitqError(
            f"input_size {tuple(input_size)!r} is invalid: expected (C, H, W) with positive sizes"
        )
    p = next(iter(model.parameters()), None)
    return torch.zeros(
        (1, *size),
        dtype=p.dtype if p is not None else torch.float32,
        device=p.device if p is not None else "cpu",
    )


def count_macs(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """MACs per layer for one image of ``input_size`` ``(C, H, W)``.

    Returns:
        FQN → MACs for every Linear/Conv that ran, in execution order, with ``"<attn>@qk"`` and
        ``"<attn>@av"`` right after each attention module's ``qkv``.

    Example:
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> sum(count_macs(vit_test_tiny(), (3, 32, 32)).values())
        1942400
    """
    layers = compute_layers(model)
    qkv_owner = {f"{n}.qkv": n for n in attention_modules(model)}
    macs: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        macs[key] = macs.get(key, 0) + int(n)

    def hook_for(name: str) -> Any:
        def hook(mod: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            conv: Any = mod
            if isinstance(mod, nn.Linear):
                add(name, out.numel() * mod.in_features)
            else:
                k = 1
                for v in conv.kernel_size:
                    k *= int(v)
                add(name, out.numel() * (conv.in_channels // conv.groups) * k)
            owner = qkv_owner.get(name)
            if owner is not None and out.ndim == 3:  # (B, N, 3D): the two attention matmuls follow
                b, tokens, d = int(out.shape[0]), int(out.shape[1]), int(out.shape[2]) // 3
                add(owner + QK_SUFFIX, b * tokens * tokens * d)
                add(owner + AV_SUFFIX, b * tokens * tokens * d)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in layers.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(_example(model, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return macs
