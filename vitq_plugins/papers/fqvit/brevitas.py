"""The Brevitas adapters of FQ-ViT (arXiv 2111.13824): PTS and LIS (``QuantizerSpec.backends["brevitas"]``).

* ``pts`` - Power-of-Two Factor quantizer of LayerNorm inputs (§3.2, eqs. 9-10): :class:`PTSActQuant`
  (``papers.fqvit.pts.PTSObserver``: scale ``s * 2^alpha_c`` per channel, unsigned codes), injector
  :class:`Uint8ActPerChannelPTS`. Options: ``pts_k`` (3), ``pts_stats`` ("all"|"last"), ``pts_zero_point``
  ("official"|"paper").
* ``lis`` - log2 quantizer of the attention map (§3.3, eq. 13): :class:`Log2Quant`, injector
  :class:`Uint4ActLog2` with its own proxy :class:`Log2ActQuantProxy`, exported as one ``vitq::Log2Quant`` node
  (QONNX, executed by :class:`Log2QuantOp`) or as standard ``Log``/``Neg``/``Round``/``Pow``/``Where`` ops (QCDQ).

Example:
    >>> inj = pts("ln_input", 6, pts_k=2)
    >>> int(inj.bit_width), int(inj.pts_k)
    (6, 2)
"""

from __future__ import annotations

from typing import Any

from brevitas.inject import value
from brevitas.proxy import ActQuantProxyFromInjector
import torch
from torch import nn

from vitq_plugins.brevitas.extension import DOMAIN
from vitq_plugins.brevitas.extension import CalibratedQuant
from vitq_plugins.brevitas.extension import ExportForm
from vitq_plugins.brevitas.extension import Quant
from vitq_plugins.brevitas.extension import QuantNodes
from vitq_plugins.brevitas.extension import Uint4ActCodes
from vitq_plugins.brevitas.extension import Uint8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import VitqCustomOp
from vitq_plugins.brevitas.extension import register_custom_op
from vitq_plugins.brevitas.extension import register_export_form
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.core.errors import VitqError
from vitq_plugins.papers.fqvit import lis as _lis
from vitq_plugins.papers.fqvit import pts as _pts

__all__ = [
    "Log2ActQuantProxy",
    "Log2Quant",
    "Log2QuantOp",
    "PTSActQuant",
    "Uint4ActLog2",
    "Uint8ActPerChannelPTS",
    "lis",
    "pts",
]


# --- PTS (§3.2, eqs. 9-10) ----------------------------------------------------------------------


class PTSActQuant(CalibratedQuant):
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


def _pts_channels(module: Any, channels: int) -> int:
    if channels:
        return int(channels)
    shape = getattr(module, "normalized_shape", None)
    if shape is None:
        raise VitqError("PTS needs the channel count: use it on a LayerNorm or set .let(channels=C)")
    return int(shape[-1])


class Uint8ActPerChannelPTS(Uint8ActPerTensorMinMax):
    """FQ-ViT PTS quantizer of LayerNorm inputs: scale ``s * 2^alpha_c`` per channel (unsigned codes).

    The channel count is read from the owning layer (``normalized_shape``), so it is usable as
    ``input_quant=`` of :class:`vitq_plugins.brevitas.modules.QuantLayerNorm`.

    Example:
        >>> from vitq_plugins.brevitas import QuantLayerNorm
        >>> ln = QuantLayerNorm(64, input_quant=Uint8ActPerChannelPTS.let(pts_k=3), input_bit_width=6)
    """

    tensor_quant = PTSActQuant  # type: ignore[assignment]
    pts_k = 3
    pts_stats = "all"
    pts_zero_point = "official"
    channels = 0

    num_channels = value(_pts_channels)


# --- LIS log2 quantizer (§3.3, eq. 13) ----------------------------------------------------------


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
    """Dedicated proxy type of :class:`Uint4ActLog2` (export forms match proxies by exact type)."""


class Uint4ActLog2(Uint4ActCodes):
    """FQ-ViT log2 quantizer of the attention map (4-bit codes, 0 for underflow).

    Example:
        >>> from vitq_plugins.brevitas import QuantSoftmax
        >>> sm = QuantSoftmax(dim=-1, act_quant=Uint4ActLog2.let(bit_width=3))
    """

    proxy_class = Log2ActQuantProxy
    tensor_quant = Log2Quant


def _log2_torch(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``papers.fqvit.lis.log2_quant``'s dequantized value written with traceable ops (no value checks)."""
    code = torch.round(-torch.log2(x.clamp(0.0, 1.0)))
    return torch.where(code >= float(2**bits), 0.0, torch.pow(2.0, -code.clamp(min=0.0)))


class _Log2Fn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bits: int) -> torch.Tensor:
        return _lis.log2_quant(x.clamp(0.0, 1.0), bits)[1]

    @staticmethod
    def symbolic(g: Any, x: Any, bits: int) -> Any:
        out = g.op(f"{DOMAIN}::Log2Quant", x, bit_width_i=bits)
        out.setType(x.type())
        return out


@register_export_form(Log2ActQuantProxy)
class Log2ExportForm(ExportForm):
    """QONNX: one ``vitq::Log2Quant`` node; QCDQ: ``Log``/``Neg``/``Round``/``Pow``/``Where`` (standard ops)."""

    def __init__(self, tensor_quant: Any) -> None:
        super().__init__(tensor_quant)
        self.bits = int(tensor_quant.code_bits)

    def qonnx(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        out: torch.Tensor = _Log2Fn.apply(x, self.bits)
        return out

    def qcdq(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        return _log2_torch(x, self.bits)


@register_custom_op("Log2Quant")
class Log2QuantOp(VitqCustomOp):
    """``y = 2^-round(-log2 x)``; 0 where the code is ``>= 2^bit_width``."""

    attrs = {"bit_width": ("i", True, 4)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        bits = min(int(self.get_nodeattr("bit_width")), Log2Quant.MAX_CODE_BITS)
        return _lis.log2_quant(xs[0].clamp(0.0, 1.0), bits)[1]


# --- factories -------------------------------------------------------------------------------------


def pts(site: str, bits: int, **options: Any) -> Any:
    """FQ-ViT Power-of-Two Factor on LayerNorm inputs."""
    require_site("pts", site, ("ln_input",))
    return Uint8ActPerChannelPTS.let(
        bit_width=bits,
        vitq_name="pts",
        pts_k=int(options.get("pts_k", 3)),
        pts_stats=str(options.get("pts_stats", "all")),
        pts_zero_point=str(options.get("pts_zero_point", "official")),
    )


def lis(site: str, bits: int, **options: Any) -> Any:
    """FQ-ViT log2 quantizer of the attention map."""
    require_site("lis", site, ("softmax_output",))
    return Uint4ActLog2.let(bit_width=bits, vitq_name="lis")
