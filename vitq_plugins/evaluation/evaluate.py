"""Streaming evaluation: one pass over a loader, accumulating counts, never all the images.

Logits are kept only when asked (``keep_logits``; 2,000 x 10 floats is 80 kB), to compare a quantized
model with its FP original: pass the FP logits as ``fp_logits`` and the loader must yield the same
images in the same order (loaders from :func:`vitq_plugins.data.loader.make_loader` do).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
import time
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.evaluation.metrics import agreement_count
from vitq_plugins.evaluation.metrics import kl_sum
from vitq_plugins.evaluation.metrics import topk_correct

__all__ = ["EvalResult", "collect_logits", "evaluate", "model_logits"]

#: top-5 is reported when the model has at least this many classes
TOP5_MIN_CLASSES = 10


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation pass; accuracies are fractions in [0, 1].

    Args:
        n: images evaluated.
        top1: top-1 accuracy.
        top5: top-5 accuracy (``None`` with fewer than 10 classes).
        agreement: top-1 agreement with the FP logits (``None`` without them).
        kl: mean KL(FP ‖ this model) of the softmax outputs, nats (``None`` without FP logits).
        seconds: wall time of the pass (data loading included).
        logits: ``(n, classes)`` logits when kept.
    """

    n: int
    top1: float
    top5: float | None
    agreement: float | None
    kl: float | None
    seconds: float
    logits: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def images_per_s(self) -> float:
        """Throughput of the pass."""
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able metrics (no logits)."""
        return {
            "n": self.n,
            "top1": self.top1,
            "top5": self.top5,
            "agreement": self.agreement,
            "kl": self.kl,
            "seconds": self.seconds,
            "images_per_s": self.images_per_s,
        }


def model_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` as a plain float tensor (unwraps tuples, ``.logits`` and Brevitas ``QuantTensor``)."""
    out: Any = model(x)
    if isinstance(out, tuple | list):
        out = out[0]
    for attr in ("logits", "value"):
        if not isinstance(out, torch.Tensor) and hasattr(out, attr):
            out = getattr(out, attr)
    if not isinstance(out, torch.Tensor):
        raise VitqError(f"model returned {type(out).__name__}, expected a logits tensor")
    return out.detach().float()


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    fp_logits: torch.Tensor | None = None,
    *,
    keep_logits: bool = False,
    progress: bool = True,
    desc: str = "eval",
) -> EvalResult:
    """Evaluate ``model`` on ``loader`` in one streaming pass (eval mode, no autograd).

    Args:
        model: the classifier.
        loader: ``(images, labels)`` batches.
        fp_logits: logits of the FP model on the same loader, for agreement and KL.
        keep_logits: return the logits in the result.
        progress: show a tqdm bar on stderr.
        desc: the bar's label.

    Raises:
        VitqError: an empty loader, or ``fp_logits`` that do not match the loader's images.
    """
    from vitq_plugins.core.progress import bar as progress_bar

    total = getattr(loader, "num_images", None)
    if fp_logits is not None and total is not None and fp_logits.shape[0] != total:
        raise VitqError(f"fp_logits has {fp_logits.shape[0]} rows but the loader yields {total} images")
    model.eval()
    n = top1 = top5 = agree = 0
    kl_total = 0.0
    has_top5 = True
    kept: list[torch.Tensor] = []
    start = time.perf_counter()
    with (
        torch.no_grad(),
        progress_bar(total, desc, "img", show=progress) as bar,
    ):
        for x, y in loader:
            logits = model_logits(model, x)
            b = int(y.shape[0])
            top1 += topk_correct(logits, y, 1)
            has_top5 = logits.shape[1] >= TOP5_MIN_CLASSES
            if has_top5:
                top5 += topk_correct(logits, y, 5)
            if fp_logits is not None:
                ref = fp_logits[n : n + b]
                if ref.shape[0] != b:
                    raise VitqError(
                        f"fp_logits has {fp_logits.shape[0]} rows, fewer than the loader's images"
                    )
                agree += agreement_count(ref, logits)
                kl_total += kl_sum(ref, logits)
            if keep_logits:
                kept.append(logits)
            n += b
            bar.update(b)
    seconds = time.perf_counter() - start
    if n == 0:
        raise VitqError("the loader yielded no images")
    if fp_logits is not None and fp_logits.shape[0] != n:
        raise VitqError(f"fp_logits has {fp_logits.shape[0]} rows but the loader yielded {n} images")
    return EvalResult(
        n=n,
        top1=top1 / n,
        top5=top5 / n if has_top5 else None,
        agreement=agree / n if fp_logits is not None else None,
        kl=kl_total / n if fp_logits is not None else None,
        seconds=seconds,
        logits=torch.cat(kept) if keep_logits else None,
    )


def collect_logits(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], *, progress: bool = True
) -> torch.Tensor:
    """The ``(N, classes)`` logits of ``model`` on every image of ``loader``, in order."""
    logits = evaluate(model, loader, keep_logits=True, progress=progress, desc="logits").logits
    if logits is None:  # keep_logits=True always keeps them
        raise VitqError("logits were not collected")
    return logits
