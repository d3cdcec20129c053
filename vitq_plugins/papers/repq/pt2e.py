"""RepQ-ViT's torchao PT2E adapter (``QuantizerSpec.backends["pt2e"]`` points here), on the PT2E extension API.

``logsqrt2``: the attention map on RepQ-ViT's log√2 grid (arXiv 2212.08254, §3.3, eq. 10;
``papers.repq.logsqrt2``) as a calibrated custom op. :class:`LogSqrt2Observer` records the streaming maximum of
the map (``Δ``, as the Brevitas wing does); at ``convert_pt2e`` it becomes
``vitq_repq::logsqrt2_fake_quant(x, delta, bits)``, whose values feed ``attn @ v`` directly (no uniform
container in between, as FQ-ViT's LIS in this wing). ``torch.export``, ``convert_pt2e`` and ``torch.compile``
accept the op through its fake implementation.
"""

from __future__ import annotations

from typing import Any

import torch

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.papers.repq.logsqrt2 import logsqrt2_fake_quant
from vitq_plugins.pt2e.extension import CalibratedOpObserver
from vitq_plugins.pt2e.extension import QuantizationSpec
from vitq_plugins.pt2e.extension import spec_for

__all__ = ["LogSqrt2Observer", "logsqrt2", "logsqrt2_fake_quant_op"]


@torch.library.custom_op("vitq_repq::logsqrt2_fake_quant", mutates_args=())
def logsqrt2_fake_quant_op(x: torch.Tensor, delta: float, bits: int) -> torch.Tensor:
    """RepQ-ViT's log√2 quantize-dequantize (:func:`~vitq_plugins.papers.repq.logsqrt2.logsqrt2_fake_quant`)."""
    return logsqrt2_fake_quant(x, delta, bits)


@logsqrt2_fake_quant_op.register_fake
def _(x: torch.Tensor, delta: float, bits: int) -> torch.Tensor:
    return torch.empty_like(x)


class LogSqrt2Observer(CalibratedOpObserver):
    """``Δ`` of RepQ-ViT's log√2 quantizer: the streaming maximum of the attention map (1 before any batch or
    for a map that is never positive).

    Args:
        bits: Code bits (codes ``0..2^b - 1``, plus 0 for underflow).
        kwargs: Ignored observer arguments.
    """

    def __init__(self, bits: int = 4, **kwargs: Any) -> None:
        super().__init__(
            "logsqrt2", bits, torch.ops.vitq_repq.logsqrt2_fake_quant.default, torch.uint8, 0, 2**bits - 1
        )
        self.delta: torch.Tensor
        self.register_buffer("delta", torch.zeros(()))

    def observe(self, x: torch.Tensor) -> None:
        self.delta = torch.maximum(self.delta, x.detach().float().amax())

    def op_args(self) -> tuple[float, int]:
        d = float(self.delta)
        return (d if d > 0 else 1.0), int(self.bits)


def logsqrt2(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """RepQ-ViT's log√2 quantizer of the attention map (``bits``-bit codes, ``Δ`` calibrated)."""
    if site != "softmax_output":
        raise ConfigError(
            f"quantizer 'logsqrt2' quantizes the attention map (softmax_output) only, not {site!r}"
        )
    if not 1 <= bits <= 8:
        raise ConfigError(f"quantizer 'logsqrt2' takes 1..8 bits, got {bits}")
    return spec_for(LogSqrt2Observer.with_args(bits=bits))
