"""One streaming pass of the calibration batches through a model under forward hooks.

Statistics-collecting transforms (MPTQ-ViT's SQ-b, RepQ-ViT's reparameterization) register their hooks, run the
batches once, and keep only what the hooks fold into running statistics, so memory does not grow with the
number of images.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["run_hooked"]


@torch.no_grad()
def run_hooked(model: nn.Module, calib_batches: Iterable[Any], hooks: Sequence[RemovableHandle]) -> int:
    """Run every batch (a tensor or an ``(images, labels)`` pair) through ``model``, then remove ``hooks``.

    Returns:
        The number of batches (0 for an empty or exhausted iterable: the caller names what it needed).
    """
    n = 0
    try:
        for batch in calib_batches:
            model(batch[0] if isinstance(batch, tuple | list) else batch)
            n += 1
    finally:
        for h in hooks:
            h.remove()
    return n
