"""The Brevitas adapter of MPTQ-ViT's OPT-m (arXiv 2401.14895, MPTQ-style): post-GELU twin-scale quantizer.

:class:`OPTmActQuant` (``papers.mptq.optm``), injector :class:`Int8ActOPTm` with its own proxy
:class:`TwinActQuantProxy`, exported as ``Where(x < 0, Quant(x; dn), Quant(x; 2^m dn))`` with standard QONNX
``Quant`` nodes, or the same with int8 ``QuantizeLinear``/``Clip``/``DequantizeLinear`` in QCDQ
(:class:`TwinExportForm`). Options: ``optm_max_m`` (8), ``optm_top_k`` (32).

Example:
    >>> inj = optm("gelu_output", 6, optm_max_m=4)
    >>> int(inj.bit_width), int(inj.optm_max_m), bool(inj.signed)
    (6, 4, True)
"""

from __future__ import annotations

from typing import Any

from brevitas.proxy import ActQuantProxyFromInjector
import torch
from torch import nn

from vitq_plugins.brevitas.extension import CalibratedQuant
from vitq_plugins.brevitas.extension import ExportForm
from vitq_plugins.brevitas.extension import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import Quant
from vitq_plugins.brevitas.extension import QuantNodes
from vitq_plugins.brevitas.extension import register_export_form
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.papers.mptq import optm as _optm

__all__ = ["Int8ActOPTm", "OPTmActQuant", "TwinActQuantProxy", "TwinExportForm", "optm"]


class OPTmActQuant(CalibratedQuant):
    """MPTQ-style OPT-m post-GELU twin-scale quantizer (``papers.mptq.optm``).

    Negative values use ``delta_n``, positive ``delta_p = 2^m * delta_n`` on one signed ``b``-bit grid; ``m``
    and ``delta_n`` minimise the output MSE of the consuming Linear (:attr:`next_linear`, set by the owning
    :class:`~vitq_plugins.brevitas.modules.QuantGELU`; identity if unset), searched on a bounded uniform
    reservoir of calibration tokens.

    Args:
        bit_width: code bits (sign included).
        optm_max_m: largest ``m`` searched (``m in 0..optm_max_m``).
        optm_samples: calibration tokens kept for the search (memory bound).
        optm_top_k: candidates scored exactly after the histogram screen (0: all, see ``papers.mptq.optm``).
    """

    def __init__(self, bit_width: int, optm_max_m: int, optm_samples: int, optm_top_k: int) -> None:
        super().__init__(bit_width)
        self.max_m, self.samples = int(optm_max_m), int(optm_samples)
        self.top_k = int(optm_top_k) or None
        self.register_buffer("delta_n", torch.ones(()))
        self.register_buffer("m", torch.zeros((), dtype=torch.int64))
        self.next_linear: list[nn.Module] = []

    def _new_observer(self) -> Any:
        return _optm.TokenReservoir(self.samples)

    def _freeze(self, observer: Any) -> None:
        x = observer.data()
        if self.next_linear:
            lin: Any = self.next_linear[0]
            weight = lin.weight.detach()
        else:
            weight = torch.eye(x.shape[-1])
        res = _optm.search_optm(x, weight, None, self.bits, m_values=range(self.max_m + 1), top_k=self.top_k)
        self.delta_n = torch.tensor(float(res.delta_n))
        self.m = torch.tensor(int(res.m), dtype=torch.int64)

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training:
            self.observe(x)
            return x, None, None, None
        self._check()
        if x.dim() == 0:
            y = x
        else:
            y = _optm.twin_fake_quant(x, self.delta_n, int(self.m), self.bits)
        s = self.delta_n
        return y, s, torch.zeros_like(s), self._bw(x)


class TwinActQuantProxy(ActQuantProxyFromInjector):  # type: ignore[misc]
    """Dedicated proxy type of :class:`Int8ActOPTm` (two scales: exported by :class:`TwinExportForm`)."""


class Int8ActOPTm(Int8ActPerTensorMinMax):
    """MPTQ-style OPT-m twin-scale quantizer of the post-GELU activation (signed codes, two scales).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> q = QuantIdentity(act_quant=Int8ActOPTm.let(optm_max_m=6), return_quant_tensor=False)
    """

    proxy_class = TwinActQuantProxy
    tensor_quant = OPTmActQuant  # type: ignore[assignment]
    optm_max_m = 8
    optm_samples = 512
    optm_top_k = _optm.DEFAULT_TOP_K


@register_export_form(TwinActQuantProxy)
class TwinExportForm(ExportForm):
    """``Where(x < 0, Q(x; dn), Q(x; 2^m dn))``: QONNX ``Quant`` nodes, or int8 Q/Clip/DQ in QCDQ (bits <= 8).

    Wider QCDQ codes (up to 16 bits) do not fit opset-17 QuantizeLinear; they are written as
    ``Div``/``Round``/``Clip``/``Mul``/``Where`` by tracing ``papers.mptq.optm.twin_fake_quant``.
    """

    def __init__(self, tensor_quant: Any) -> None:
        super().__init__(tensor_quant)
        self.bits = int(tensor_quant.bits)
        self.m = int(tensor_quant.m)
        self.delta_n = tensor_quant.delta_n.detach().clone()

    def qonnx(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        dn = self.delta_n
        dp = dn * float(2**self.m)
        zp = torch.zeros(())
        qn = nodes.quant(x, dn, zp, self.bits, signed=True, narrow=False)
        qp = nodes.quant(x, dp, zp, self.bits, signed=True, narrow=False)
        return torch.where(x < 0, qn, qp)

    def qcdq(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        if self.bits > 8:
            return _optm.twin_fake_quant(x, self.delta_n, self.m, self.bits)
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        dn = self.delta_n
        qn = nodes.qcdq_int8(x, dn, lo, 0)
        qp = nodes.qcdq_int8(x, dn * float(2**self.m), 0, hi)
        return torch.where(x < 0, qn, qp)


def optm(site: str, bits: int, **options: Any) -> Any:
    """MPTQ-style OPT-m post-GELU twin-scale quantizer."""
    require_site("optm", site, ("gelu_output",))
    return Int8ActOPTm.let(
        bit_width=bits,
        optm_max_m=int(options.get("optm_max_m", 8)),
        optm_top_k=int(options.get("optm_top_k", _optm.DEFAULT_TOP_K)),
        vitq_name="optm",
    )
