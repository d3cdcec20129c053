"""Registry of the exported forms of non-uniform activation quantizers (one per dedicated proxy type).

Brevitas exports a uniform quantizer itself (a QONNX ``Quant`` node, or ``QuantizeLinear``/``Clip``/
``DequantizeLinear`` in QCDQ). A paper's non-uniform quantizer (e.g. FQ-ViT's log2 quantizer, arXiv 2111.13824
eq. 13, or MPTQ-ViT's twin scales, arXiv 2401.14895) gets its own proxy class and registers an
:class:`ExportForm` for it with :func:`register_export_form`; the wing turns the form into one Brevitas export
handler per manager (QONNX and standard QCDQ), matched by the exact proxy type, ahead of Brevitas' own.

Example:
    >>> from brevitas.proxy import ActQuantProxyFromInjector
    >>> class DocProxy(ActQuantProxyFromInjector): ...
    >>> @register_export_form(DocProxy)
    ... class DocForm(ExportForm):
    ...     def qonnx(self, x, nodes):
    ...         return x
    ...     def qcdq(self, x, nodes):
    ...         return x
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from brevitas.export.onnx.handler import ONNXBaseHandler
from brevitas.export.onnx.qonnx.function import BrevitasQuantOp
from brevitas.export.onnx.qonnx.manager import QONNXManager
from brevitas.export.onnx.standard.function import DequantizeLinearOp
from brevitas.export.onnx.standard.function import IntClipOp
from brevitas.export.onnx.standard.function import QuantizeLinearOp
from brevitas.export.onnx.standard.qcdq.manager import StdQCDQONNXManager
import torch

from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.core.errors import DuplicateNameError

__all__ = ["ExportForm", "QuantNodes", "export_form_of", "register_export_form"]


class QuantNodes:
    """The standard quantization nodes an :class:`ExportForm` may emit (wraps a Brevitas export handler)."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def quant(
        self,
        x: torch.Tensor,
        scale: torch.Tensor,
        zero_point: torch.Tensor,
        bits: int,
        *,
        signed: bool,
        narrow: bool,
    ) -> torch.Tensor:
        """A QONNX ``Quant`` node (round to nearest even)."""
        bw = torch.tensor(float(bits))
        out: torch.Tensor = self._handler.export_op(
            BrevitasQuantOp, x, scale, zero_point, bw, narrow, signed, "ROUND"
        )
        return out

    def qcdq_int8(self, x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """``DequantizeLinear(Clip(QuantizeLinear(x; scale, 0), lo, hi))`` with int8 codes (zero point 0)."""
        zp = torch.zeros((), dtype=torch.int8)
        q = self._handler.export_op(QuantizeLinearOp, x, scale, zp, torch.int8, None)
        q = self._handler.export_op(
            IntClipOp, q, torch.tensor(lo, dtype=torch.int8), torch.tensor(hi, dtype=torch.int8)
        )
        out: torch.Tensor = self._handler.export_op(DequantizeLinearOp, q, scale, zp, None)
        return out


class ExportForm(ABC):
    """The exported form of one frozen non-uniform quantizer.

    Args:
        tensor_quant: the proxy's ``tensor_quant`` module (read its frozen parameters here, once per export).
    """

    def __init__(self, tensor_quant: Any) -> None:
        self.tensor_quant = tensor_quant

    @abstractmethod
    def qonnx(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        """The traced QONNX form (QONNX ``Quant`` nodes, standard ops or ``vitq`` custom nodes)."""

    @abstractmethod
    def qcdq(self, x: torch.Tensor, nodes: QuantNodes) -> torch.Tensor:
        """The traced standard-ONNX form (runs in ONNX Runtime: no custom nodes)."""


_FORMS: dict[type, type[ExportForm]] = {}

F = TypeVar("F", bound=type[ExportForm])


class _FormHandler(ONNXBaseHandler):  # type: ignore[misc]
    """A Brevitas export handler that delegates to the :class:`ExportForm` registered for the proxy type."""

    flavor = ""

    def prepare_for_export(self, module: Any) -> None:
        self.form = _FORMS[type(module)](tensor_quant_of(module))

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        nodes = QuantNodes(self)
        y = self.form.qonnx(x, nodes) if self.flavor == "qonnx" else self.form.qcdq(x, nodes)
        return y, None, None, None


def register_export_form(proxy_cls: type) -> Callable[[F], F]:
    """Class decorator: export proxies of exactly ``proxy_cls`` with the decorated :class:`ExportForm`.

    Raises:
        DuplicateNameError: ``proxy_cls`` already has a form.
    """

    def deco(form: F) -> F:
        if proxy_cls in _FORMS:
            raise DuplicateNameError(
                f"export form of {proxy_cls.__name__} is already registered ({_FORMS[proxy_cls].__name__}); "
                f"{form.__name__} tried to register it again"
            )
        _FORMS[proxy_cls] = form
        for manager, flavor in ((QONNXManager, "qonnx"), (StdQCDQONNXManager, "qcdq")):
            handler = type(
                f"{form.__name__}_{flavor}", (_FormHandler,), {"handled_layer": proxy_cls, "flavor": flavor}
            )
            manager.handlers.insert(0, handler)
        return form

    return deco


def export_form_of(proxy_cls: type) -> type[ExportForm] | None:
    """The form registered for ``proxy_cls`` (``None`` if Brevitas exports it itself)."""
    return _FORMS.get(proxy_cls)
