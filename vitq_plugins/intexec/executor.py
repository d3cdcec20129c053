"""The integer executor: a small ``nn.Module`` running a converted ViT on integer codes only.

I-ViT (arXiv 2207.01405, Fig. 1 / Sec. 3): integer-only inference, all rescales dyadic (eq. 7). Input:
the uint8 codes of the patch-embedding input quantizer (:meth:`IntExecutor.quantize_input` makes them from
a normalised float image, outside the integer program). Output: int32 logits and their (float) scale.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
from typing import Any

import torch
from torch import nn

from vitq_plugins.intexec.layers import IntBlock
from vitq_plugins.intexec.layers import IntEmbed
from vitq_plugins.intexec.layers import IntHead
from vitq_plugins.intexec.recorder import Recorder
from vitq_plugins.intexec.requant import QParams

__all__ = ["IntExecutor"]


class IntExecutor(nn.Module):
    """Integer-only ViT: ``forward(x_codes) -> (int32 logits, logit scale)``.

    Args:
        embed: patch/position/class-token embedding.
        blocks: transformer blocks.
        head: final norm and classifier.
        input_grid: grid of the input codes.
        out_scale: real value of one logit step.
        recipe: the recipe it was converted from (informational).
        code_taps: ``source model -> CodeTaps``: the source model's integer codes at the quantizers the
            executor taps (given by the converter; used by :func:`~vitq_plugins.intexec.agreement_report`).
    """

    def __init__(
        self,
        embed: IntEmbed,
        blocks: list[IntBlock],
        head: IntHead,
        input_grid: QParams,
        out_scale: float,
        recipe: str = "",
        *,
        code_taps: Callable[[nn.Module], Any] | None = None,
    ) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.input_grid = input_grid
        self.out_scale = float(out_scale)
        self.recipe = recipe
        self.code_taps = code_taps
        self.recorder = Recorder()
        for m in self.modules():
            if hasattr(m, "recorder"):
                setattr(m, "recorder", self.recorder)  # noqa: B010 - typed as Tensor | Module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        if x.is_floating_point():
            raise TypeError(f"IntExecutor takes integer codes ({self.input_grid}); use quantize_input()")
        self.recorder.tap(self.input_grid.name, x.to(torch.int64))
        h = self.embed(x)
        for blk in self.blocks:
            h = blk(h)
        logits: torch.Tensor = self.head(h)
        return logits, self.out_scale

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 codes of a normalised float image on the input grid (a float op, run outside the program)."""
        g = self.input_grid
        q = torch.round(x / g.scale) + g.zero_point
        return q.clamp(g.qmin, g.qmax).to(torch.uint8 if g.qmin >= 0 else torch.int8)

    @contextlib.contextmanager
    def instrumented(self, taps: bool = True, count: bool = True) -> Iterator[Recorder]:
        """Tap every requantized tensor and/or count overflows while inside the block."""
        rec = self.recorder
        rec.taps = {} if taps else None
        rec.count = count
        try:
            yield rec
        finally:
            rec.taps = None
            rec.count = False
