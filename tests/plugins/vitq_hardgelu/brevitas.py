"""Brevitas adapter of ``hardgelu`` (on :mod:`vitq_plugins.brevitas.extension` only).

The injector quantizes the GELU's *input* (signed symmetric) and names the kernel ``hardgelu``; the wing's
``QuantGELU`` runs :class:`HardGELUKernel` on the codes (its ``out_bits`` = gate bits). A QONNX export
writes one ``vitq::HardGELU`` node (executed by :class:`HardGELUOp`); QCDQ traces the integer kernel.

Options: ``hardgelu_gate_bits`` (8).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitq_hardgelu.kernel import CALLS
from vitq_hardgelu.kernel import gate_multiplier
from vitq_hardgelu.kernel import hardgelu_codes
from vitq_plugins.brevitas.extension import DOMAIN
from vitq_plugins.brevitas.extension import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import IntegerKernel
from vitq_plugins.brevitas.extension import IntegerKernelInputMixin
from vitq_plugins.brevitas.extension import VitqCustomOp
from vitq_plugins.brevitas.extension import out_dtype
from vitq_plugins.brevitas.extension import register_custom_op
from vitq_plugins.brevitas.extension import register_kernel
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.brevitas.extension import untraced

__all__ = ["HardGELUKernel", "HardGELUOp", "Int8ActHardGELUInput", "hardgelu", "hardgelu_dequant"]


class Int8ActHardGELUInput(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input quantizer of the hard-GELU kernel; ``out_bits`` = gate bits."""

    vitq_kernel = "hardgelu"
    out_bits = 8
    shift_n = 0


def hardgelu_dequant(x_int: torch.Tensor, scale: torch.Tensor, gate_bits: int) -> torch.Tensor:
    """Dequantized integer hard-GELU of codes ``x_int`` on grid ``scale``."""
    y = hardgelu_codes(x_int, gate_multiplier(float(scale), gate_bits), gate_bits)
    return y.to(out_dtype(scale)) * (scale * 2.0**-gate_bits)


class _HardGELUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, gate_bits: int) -> torch.Tensor:
        with untraced():
            return hardgelu_dequant(torch.round(x / scale).to(torch.int64), scale, gate_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, gate_bits: int) -> Any:
        out = g.op(f"{DOMAIN}::HardGELU", x, scale, gate_bits_i=gate_bits)
        out.setType(x.type())
        return out


def _gate_bits(module: nn.Module) -> int:
    """The gate bits of a ``QuantGELU`` (its ``out_bits``, from the injector)."""
    m: Any = module
    return int(m.out_bits)


@register_kernel("hardgelu")
class HardGELUKernel(IntegerKernel):
    """Integer hard-GELU on the quantized input of a ``QuantGELU`` (gate bits: its ``out_bits``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        CALLS["brevitas"] += 1
        return hardgelu_dequant(x_int, scale, _gate_bits(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _HardGELUFn.apply(x, scale, _gate_bits(module))
        return out


@register_custom_op("HardGELU")
class HardGELUOp(VitqCustomOp):
    """``vitq::HardGELU`` of a fake-quantized input ``x`` with scale ``s`` (input 2)."""

    attrs = {"gate_bits": ("i", True, 8)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        CALLS["qonnx"] += 1
        x, s = xs[0], xs[1]
        return hardgelu_dequant(torch.round(x / s).to(torch.int64), s, int(self.get_nodeattr("gate_bits")))


def hardgelu(site: str, bits: int, **options: Any) -> Any:
    """Input quantized to ``bits`` (signed symmetric), then the integer hard-GELU."""
    require_site("hardgelu", site, ("gelu_output",))
    return Int8ActHardGELUInput.let(
        bit_width=bits, out_bits=int(options.get("hardgelu_gate_bits", 8)), vitq_name="hardgelu"
    )
