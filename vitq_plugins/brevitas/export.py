"""ONNX export of vitq Brevitas models: QONNX (with a small ``vitq`` custom domain) and standard QCDQ.

* :func:`export_qonnx` - Brevitas QONNX export (TorchScript exporter, ``dynamo=False``): uniform quantizers
  become QONNX ``Quant`` nodes; OPT-m twin scales (MPTQ-ViT arXiv 2401.14895) become two ``Quant`` nodes and a
  ``Where``; only ops with no standard equivalent are ``vitq`` nodes: ``Log2Quant`` (FQ-ViT arXiv 2111.13824
  eq. 13), ``Shiftmax``/``ShiftGELU``/``ILayerNorm`` (I-ViT arXiv 2207.01405 §3.3-3.5). They execute under
  ``qonnx.core.onnx_exec.execute_onnx`` through :mod:`vitq_plugins.brevitas.qonnx_ops`.
* :func:`export_onnx_qcdq` - standard ONNX only (QuantizeLinear/Clip/DequantizeLinear; log2 and twin quantizers
  and the integer kernels as plain arithmetic ops), runs in ONNX Runtime. Uses the TorchScript exporter
  (``dynamo=False``, frameworks.md §1.5).

Handlers are registered by inserting into the Brevitas managers' class-level ``handlers`` lists when
:mod:`vitq_plugins.brevitas` is imported (:func:`register_handlers`). A failed export resets the export mode
of every proxy (``finally``), so the model stays usable (frameworks.md §1.6 pitfall 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brevitas.common import ExportMixin
from brevitas.export import export_onnx_qcdq as _brevitas_qcdq
from brevitas.export import export_qonnx as _brevitas_qonnx
from brevitas.export.onnx.handler import ONNXBaseHandler
from brevitas.export.onnx.qonnx.function import BrevitasQuantOp
from brevitas.export.onnx.qonnx.manager import QONNXManager
from brevitas.export.onnx.standard.function import DequantizeLinearOp
from brevitas.export.onnx.standard.function import IntClipOp
from brevitas.export.onnx.standard.function import QuantizeLinearOp
from brevitas.export.onnx.standard.qcdq.manager import StdQCDQONNXManager
import torch
from torch import nn

from vitq_plugins.brevitas.modules import exporting
from vitq_plugins.brevitas.quant import Log2ActQuantProxy
from vitq_plugins.brevitas.quant import TwinActQuantProxy
from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.core.errors import VitqError
from vitq_plugins.papers.fqvit import lis as _lis
from vitq_plugins.papers.mptq import optm as _optm

__all__ = [
    "QCDQ_DISABLED_OPTIMIZERS",
    "export_model",
    "export_onnx_qcdq",
    "export_qonnx",
    "ort_session",
    "ort_session_options",
    "register_handlers",
]

QCDQ_OPSET = 17


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
        out = g.op("vitq::Log2Quant", x, bit_width_i=bits)
        out.setType(x.type())
        return out


class _Log2HandlerBase(ONNXBaseHandler):  # type: ignore[misc]
    handled_layer = Log2ActQuantProxy

    def prepare_for_export(self, module: Any) -> None:
        tq = tensor_quant_of(module)
        self.bits = int(tq.code_bits)

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        raise TypeError("abstract")


class Log2QONNXHandler(_Log2HandlerBase):
    """QONNX: one ``vitq::Log2Quant`` node."""

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return _Log2Fn.apply(x, self.bits), None, None, None


class Log2QCDQHandler(_Log2HandlerBase):
    """QCDQ: ``Log``/``Neg``/``Round``/``Pow``/``Where`` (standard ops)."""

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return _log2_torch(x, self.bits), None, None, None


class _TwinHandlerBase(ONNXBaseHandler):  # type: ignore[misc]
    handled_layer = TwinActQuantProxy

    def prepare_for_export(self, module: Any) -> None:
        tq = tensor_quant_of(module)
        self.bits = int(tq.bits)
        self.m = int(tq.m)
        self.delta_n = tq.delta_n.detach().clone()

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        raise TypeError("abstract")


class TwinQONNXHandler(_TwinHandlerBase):
    """QONNX: ``Where(x < 0, Quant(x; dn), Quant(x; 2^m dn))`` with standard QONNX ``Quant`` nodes."""

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        dn = self.delta_n
        dp = dn * float(2**self.m)
        zp = torch.zeros(())
        bw = torch.tensor(float(self.bits))
        qn = self.export_op(BrevitasQuantOp, x, dn, zp, bw, False, True, "ROUND")
        qp = self.export_op(BrevitasQuantOp, x, dp, zp, bw, False, True, "ROUND")
        return torch.where(x < 0, qn, qp), None, None, None


class TwinQCDQHandler(_TwinHandlerBase):
    """QCDQ: ``Where(x < 0, DQ(Clip(Q(x; dn))), DQ(Clip(Q(x; 2^m dn))))`` with int8 Q/DQ (bits <= 8).

    Wider codes (up to 16 bits) do not fit opset-17 QuantizeLinear; they are written as
    ``Div``/``Round``/``Clip``/``Mul``/``Where`` by tracing ``papers.mptq.optm.twin_fake_quant``.
    """

    def _qcdq(self, x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        zp = torch.zeros((), dtype=torch.int8)
        q = self.export_op(QuantizeLinearOp, x, scale, zp, torch.int8, None)
        q = self.export_op(
            IntClipOp, q, torch.tensor(lo, dtype=torch.int8), torch.tensor(hi, dtype=torch.int8)
        )
        out: torch.Tensor = self.export_op(DequantizeLinearOp, q, scale, zp, None)
        return out

    def symbolic_execution(self, x: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if self.bits > 8:
            return _optm.twin_fake_quant(x, self.delta_n, self.m, self.bits), None, None, None
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        dn = self.delta_n
        qn = self._qcdq(x, dn, lo, 0)
        qp = self._qcdq(x, dn * float(2**self.m), 0, hi)
        return torch.where(x < 0, qn, qp), None, None, None


def ort_session_options() -> Any:
    """ONNX Runtime session options that run a vitq QCDQ file faithfully.

    ORT (>= 1.2x, seen on 1.32) fuses a weight-only ``DequantizeLinear -> MatMul`` (a Linear whose input is not
    a Q/DQ output, e.g. fc2 after an OPT-m twin quantizer) into ``MatMulNBits`` with the default
    ``accuracy_level=4``, which re-quantizes the float activation to int8 on the fly and changes the numerics.
    ``session.qdq_matmulnbits_accuracy_level=1`` keeps float activations.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    so.log_severity_level = 3
    return so


#: ORT graph optimizers to turn off for QCDQ files: ``MatMulAddFusion`` (level 1) merges each Linear's
#: ``MatMul + Add(bias)`` into a float ``Gemm`` before the QDQ fusions (level 2) can select
#: ``DQ -> MatMul`` for ``MatMulIntegerToFloat``, so every Linear would dequantize its weight and run in
#: float (measured on vit_tiny_cifar10 W8A8, batch 8, 1 thread: 84.6 ms with it, 36.7 ms without, ORT
#: fp32 66.6 ms).
QCDQ_DISABLED_OPTIMIZERS: tuple[str, ...] = ("MatMulAddFusion",)


def ort_session(path: str | Path, threads: int | None = None, options: Any = None) -> Any:
    """An ONNX Runtime CPU session for a vitq QCDQ file, with the integer kernels selected.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: ORT's default).
        options: ``onnxruntime.SessionOptions`` to start from (default :func:`ort_session_options`).

    Returns:
        ``onnxruntime.InferenceSession`` with :data:`QCDQ_DISABLED_OPTIMIZERS` turned off.
    """
    import onnxruntime as ort

    so = options if options is not None else ort_session_options()
    if threads is not None:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path),
        so,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(QCDQ_DISABLED_OPTIMIZERS),
    )


_REGISTERED = False


def register_handlers() -> None:
    """Insert vitq's proxy handlers at the front of the Brevitas managers' handler lists (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    for h in (Log2QONNXHandler, TwinQONNXHandler):
        QONNXManager.handlers.insert(0, h)
    for h in (Log2QCDQHandler, TwinQCDQHandler):
        StdQCDQONNXManager.handlers.insert(0, h)
    from qonnx.custom_op.registry import add_domain_alias

    add_domain_alias("vitq", "vitq_plugins.brevitas.qonnx_ops")
    _REGISTERED = True


def _reset_export_mode(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, ExportMixin) and getattr(m, "export_mode", False):
            m.export_mode = False
            if hasattr(m, "export_handler"):
                m.export_handler = None


def _prepare(qmodel: nn.Module, path: Path) -> Path:
    register_handlers()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    qmodel.eval()
    return p


def export_qonnx(qmodel: nn.Module, example_input: torch.Tensor, path: str | Path) -> Path:
    """Export ``qmodel`` to QONNX at ``path`` (executable by qonnx's ``execute_onnx``).

    Raises:
        VitqError: the export failed (the model's export state is reset).
    """
    p = _prepare(qmodel, Path(path))
    try:
        with exporting("qonnx"), torch.no_grad():
            _brevitas_qonnx(qmodel, args=example_input, export_path=str(p), dynamo=False)
    except Exception as exc:
        raise VitqError(f"QONNX export to {str(p)!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        _reset_export_mode(qmodel)
    return p


def export_onnx_qcdq(qmodel: nn.Module, example_input: torch.Tensor, path: str | Path) -> Path:
    """Export ``qmodel`` to standard-ONNX QCDQ at ``path`` (runs in ONNX Runtime).

    Raises:
        VitqError: the export failed (the model's export state is reset).
    """
    p = _prepare(qmodel, Path(path))
    try:
        with exporting("qcdq"), torch.no_grad():
            # initializers must not be graph inputs: ORT treats such weights as overridable, so it can
            # neither fold their DequantizeLinear nor fuse DQ -> Gemm into integer kernels
            _brevitas_qcdq(
                qmodel,
                args=example_input,
                export_path=str(p),
                dynamo=False,
                opset_version=QCDQ_OPSET,
                keep_initializers_as_inputs=False,
            )
        import onnx

        from vitq_plugins.brevitas.onnx_passes import fold_weight_transposes

        proto = onnx.load(str(p))
        if fold_weight_transposes(proto):
            onnx.save(proto, str(p))
    except Exception as exc:
        raise VitqError(f"QCDQ export to {str(p)!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        _reset_export_mode(qmodel)
    return p


def export_model(qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
    """Dispatch on ``fmt`` in ``{"qonnx", "qcdq"}``.

    Raises:
        VitqError: unknown format or failed export.
    """
    if fmt == "qonnx":
        return export_qonnx(qmodel, example_input, path)
    if fmt == "qcdq":
        return export_onnx_qcdq(qmodel, example_input, path)
    raise VitqError(f"unknown export format {fmt!r} for the brevitas backend; valid: 'qonnx', 'qcdq'")
