"""I-ViT's torch.ao FX adapters (``QuantizerSpec.backends["fx"]`` points here), on the FX extension API.

Custom modules running I-ViT's integer kernels (arXiv 2207.01405) on their quantized input: Shiftmax
(:class:`ShiftmaxSoftmax`, Sec. 3.3 eqs. 9-14; ``k_out = bits``, output exact in a ``2^-(k-1)`` container),
ShiftGELU (:class:`ShiftGELU`, Sec. 3.4 eqs. 15-17) and I-LayerNorm (:class:`ILayerNorm`, Sec. 3.5).

Options (from ``QuantConfig.options``): ``shiftmax_n`` (15), ``shiftgelu_n`` (23), ``shiftgelu_out_bits`` (8),
``kernel_input_bits`` (8, Shiftmax's logits). Every kernel input is I-ViT's signed symmetric grid, as in the
Brevitas adapters.
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
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
from vitq_plugins.papers.ivit.shift import shiftgelu as shiftgelu_int
from vitq_plugins.papers.ivit.shift import shiftmax as shiftmax_int

__all__ = ["ILayerNorm", "ShiftGELU", "ShiftmaxSoftmax", "ilayernorm", "shiftgelu", "shiftmax"]


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


def shiftgelu(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """ShiftGELU custom module: input quantized to ``bits`` signed symmetric, integer sigmoid of
    ``shiftgelu_out_bits`` (8)."""
    return CustomModuleSpec(
        ShiftGELU,
        {"bits": int(options.get("shiftgelu_out_bits", 8)), "n": int(options.get("shiftgelu_n", 23))},
        input_observer=_symmetric_input("shiftgelu", site, bits),
    )


def ilayernorm(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """I-LayerNorm custom module on its input quantized to ``bits`` signed symmetric."""
    return CustomModuleSpec(
        ILayerNorm, {"bits": bits}, input_observer=_symmetric_input("ilayernorm", site, bits)
    )
