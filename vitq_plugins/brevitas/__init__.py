"""The Brevitas wing of vitq (imported only on use; ``import vitq_plugins`` never imports Brevitas).

Public API: the injectors of :mod:`vitq_plugins.brevitas.quant`, the quant modules of
:mod:`vitq_plugins.brevitas.modules`, :data:`BACKEND`, :func:`export_qonnx`, :func:`export_onnx_qcdq`,
:func:`save_quantized` and :func:`load_quantized`. Importing this package registers vitq's export handlers with
the Brevitas export managers. Papers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895.
"""

from __future__ import annotations

from vitq_plugins.brevitas.backend import BACKEND
from vitq_plugins.brevitas.backend import BrevitasBackend
from vitq_plugins.brevitas.export import export_onnx_qcdq
from vitq_plugins.brevitas.export import export_qonnx
from vitq_plugins.brevitas.export import register_handlers
from vitq_plugins.brevitas.io import load_quantized
from vitq_plugins.brevitas.io import save_quantized
from vitq_plugins.brevitas.modules import QuantAttention
from vitq_plugins.brevitas.modules import QuantBlock
from vitq_plugins.brevitas.modules import QuantGELU
from vitq_plugins.brevitas.modules import QuantLayerNorm
from vitq_plugins.brevitas.modules import QuantSoftmax
from vitq_plugins.brevitas.quant import Int8ActILayerNormInput
from vitq_plugins.brevitas.quant import Int8ActPerChannelPTS
from vitq_plugins.brevitas.quant import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.quant import Int8ActPTS
from vitq_plugins.brevitas.quant import Int8ActShiftGELUInput
from vitq_plugins.brevitas.quant import Int8ActShiftmaxInput
from vitq_plugins.brevitas.quant import Int8WeightPerChannelMinMax
from vitq_plugins.brevitas.quant import Uint4ActLog2
from vitq_plugins.brevitas.quant import Uint8ActOPTm
from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
from vitq_plugins.brevitas.quant import Uint8ActPerTensorOMSE
from vitq_plugins.brevitas.quant import Uint8ActPerTensorPercentile

register_handlers()

__all__ = [
    "BACKEND",
    "BrevitasBackend",
    "Int8ActILayerNormInput",
    "Int8ActPTS",
    "Int8ActPerChannelPTS",
    "Int8ActPerTensorMinMax",
    "Int8ActShiftGELUInput",
    "Int8ActShiftmaxInput",
    "Int8WeightPerChannelMinMax",
    "QuantAttention",
    "QuantBlock",
    "QuantGELU",
    "QuantLayerNorm",
    "QuantSoftmax",
    "Uint4ActLog2",
    "Uint8ActOPTm",
    "Uint8ActPerTensorMinMax",
    "Uint8ActPerTensorOMSE",
    "Uint8ActPerTensorPercentile",
    "export_onnx_qcdq",
    "export_qonnx",
    "load_quantized",
    "save_quantized",
]
