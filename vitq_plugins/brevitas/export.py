"""ONNX export of vitq Brevitas models: QONNX (with a small ``vitq`` custom domain) and standard QCDQ.

* :func:`export_qonnx` - Brevitas QONNX export (TorchScript exporter, ``dynamo=False``): uniform quantizers
  become QONNX ``Quant`` nodes; a paper's non-uniform quantizer is written in the form it registered
  (:mod:`vitq_plugins.brevitas.export_forms`, e.g. MPTQ-ViT's OPT-m twin scales as two ``Quant`` nodes and a
  ``Where``); only ops with no standard equivalent are ``vitq`` nodes (e.g. FQ-ViT's ``Log2Quant``, I-ViT's
  integer kernels). They execute under ``qonnx.core.onnx_exec.execute_onnx`` through
  :mod:`vitq_plugins.brevitas.qonnx_ops`.
* :func:`export_onnx_qcdq` - standard ONNX only (QuantizeLinear/Clip/DequantizeLinear; non-uniform quantizers
  and the integer kernels as plain arithmetic ops), runs in ONNX Runtime. Uses the TorchScript exporter
  (``dynamo=False``, frameworks.md §1.5).

A failed export resets the export mode of every proxy (``finally``), so the model stays usable
(frameworks.md §1.6 pitfall 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brevitas.common import ExportMixin
from brevitas.export import export_onnx_qcdq as _brevitas_qcdq
from brevitas.export import export_qonnx as _brevitas_qonnx
import torch
from torch import nn

from vitq_plugins.brevitas.modules import exporting
from vitq_plugins.brevitas.qonnx_ops import DOMAIN
from vitq_plugins.core.errors import VitqError

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
    """Map the ``vitq`` ONNX domain to :mod:`vitq_plugins.brevitas.qonnx_ops` (idempotent).

    The export handlers of the papers' non-uniform quantizers are inserted into the Brevitas managers when
    the paper registers its form (:func:`vitq_plugins.brevitas.export_forms.register_export_form`).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    from qonnx.custom_op.registry import add_domain_alias

    add_domain_alias(DOMAIN, "vitq_plugins.brevitas.qonnx_ops")
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
