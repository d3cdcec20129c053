"""Per-layer output error of the current config against float, on calibration images (live, per config).

Like AIMET's QuantAnalyzer per-layer MSE, but for the config in the Layers table: the config is quantized
and calibrated on a copy (the backend's own ``quantize``), then the same images run through the FP model
and the quantized one, and every quantizable layer's output is compared with the FP model's output of the
same layer. The error is relative (``||q - fp||² / ||fp||²``, also as SQNR in dB), so layers of different
scales compare; it includes what the layer inherits from the layers before it, which is what a person
sees when the accuracy drops.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer_app import services
from explorer_app.state import Settings
from vitq_plugins.config import QuantConfig

__all__ = ["collect_outputs", "layer_errors", "relative_errors"]


def _tensor(out: Any) -> torch.Tensor | None:
    t = getattr(out, "value", out)  # Brevitas QuantTensor -> its value
    if not isinstance(t, torch.Tensor):
        return None
    return (t.dequantize() if t.is_quantized else t).detach().float()  # FX quantized modules: quint8 out


def collect_outputs(model: nn.Module, fqns: Sequence[str], batches: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Sum of squares per layer output over ``batches``, keeping the outputs batch by batch (as a list)."""
    modules = dict(model.named_modules())
    outs: dict[str, list[torch.Tensor]] = {f: [] for f in fqns if f in modules}
    hooks = []

    def hook_for(fqn: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            t = _tensor(out)
            if t is not None:
                outs[fqn].append(t)

        return hook

    for f in outs:
        hooks.append(modules[f].register_forward_hook(hook_for(f)))
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


def relative_errors(
    fp_outs: dict[str, list[torch.Tensor]], q_outs: dict[str, list[torch.Tensor]]
) -> pd.DataFrame:
    """``fqn, rel_error, sqnr_db`` for every layer both runs saw with outputs of the same shapes."""
    rows = []
    for fqn, ref in fp_outs.items():
        got = q_outs.get(fqn)
        if not got or len(got) != len(ref) or any(a.shape != b.shape for a, b in zip(ref, got, strict=True)):
            continue
        err = sum(float((b - a).double().pow(2).sum()) for a, b in zip(ref, got, strict=True))
        sig = sum(float(a.double().pow(2).sum()) for a in ref)
        rel = err / max(sig, 1e-30)
        rows.append({"fqn": fqn, "rel_error": rel, "sqnr_db": float(-10 * np.log10(max(rel, 1e-30)))})
    return pd.DataFrame(rows, columns=["fqn", "rel_error", "sqnr_db"])


def layer_errors(
    settings: Settings, fp: services.FPModel, cfg: QuantConfig, n_images: int = 64
) -> pd.DataFrame:
    """Quantize ``cfg`` (calibrated on the settings' calibration images) and measure each layer's output error
    against float on up to ``n_images`` of those images.

    Raises:
        VitqError: a config or backend that cannot quantize the model.
    """
    from vitq_plugins.data.loader import make_loader

    calib, _ = services.load_dataset(
        settings.data, "calib", settings.model, settings.pretrained, settings.arch
    )
    loader = make_loader(calib, settings.batch_size, min(settings.n_calib, len(calib)), settings.seed)
    probe = make_loader(calib, settings.batch_size, min(n_images, len(calib)), settings.seed)
    fqns = [ly.fqn for ly in fp.layers]
    with services.HEAVY_LOCK:
        backend: Any = services.get_host().backends.get(settings.backend).load()
        qmodel = backend.quantize(fp.module, cfg, loader.image_batches(), progress=False)
        images = list(probe.images())
        fp_outs = collect_outputs(fp.module, fqns, images)
        q_outs = collect_outputs(qmodel, fqns, images)
    return relative_errors(fp_outs, q_outs)
