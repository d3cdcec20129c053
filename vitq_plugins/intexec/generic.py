"""The integer forms that belong to no paper: the exact integer LayerNorm and the GELU lookup table.

* :class:`ExactLayerNorm` (``("layernorm", "exact")``): :func:`~vitq_plugins.intexec.kernels.layernorm_exact_int`,
  the integer LayerNorm of a model whose fake-quant LayerNorm is float on quantized (possibly per-channel
  power-of-two, FQ-ViT arXiv 2111.13824 eqs. 9-10) inputs.
* :class:`GeluTable` (``("gelu", "table")``): a float GELU followed by a uniform output quantizer of <= 8 bits is
  a function of fc1's accumulator on a fine index grid: one table lookup.
"""

from __future__ import annotations

import numpy as np
import torch

from vitq_plugins.intexec.forms import GeluForm
from vitq_plugins.intexec.forms import LayerNormForm
from vitq_plugins.intexec.forms import register_integer_form
from vitq_plugins.intexec.kernels import EXACT_SQRT_FRAC
from vitq_plugins.intexec.kernels import layernorm_exact_int
from vitq_plugins.intexec.onnx_export import OnnxGraph
from vitq_plugins.intexec.onnx_export import isqrt
from vitq_plugins.intexec.onnx_export import requant
from vitq_plugins.intexec.requant import Requant

__all__ = ["ExactLayerNorm", "GeluTable", "LN_BOUND"]

#: bound on ``|x_hat| 2^30 / sqrt(C)`` of the LayerNorm forms that share :func:`~vitq_plugins.intexec.kernels.layernorm_bias`
LN_BOUND = 2**31


@register_integer_form("layernorm", "exact")
class ExactLayerNorm(LayerNormForm):
    """``layernorm_exact_int(x, bias_int)``: no mean rounding; output scale ``layernorm_scale(gamma)``."""

    bias_int: torch.Tensor

    def __init__(self, bias_int: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("bias_int", bias_int.to(torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layernorm_exact_int(x, self.bias_int)

    def out_bound(self) -> int:
        return LN_BOUND + int(self.bias_int.abs().max())

    def emit_onnx(self, g: OnnxGraph, x: str, channels: int) -> str:
        s = g.reduce_sum(x)
        y = g.op("Sub", g.op("Mul", x, g.const(channels)), s)
        var = g.reduce_sum(g.op("Mul", y, y))
        p = EXACT_SQRT_FRAC
        r = isqrt(g, g.op("Mul", var, g.const(1 << (2 * p))))
        y = g.floor_div(g.op("Mul", y, g.const(1 << (30 + p))), g.op("Max", r, g.const(1)))
        return g.op("Add", y, g.const(self.bias_int))


@register_integer_form("gelu", "table")
class GeluTable(GeluForm):
    """``lut[rq_gelu(acc)]``: ``rq_gelu`` maps fc1's accumulator to a fine index grid (clamped, zero point
    ``-lo``) and ``lut`` gives the output code of every index (tapped as ``lut_name``)."""

    lut: torch.Tensor

    def __init__(self, rq_gelu: Requant, lut: torch.Tensor, lut_name: str = "") -> None:
        super().__init__()
        self.rq_gelu = rq_gelu
        self.register_buffer("lut", lut.to(torch.uint8))
        self.lut_name = lut_name

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        codes = self.lut[self.rq_gelu(acc)].to(torch.int64)
        self.recorder.tap(self.lut_name, codes)
        return codes

    def emit_onnx(self, g: OnnxGraph, acc: str) -> tuple[str, bool]:
        from onnx import TensorProto

        idx = requant(g, acc, self.rq_gelu)
        codes = g.op("Gather", g.const(self.lut, np.uint8), idx, axis=0)
        return g.cast(codes, TensorProto.INT64), False
