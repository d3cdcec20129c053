"""Agreement of the integer program with the fake-quant model it was converted from.

I-ViT (arXiv 2207.01405) evaluates integer-only inference by accuracy; here the integer executor is
compared with the fake-quant model on the same images: top-1 agreement, top-1 of both, logit error in
output steps (``|l_int * S_out - l_fq| / S_out``), per-quantizer max code error (every requantized tensor of
the executor vs. the fake-quant codes ``round(y / S) + z`` at the same quantizer, in steps) and overflow
counters (none allowed).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

import torch
from torch import nn

from vitq_plugins.intexec.executor import IntExecutor

__all__ = ["AgreementReport", "CodeTaps", "agreement_report"]


@dataclass
class AgreementReport:
    """Result of :func:`agreement_report` (fractions in [0, 1])."""

    images: int = 0
    agreement: float = 0.0
    fq_top1: float = 0.0
    int_top1: float = 0.0
    logit_err_mean_steps: float = 0.0
    logit_err_max_steps: float = 0.0
    out_scale: float = 0.0
    layer_max_err: dict[str, int] = field(default_factory=dict)
    layer_mismatch_frac: dict[str, float] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    #: with ``keep_outputs``: int32 logits of the executor and float logits of the fake-quant model
    int_logits: torch.Tensor | None = None
    fq_logits: torch.Tensor | None = None

    @property
    def overflow_free(self) -> bool:
        """No counter fired."""
        return not any(self.overflow.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "images": self.images,
            "agreement": self.agreement,
            "fq_top1": self.fq_top1,
            "int_top1": self.int_top1,
            "logit_err_mean_steps": self.logit_err_mean_steps,
            "logit_err_max_steps": self.logit_err_max_steps,
            "out_scale": self.out_scale,
            "layer_max_err": dict(self.layer_max_err),
            "layer_mismatch_frac": dict(self.layer_mismatch_frac),
            "overflow": dict(self.overflow),
        }


class CodeTaps(Protocol):
    """Integer codes a fake-quant model produced at its quantizers during a forward, by executor tap key.

    Made by the converter that built the executor (``IntExecutor.code_taps``, e.g. the Brevitas wing's
    forward hooks on its activation quantizers), closed after the report.
    """

    codes: dict[str, torch.Tensor]

    def close(self) -> None: ...


def agreement_report(
    qmodel: nn.Module,
    executor: IntExecutor,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    layers: bool = True,
    keep_outputs: bool = False,
    taps: Callable[[nn.Module], CodeTaps] | None = None,
) -> AgreementReport:
    """Run both models on ``batches`` of ``(normalised images, labels)`` and compare.

    Args:
        qmodel: the calibrated fake-quant model.
        executor: its integer program.
        batches: evaluation batches.
        layers: also compare every requantized tensor (slower: taps all of them).
        keep_outputs: keep both models' logits on the report.
        taps: ``qmodel -> CodeTaps`` for the per-quantizer comparison (default: ``executor.code_taps``, set
            by the converter that built it; without any, ``layer_*`` stay empty).

    Returns:
        An :class:`AgreementReport`.
    """
    rep = AgreementReport(out_scale=executor.out_scale)
    make_taps = taps if taps is not None else executor.code_taps
    code_taps = make_taps(qmodel) if layers and make_taps is not None else None
    agree = c_fq = c_int = 0
    err_sum = 0.0
    err_max = 0.0
    mism: dict[str, list[int]] = {}
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    executor.recorder.reset()
    try:
        for x, y in batches:
            with torch.no_grad():
                fq = qmodel(x)
                with executor.instrumented(taps=layers, count=True) as rec:
                    li, s = executor(executor.quantize_input(x))
                    int_taps = dict(rec.taps or {})
            if keep_outputs:
                kept.append((li, fq))
            err = (li.double() * s - fq.double()).abs() / s
            err_sum += float(err.sum())
            err_max = max(err_max, float(err.max()))
            p_int, p_fq = li.argmax(1), fq.argmax(1)
            agree += int((p_int == p_fq).sum())
            c_fq += int((p_fq == y).sum())
            c_int += int((p_int == y).sum())
            rep.images += int(y.shape[0])
            if code_taps is not None:
                for key, codes in int_taps.items():
                    ref = code_taps.codes.get(key)
                    if ref is None or ref.shape != codes.shape:
                        continue
                    d = (codes - ref).abs()
                    rep.layer_max_err[key] = max(rep.layer_max_err.get(key, 0), int(d.max()))
                    tot = mism.setdefault(key, [0, 0])
                    tot[0] += int((d > 0).sum())
                    tot[1] += d.numel()
    finally:
        if code_taps is not None:
            code_taps.close()
    n = max(rep.images, 1)
    rep.agreement, rep.fq_top1, rep.int_top1 = agree / n, c_fq / n, c_int / n
    rep.logit_err_mean_steps = err_sum / (n * max(1, int(li.shape[1]))) if rep.images else 0.0
    rep.logit_err_max_steps = err_max
    rep.layer_mismatch_frac = {k: v[0] / max(v[1], 1) for k, v in mism.items()}
    rep.overflow = dict(executor.recorder.counters)
    if kept:
        rep.int_logits = torch.cat([a for a, _ in kept])
        rep.fq_logits = torch.cat([b for _, b in kept])
    return rep
