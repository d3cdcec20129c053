"""torch.ao observers for vitq's quantizers; every formula comes from :mod:`vitq_plugins.ops`.

All classes are plain :class:`torch.ao.quantization.observer.ObserverBase` subclasses with
``calculate_qparams`` (so a torchao pt2e ``Quantizer`` can reuse them as ``observer_or_fake_quant_ctr``).
Each carries ``quantizer`` (its registry name) and ``bits``, and has two modes:

* observing (default): statistics are folded in, the input is returned unchanged (PTQ calibration);
* fake-quant (``fake_quant_enabled = True``): statistics are frozen and the input is quantize-dequantized
  with the calibrated parameters, so the prepared model simulates the converted one.

The uniform baselines follow FQ-ViT (arXiv 2111.13824, Sec. 4.1). A paper's own observers subclass
:class:`VitqObserver` (through :mod:`vitq_plugins.fx.extension`) in its package. Statistics are streaming:
memory does not grow with the number of calibration images.
"""

from __future__ import annotations

from typing import Any
from typing import Literal

import torch
from torch import nn
from torch.ao.quantization.observer import ObserverBase

from vitq_plugins.ops import uniform as ops_uniform

__all__ = [
    "VitqObserver",
    "UniformActObserver",
    "WeightObserver",
    "FixedScaleObserver",
    "set_fake_quant",
]

UniformMethod = Literal["minmax", "percentile", "omse"]


class VitqObserver(ObserverBase):
    """Base: ``quantizer`` name, ``bits``, integer range and the observe/fake-quant switch.

    Args:
        quantizer: Registry name of the quantizer this observer implements.
        bits: Bit-width.
        dtype: torch quantized dtype of the converted tensor (``quint8`` or ``qint8``).
        qscheme: torch qscheme of the converted tensor.
        quant_min: Smallest integer code.
        quant_max: Largest integer code.
        ch_axis: Channel axis for per-channel schemes.
    """

    quantizer: str = ""

    def __init__(
        self,
        quantizer: str,
        bits: int,
        dtype: torch.dtype,
        qscheme: torch.qscheme,
        quant_min: int,
        quant_max: int,
        ch_axis: int = -1,
    ) -> None:
        super().__init__(dtype=dtype, is_dynamic=False)
        self.quantizer = quantizer
        self.bits = bits
        self.qscheme = qscheme
        self.quant_min = quant_min
        self.quant_max = quant_max
        self.ch_axis = ch_axis
        self.fake_quant_enabled = False
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def observe(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics."""
        raise RuntimeError(f"{type(self).__name__} does not observe")  # pragma: no cover

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize-dequantize ``x`` with the calibrated parameters (uniform affine by default)."""
        scale, zp = self.qparams()
        axis = None if scale.dim() == 0 else self.ch_axis % x.dim()
        return ops_uniform.fake_quant(x, scale, zp, self.quant_min, self.quant_max, axis=axis)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached :meth:`calculate_qparams` (computed once after calibration)."""
        if self._cache is None:
            self._cache = self.calculate_qparams()
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_enabled:
            return self.fake_quantize(x)
        self._cache = None
        self.observe(x)
        return x

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        raise RuntimeError(f"{type(self).__name__} has no uniform qparams")  # pragma: no cover

    def extra_repr(self) -> str:
        return f"quantizer={self.quantizer}, bits={self.bits}, fake_quant={self.fake_quant_enabled}"


class UniformActObserver(VitqObserver):
    """Per-tensor activation observer: MinMax, Percentile (EMA) or OMSE; asymmetric unsigned by default.

    Wraps :class:`vitq_plugins.ops.uniform.MinMaxObserver` / ``PercentileObserver`` / ``OMSEObserver``
    and :func:`vitq_plugins.ops.uniform.qparams_from_minmax` (FQ-ViT conventions). With ``symmetric=True``
    (MinMax only) it holds the signed symmetric grid ``scale * [-2^(b-1), 2^(b-1)-1]`` (``scale = absmax /
    ((qmax - qmin) / 2)``, I-ViT's ``QuantAct``, the Brevitas wing's ``Int8ActPerTensorMinMax``) in the quint8
    container as codes ``0..2^b-1`` with zero point ``2^(b-1)``: the same real values.

    Args:
        bits: Bit-width (codes ``0..2^bits-1``; must be <= 8 for the quint8 container).
        method: ``"minmax"``, ``"percentile"`` or ``"omse"``.
        percentile: Upper percentile for ``"percentile"``.
        symmetric: Signed symmetric grid (``method="minmax"`` only).
        kwargs: Ignored torch.ao observer arguments (``dtype``, ``qscheme``, ...).
    """

    def __init__(
        self,
        bits: int = 8,
        method: UniformMethod = "minmax",
        percentile: float = 0.99999,
        symmetric: bool = False,
        **kwargs: Any,
    ) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"fx activations use a quint8 container: bits must be in 2..8, got {bits}")
        if symmetric and method != "minmax":
            raise ValueError(f"a symmetric fx activation observer is MinMax only, got method {method!r}")
        qmin, qmax = ops_uniform.qrange(bits, signed=False)
        super().__init__(method, bits, torch.quint8, torch.per_tensor_affine, qmin, qmax)
        self.method = method
        self.symmetric = bool(symmetric)
        self._impl: ops_uniform.MinMaxObserver | ops_uniform.PercentileObserver | ops_uniform.OMSEObserver
        if method == "minmax":
            self._impl = ops_uniform.MinMaxObserver(None)
        elif method == "percentile":
            self._impl = ops_uniform.PercentileObserver(percentile)
        elif method == "omse":
            self._impl = ops_uniform.OMSEObserver(bits, stats="all")
        else:
            raise ValueError(f"unknown uniform method {method!r}; valid: minmax, percentile, omse")

    def observe(self, x: torch.Tensor) -> None:
        self._impl.update(x.detach().float())

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if isinstance(self._impl, ops_uniform.OMSEObserver):
            res = self._impl.compute()
            return res.scale.reshape(()).float(), res.zero_point.reshape(())
        lo = torch.clamp(self._impl.min, max=0.0)  # keep 0 exactly representable (torch.ao requirement)
        hi = torch.clamp(self._impl.max, min=0.0)
        if self.symmetric:
            scale, zp = ops_uniform.qparams_from_minmax(lo, hi, self.bits, symmetric=True, signed=True)
            return scale, zp + 2 ** (self.bits - 1)
        return ops_uniform.qparams_from_minmax(lo, hi, self.bits, symmetric=False, signed=False)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, method={self.method}, symmetric={self.symmetric}"


class WeightObserver(VitqObserver):
    """Per-output-channel symmetric signed MinMax weight observer (FQ-ViT: ``absmax / 127.5`` at 8 bits).

    Args:
        bits: Bit-width, 2..8 (qint8 container).
        ch_axis: Output-channel axis (0 for Linear/Conv weights).
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, bits: int = 8, ch_axis: int = 0, **kwargs: Any) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"fx weights use a qint8 container: bits must be in 2..8, got {bits}")
        qmin, qmax = ops_uniform.qrange(bits, signed=True)
        super().__init__("minmax", bits, torch.qint8, torch.per_channel_symmetric, qmin, qmax, ch_axis)
        self._impl = ops_uniform.MinMaxObserver(ch_axis)

    def observe(self, x: torch.Tensor) -> None:
        self._impl.update(x.detach().float())

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return ops_uniform.qparams_from_minmax(
            self._impl.min, self._impl.max, self.bits, symmetric=True, signed=True
        )


class FixedScaleObserver(VitqObserver):
    """A fixed ``(scale, zero_point)`` quint8 container in which a custom module's output is exact
    (:attr:`~vitq_plugins.fx.custom.CustomModuleSpec.fixed_out_scale`).

    Args:
        quantizer: Name of the quantizer whose output this container holds.
        bits: Bit-width of that quantizer.
        scale: The fixed scale.
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, quantizer: str = "", bits: int = 8, scale: float = 2.0**-8, **kwargs: Any) -> None:
        super().__init__(quantizer, bits, torch.quint8, torch.per_tensor_affine, 0, 255)
        self.fixed_scale = float(scale)

    def observe(self, x: torch.Tensor) -> None:
        return None

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return torch.tensor(self.fixed_scale), torch.zeros((), dtype=torch.int64)


def set_fake_quant(model: nn.Module, enabled: bool) -> int:
    """Switch every vitq observer and observed custom module in ``model`` between observing and fake-quant; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, VitqObserver) or hasattr(m, "link_input_observer"):
            setattr(m, "fake_quant_enabled", enabled)  # noqa: B010 - also custom modules
            n += 1
    return n
