"""Generic Brevitas injectors (quantizer classes) of the vitq Brevitas wing and the bases papers build on.

Every injector is a :class:`brevitas.inject.ExtendedInjector` usable as ``act_quant=``/``input_quant=``/
``weight_quant=`` of a ``brevitas.nn`` layer. The numerics are not re-implemented here: each ``tensor_quant``
module wraps the pure-torch ops of :mod:`vitq_plugins.ops`:

* uniform baselines (FQ-ViT arXiv 2111.13824 §4.1; OMSE, Choukroun et al. arXiv 1902.06822):
  :class:`Uint8ActPerTensorMinMax`, :class:`Uint8ActPerTensorPercentile`, :class:`Uint8ActPerTensorOMSE`,
  :class:`Int8ActPerTensorMinMax` (signed symmetric) and :class:`Int8WeightPerChannelMinMax`
  (``ops.uniform``: ``scale = max|w| / ((qmax - qmin) / 2)`` per output channel);
* :class:`CalibratedQuant`, the base of every stateful ``tensor_quant`` (a paper's non-uniform quantizer
  subclasses it and composes its injector from the ones here; see :mod:`vitq_plugins.brevitas.extension`).

An injector whose ``vitq_kernel`` is set quantizes the *input* of an integer kernel that the owning module
(:mod:`vitq_plugins.brevitas.modules`) looks up in :mod:`vitq_plugins.brevitas.kernels`.

Calibration protocol (Brevitas ``calibration_mode``): in training mode with ``observer_only`` set, a
``tensor_quant`` feeds the batch to its streaming observer and passes the input through; on exit
``init_scale()`` freezes the parameters into buffers (memory does not grow with the number of batches).
Buffers are restored with :meth:`CalibratedQuant._load_from_state_dict`, which resizes them to the stored
shape and, like Brevitas' own scaling modules, drops them from ``missing_keys`` when
``brevitas.config.IGNORE_MISSING_KEYS`` is set (``layerwise_quantize`` loads the float state into new modules).
"""

from __future__ import annotations

from typing import Any

import brevitas.config
from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import FloatToIntImplType
from brevitas.proxy import ActQuantProxyFromInjector
from brevitas.proxy import WeightQuantProxyFromInjector
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops import uniform as _uniform

__all__ = [
    "CalibratedQuant",
    "Int8ActPerTensorMinMax",
    "Int8WeightPerChannelMinMax",
    "IntegerKernelInputMixin",
    "ObserverActQuant",
    "Quant",
    "Uint8ActPerTensorMinMax",
    "Uint8ActPerTensorOMSE",
    "Uint8ActPerTensorPercentile",
    "UniformWeightQuant",
    "tensor_quant_of",
]

#: what a ``tensor_quant`` returns: ``(value, scale, zero_point, bit_width)``
Quant = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def tensor_quant_of(proxy: Any) -> Any:
    """The ``tensor_quant`` module behind an activation proxy (``None`` when quantization is off)."""
    fused = getattr(proxy, "fused_activation_quant_proxy", None)
    return None if fused is None else getattr(fused, "tensor_quant", None)


class CalibratedQuant(nn.Module):
    """Base of the stateful tensor quantizers: observe in training mode, fake-quantize when frozen.

    A subclass implements :meth:`_new_observer` (an object with ``update(x)``) and :meth:`_freeze` (copy the
    observer's result into buffers); its ``forward`` calls :meth:`observe` in training mode and
    :meth:`_check` before using the frozen buffers.
    """

    calibrated: torch.Tensor

    def __init__(self, bit_width: int) -> None:
        super().__init__()
        self.bits = int(bit_width)
        self.observer_only = False
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self._observer: Any = None

    # --- Brevitas calibration protocol ------------------------------------------------------
    def _new_observer(self) -> Any:
        raise TypeError(f"{type(self).__name__} has no observer")

    def _freeze(self, observer: Any) -> None:
        raise TypeError(f"{type(self).__name__} cannot freeze")

    def observe(self, x: torch.Tensor) -> None:
        """Fold one batch into the streaming observer."""
        if self._observer is None:
            self._observer = self._new_observer()
        self._observer.update(x.detach())

    def init_scale(self) -> None:
        """Freeze the observed statistics into buffers (called by ``calibration_mode`` on exit)."""
        if self._observer is not None:
            self._freeze(self._observer)
            self.calibrated.fill_(True)
            self._observer = None

    def _check(self) -> None:
        if not bool(self.calibrated):
            raise VitqError(
                f"{type(self).__name__} was used before calibration: run the model on calibration data "
                "inside brevitas.graph.calibrate.calibration_mode (BACKEND.quantize does)"
            )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name, buf in list(self._buffers.items()):
            key = prefix + name
            if buf is not None and key in state_dict and state_dict[key].shape != buf.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buf.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if brevitas.config.IGNORE_MISSING_KEYS:
            for name in self._buffers:
                if prefix + name in missing_keys:
                    missing_keys.remove(prefix + name)

    def _bw(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(float(self.bits), device=like.device)


class ObserverActQuant(CalibratedQuant):
    """Per-tensor uniform activation quantizer around an ``ops.uniform`` observer.

    Args:
        bit_width: bits.
        signed: signed symmetric (``True``) or unsigned asymmetric (``False``) codes.
        narrow_range: drop the most negative (signed) code.
        observer: ``"minmax"``, ``"percentile"`` or ``"omse"``.
        percentile: upper percentile of the ``percentile`` observer.
        omse_stats: ``"all"`` (histogram of all batches) or ``"last"`` (FQ-ViT: last batch).
    """

    def __init__(
        self,
        bit_width: int,
        signed: bool,
        narrow_range: bool,
        observer: str,
        percentile: float,
        omse_stats: str,
    ) -> None:
        super().__init__(bit_width)
        if observer not in ("minmax", "percentile", "omse"):
            raise VitqError(f"unknown uniform observer {observer!r}; valid: minmax, percentile, omse")
        self.signed, self.narrow, self.observer_kind = bool(signed), bool(narrow_range), observer
        self.percentile, self.omse_stats = float(percentile), str(omse_stats)
        self.qmin, self.qmax = _uniform.qrange(self.bits, self.signed, self.narrow)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("zero_point", torch.zeros(()))

    def _new_observer(self) -> Any:
        if self.observer_kind == "percentile":
            return _uniform.PercentileObserver(self.percentile)
        if self.observer_kind == "omse":
            return _uniform.OMSEObserver(
                self.bits,
                symmetric=self.signed,
                signed=self.signed,
                stats=self.omse_stats,  # type: ignore[arg-type]
            )
        return _uniform.MinMaxObserver(None)

    def _freeze(self, observer: Any) -> None:
        if self.observer_kind == "omse":
            res = observer.compute()
            scale, zp = res.scale, res.zero_point
        else:
            scale, zp = observer.qparams(
                self.bits, symmetric=self.signed, signed=self.signed, narrow=self.narrow
            )
        self.scale = scale.reshape(()).float()
        self.zero_point = zp.reshape(()).float()

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training:
            self.observe(x)
            return x, None, None, None
        self._check()
        y = _uniform.fake_quant(x, self.scale, self.zero_point.long(), self.qmin, self.qmax)
        return y, self.scale, self.zero_point, self._bw(x)


class UniformWeightQuant(nn.Module):
    """Per-output-channel symmetric MinMax weight quantizer (``ops.uniform``; FQ-ViT weights).

    Args:
        bit_width: bits (signed, two's complement range).
        narrow_range: drop the most negative code.
    """

    def __init__(self, bit_width: int, narrow_range: bool) -> None:
        super().__init__()
        self.bits = int(bit_width)
        self.narrow = bool(narrow_range)
        self.qmin, self.qmax = _uniform.qrange(self.bits, True, self.narrow)

    def forward(self, w: torch.Tensor) -> Quant:
        obs = _uniform.MinMaxObserver(per_channel_axis=0)
        obs.update(w)
        scale, zp = obs.qparams(self.bits, symmetric=True, signed=True, narrow=self.narrow)
        y = _uniform.fake_quant(w, scale, zp, self.qmin, self.qmax, axis=0)
        shape = (-1,) + (1,) * (w.dim() - 1)
        s = scale.to(w.dtype).reshape(shape)
        return y, s, torch.zeros_like(s), torch.tensor(float(self.bits), device=w.device)


# --- injectors ---------------------------------------------------------------------------------


class Uint4ActCodes(ExtendedInjector):  # type: ignore[misc]
    """Base of the unsigned code quantizers whose grid is not affine (log2 or log-sqrt2 attention maps): 4-bit
    rounded codes on the full range. A subclass names its own ``proxy_class`` (its export form is matched by that
    exact type) and its ``tensor_quant``."""

    float_to_int_impl_type = FloatToIntImplType.ROUND
    bit_width = 4
    signed = False
    narrow_range = False
    vitq_kernel = ""
    vitq_name = ""


class Uint8ActPerTensorMinMax(ExtendedInjector):  # type: ignore[misc]
    """Unsigned asymmetric per-tensor MinMax activation quantizer (FQ-ViT baseline).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> q = QuantIdentity(act_quant=Uint8ActPerTensorMinMax.let(bit_width=6), return_quant_tensor=False)
    """

    proxy_class = ActQuantProxyFromInjector
    tensor_quant = ObserverActQuant
    float_to_int_impl_type = FloatToIntImplType.ROUND
    bit_width = 8
    signed = False
    narrow_range = False
    observer = "minmax"
    percentile = 0.99999
    omse_stats = "all"
    vitq_kernel = ""
    vitq_name = ""


class Int8ActPerTensorMinMax(Uint8ActPerTensorMinMax):
    """Signed symmetric per-tensor MinMax activation quantizer (I-ViT ``QuantAct``).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> q = QuantIdentity(act_quant=Int8ActPerTensorMinMax, act_bit_width=6, return_quant_tensor=False)
    """

    signed = True


class Uint8ActPerTensorPercentile(Uint8ActPerTensorMinMax):
    """Unsigned asymmetric per-tensor quantizer clipped at the 99.999th percentile (FQ-ViT, EMA).

    Example:
        >>> q = Uint8ActPerTensorPercentile.let(percentile=0.9999, bit_width=8)
    """

    observer = "percentile"


class Uint8ActPerTensorOMSE(Uint8ActPerTensorMinMax):
    """Unsigned asymmetric per-tensor quantizer with the L2-optimal shrunk range (OMSE).

    Example:
        >>> q = Uint8ActPerTensorOMSE.let(omse_stats="last")
    """

    observer = "omse"


class Int8WeightPerChannelMinMax(ExtendedInjector):  # type: ignore[misc]
    """Signed symmetric per-output-channel MinMax weight quantizer (FQ-ViT weights).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> layer = QuantLinear(8, 4, bias=True, weight_quant=Int8WeightPerChannelMinMax, weight_bit_width=4)
    """

    proxy_class = WeightQuantProxyFromInjector
    tensor_quant = UniformWeightQuant
    float_to_int_impl_type = FloatToIntImplType.ROUND
    bit_width = 8
    signed = True
    narrow_range = False
    vitq_name = ""


class IntegerKernelInputMixin(ExtendedInjector):  # type: ignore[misc]
    """Mixin of an injector that quantizes the *input* of an integer kernel instead of an op's output.

    ``vitq_kernel`` names the kernel (registered with :func:`vitq_plugins.brevitas.kernels.register_kernel`)
    that the owning :class:`~vitq_plugins.brevitas.modules.QuantSoftmax` / ``QuantGELU`` / ``QuantLayerNorm``
    runs on the codes; ``out_bits`` and ``shift_n`` are the kernel's parameters (copied to the module as
    ``out_bits`` and ``n``). Put it first in the bases: ``class X(IntegerKernelInputMixin, Int8ActPerTensorMinMax)``.
    """

    vitq_kernel = ""
    out_bits = 8
    shift_n = 0
