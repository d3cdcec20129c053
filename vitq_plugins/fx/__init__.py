"""torch.ao FX backend of vitq (the only vitq package that imports ``torch.ao.quantization``).

Generic machinery only: :mod:`~vitq_plugins.fx.prepare` (timm -> traceable), :mod:`~vitq_plugins.fx.observers`
(uniform observers), :mod:`~vitq_plugins.fx.custom` and :mod:`~vitq_plugins.fx.modules` (the custom-module
extension point), :mod:`~vitq_plugins.fx.extension` (the public API papers build on),
:mod:`~vitq_plugins.fx.backend_config`, :mod:`~vitq_plugins.fx.quantize` (pipeline and site checks),
:mod:`~vitq_plugins.fx.report`, :mod:`~vitq_plugins.fx.backend` (``BACKEND``). Each paper's FX adapters live
in ``vitq_plugins.papers.<paper>.fx``.
"""

from __future__ import annotations

from vitq_plugins.fx.backend import BACKEND
from vitq_plugins.fx.backend import FxBackend
from vitq_plugins.fx.backend_config import vitq_backend_config
from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import FixedScaleObserver
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import QuantizedCustom
from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.extension import VitqObserver
from vitq_plugins.fx.extension import WeightObserver
from vitq_plugins.fx.extension import check_container_bits
from vitq_plugins.fx.extension import is_custom_spec
from vitq_plugins.fx.prepare import prepare_model
from vitq_plugins.fx.quantize import build_qconfig_mapping
from vitq_plugins.fx.report import report

__all__ = [
    "BACKEND",
    "CustomFloat",
    "CustomModuleSpec",
    "FixedScaleObserver",
    "FxBackend",
    "ObservedCustom",
    "QuantizedCustom",
    "UniformActObserver",
    "VitqObserver",
    "WeightObserver",
    "build_qconfig_mapping",
    "check_container_bits",
    "is_custom_spec",
    "prepare_model",
    "report",
    "vitq_backend_config",
]
