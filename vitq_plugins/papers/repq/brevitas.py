"""The Brevitas adapter of RepQ-ViT's log√2 attention-map quantizer (arXiv 2212.08254, §3.3, eq. 10).

:class:`LogSqrt2Quant` (``papers.repq.logsqrt2``; ``Δ`` = streaming maximum of the map), injector
:class:`Uint4ActLogSqrt2` with its own proxy :class:`LogSqrt2ActQuantProxy`, exported with standard ops
(``Less``/``ReduceSum``/``Gather``) in both QONNX and QCDQ (:class:`LogSqrt2ExportForm`).

Example:
    >>> inj = logsqrt2("softmax_output", 4)
    >>> int(inj.bit_width)
    4
"""

from __future__ import annotations

from typing import Any

from brevitas.proxy import ActQuantProxyFromInjector
import torch

from vitq_plugins.brevitas.extension import CalibratedQuant
from vitq_plugins.brevitas.extension import ExportForm
from vitq_plugins.brevitas.extension import Quant
from vitq_plugins.brevitas.extension import QuantNodes
from vitq_plugins.brevitas.extension import Uint4ActCodes
from vitq_plugins.brevitas.extension import register_export_form
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.papers.repq import logsqrt2 as _ls2

__all__ = ["LogSqrt2ActQuantProxy", "LogSqrt2ExportForm", "LogSqrt2Quant", "Uint4ActLogSqrt2", "logsqrt2"]


class _RunningMax:
    """Streaming maximum of everything seen (memory independent of the number of batches)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        m = x.detach().float().amax()
        self.value = m if self.value is None else torch.maximum(self.value, m)


class LogSqrt2Quant(CalibratedQuant):
    """RepQ-ViT log√2 quantizer: ``Δ · 2^(-c/2)``, ``c`` in ``[0, 2^b - 1]``, 0 below the last level.

    Calibration records the running maximum of the map as ``Δ`` (``delta``, at most 1 for a softmax).
    """

    def __init__(self, bit_width: int) -> None:
        super().__init__(bit_width)
        self.register_buffer("delta", torch.ones(()))

    def _new_observer(self) -> Any:
        return _RunningMax()

    def _freeze(self, observer: Any) -> None:
        if observer.value is not None and float(observer.value) > 0:
            self.delta = observer.value.clone().reshape(())

    def forward(self, x: torch.Tensor) -> Quant:
        if self.training:
            self.observe(x)
            return x, None, None, None
        self._check()
        deq = _ls2.logsqrt2_fake_quant(x, self.delta, self.bits)
        y = x + (deq - x).detach() if x.requires_grad and torch.is_grad_enabled() else deq
        one = torch.ones((), device=x.device)
        return y, one, torch.zeros_like(one), self._bw(x)


class LogSqrt2ActQuantProxy(ActQuantProxyFromInjector):  # type: ignore[misc]
    """Dedicated proxy type of :class:`Uint4ActLogSqrt2` (export forms match proxies by exact type)."""


class Uint4ActLogSqrt2(Uint4ActCodes):
    """RepQ-ViT log√2 quantizer of the attention map (4-bit codes by default, 0 for underflow).

    Example:
        >>> from vitq_plugins.brevitas import QuantSoftmax
        >>> sm = QuantSoftmax(dim=-1, act_quant=Uint4ActLogSqrt2.let(bit_width=3))
    """

    proxy_class = LogSqrt2ActQuantProxy
    tensor_quant = LogSqrt2Quant


def _logsqrt2_torch(x: torch.Tensor, delta: torch.Tensor, bits: int) -> torch.Tensor:
    """:func:`~vitq_plugins.papers.repq.logsqrt2.logsqrt2_fake_quant` written with exportable standard ops
    (``Less``/``ReduceSum``/``Gather``), the same comparison and table as the numerics."""
    thresholds, levels = _ls2.logsqrt2_tables(delta, bits)
    codes = (x.unsqueeze(-1) < thresholds).to(torch.int64).sum(-1)
    return levels[codes]


@register_export_form(LogSqrt2ActQuantProxy)
class LogSqrt2ExportForm(ExportForm):
    """Standard ``Less``/``ReduceSum``/``Gather`` ops in QONNX and QCDQ (no custom node)."""

    def __init__(self, tensor_quant: Any) -> None:
        super().__init__(tensor_quant)
        self.bits = int(tensor_quant.bits)
        self.delta = tensor_quant.delta.detach().clone()

    def qonnx(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        return _logsqrt2_torch(x, self.delta, self.bits)

    def qcdq(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        return _logsqrt2_torch(x, self.delta, self.bits)


def logsqrt2(site: str, bits: int, **options: Any) -> Any:
    """RepQ-ViT log√2 quantizer of the attention map."""
    require_site("logsqrt2", site, ("softmax_output",))
    return Uint4ActLogSqrt2.let(bit_width=bits, vitq_name="logsqrt2")
