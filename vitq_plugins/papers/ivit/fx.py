"""I-ViT's torch.ao FX adapters (``QuantizerSpec.backends["fx"]`` points here), on the FX extension API.

Custom modules running I-ViT's integer kernels (arXiv 2207.01405) on their quantized input: Shiftmax
(:class:`ShiftmaxSoftmax`, Sec. 3.3 eqs. 9-14; ``k_out = bits``, output exact in a ``2^-(k-1)`` container),
ShiftGELU (:class:`ShiftGELU`, Sec. 3.4 eqs. 15-17) and I-LayerNorm (:class:`ILayerNorm`, Sec. 3.5).
``shiftmax_log2`` (:class:`ShiftmaxLog2Softmax`): Shiftmax's exponential with a log2 output code
(:mod:`vitq_plugins.papers.ivit.shiftlog`); its ``2^-code`` sits in a ``2^-8`` quint8 container like FQ-ViT's LIS
(codes above 8 are flushed to 0 by the x86 ``attn @ v``).

``shiftgelu_fine`` (:class:`ShiftGELUFine`): ShiftGELU on the fine exponential (``papers.ivit.finegelu``).

Options (from ``QuantConfig.options``): ``shiftmax_n`` (15), ``shiftmax_log2_n`` (20), ``shiftgelu_n`` (23),
``shiftgelu_fine_n`` (20), ``shiftgelu_fine_out_bits`` (16), ``shiftgelu_out_bits`` (8), ``kernel_input_bits``
(8, Shiftmax's logits). Every kernel input is I-ViT's signed symmetric grid, as in the Brevitas adapters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.extension import check_container_bits
from vitq_plugins.fx.extension import grid_codes
from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine as shiftgelu_fine_int
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
from vitq_plugins.papers.ivit.shift import shiftgelu as shiftgelu_int
from vitq_plugins.papers.ivit.shift import shiftmax as shiftmax_int
from vitq_plugins.papers.ivit.shiftlog import log2_dequant
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2 as shiftmax_log2_int

__all__ = [
    "LOG2_OUT_SCALE",
    "ILayerNorm",
    "ShiftGELU",
    "ShiftGELUFine",
    "ShiftmaxLog2Softmax",
    "ShiftmaxSoftmax",
    "ilayernorm",
    "shiftgelu",
    "shiftgelu_fine",
    "shiftmax",
    "shiftmax_log2",
]

#: log2 codes ``2^-c`` with ``c <= 8`` are exact in a quint8 container of scale ``2^-8`` (FQ-ViT eq. 16)
LOG2_OUT_SCALE = 2.0**-8


def _input_scale(observed: ObservedCustom) -> torch.Tensor:
    return observed.input_observer().qparams()[0].to(torch.float64)


class ShiftmaxSoftmax(nn.Softmax, CustomFloat):
    """Softmax site quantized by I-ViT Shiftmax (``bits`` = ``k_out``, shift budget ``n``)."""

    def __init__(self, dim: int = -1, bits: int = 8, n: int = 15) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1 if self.dim is None else int(self.dim))

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """Shiftmax (eqs. 9-14) of the integer input codes."""
        s = _input_scale(observed)
        dim = -1 if self.dim is None else int(self.dim)
        out, osc = shiftmax_int(grid_codes(x, s), s, n=self.n, out_bits=self.bits, dim=dim)
        return (out.to(torch.float64) * osc).to(x.dtype)


class ShiftmaxLog2Softmax(nn.Softmax, CustomFloat):
    """Softmax site computed by Shiftmax with a ``bits``-bit log2 output code (shift budget ``n``)."""

    def __init__(self, dim: int = -1, bits: int = 4, n: int = 20) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1 if self.dim is None else int(self.dim))

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """Shiftmax's exponential (eqs. 9-13), then ``2^-code`` of the log2 code of the integer input codes."""
        s = _input_scale(observed)
        dim = -1 if self.dim is None else int(self.dim)
        codes = shiftmax_log2_int(grid_codes(x, s), s, n=self.n, bits=self.bits, dim=dim)
        return log2_dequant(codes, self.bits, x.dtype)


class ShiftGELU(nn.GELU, CustomFloat):
    """GELU site computed by I-ViT ShiftGELU (``bits`` of the integer sigmoid, shift budget ``n``; the input
    grid is the spec's input observer)."""

    def __init__(self, bits: int = 8, n: int = 23) -> None:
        nn.GELU.__init__(self)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """ShiftGELU (eqs. 15-17) of the integer input codes."""
        s = _input_scale(observed)
        out, osc = shiftgelu_int(grid_codes(x, s), s, n=self.n, out_bits=self.bits)
        return (out.to(torch.float64) * osc).to(x.dtype)


class ShiftGELUFine(nn.GELU, CustomFloat):
    """GELU site computed by ShiftGELU at a higher internal precision (``papers.ivit.finegelu``)."""

    def __init__(self, bits: int = 16, n: int = 20) -> None:
        nn.GELU.__init__(self)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """Fine ShiftGELU of the integer input codes."""
        s = _input_scale(observed)
        out, osc = shiftgelu_fine_int(grid_codes(x, s), s, n=self.n, out_bits=self.bits)
        return (out.to(torch.float64) * osc).to(x.dtype)


class ILayerNorm(nn.LayerNorm, CustomFloat):
    """LayerNorm computed by I-ViT's integer I-LayerNorm on its quantized input."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, bits: int = 8) -> None:
        nn.LayerNorm.__init__(self, normalized_shape, eps=eps)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """I-LayerNorm (Sec. 3.5) of the integer input codes."""
        s = _input_scale(observed)
        y, osc = i_layernorm(grid_codes(x, s), s, self.weight.detach(), self.bias.detach())
        return (y.to(torch.float64) * osc.to(torch.float64)).to(x.dtype)


def _shiftmax_out_scale(bits: int) -> float:
    """Shiftmax's ``k_out``-bit output step ``2^-(k_out-1)`` (exact in a quint8 container up to 8 bits)."""
    return 2.0 ** -(min(bits, 8) - 1)


def _symmetric_input(name: str, site: str, bits: int) -> Any:
    """I-ViT's signed symmetric ``QuantAct`` grid of a kernel's input (as the Brevitas wing's
    ``Int8ActPerTensorMinMax``), held in the quint8 container."""
    check_container_bits(name, site, bits)
    return UniformActObserver.with_args(bits=bits, symmetric=True)


def shiftmax(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """Shiftmax custom module (``k_out = bits``, exact fixed output container) on logits quantized to
    ``kernel_input_bits`` (8) signed symmetric."""
    return CustomModuleSpec(
        ShiftmaxSoftmax,
        {"bits": bits, "n": int(options.get("shiftmax_n", 15))},
        input_observer=_symmetric_input("shiftmax", site, int(options.get("kernel_input_bits", 8))),
        fixed_out_scale=_shiftmax_out_scale,
    )


def _log2_out_scale(bits: int) -> float:
    return LOG2_OUT_SCALE


def shiftmax_log2(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """Shiftmax with a ``bits``-bit log2 code (exact ``2^-8`` output container)."""
    return CustomModuleSpec(
        ShiftmaxLog2Softmax,
        {"bits": bits, "n": int(options.get("shiftmax_log2_n", 20))},
        input_observer=_symmetric_input("shiftmax_log2", site, int(options.get("kernel_input_bits", 8))),
        fixed_out_scale=_log2_out_scale,
    )


def shiftgelu(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """ShiftGELU custom module: input quantized to ``bits`` signed symmetric, integer sigmoid of
    ``shiftgelu_out_bits`` (8)."""
    return CustomModuleSpec(
        ShiftGELU,
        {"bits": int(options.get("shiftgelu_out_bits", 8)), "n": int(options.get("shiftgelu_n", 23))},
        input_observer=_symmetric_input("shiftgelu", site, bits),
    )


def shiftgelu_fine(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """Fine ShiftGELU custom module (16-bit sigmoid) on its input quantized to ``max(bits,
    kernel_input_bits)`` signed symmetric, as in the Brevitas adapter."""
    in_bits = max(bits, int(options.get("kernel_input_bits", 8)))
    return CustomModuleSpec(
        ShiftGELUFine,
        {
            "bits": int(options.get("shiftgelu_fine_out_bits", 16)),
            "n": int(options.get("shiftgelu_fine_n", 20)),
        },
        input_observer=_symmetric_input("shiftgelu_fine", site, in_bits),
    )


def ilayernorm(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """I-LayerNorm custom module on its input quantized to ``bits`` signed symmetric."""
    return CustomModuleSpec(
        ILayerNorm, {"bits": bits}, input_observer=_symmetric_input("ilayernorm", site, bits)
    )
