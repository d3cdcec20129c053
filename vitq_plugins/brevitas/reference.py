"""An exact (float64) evaluation of a calibrated fake-quant Brevitas ViT, the reference of the integer executor.

The fake-quant model is a function of integer codes: every quantizer rounds ``x / S`` to a grid (I-ViT arXiv
2207.01405, eq. 7 for the requantizations; Shiftmax, ShiftGELU and I-LayerNorm are integer kernels already).
Evaluated in float32 its matmuls, residual adds and divisions by ``S`` carry ~1e-7 relative error, so a
value within that distance of a rounding boundary lands on either side: about 1e-5 of the codes of each
requantization differ from the exact result, and a ViT spreads every such step to the tokens and
channels after it. On the 64.6% reference model ``ivit`` the float32 and float64 evaluations of the *same*
fake-quant model disagree on ~0.8% of the top-1 predictions (``integration/bench_int_inference.py``).

:func:`float64_reference` returns the model evaluated in float64 with the weight codes of the float32
model frozen: the FQ-ViT MinMax weight scale ``max|w| / 127.5`` puts each channel's extreme weight on an
exact ``x.5`` tie, which float32 and float64 round differently (38 of 9,216 patch-embedding weights), so
re-quantizing the weights in float64 would be a different quantized model. Every activation grid (scale,
zero point, range) stays the calibrated one.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["float64_reference"]


class _FrozenWeightQuant(nn.Module):
    """Returns the ``(value, scale, zero_point, bit_width)`` a weight quantizer produced once (``value`` exact:
    ``(code - zero_point) * scale`` in float64)."""

    value: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    bit_width: torch.Tensor

    def __init__(self, out: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        for name, t in zip(("value", "scale", "zero_point", "bit_width"), out, strict=True):
            self.register_buffer(name, t.detach().clone())

    def forward(self, _w: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.value, self.scale, self.zero_point, self.bit_width


def _to_double(_mod: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


@torch.no_grad()
def float64_reference(qmodel: nn.Module) -> nn.Module:
    """A float64 copy of a calibrated Brevitas fake-quant model with its float32 weight codes frozen.

    Module names are unchanged (per-quantizer comparisons still match); inputs are cast to float64 by a
    forward pre-hook; outputs are float64.

    Args:
        qmodel: the calibrated model returned by ``BACKEND.quantize`` (not modified).

    Returns:
        The float64 reference model, in eval mode.
    """
    from brevitas.nn import QuantConv2d
    from brevitas.nn import QuantLinear

    ref = copy.deepcopy(qmodel).eval()
    for m in ref.modules():
        if isinstance(m, QuantLinear | QuantConv2d):
            proxy: Any = m.weight_quant
            if proxy is None or not proxy.is_quant_enabled:
                continue
            value, scale, zero_point, bit_width = proxy.tensor_quant(m.weight)
            codes = torch.round(value / scale + zero_point)  # exact integers (|error| << 1/2 step)
            exact = (codes.double() - zero_point.double()) * scale.double()
            proxy.tensor_quant = _FrozenWeightQuant((exact, scale, zero_point, bit_width))
    ref = ref.double()
    ref.register_forward_pre_hook(_to_double)
    return ref
