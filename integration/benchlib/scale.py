"""Every recipe at the shape of a real ViT: logit cosine with float and quantize time, for
``integration/bench_scale.py`` and ``integration/benchmark.py --scale`` (issue #17's scale check).

Quantize the model through the public API (``get_backend(b).quantize(model, QuantConfig(recipe, w, a, attn),
calib)``) on bundled CIFAR-10 calibration images resized by the model's own preprocessing, then compare the
logits with float on test images: the cosine of the flattened logits, the relative error and the top-1 agreement
with float. The quantize time (transforms + calibration + searches) comes with its ratio to one float forward
pass over the same calibration images, measured in the same run. A refused config is a row with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import time
from typing import Any

__all__ = ["FIELDS", "scale_rows"]

FIELDS = (
    "model",
    "recipe",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "cosine",
    "rel_err",
    "agreement",
    "quantize_s",
    "quantize_x_fp",
    "fp_forward_s",
    "n_calib",
    "n_eval",
    "status",
)


def scale_rows(
    model_name: str,
    recipes: Sequence[str],
    backends: Sequence[str],
    settings: Sequence[tuple[int, int, int]],
    emit: Callable[[dict[str, Any]], None],
    *,
    n_calib: int = 64,
    n_eval: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    pretrained: bool = False,
    log: Callable[[str], None] = print,
) -> None:
    """Quantize ``model_name`` (timm; random weights unless ``pretrained``) with every recipe x wing x setting
    and ``emit`` one :data:`FIELDS` row each."""
    import timm
    import torch

    from vitq_plugins import QuantConfig
    from vitq_plugins import get_backend
    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.pipeline import split_loader

    torch.manual_seed(seed)
    host = get_host()
    model = timm.create_model(model_name, pretrained=pretrained).eval()
    calib, _ = split_loader(model, "cifar10_bundled", "calib", n_calib, seed, host, batch_size=batch_size)
    evals, _ = split_loader(model, "cifar10_bundled", "eval", n_eval, seed, host, batch_size=batch_size)
    calib_images = [x for x, _ in calib]
    eval_images = [x for x, _ in evals]

    def logits(m: Any) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([m(x) for x in eval_images]).float()

    with torch.no_grad():
        t = time.perf_counter()
        for x in calib_images:
            model(x)
        fp_forward_s = time.perf_counter() - t
    ref = logits(model)
    log(f"{model_name}: float forward over {n_calib} calibration images {fp_forward_s:.1f} s")
    for w, a, attn in settings:
        for recipe in recipes:
            for backend in backends:
                row: dict[str, Any] = {
                    "model": model_name,
                    "recipe": recipe,
                    "backend": backend,
                    "w_bits": w,
                    "a_bits": a,
                    "attn_bits": attn,
                    "fp_forward_s": round(fp_forward_s, 2),
                    "n_calib": n_calib,
                    "n_eval": n_eval,
                }
                try:
                    t = time.perf_counter()
                    qmodel = get_backend(backend).quantize(
                        model, QuantConfig(recipe, w, a, attn), calib_images, progress=False
                    )
                    quantize_s = time.perf_counter() - t
                    q = logits(qmodel)
                except VitqError as exc:  # a refused config is a row, not a crash
                    row["status"] = f"refused: {exc}".splitlines()[0][:200]
                    emit(row)
                    log(f"{recipe:8s} {backend:8s} W{w}A{a}attn{attn}: {row['status']}")
                    continue
                cos = torch.nn.functional.cosine_similarity(q.flatten(), ref.flatten(), dim=0)
                row.update(
                    cosine=round(float(cos), 4),
                    rel_err=round(float((q - ref).norm() / ref.norm()), 4),
                    agreement=round(float((q.argmax(1) == ref.argmax(1)).float().mean()), 4),
                    quantize_s=round(quantize_s, 1),
                    quantize_x_fp=round(quantize_s / fp_forward_s, 2),
                    status="ok",
                )
                emit(row)
                log(
                    f"{recipe:8s} {backend:8s} W{w}A{a}attn{attn}: cosine {row['cosine']:.4f} "
                    f"agreement {row['agreement']:.3f} quantize {row['quantize_s']} s "
                    f"({row['quantize_x_fp']}x the float forward)"
                )
