"""torch.ao FX backend of vitq (the only vitq package that imports ``torch.ao.quantization``).

Modules: :mod:`~vitq_plugins.fx.prepare` (timm -> traceable), :mod:`~vitq_plugins.fx.observers`,
:mod:`~vitq_plugins.fx.modules` (custom modules), :mod:`~vitq_plugins.fx.factories`,
:mod:`~vitq_plugins.fx.backend_config`, :mod:`~vitq_plugins.fx.quantize` (pipeline and site checks),
:mod:`~vitq_plugins.fx.report`, :mod:`~vitq_plugins.fx.backend` (``BACKEND``).
Papers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895.
"""

from __future__ import annotations

from vitq_plugins.fx.backend import BACKEND
from vitq_plugins.fx.backend import FxBackend
from vitq_plugins.fx.backend_config import vitq_backend_config
from vitq_plugins.fx.modules import ILayerNorm
from vitq_plugins.fx.modules import LISSoftmax
from vitq_plugins.fx.modules import PTSLayerNorm
from vitq_plugins.fx.modules import ShiftGELU
from vitq_plugins.fx.modules import ShiftmaxSoftmax
from vitq_plugins.fx.observers import Log2FakeQuant
from vitq_plugins.fx.observers import PTSActObserver
from vitq_plugins.fx.observers import TwinFakeQuant
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import WeightObserver
from vitq_plugins.fx.prepare import prepare_model
from vitq_plugins.fx.quantize import build_qconfig_mapping
from vitq_plugins.fx.report import report

__all__ = [
    "BACKEND",
    "FxBackend",
    "ILayerNorm",
    "LISSoftmax",
    "Log2FakeQuant",
    "PTSActObserver",
    "PTSLayerNorm",
    "ShiftGELU",
    "ShiftmaxSoftmax",
    "TwinFakeQuant",
    "UniformActObserver",
    "WeightObserver",
    "build_qconfig_mapping",
    "prepare_model",
    "report",
    "vitq_backend_config",
]
