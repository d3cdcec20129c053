"""One-pass calibration of a vitq Brevitas model with ``brevitas.graph.calibrate.calibration_mode``.

Activation quantizers observe the float activations of every batch (streaming observers from
:mod:`vitq_plugins.ops`: memory does not grow with the number of images) and are frozen when the context exits
(FQ-ViT arXiv 2111.13824 §4.1 protocol: statistics over the whole calibration set, one pass).
"""

from __future__ import annotations

from collections.abc import Iterable
import time
from typing import Any

from brevitas.graph.calibrate import calibration_mode
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.progress import track
from vitq_plugins.data.finite import require_finite

__all__ = ["calibrate"]


def calibrate(
    qmodel: nn.Module, batches: Iterable[torch.Tensor], *, progress: bool = True
) -> dict[str, float]:
    """Run ``batches`` through ``qmodel`` inside ``calibration_mode`` (one pass), then set eval mode.

    Args:
        qmodel: a model built by :func:`vitq_plugins.brevitas.layers.build_quant_model`.
        batches: image batches ``(B, 3, H, W)`` (a tensor or ``(images, labels)`` tuples).
        progress: show a tqdm bar on stderr.

    Returns:
        ``{"batches": n, "images": m, "seconds": t}``.

    Raises:
        VitqError: no batch was given.
    """
    n_batches = n_images = 0
    t0 = time.perf_counter()
    qmodel.eval()
    with torch.no_grad(), calibration_mode(qmodel):
        items: Iterable[Any] = batches  # tensors or (images, labels) tuples
        for batch in track(items, "calibrate", "batch", show=progress):
            x = batch[0] if isinstance(batch, tuple | list) else batch
            require_finite(x, f"calibration batch {n_batches}")
            qmodel(x)
            n_batches += 1
            n_images += int(x.shape[0])
        if n_batches == 0:
            raise VitqError("calibration needs at least one batch; calib_batches was empty")
    qmodel.eval()
    return {"batches": float(n_batches), "images": float(n_images), "seconds": time.perf_counter() - t0}
