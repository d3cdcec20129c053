"""LayerNorm input ranges per channel, and the error of one scale against PTS (why FQ-ViT's PTS exists):
:class:`vitq_plugins.papers.fqvit.PTSObserver` on forward pre-hooks over the calibration images."""

from __future__ import annotations

from collections.abc import Callable
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from explorer_app.services import HEAVY_LOCK
from explorer_app.services import FPModel

if TYPE_CHECKING:
    pass

__all__ = [
    "LayerNormStats",
    "layernorm_stats",
]


@dataclass(frozen=True)
class LayerNormStats:
    """Per-channel statistics of one LayerNorm's input over the calibration images.

    Args:
        fqn: the LayerNorm.
        min: per-channel minimum.
        max: per-channel maximum.
        alpha: the PTS exponent each channel gets (scale ``s * 2^alpha``).
        mse_tensor: per-channel quantization MSE with one layer-wide scale (``alpha = K`` everywhere).
        mse_pts: per-channel quantization MSE with the PTS scales.
        bits: code bits.
        k: largest exponent ``K``.
    """

    fqn: str
    min: np.ndarray
    max: np.ndarray
    alpha: np.ndarray
    mse_tensor: np.ndarray
    mse_pts: np.ndarray
    bits: int
    k: int

    @property
    def range_ratio(self) -> float:
        """Largest over smallest channel range (how much the channels differ)."""
        r = self.max - self.min
        return float(r.max() / max(float(r.min()), 1e-12))


def layernorm_stats(
    fp: FPModel,
    batches: list[Any],
    *,
    bits: int = 8,
    k: int = 3,
    progress: Callable[[float], None] | None = None,
) -> dict[str, LayerNormStats]:
    """:class:`PTSObserver` statistics of every LayerNorm input (on a copy of the model)."""
    import torch

    from vitq_plugins.papers.fqvit.pts import PTSObserver

    with HEAVY_LOCK:
        model = copy.deepcopy(fp.module).eval()
        mods = dict(model.named_modules())
        observers: dict[str, PTSObserver] = {}
        handles = []
        for name in fp.layernorms:
            ln = mods[name]
            shape = getattr(ln, "normalized_shape", (0,))
            obs = PTSObserver(int(shape[-1]), bits=bits, k=k, stats="last")
            observers[name] = obs
            handles.append(ln.register_forward_pre_hook(lambda _m, inp, o=obs: o.update(inp[0])))
        try:
            with torch.no_grad():
                for i, x in enumerate(batches):
                    model(x)
                    if progress is not None:
                        progress((i + 1) / len(batches))
        finally:
            for h in handles:
                h.remove()
        out: dict[str, LayerNormStats] = {}
        for name, obs in observers.items():
            err = obs.candidate_errors().numpy()
            params = obs.compute()
            out[name] = LayerNormStats(
                fqn=name,
                min=obs.min.numpy(),
                max=obs.max.numpy(),
                alpha=params.alpha.numpy(),
                mse_tensor=err[:, -1],
                mse_pts=err.min(axis=1),
                bits=bits,
                k=k,
            )
        return out
