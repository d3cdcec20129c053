"""The Brevitas adapters of I-ViT (arXiv 2207.01405): Shiftmax, ShiftGELU and I-LayerNorm.

Each quantizer's injector quantizes the kernel's *input* (signed symmetric, :class:`Int8ActShiftmaxInput`,
:class:`Int8ActShiftGELUInput`, :class:`Int8ActILayerNormInput`) and names its integer kernel
(``vitq_kernel``); the owning wing module (``QuantSoftmax``/``QuantGELU``/``QuantLayerNorm``) runs the kernel
registered here on the codes: :class:`ShiftmaxKernel` (§3.3, eqs. 9-14, ``papers.ivit.shift.shiftmax``),
:class:`ShiftGELUKernel` (§3.4, eqs. 15-17, ``papers.ivit.shift.shiftgelu``) and :class:`ILayerNormKernel`
(§3.5, ``papers.ivit.ilayernorm.i_layernorm``). A QONNX export writes each as one ``vitq`` node, executed by
:class:`ShiftmaxOp`, :class:`ShiftGELUOp` and :class:`ILayerNormOp`; QCDQ traces the kernels into standard ops.

``shiftmax_log2`` (the ``ivit`` recipe's default softmax) runs the same Shiftmax exponential but encodes the
probabilities as log2 codes (:mod:`vitq_plugins.papers.ivit.shiftlog`; injector :class:`Int8ActShiftmaxLog2Input`,
kernel :class:`ShiftmaxLog2Kernel`, QONNX node ``vitq::ShiftmaxLog2`` run by :class:`ShiftmaxLog2Op`).

Options (from ``QuantConfig.options``): ``kernel_input_bits`` (8: input bits of Shiftmax), ``shiftmax_n``
(15), ``shiftmax_log2_n`` (20), ``shiftgelu_n`` (23), ``shiftgelu_out_bits`` (8), ``shiftgelu_fine_n`` (20),
``shiftgelu_fine_out_bits`` (16). ``shiftgelu_fine`` (the ``ivit`` recipe's GELU, ``papers.ivit.finegelu``) has
injector :class:`Int8ActShiftGELUFineInput`, kernel :class:`ShiftGELUFineKernel` and QONNX node
``vitq::ShiftGELUFine`` (:class:`ShiftGELUFineOp`).

Example:
    >>> inj = shiftmax("softmax_output", 6)
    >>> int(inj.bit_width), int(inj.out_bits), str(inj.vitq_kernel)
    (8, 6, 'shiftmax')
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitq_plugins.brevitas.extension import DOMAIN
from vitq_plugins.brevitas.extension import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import IntegerKernel
from vitq_plugins.brevitas.extension import IntegerKernelInputMixin
from vitq_plugins.brevitas.extension import VitqCustomOp
from vitq_plugins.brevitas.extension import kernel_input_errors
from vitq_plugins.brevitas.extension import out_dtype
from vitq_plugins.brevitas.extension import register_custom_op
from vitq_plugins.brevitas.extension import register_kernel
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.brevitas.extension import untraced
from vitq_plugins.core.errors import VitqError
from vitq_plugins.papers.ivit import finegelu as _finegelu
from vitq_plugins.papers.ivit import ilayernorm as _iln
from vitq_plugins.papers.ivit import shift as _shift
from vitq_plugins.papers.ivit import shiftlog as _shiftlog

__all__ = [
    "ILayerNormKernel",
    "ILayerNormOp",
    "Int8ActILayerNormInput",
    "Int8ActShiftGELUFineInput",
    "Int8ActShiftGELUInput",
    "Int8ActShiftmaxInput",
    "Int8ActShiftmaxLog2Input",
    "ShiftGELUFineKernel",
    "ShiftGELUFineOp",
    "ShiftGELUKernel",
    "ShiftGELUOp",
    "ShiftmaxKernel",
    "ShiftmaxLog2Kernel",
    "ShiftmaxLog2Op",
    "ShiftmaxOp",
    "ilayernorm",
    "ilayernorm_float",
    "shiftgelu",
    "shiftgelu_fine",
    "shiftgelu_fine_float",
    "shiftgelu_float",
    "shiftmax",
    "shiftmax_float",
    "shiftmax_log2",
    "shiftmax_log2_float",
]


# --- injectors (the kernels' inputs) -----------------------------------------------------------------


class Int8ActShiftmaxInput(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input (attention logits) quantizer of I-ViT Shiftmax; ``out_bits`` = Shiftmax output bits.

    Example:
        >>> q = Int8ActShiftmaxInput.let(out_bits=8, shift_n=15)
    """

    vitq_kernel = "shiftmax"
    out_bits = 8
    shift_n = 15


class Int8ActShiftmaxLog2Input(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input (attention logits) quantizer of Shiftmax with a log2 output code; ``out_bits`` = code bits.

    Example:
        >>> q = Int8ActShiftmaxLog2Input.let(out_bits=4, shift_n=20)
    """

    vitq_kernel = "shiftmax_log2"
    out_bits = 4
    shift_n = 20


class Int8ActShiftGELUInput(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input quantizer of I-ViT ShiftGELU (signed symmetric); ``out_bits`` = sigmoid output bits.

    Example:
        >>> q = Int8ActShiftGELUInput.let(bit_width=8, shift_n=23)
    """

    vitq_kernel = "shiftgelu"
    out_bits = 8
    shift_n = 23


class Int8ActShiftGELUFineInput(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input quantizer of ShiftGELU at a higher internal precision (``papers.ivit.finegelu``).

    Example:
        >>> q = Int8ActShiftGELUFineInput.let(bit_width=8, out_bits=16, shift_n=20)
    """

    vitq_kernel = "shiftgelu_fine"
    out_bits = 16
    shift_n = 20


class Int8ActILayerNormInput(IntegerKernelInputMixin, Int8ActPerTensorMinMax):
    """Input quantizer of I-ViT I-LayerNorm (signed symmetric; the LayerNorm then runs in integers).

    Example:
        >>> q = Int8ActILayerNormInput.let(bit_width=16)
    """

    vitq_kernel = "ilayernorm"
    out_bits = 0
    shift_n = 0


# --- the integer kernels on codes (dequantized outputs) -----------------------------------------------


def shiftmax_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
    """Dequantized I-ViT Shiftmax over the last dim of codes ``x_int`` on grid ``scale`` (eqs. 9-14)."""
    with kernel_input_errors("shiftmax"):
        y, s = _shift.shiftmax(x_int, scale, n=n, out_bits=out_bits, dim=-1)
    return y.to(out_dtype(scale)) * s


def shiftmax_log2_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, bits: int) -> torch.Tensor:
    """Dequantized Shiftmax with a ``bits``-bit log2 code (``2^-code``) of codes ``x_int`` on grid ``scale``."""
    with kernel_input_errors("shiftmax_log2"):
        codes = _shiftlog.shiftmax_log2(x_int, scale, n=n, bits=bits, dim=-1)
    return _shiftlog.log2_dequant(codes, bits, out_dtype(scale))


def shiftgelu_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
    """Dequantized I-ViT ShiftGELU of codes ``x_int`` on grid ``scale`` (eqs. 15-17)."""
    with kernel_input_errors("shiftgelu"):
        y, s = _shift.shiftgelu(x_int, scale, n=n, out_bits=out_bits)
    return y.to(out_dtype(scale)) * s


def shiftgelu_fine_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
    """Dequantized fine ShiftGELU of codes ``x_int`` on grid ``scale`` (``papers.ivit.finegelu``)."""
    with kernel_input_errors("shiftgelu_fine"):
        y, s = _finegelu.shiftgelu_fine(x_int, scale, n=n, out_bits=out_bits)
    return (y.to(torch.float64) * s).to(out_dtype(scale))


def ilayernorm_float(
    x_int: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Dequantized I-ViT I-LayerNorm of codes ``x_int`` on grid ``scale`` (§3.5)."""
    y, s = _iln.i_layernorm(x_int, scale, weight, bias)
    dt = out_dtype(weight)
    return y.to(dt) * s.to(dt)


# --- QONNX custom nodes ---------------------------------------------------------------------------


class _ShiftmaxFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
        with untraced():
            return shiftmax_float(torch.round(x / scale).to(torch.int64), scale, n, out_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, out_bits: int) -> Any:
        out = g.op(f"{DOMAIN}::Shiftmax", x, scale, n_i=n, out_bits_i=out_bits)
        out.setType(x.type())
        return out


class _ShiftmaxLog2Fn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, bits: int) -> torch.Tensor:
        with untraced():
            return shiftmax_log2_float(torch.round(x / scale).to(torch.int64), scale, n, bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, bits: int) -> Any:
        out = g.op(f"{DOMAIN}::ShiftmaxLog2", x, scale, n_i=n, bit_width_i=bits)
        out.setType(x.type())
        return out


class _ShiftGELUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
        with untraced():
            return shiftgelu_float(torch.round(x / scale).to(torch.int64), scale, n, out_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, out_bits: int) -> Any:
        out = g.op(f"{DOMAIN}::ShiftGELU", x, scale, n_i=n, out_bits_i=out_bits)
        out.setType(x.type())
        return out


class _ShiftGELUFineFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
        with untraced():
            return shiftgelu_fine_float(torch.round(x / scale).to(torch.int64), scale, n, out_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, out_bits: int) -> Any:
        out = g.op(f"{DOMAIN}::ShiftGELUFine", x, scale, n_i=n, out_bits_i=out_bits)
        out.setType(x.type())
        return out


class _ILayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        with untraced():
            return ilayernorm_float(torch.round(x / scale).to(torch.int64), scale, weight, bias)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, weight: Any, bias: Any) -> Any:
        out = g.op(f"{DOMAIN}::ILayerNorm", x, scale, weight, bias)
        out.setType(x.type())
        return out


# --- kernels registered with the wing -------------------------------------------------------------


def _shift_params(module: nn.Module) -> tuple[int, int]:
    """``(n, out_bits)`` of a QuantSoftmax/QuantGELU (from its injector's ``shift_n`` and ``out_bits``)."""
    m: Any = module
    return int(m.n), int(m.out_bits)


@register_kernel("shiftmax")
class ShiftmaxKernel(IntegerKernel):
    """I-ViT Shiftmax on the quantized logits of a ``QuantSoftmax`` (its ``n`` and ``out_bits``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return shiftmax_float(x_int, scale, *_shift_params(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _ShiftmaxFn.apply(x, scale, *_shift_params(module))
        return out


@register_kernel("shiftmax_log2")
class ShiftmaxLog2Kernel(IntegerKernel):
    """Shiftmax with a log2 output code on the quantized logits of a ``QuantSoftmax`` (its ``n``, ``out_bits``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return shiftmax_log2_float(x_int, scale, *_shift_params(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _ShiftmaxLog2Fn.apply(x, scale, *_shift_params(module))
        return out


@register_kernel("shiftgelu")
class ShiftGELUKernel(IntegerKernel):
    """I-ViT ShiftGELU on the quantized input of a ``QuantGELU`` (its ``n`` and ``out_bits``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return shiftgelu_float(x_int, scale, *_shift_params(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _ShiftGELUFn.apply(x, scale, *_shift_params(module))
        return out


@register_kernel("shiftgelu_fine")
class ShiftGELUFineKernel(IntegerKernel):
    """Fine ShiftGELU on the quantized input of a ``QuantGELU`` (its ``n`` and ``out_bits``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return shiftgelu_fine_float(x_int, scale, *_shift_params(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _ShiftGELUFineFn.apply(x, scale, *_shift_params(module))
        return out


def _affine(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if weight is None or bias is None:
        raise VitqError("I-LayerNorm needs an affine LayerNorm with weight and bias")
    return weight, bias


@register_kernel("ilayernorm")
class ILayerNormKernel(IntegerKernel):
    """I-ViT I-LayerNorm on the quantized input of a ``QuantLayerNorm`` (its affine ``weight``/``bias``)."""

    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return ilayernorm_float(x_int, scale, *_affine(module))

    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _ILayerNormFn.apply(x, scale, *_affine(module))
        return out


# --- QONNX executors --------------------------------------------------------------------------------


@register_custom_op("Shiftmax")
class ShiftmaxOp(VitqCustomOp):
    """I-ViT Shiftmax over the last axis of fake-quantized logits ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 15), "out_bits": ("i", True, 8)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        x, s = xs[0], xs[1]
        n, out_bits = int(self.get_nodeattr("n")), int(self.get_nodeattr("out_bits"))
        return shiftmax_float(torch.round(x / s).to(torch.int64), s, n, out_bits)


@register_custom_op("ShiftmaxLog2")
class ShiftmaxLog2Op(VitqCustomOp):
    """Shiftmax with a log2 code over the last axis of fake-quantized logits ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 20), "bit_width": ("i", True, 4)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        x, s = xs[0], xs[1]
        n, bits = int(self.get_nodeattr("n")), int(self.get_nodeattr("bit_width"))
        return shiftmax_log2_float(torch.round(x / s).to(torch.int64), s, n, bits)


@register_custom_op("ShiftGELU")
class ShiftGELUOp(VitqCustomOp):
    """I-ViT ShiftGELU of a fake-quantized input ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 23), "out_bits": ("i", True, 8)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        x, s = xs[0], xs[1]
        n, out_bits = int(self.get_nodeattr("n")), int(self.get_nodeattr("out_bits"))
        return shiftgelu_float(torch.round(x / s).to(torch.int64), s, n, out_bits)


@register_custom_op("ShiftGELUFine")
class ShiftGELUFineOp(VitqCustomOp):
    """Fine ShiftGELU of a fake-quantized input ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 20), "out_bits": ("i", True, 16)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        x, s = xs[0], xs[1]
        n, out_bits = int(self.get_nodeattr("n")), int(self.get_nodeattr("out_bits"))
        return shiftgelu_fine_float(torch.round(x / s).to(torch.int64), s, n, out_bits)


@register_custom_op("ILayerNorm")
class ILayerNormOp(VitqCustomOp):
    """I-ViT I-LayerNorm: inputs ``x`` (fake-quantized), ``scale``, ``weight``, ``bias``."""

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        x, s, w, b = xs
        return ilayernorm_float(torch.round(x / s).to(torch.int64), s, w, b)


# --- factories -------------------------------------------------------------------------------------


def shiftmax(site: str, bits: int, **options: Any) -> Any:
    """I-ViT Shiftmax: ``bits`` = output bits; logits quantized to ``kernel_input_bits``."""
    require_site("shiftmax", site, ("softmax_output",))
    return Int8ActShiftmaxInput.let(
        bit_width=int(options.get("kernel_input_bits", 8)),
        out_bits=bits,
        shift_n=int(options.get("shiftmax_n", 15)),
        vitq_name="shiftmax",
    )


def shiftmax_log2(site: str, bits: int, **options: Any) -> Any:
    """Shiftmax with a ``bits``-bit log2 output code; logits quantized to ``kernel_input_bits``."""
    require_site("shiftmax_log2", site, ("softmax_output",))
    return Int8ActShiftmaxLog2Input.let(
        bit_width=int(options.get("kernel_input_bits", 8)),
        out_bits=bits,
        shift_n=int(options.get("shiftmax_log2_n", 20)),
        vitq_name="shiftmax_log2",
    )


def shiftgelu(site: str, bits: int, **options: Any) -> Any:
    """I-ViT ShiftGELU: input quantized to ``bits`` (signed symmetric), integer sigmoid of 8 bits."""
    require_site("shiftgelu", site, ("gelu_output",))
    return Int8ActShiftGELUInput.let(
        bit_width=bits,
        out_bits=int(options.get("shiftgelu_out_bits", 8)),
        shift_n=int(options.get("shiftgelu_n", 23)),
        vitq_name="shiftgelu",
    )


def shiftgelu_fine(site: str, bits: int, **options: Any) -> Any:
    """Fine ShiftGELU: input quantized to ``max(bits, kernel_input_bits)`` (signed symmetric), 16-bit sigmoid."""
    require_site("shiftgelu_fine", site, ("gelu_output",))
    return Int8ActShiftGELUFineInput.let(
        bit_width=max(bits, int(options.get("kernel_input_bits", 8))),
        out_bits=int(options.get("shiftgelu_fine_out_bits", 16)),
        shift_n=int(options.get("shiftgelu_fine_n", 20)),
        vitq_name="shiftgelu_fine",
    )


def ilayernorm(site: str, bits: int, **options: Any) -> Any:
    """I-ViT I-LayerNorm: input quantized to ``bits`` (signed symmetric), LayerNorm in integers."""
    require_site("ilayernorm", site, ("ln_input",))
    return Int8ActILayerNormInput.let(bit_width=bits, vitq_name="ilayernorm")
