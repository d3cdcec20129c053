"""Brevitas injectors (quantizer classes) for the vitq quantizers.

Every injector is a :class:`brevitas.inject.ExtendedInjector` usable as ``act_quant=``/``input_quant=``/
``weight_quant=`` of a ``brevitas.nn`` layer. The numerics are not re-implemented here: each ``tensor_quant``
module wraps the pure-torch ops of :mod:`vitq_plugins.ops`:

* uniform baselines (FQ-ViT arXiv 2111.13824 §4.1; OMSE, Choukroun et al. arXiv 1902.06822):
  :class:`Uint8ActPerTensorMinMax`, :class:`Uint8ActPerTensorPercentile`, :class:`Uint8ActPerTensorOMSE`,
  :class:`Int8ActPerTensorMinMax` (signed symmetric) and :class:`Int8WeightPerChannelMinMax`
  (``ops.uniform``: ``scale = max|w| / ((qmax - qmin) / 2)`` per output channel);
* FQ-ViT Power-of-Two Factor for LayerNorm inputs (arXiv 2111.13824 §3.2, eqs. 9-10):
  :class:`Int8ActPTS` / :class:`Int8ActPerChannelPTS` (``papers.fqvit.pts.PTSObserver``: scale ``s * 2^alpha_c``);
* FQ-ViT log2 attention map (arXiv 2111.13824 §3.3, eq. 13): :class:`Uint4ActLog2`, with its own proxy class
  :class:`Log2ActQuantProxy` so that export handlers can be attached to it;
* MPTQ-style OPT-m post-GELU twin scales (arXiv 2401.14895): :class:`Uint8ActOPTm` (``papers.mptq.optm``);
* the I-ViT kernels (arXiv 2207.01405 §3.3-3.5) take their *input* quantizer from here
  (:class:`Int8ActShiftmaxInput`, :class:`Int8ActShiftGELUInput`, :class:`Int8ActILayerNormInput`); the
  integer kernel itself runs in the module (:mod:`vitq_plugins.brevitas.modules`), selected by the injector's
  ``vitq_kernel`` attribute.

Calibration protocol (Brevitas ``calibration_mode``): in training mode with ``observer_only`` set, a
``tensor_quant`` feeds the batch to its streaming observer and passes the input through; on exit
``init_scale()`` freezes the parameters into buffers (memory does not grow with the number of batches).
Buffers are restored with :meth:`_CalibratedQuant._load_from_state_dict`, which resizes them to the stored
shape and, like Brevitas' own scaling modules, drops them from ``missing_keys`` when
``brevitas.config.IGNORE_MISSING_KEYS`` is set (``layerwise_quantize`` loads the float state into new modules).
"""

from __future__ import annotations

from typing import Any

import brevitas.config
from brevitas.inject import ExtendedInjector
from brevitas.inject import value
from brevitas.inject.enum import FloatToIntImplType
from brevitas.proxy import ActQuantProxyFromInjector
from brevitas.proxy import WeightQuantProxyFromInjector
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops import uniform as _uniform
from vitq_plugins.papers.fqvit import lis as _lis
from vitq_plugins.papers.fqvit import pts as _pts

__all__ = [
    "Int8ActILayerNormInput",
    "Int8ActPTS",
    "Int8ActPerChannelPTS",
    "Int8ActPerTensorMinMax",
    "Int8ActShiftGELUInput",
    "Int8ActShiftmaxInput",
    "Int8WeightPerChannelMinMax",
    "Log2ActQuantProxy",
    "Log2Quant",
    "TwinActQuantProxy",
    "ObserverActQuant",
    "OPTmActQuant",
    "PTSActQuant",
    "Uint4ActLog2",
    "Uint8ActOPTm",
    "Uint8ActPerTensorMinMax",
    "Uint8ActPerTensorOMSE",
    "Uint8ActPerTensorPercentile",
    "UniformWeightQuant",
    "tensor_quant_of",
]

Quant = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def tensor_quant_of(proxy: Any) -> Any:
    """The ``tensor_quant`` module behind an activation proxy (``None`` when quantization is off)."""
    fused = getattr(proxy, "fused_activation_quant_proxy", None)
    return None if fused is None else getattr(fused, "tensor_quant", None)


class _CalibratedQuant(nn.Module):
    """Base of the stateful tensor quantizers: observe in training mode, fake-quantize when frozen."""

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


class ObserverActQuant(_CalibratedQuant):
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


class PTSActQuant(_CalibratedQuant):
    """FQ-ViT Power-of-Two-Factor quantizer of a LayerNorm input ``(..., C)`` (``papers.fqvit.pts``).

    Args:
        bit_width: code bits (unsigned).
        num_channels: ``C``.
        pts_k: largest factor exponent ``K`` (FQ-ViT: 3).
        pts_stats: ``"all"`` or ``"last"`` (see :class:`vitq_plugins.papers.fqvit.pts.PTSObserver`).
        pts_zero_point: ``"official"`` or ``"paper"``.
    """

    def __init__(
        self, bit_width: int, num_channels: int, pts_k: int, pts_stats: str, pts_zero_point: str
    ) -> None:
        super().__init__(bit_width)
        self.num_channels, self.k = int(num_channels), int(pts_k)
        self.stats, self.zp_mode = str(pts_stats), str(pts_zero_point)
        self.register_buffer("scale_base", torch.ones(()))
        self.register_buffer("alpha", torch.zeros(self.num_channels, dtype=torch.int64))
        self.register_buffer("zero_point", torch.zeros(()))

    def _new_observer(self) -> Any:
        return _pts.PTSObserver(self.num_channels, self.bits, self.k, self.stats, self.zp_mode)  # type: ignore[arg-type]

    def _freeze(self, observer: Any) -> None:
        p = observer.compute()
        self.scale_base = p.scale_base.reshape(()).float()
        self.alpha = p.alpha.to(torch.int64)
        self.zero_point = p.zero_point.reshape(()).float()

    def params(self) -> Any:
        """The frozen :class:`vitq_plugins.papers.fqvit.pts.PTSParams`."""
        return _pts.PTSParams(self.scale_base, self.alpha, self.zero_point.long(), self.bits)

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training:
            self.observe(x)
            return x, None, None, None
        self._check()
        p = self.params()
        scale = p.scale.reshape(1, 1, -1).float()
        zp = self.zero_point.expand(self.num_channels).reshape(1, 1, -1)
        if x.dim() == 0:  # Brevitas' sentinel call to read scale/zero-point
            return x, scale, zp, self._bw(x)
        y = _pts.pts_fake_quant(x, p)
        return y, scale, zp, self._bw(x)


class Log2Quant(nn.Module):
    """Unsigned log2 quantizer of probabilities: ``2^-round(-log2 p)``, 0 for codes ``>= 2^b`` (``papers.fqvit.lis``).

    Stateless; in calibration mode it passes the input through. ``papers.fqvit.lis`` supports ``b <= 6``; wider codes
    (the registry allows 8) are computed with 6-bit codes, which already resolve down to ``2^-63`` and are
    numerically identical in float32 for softmax outputs of rows with fewer than ``2^40`` entries.
    """

    MAX_CODE_BITS = 6

    def __init__(self, bit_width: int) -> None:
        super().__init__()
        self.bits = int(bit_width)
        self.code_bits = min(self.bits, self.MAX_CODE_BITS)
        self.observer_only = False

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training and self.observer_only:
            return x, None, None, None
        one = torch.ones((), device=x.device)
        deq = _lis.log2_fake_quant(x.clamp(0.0, 1.0), self.code_bits).to(x.dtype)
        y = x + (deq - x).detach() if x.requires_grad and torch.is_grad_enabled() else deq
        return y, one, torch.zeros_like(one), torch.tensor(float(self.bits), device=x.device)


class Log2ActQuantProxy(ActQuantProxyFromInjector):  # type: ignore[misc]
    """Dedicated proxy type of :class:`Uint4ActLog2` (export handlers match proxies by exact type)."""


class TwinActQuantProxy(ActQuantProxyFromInjector):  # type: ignore[misc]
    """Dedicated proxy type of :class:`Uint8ActOPTm` (two scales: exported by vitq's own handlers)."""


class OPTmActQuant(_CalibratedQuant):
    """MPTQ-style OPT-m post-GELU twin-scale quantizer (``papers.mptq.optm``).

    Negative values use ``delta_n``, positive ``delta_p = 2^m * delta_n`` on one signed ``b``-bit grid; ``m``
    and ``delta_n`` minimise the output MSE of the consuming Linear (:attr:`next_linear`, set by the owning
    :class:`~vitq_plugins.brevitas.modules.QuantGELU`; identity if unset), searched on a bounded uniform
    reservoir of calibration tokens.

    Args:
        bit_width: code bits (sign included).
        optm_max_m: largest ``m`` searched (``m in 0..optm_max_m``).
        optm_samples: calibration tokens kept for the search (memory bound).
    """

    def __init__(self, bit_width: int, optm_max_m: int, optm_samples: int) -> None:
        super().__init__(bit_width)
        self.max_m, self.samples = int(optm_max_m), int(optm_samples)
        self.register_buffer("delta_n", torch.ones(()))
        self.register_buffer("m", torch.zeros((), dtype=torch.int64))
        self.next_linear: list[nn.Module] = []

    def _new_observer(self) -> Any:
        return _Reservoir(self.samples)

    def _freeze(self, observer: Any) -> None:
        from vitq_plugins.papers.mptq import optm as _optm

        x = observer.data()
        if self.next_linear:
            lin: Any = self.next_linear[0]
            weight = lin.weight.detach()
        else:
            weight = torch.eye(x.shape[-1])
        res = _optm.search_optm(x, weight, None, self.bits, m_values=range(self.max_m + 1))
        self.delta_n = torch.tensor(float(res.delta_n))
        self.m = torch.tensor(int(res.m), dtype=torch.int64)

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training:
            self.observe(x)
            return x, None, None, None
        self._check()
        from vitq_plugins.papers.mptq import optm as _optm

        if x.dim() == 0:
            y = x
        else:
            y = _optm.twin_fake_quant(x, self.delta_n, int(self.m), self.bits)
        s = self.delta_n
        return y, s, torch.zeros_like(s), self._bw(x)


class _Reservoir:
    """A uniform sample of at most ``size`` tokens (rows over the last dim) of everything seen.

    Memory is independent of the number of batches (random keys, keep the top ``size``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys = torch.empty(0)
        self._rows: torch.Tensor | None = None
        self._gen = torch.Generator().manual_seed(0)

    def update(self, x: torch.Tensor) -> None:
        rows = x.detach().reshape(-1, x.shape[-1]).float()
        keys = torch.rand(rows.shape[0], generator=self._gen)
        if self._rows is not None:
            rows = torch.cat([self._rows, rows])
            keys = torch.cat([self._keys, keys])
        if keys.numel() > self.size:
            idx = torch.topk(keys, self.size).indices
            rows, keys = rows[idx], keys[idx]
        self._rows, self._keys = rows, keys

    def data(self) -> torch.Tensor:
        if self._rows is None:
            raise VitqError("OPT-m has no calibration data")
        return self._rows


# --- injectors ---------------------------------------------------------------------------------


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


def _pts_channels(module: Any, channels: int) -> int:
    if channels:
        return int(channels)
    shape = getattr(module, "normalized_shape", None)
    if shape is None:
        raise VitqError("PTS needs the channel count: use it on a LayerNorm or set .let(channels=C)")
    return int(shape[-1])


class Int8ActPerChannelPTS(Uint8ActPerTensorMinMax):
    """FQ-ViT PTS quantizer of LayerNorm inputs: scale ``s * 2^alpha_c`` per channel (unsigned codes).

    The channel count is read from the owning layer (``normalized_shape``), so it is usable as
    ``input_quant=`` of :class:`vitq_plugins.brevitas.modules.QuantLayerNorm`.

    Example:
        >>> from vitq_plugins.brevitas.modules import QuantLayerNorm
        >>> ln = QuantLayerNorm(64, input_quant=Int8ActPerChannelPTS.let(pts_k=3), input_bit_width=6)
    """

    tensor_quant = PTSActQuant  # type: ignore[assignment]
    pts_k = 3
    pts_stats = "all"
    pts_zero_point = "official"
    channels = 0

    num_channels = value(_pts_channels)


#: Alias matching frameworks.md's name.
Int8ActPTS = Int8ActPerChannelPTS


class Uint4ActLog2(ExtendedInjector):  # type: ignore[misc]
    """FQ-ViT log2 quantizer of the attention map (4-bit codes, 0 for underflow).

    Example:
        >>> from vitq_plugins.brevitas.modules import QuantSoftmax
        >>> sm = QuantSoftmax(dim=-1, act_quant=Uint4ActLog2.let(bit_width=3))
    """

    proxy_class = Log2ActQuantProxy
    tensor_quant = Log2Quant
    float_to_int_impl_type = FloatToIntImplType.ROUND
    bit_width = 4
    signed = False
    narrow_range = False
    vitq_kernel = ""
    vitq_name = ""


class Uint8ActOPTm(Uint8ActPerTensorMinMax):
    """MPTQ-style OPT-m twin-scale quantizer of the post-GELU activation.

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> q = QuantIdentity(act_quant=Uint8ActOPTm.let(optm_max_m=6), return_quant_tensor=False)
    """

    proxy_class = TwinActQuantProxy
    tensor_quant = OPTmActQuant  # type: ignore[assignment]
    signed = True
    optm_max_m = 8
    optm_samples = 512


class Int8ActShiftmaxInput(Int8ActPerTensorMinMax):
    """Input (attention logits) quantizer of I-ViT Shiftmax; ``out_bits`` = Shiftmax output bits.

    Example:
        >>> q = Int8ActShiftmaxInput.let(out_bits=8, shift_n=15)
    """

    vitq_kernel = "shiftmax"
    out_bits = 8
    shift_n = 15


class Int8ActShiftGELUInput(Int8ActPerTensorMinMax):
    """Input quantizer of I-ViT ShiftGELU (signed symmetric); ``out_bits`` = sigmoid output bits.

    Example:
        >>> q = Int8ActShiftGELUInput.let(bit_width=8, shift_n=23)
    """

    vitq_kernel = "shiftgelu"
    out_bits = 8
    shift_n = 23


class Int8ActILayerNormInput(Int8ActPerTensorMinMax):
    """Input quantizer of I-ViT I-LayerNorm (signed symmetric; the LayerNorm then runs in integers).

    Example:
        >>> q = Int8ActILayerNormInput.let(bit_width=16)
    """

    vitq_kernel = "ilayernorm"
    out_bits = 0
    shift_n = 0
