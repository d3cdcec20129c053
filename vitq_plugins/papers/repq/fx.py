"""RepQ-ViT's torch.ao FX adapter (``QuantizerSpec.backends["fx"]`` points here), on the FX extension API.

``logsqrt2``: a softmax site whose output is quantized on RepQ-ViT's log√2 grid (arXiv 2212.08254, §3.3,
eq. 10). :class:`LogSqrt2Softmax` keeps the running maximum of the map as its calibration state (``Δ``); its
kernel is the float softmax of the (already quantized) logits followed by the log√2 fake-quant. The output
travels in a fixed quint8 container of scale ``2^-8`` (as FQ-ViT's LIS does), so a log√2 level is carried
as its nearest multiple of ``2^-8``: at 4 bits every level (down to ``2^-7.5``) stays non-zero.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import check_container_bits
from vitq_plugins.papers.repq.logsqrt2 import logsqrt2_fake_quant

__all__ = ["LOGSQRT2_OUT_SCALE", "LogSqrt2Softmax", "RunningMax", "logsqrt2"]

#: the quint8 container of the quantized map (levels are rounded to multiples of ``2^-8``)
LOGSQRT2_OUT_SCALE = 2.0**-8


class RunningMax(nn.Module):
    """Calibration state: the running maximum of the reference softmax output (``delta``, initially 1)."""

    delta: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("delta", torch.zeros(()))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self.delta = torch.maximum(self.delta, y.detach().float().amax())
        return y

    def value(self) -> torch.Tensor:
        """``Δ``: the calibrated maximum, or 1 before any calibration batch."""
        return self.delta if float(self.delta) > 0 else torch.ones(())


class LogSqrt2Softmax(nn.Softmax, CustomFloat):
    """Softmax site quantized by RepQ-ViT's ``bits``-bit log√2 quantizer (``Δ`` = calibrated maximum)."""

    def __init__(self, dim: int = -1, bits: int = 4) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1 if self.dim is None else int(self.dim))

    def make_state(self) -> nn.Module | None:
        """The running maximum of the map (``Δ``)."""
        return RunningMax()

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """Float softmax of the quantized logits, then the log√2 fake-quant (eq. 10)."""
        state = observed.state
        assert isinstance(state, RunningMax)
        return logsqrt2_fake_quant(self.reference(x), state.value(), self.bits)


def _out_scale(bits: int) -> float:
    return LOGSQRT2_OUT_SCALE


def logsqrt2(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """log√2 softmax custom module (``bits``-bit codes, fixed ``2^-8`` quint8 output container)."""
    check_container_bits("logsqrt2", site, bits)
    return CustomModuleSpec(LogSqrt2Softmax, {"bits": bits}, fixed_out_scale=_out_scale)
