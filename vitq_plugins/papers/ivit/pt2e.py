"""I-ViT's torchao PT2E adapters (``QuantizerSpec.backends["pt2e"]`` points here), on the PT2E extension API.

Each quantizer is an integer kernel that replaces the float operator (a
:class:`~vitq_plugins.pt2e.extension.KernelOpObserver`): its input is quantized on I-ViT's signed symmetric
per-tensor MinMax grid (``QuantAct``, as in the other wings), and at ``convert_pt2e`` the softmax/GELU/LayerNorm
becomes a ``torch.library`` custom op running the paper's kernel on the codes (arXiv 2207.01405):

* ``shiftmax`` (Sec. 3.3, eqs. 9-14) and ``shiftmax_log2`` (its exponential with a log2 code,
  ``papers.ivit.shiftlog``) on the attention logits (``kernel_input_bits``, 8), outputs feeding ``attn @ v`` as
  they are;
* ``shiftgelu`` (Sec. 3.4, eqs. 15-17) and ``shiftgelu_fine`` (``papers.ivit.finegelu``) on the fc1 output;
  their output takes fc2's input quantizer (I-ViT's ``qact``);
* ``ilayernorm`` (Sec. 3.5) on the LayerNorm input, with the LayerNorm's weight and bias.

``torch.export``, ``convert_pt2e`` and ``torch.compile`` accept the ops through their fake implementations.
Options (from ``QuantConfig.options``): ``kernel_input_bits`` (8), ``shiftmax_n`` (15), ``shiftmax_log2_n`` (20),
``shiftgelu_n`` (23), ``shiftgelu_out_bits`` (8), ``shiftgelu_fine_n`` (20), ``shiftgelu_fine_out_bits`` (16).
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import torch
from torch import fx

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.papers.ivit import finegelu as _finegelu
from vitq_plugins.papers.ivit import ilayernorm as _iln
from vitq_plugins.papers.ivit import shift as _shift
from vitq_plugins.papers.ivit import shiftlog as _shiftlog
from vitq_plugins.pt2e.extension import KernelOpObserver
from vitq_plugins.pt2e.extension import QuantizationSpec
from vitq_plugins.pt2e.extension import spec_for

__all__ = [
    "ILayerNormObserver",
    "ShiftGELUObserver",
    "ShiftmaxObserver",
    "ilayernorm",
    "shiftgelu",
    "shiftgelu_fine",
    "shiftmax",
    "shiftmax_log2",
]

_aten = torch.ops.aten


def _codes(x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.tensor(scale, dtype=torch.float32)
    return torch.round(x / s).to(torch.int64), s


@torch.library.custom_op("vitq_ivit::shiftmax", mutates_args=())
def shiftmax_op(x: torch.Tensor, scale: float, n: int, out_bits: int, log2: bool) -> torch.Tensor:
    """Shiftmax over the last dim of ``x`` on grid ``scale``: uniform ``out_bits`` output (eqs. 9-14), or with
    ``log2`` the ``out_bits``-bit log2 code's probabilities (``papers.ivit.shiftlog``)."""
    x_int, s = _codes(x, scale)
    if log2:
        codes = _shiftlog.shiftmax_log2(x_int, s, n=n, bits=out_bits, dim=-1)
        return _shiftlog.log2_dequant(codes, out_bits, torch.float32).to(x.dtype)
    y, osc = _shift.shiftmax(x_int, s, n=n, out_bits=out_bits, dim=-1)
    return (y.to(torch.float32) * osc).to(x.dtype)


@shiftmax_op.register_fake
def _(x: torch.Tensor, scale: float, n: int, out_bits: int, log2: bool) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("vitq_ivit::shiftgelu", mutates_args=())
def shiftgelu_op(x: torch.Tensor, scale: float, n: int, out_bits: int, fine: bool) -> torch.Tensor:
    """ShiftGELU of ``x`` on grid ``scale`` (eqs. 15-17), or with ``fine`` at a higher internal precision."""
    x_int, s = _codes(x, scale)
    if fine:
        y, osc = _finegelu.shiftgelu_fine(x_int, s, n=n, out_bits=out_bits)
        return (y.to(torch.float64) * osc).to(x.dtype)
    y, osc = _shift.shiftgelu(x_int, s, n=n, out_bits=out_bits)
    return (y.to(torch.float32) * osc).to(x.dtype)


@shiftgelu_op.register_fake
def _(x: torch.Tensor, scale: float, n: int, out_bits: int, fine: bool) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("vitq_ivit::ilayernorm", mutates_args=())
def ilayernorm_op(x: torch.Tensor, scale: float, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """I-LayerNorm (Sec. 3.5) over the last dim of ``x`` on grid ``scale`` with the affine ``weight``/``bias``."""
    x_int, s = _codes(x, scale)
    y, osc = _iln.i_layernorm(x_int, s, weight, bias)
    return (y.to(torch.float32) * osc.to(torch.float32)).to(x.dtype)


@ilayernorm_op.register_fake
def _(x: torch.Tensor, scale: float, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class ShiftmaxObserver(KernelOpObserver):
    """Input grid of Shiftmax (``log2``: with a log2 output code); replaces the softmax over the last dim.

    Args:
        bits: Input grid bits.
        out_bits: Output bits (uniform) or log2 code bits.
        n: Shift budget of the exponential.
        log2: Log2 output code (``shiftmax_log2``).
        kwargs: Ignored observer arguments.
    """

    replaces: ClassVar[tuple[Any, ...]] = (_aten.softmax.int, _aten._softmax.default)

    def __init__(
        self, bits: int = 8, out_bits: int = 8, n: int = 15, log2: bool = False, **kwargs: Any
    ) -> None:
        name = "shiftmax_log2" if log2 else "shiftmax"
        super().__init__(name, bits, torch.ops.vitq_ivit.shiftmax.default)
        self.out_bits, self.n, self.log2 = int(out_bits), int(n), bool(log2)

    def kernel_args(self, operator: fx.Node) -> tuple[Any, ...]:
        dim = operator.args[1] if len(operator.args) > 1 else -1
        val = operator.meta.get("val")
        if dim != -1 and (val is None or not isinstance(dim, int) or dim != val.dim() - 1):
            raise ConfigError(
                f"{self.quantizer}: Shiftmax runs over the last dim, the softmax is over dim {dim}"
            )
        return self.n, self.out_bits, self.log2


class ShiftGELUObserver(KernelOpObserver):
    """Input grid of ShiftGELU (``fine``: the higher-precision variant); replaces the GELU. Its output takes the
    next site's quantizer (fc2's input), as I-ViT's ``qact``.

    Args:
        bits: Input grid bits.
        out_bits: Bits of the integer sigmoid.
        n: Shift budget of the exponential.
        fine: ``shiftgelu_fine``.
        kwargs: Ignored observer arguments.
    """

    replaces: ClassVar[tuple[Any, ...]] = (_aten.gelu.default,)
    output_container: ClassVar[bool] = True

    def __init__(
        self, bits: int = 8, out_bits: int = 8, n: int = 23, fine: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(
            "shiftgelu_fine" if fine else "shiftgelu", bits, torch.ops.vitq_ivit.shiftgelu.default
        )
        self.out_bits, self.n, self.fine = int(out_bits), int(n), bool(fine)

    def kernel_args(self, operator: fx.Node) -> tuple[Any, ...]:
        return self.n, self.out_bits, self.fine


class ILayerNormObserver(KernelOpObserver):
    """Input grid of I-LayerNorm; replaces an affine LayerNorm over the last dim (its weight and bias nodes).

    Args:
        bits: Input grid bits.
        kwargs: Ignored observer arguments.
    """

    replaces: ClassVar[tuple[Any, ...]] = (_aten.layer_norm.default,)

    def __init__(self, bits: int = 8, **kwargs: Any) -> None:
        super().__init__("ilayernorm", bits, torch.ops.vitq_ivit.ilayernorm.default)

    def kernel_args(self, operator: fx.Node) -> tuple[Any, ...]:
        args = list(operator.args) + [None] * 4
        shape, weight, bias = args[1], args[2], args[3]
        if weight is None or bias is None or not isinstance(shape, list | tuple) or len(shape) != 1:
            raise ConfigError("I-LayerNorm needs an affine LayerNorm over the last dim (weight and bias)")
        return weight, bias


def _site(name: str, site: str, valid: str) -> None:
    if site != valid:
        raise ConfigError(f"quantizer {name!r} quantizes {valid} only, not {site!r}")


def shiftmax(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """Shiftmax (``bits`` output bits) on logits quantized to ``kernel_input_bits`` (8)."""
    _site("shiftmax", site, "softmax_output")
    return spec_for(
        ShiftmaxObserver.with_args(
            bits=int(options.get("kernel_input_bits", 8)), out_bits=bits, n=int(options.get("shiftmax_n", 15))
        )
    )


def shiftmax_log2(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """Shiftmax with a ``bits``-bit log2 code on logits quantized to ``kernel_input_bits`` (8)."""
    _site("shiftmax_log2", site, "softmax_output")
    return spec_for(
        ShiftmaxObserver.with_args(
            bits=int(options.get("kernel_input_bits", 8)),
            out_bits=bits,
            n=int(options.get("shiftmax_log2_n", 20)),
            log2=True,
        )
    )


def shiftgelu(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """ShiftGELU on its input quantized to ``bits``, integer sigmoid of ``shiftgelu_out_bits`` (8)."""
    _site("shiftgelu", site, "gelu_output")
    return spec_for(
        ShiftGELUObserver.with_args(
            bits=bits,
            out_bits=int(options.get("shiftgelu_out_bits", 8)),
            n=int(options.get("shiftgelu_n", 23)),
        )
    )


def shiftgelu_fine(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """Fine ShiftGELU on its input quantized to ``max(bits, kernel_input_bits)``, 16-bit sigmoid."""
    _site("shiftgelu_fine", site, "gelu_output")
    return spec_for(
        ShiftGELUObserver.with_args(
            bits=max(bits, int(options.get("kernel_input_bits", 8))),
            out_bits=int(options.get("shiftgelu_fine_out_bits", 16)),
            n=int(options.get("shiftgelu_fine_n", 20)),
            fine=True,
        )
    )


def ilayernorm(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """I-LayerNorm on its input quantized to ``bits`` (signed symmetric)."""
    _site("ilayernorm", site, "ln_input")
    return spec_for(ILayerNormObserver.with_args(bits=bits))
