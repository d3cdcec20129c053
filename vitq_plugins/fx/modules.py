"""Custom modules that keep the non-uniform / integer semantics of vitq's quantizers through ``convert_fx``.

torch.ao's ``convert_fx`` can only materialize uniform affine observers, so every non-uniform or integer
operator is a *static custom module* (``PrepareCustomConfig`` / ``ConvertCustomConfig``): a float marker
module placed by :func:`vitq_plugins.fx.prepare.place_custom_modules`, an observed module used during
calibration and a quantized module after conversion. The quantized module receives the quint8 (per-channel
for PTS) input FX quantized for it, runs the integer kernel from :mod:`vitq_plugins.ops` and returns a
quint8 tensor in its output container. In fake-quant mode the observed module runs the *same* kernel, so
the prepared model simulates the converted one.

Papers: LIS = FQ-ViT arXiv 2111.13824 eqs. 13-16; PTS integer LayerNorm = FQ-ViT eqs. 9-10 and Sec. 3.2;
Shiftmax / ShiftGELU / I-LayerNorm = I-ViT arXiv 2207.01405 Sec. 3.3-3.5 (eqs. 9-17); OPT-m =
MPTQ-ViT arXiv 2401.14895 (MPTQ-style twin scales).
"""

from __future__ import annotations

import copy
from typing import Any
from typing import ClassVar

import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.observers import PTSActObserver
from vitq_plugins.fx.observers import TwinFakeQuant
from vitq_plugins.fx.observers import VitqObserver
from vitq_plugins.papers.fqvit.lis import lis_dequant
from vitq_plugins.papers.fqvit.lis import lis_softmax_int
from vitq_plugins.papers.fqvit.pts import pts_int_layernorm
from vitq_plugins.papers.fqvit.pts import pts_quantize
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
from vitq_plugins.papers.ivit.shift import shiftgelu
from vitq_plugins.papers.ivit.shift import shiftmax

__all__ = [
    "FLOAT_TO_OBSERVED",
    "OBSERVED_TO_QUANTIZED",
    "CustomFloat",
    "LISSoftmax",
    "ShiftmaxSoftmax",
    "ShiftGELU",
    "OptmGELU",
    "PTSLayerNorm",
    "ILayerNorm",
    "ObservedCustom",
    "QuantizedCustom",
]


# --- kernels: float in (already on the input grid), float out ---------------------------------------
def _int_codes(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.round(x / scale).to(torch.int64)


def _dim(mod: nn.Module) -> int:
    d = getattr(mod, "dim", None)
    return -1 if d is None else int(d)


def _lis(x: torch.Tensor, s: torch.Tensor, mod: CustomFloat) -> torch.Tensor:
    codes = lis_softmax_int(_int_codes(x, s), s, bits=mod.bits, n=mod.n, dim=_dim(mod))
    return lis_dequant(codes, mod.bits).to(x.dtype)


def _shiftmax(x: torch.Tensor, s: torch.Tensor, mod: CustomFloat) -> torch.Tensor:
    out, osc = shiftmax(_int_codes(x, s), s, n=mod.n, out_bits=mod.bits, dim=_dim(mod))
    return (out.to(torch.float64) * osc).to(x.dtype)


def _shiftgelu(x: torch.Tensor, s: torch.Tensor, mod: CustomFloat) -> torch.Tensor:
    out, osc = shiftgelu(_int_codes(x, s), s, n=mod.n, out_bits=mod.bits)
    return (out.to(torch.float64) * osc).to(x.dtype)


def _ilayernorm(x: torch.Tensor, s: torch.Tensor, mod: CustomFloat) -> torch.Tensor:
    assert isinstance(mod, nn.LayerNorm)
    y, osc = i_layernorm(_int_codes(x, s), s, mod.weight.detach(), mod.bias.detach())
    return (y.to(torch.float64) * osc.to(torch.float64)).to(x.dtype)


class CustomFloat(nn.Module):
    """Mixin of the float marker modules: quantizer name, bits and shift budget ``n``."""

    quantizer: ClassVar[str] = ""
    bits: int
    n: int

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The float operator (used while calibrating)."""
        raise RuntimeError("abstract")  # pragma: no cover


class LISSoftmax(nn.Softmax, CustomFloat):
    """Softmax site quantized by FQ-ViT Log-Int-Softmax (``bits``-bit log2 codes, i-exp shift ``n``)."""

    quantizer = "lis"

    def __init__(self, dim: int = -1, bits: int = 4, n: int = 30) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, _dim(self))


class ShiftmaxSoftmax(nn.Softmax, CustomFloat):
    """Softmax site quantized by I-ViT Shiftmax (``bits`` = ``k_out``, shift budget ``n``)."""

    quantizer = "shiftmax"

    def __init__(self, dim: int = -1, bits: int = 8, n: int = 15) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, _dim(self))


class ShiftGELU(nn.GELU, CustomFloat):
    """GELU site computed by I-ViT ShiftGELU (``bits`` of the integer sigmoid, shift budget ``n``)."""

    quantizer = "shiftgelu"

    def __init__(self, bits: int = 8, n: int = 23) -> None:
        nn.GELU.__init__(self)
        self.bits, self.n = bits, n

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class OptmGELU(nn.GELU, CustomFloat):
    """GELU site whose output is twin-scale (OPT-m) quantized with ``bits``-bit codes."""

    quantizer = "optm"

    def __init__(self, bits: int = 8) -> None:
        nn.GELU.__init__(self)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class PTSLayerNorm(nn.LayerNorm, CustomFloat):
    """LayerNorm whose input is PTS-quantized and which runs FQ-ViT's integer LayerNorm."""

    quantizer = "pts"

    def __init__(self, normalized_shape: int, eps: float = 1e-6, bits: int = 8) -> None:
        nn.LayerNorm.__init__(self, normalized_shape, eps=eps)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class ILayerNorm(nn.LayerNorm, CustomFloat):
    """LayerNorm computed by I-ViT's integer I-LayerNorm on its quantized input."""

    quantizer = "ilayernorm"

    def __init__(self, normalized_shape: int, eps: float = 1e-6, bits: int = 8) -> None:
        nn.LayerNorm.__init__(self, normalized_shape, eps=eps)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def _copy_float(src: CustomFloat) -> CustomFloat:
    new = copy.deepcopy(src)
    new.__dict__.pop("qconfig", None)
    return new


class ObservedCustom(nn.Module):
    """Observed form of a :class:`CustomFloat` (calibration and fake-quant simulation).

    While calibrating it runs the float operator (OPT-m: and collects post-GELU statistics). With
    ``fake_quant_enabled`` it runs the integer kernel on its input grid, whose observer is linked by
    :meth:`link_input_observer` after ``prepare_fx``.
    """

    def __init__(self, float_mod: CustomFloat) -> None:
        super().__init__()
        self.inner: nn.Module = _copy_float(float_mod)
        self.quantizer = float_mod.quantizer
        self.bits = float_mod.bits
        self.fake_quant_enabled = False
        self._input_obs: list[VitqObserver] = []
        self._out_obs: list[nn.Module] = []
        self.twin: TwinFakeQuant | None = TwinFakeQuant(self.bits) if self.quantizer == "optm" else None

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False) -> ObservedCustom:
        """torch.ao custom-module hook."""
        if not isinstance(mod, CustomFloat):
            raise TypeError(f"expected a vitq custom float module, got {type(mod).__name__}")
        new = cls(mod)
        new.qconfig = mod.qconfig
        return new

    def link_input_observer(self, obs: VitqObserver) -> None:
        """Attach the observer FX inserted on this module's input (not registered as a child)."""
        self._input_obs = [obs]

    def input_observer(self) -> VitqObserver:
        """The linked input observer."""
        if not self._input_obs:
            raise RuntimeError(f"{self.quantizer} custom module has no linked input observer")
        return self._input_obs[0]

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized operator on ``x`` (already on the input grid); float output."""
        q = self.quantizer
        if q == "optm":
            assert self.twin is not None
            return self.twin.fake_quantize(F.gelu(x))
        obs = self.input_observer()
        if q == "pts":
            assert isinstance(obs, PTSActObserver) and isinstance(self.inner, nn.LayerNorm)
            p = obs.params()
            out_scale, out_zp = self.out_qparams()
            codes = pts_int_layernorm(
                pts_quantize(x, p),
                p,
                self.inner.weight.detach(),
                self.inner.bias.detach(),
                self.inner.eps,
                out_scale,
                out_bits=8,
                out_zero_point=int(out_zp),
            )
            return ((codes - int(out_zp)).to(torch.float64) * out_scale.to(torch.float64)).to(x.dtype)
        scale, _ = obs.qparams()
        fn = {"lis": _lis, "shiftmax": _shiftmax, "shiftgelu": _shiftgelu, "ilayernorm": _ilayernorm}[q]
        assert isinstance(self.inner, CustomFloat)
        return fn(x, scale.to(torch.float64), self.inner)

    def out_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` of the output container (the FX output observer)."""
        obs: Any = getattr(self, "activation_post_process", None) or (
            self._out_obs[0] if self._out_obs else None
        )
        if obs is None:
            raise RuntimeError(f"{self.quantizer} custom module has no output observer")
        s, zp = obs.calculate_qparams()
        return s.reshape(()), zp.reshape(())

    def link_output_observer(self, obs: nn.Module) -> None:
        """Attach the observer FX inserted on this module's output."""
        self._out_obs = [obs]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_enabled:
            return self.kernel(x)
        assert isinstance(self.inner, CustomFloat)
        y = self.inner.reference(x)
        if self.twin is not None:
            self.twin(y)
        return y


class QuantizedCustom(nn.Module):
    """Converted form: quint8 in, integer kernel from :mod:`vitq_plugins.ops`, quint8 out."""

    def __init__(self, observed: ObservedCustom) -> None:
        super().__init__()
        self.observed = observed
        self.quantizer = observed.quantizer
        s, zp = observed.out_qparams()
        self.out_scale = float(s)
        self.out_zero_point = int(zp)

    @classmethod
    def from_observed(cls, mod: nn.Module) -> QuantizedCustom:
        """torch.ao custom-module hook."""
        if not isinstance(mod, ObservedCustom):
            raise TypeError(f"expected ObservedCustom, got {type(mod).__name__}")
        mod.fake_quant_enabled = True
        return cls(mod)

    def forward(self, xq: torch.Tensor) -> torch.Tensor:
        x = xq.dequantize() if xq.is_quantized else xq
        try:
            y = self.observed.kernel(x)
        except ValueError as exc:  # e.g. an input scale the integer kernel cannot represent (too few bits)
            raise VitqError(
                f"quantizer {self.quantizer!r} cannot run on its calibrated input: {exc}; its input scale "
                "comes from the activation bits of the layer before it, so give that site more bits "
                "(a_bits/attn_bits) or use another quantizer here"
            ) from None
        return torch.quantize_per_tensor(y.float(), self.out_scale, self.out_zero_point, torch.quint8)

    def extra_repr(self) -> str:
        return f"quantizer={self.quantizer}, out_scale={self.out_scale:.3g}, out_zero_point={self.out_zero_point}"


#: Float marker class -> observed class (one observed class serves all; the float type selects the kernel).
FLOAT_TO_OBSERVED: dict[type[nn.Module], type[nn.Module]] = {
    cls: ObservedCustom
    for cls in (LISSoftmax, ShiftmaxSoftmax, ShiftGELU, OptmGELU, PTSLayerNorm, ILayerNorm)
}
#: Observed class -> quantized class.
OBSERVED_TO_QUANTIZED: dict[type[nn.Module], type[nn.Module]] = {ObservedCustom: QuantizedCustom}
