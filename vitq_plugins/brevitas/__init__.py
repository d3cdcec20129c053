"""The Brevitas wing of vitq (imported only on use; ``import vitq_plugins`` never imports Brevitas).

Public API: the generic injectors of :mod:`vitq_plugins.brevitas.quant`, the quant modules of
:mod:`vitq_plugins.brevitas.modules`, :data:`BACKEND`, :func:`export_qonnx`, :func:`export_onnx_qcdq`,
:func:`save_quantized`, :func:`load_quantized` and the extension API that papers build their Brevitas
adapters on (:mod:`vitq_plugins.brevitas.extension`: :func:`register_kernel`, :func:`register_export_form`,
:func:`register_custom_op`, ...). The papers' injectors live in their packages
(``vitq_plugins.papers.<paper>.brevitas``). Importing this package maps the ``vitq`` ONNX domain for qonnx.
"""

from __future__ import annotations

from vitq_plugins.brevitas.backend import BACKEND
from vitq_plugins.brevitas.backend import BrevitasBackend
from vitq_plugins.brevitas.export import export_onnx_qcdq
from vitq_plugins.brevitas.export import export_qonnx
from vitq_plugins.brevitas.export import register_handlers
from vitq_plugins.brevitas.extension import ACT_SITES
from vitq_plugins.brevitas.extension import DOMAIN
from vitq_plugins.brevitas.extension import CalibratedQuant
from vitq_plugins.brevitas.extension import ExportForm
from vitq_plugins.brevitas.extension import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import Int8WeightPerChannelMinMax
from vitq_plugins.brevitas.extension import IntegerKernel
from vitq_plugins.brevitas.extension import IntegerKernelInputMixin
from vitq_plugins.brevitas.extension import ObserverActQuant
from vitq_plugins.brevitas.extension import QuantNodes
from vitq_plugins.brevitas.extension import Uint8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import Uint8ActPerTensorOMSE
from vitq_plugins.brevitas.extension import Uint8ActPerTensorPercentile
from vitq_plugins.brevitas.extension import UniformWeightQuant
from vitq_plugins.brevitas.extension import VitqCustomOp
from vitq_plugins.brevitas.extension import get_kernel
from vitq_plugins.brevitas.extension import list_kernels
from vitq_plugins.brevitas.extension import register_custom_op
from vitq_plugins.brevitas.extension import register_export_form
from vitq_plugins.brevitas.extension import register_kernel
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.brevitas.extension import tensor_quant_of
from vitq_plugins.brevitas.io import load_quantized
from vitq_plugins.brevitas.io import save_quantized
from vitq_plugins.brevitas.modules import QuantAttention
from vitq_plugins.brevitas.modules import QuantBlock
from vitq_plugins.brevitas.modules import QuantGELU
from vitq_plugins.brevitas.modules import QuantLayerNorm
from vitq_plugins.brevitas.modules import QuantSoftmax

register_handlers()

__all__ = [
    "ACT_SITES",
    "BACKEND",
    "DOMAIN",
    "BrevitasBackend",
    "CalibratedQuant",
    "ExportForm",
    "Int8ActPerTensorMinMax",
    "Int8WeightPerChannelMinMax",
    "IntegerKernel",
    "IntegerKernelInputMixin",
    "ObserverActQuant",
    "QuantAttention",
    "QuantBlock",
    "QuantGELU",
    "QuantLayerNorm",
    "QuantNodes",
    "QuantSoftmax",
    "Uint8ActPerTensorMinMax",
    "Uint8ActPerTensorOMSE",
    "Uint8ActPerTensorPercentile",
    "UniformWeightQuant",
    "VitqCustomOp",
    "export_onnx_qcdq",
    "export_qonnx",
    "get_kernel",
    "list_kernels",
    "load_quantized",
    "register_custom_op",
    "register_export_form",
    "register_kernel",
    "require_site",
    "save_quantized",
    "tensor_quant_of",
]
