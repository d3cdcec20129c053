"""Run-time instrumentation of the integer program: per-site code taps and overflow counters.

Used by the agreement report (I-ViT arXiv 2207.01405 reports integer-only accuracy; we also compare every
requantized tensor with the fake-quant model's codes at the same quantizer). Taps and counters read tensor
data, so they are off by default and cost nothing then.
"""

from __future__ import annotations

import torch

__all__ = ["INT32_MAX", "INT32_MIN", "Recorder"]

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


class Recorder:
    """Shared by every module of one integer executor.

    Attributes:
        taps: ``quantizer name -> int64 codes`` of the last forward, or ``None`` when tapping is off.
        counters: overflow counters summed over forwards (``acc_int32``: accumulators outside int32;
            ``softmax_sum``: Shiftmax row sums saturated at ``2^31 - 1``; ``code_range``: codes outside the
            grid before the clamp, counted only for accumulators, i.e. information, not overflow).
        count: whether to update ``counters``.
    """

    def __init__(self) -> None:
        self.taps: dict[str, torch.Tensor] | None = None
        self.counters: dict[str, int] = {"acc_int32": 0, "softmax_sum": 0}
        self.count = False

    def tap(self, name: str, codes: torch.Tensor) -> None:
        """Keep ``codes`` under ``name`` when tapping is on."""
        if self.taps is not None and name:
            self.taps[name] = codes.detach()

    def check_int32(self, acc: torch.Tensor) -> None:
        """Count accumulator elements outside int32 (when counting is on)."""
        if self.count:
            self.counters["acc_int32"] += int(((acc > INT32_MAX) | (acc < INT32_MIN)).sum())

    def reset(self) -> None:
        """Zero the counters."""
        for k in self.counters:
            self.counters[k] = 0
