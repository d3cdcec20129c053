"""The input size ``(C, H, W)`` a model declares, for the wings that need an example input without a batch at hand.

In order: timm's ``pretrained_cfg['input_size']``; ``patch_embed.img_size`` or ``model.img_size`` (timm, vitq's
reference model); ``model.image_size`` (torchvision); else the patch grid of a learned position embedding (a
parameter whose name holds ``pos``, shaped ``(1, T, D)`` with ``T - k`` a square grid for ``k`` prefix tokens)
times the stride of the first ``Conv2d`` (a plain user ViT). Channels: ``patch_embed.proj``, ``model.in_chans`` or
the first ``Conv2d``. A wing that holds a batch (``quantize``) takes the size from it instead.
"""

from __future__ import annotations

import math

from torch import nn

from vitq_plugins.core.errors import VitqError

__all__ = ["input_size"]

_MAX_PREFIX = 8  # class, distillation and register tokens


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def _grid_side(model: nn.Module) -> int | None:
    """Side of the patch grid of a learned position embedding ``(1, T, D)``, or ``None``."""
    for name, p in model.named_parameters():
        if "pos" not in name.rpartition(".")[2] or p.dim() != 3 or p.shape[0] != 1:
            continue
        for k in range(_MAX_PREFIX + 1):
            side = math.isqrt(max(int(p.shape[1]) - k, 0))
            if side and side * side == int(p.shape[1]) - k:
                return side
    return None


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input image of ``model``.

    Raises:
        VitqError: the model declares no size (the message says what to set or pass).
    """
    conv = _first_conv(model)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if size is not None:
        c, h, w = (int(s) for s in size)
        return c, h, w
    pe = getattr(model, "patch_embed", None)
    img = (
        getattr(pe, "img_size", None)
        or getattr(model, "img_size", None)
        or getattr(model, "image_size", None)
    )
    chans = getattr(getattr(pe, "proj", None), "in_channels", None) or getattr(model, "in_chans", None)
    chans = int(chans or (conv.in_channels if conv is not None else 3))
    if img is None and conv is not None:
        side = _grid_side(model)
        stride = conv.stride if isinstance(conv.stride, tuple) else (conv.stride, conv.stride)
        if side is not None:
            img = (side * int(stride[0]), side * int(stride[1]))
    if img is None:
        raise VitqError(
            f"cannot infer the input size of {type(model).__name__}: quantize it with calibration batches (the size "
            "of the first is used), or set model.img_size (and in_chans) or pretrained_cfg['input_size']"
        )
    h, w = (img, img) if isinstance(img, int) else (int(img[0]), int(img[1]))
    return chans, int(h), int(w)
