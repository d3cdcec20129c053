"""torch.ao FX backend of vitq (the only vitq package that imports ``torch.ao.quantization``).

Modules: :mod:`~vitq_plugins.fx.prepare` (timm -> traceable), :mod:`~vitq_plugins.fx.observers`,
:mod:`~vitq_plugins.fx.modules` (custom modules), :mod:`~vitq_plugins.fx.factories`,
:mod:`~vitq_plugins.fx.backend_config`, :mod:`~vitq_plugins.fx.quantize` (pipeline and site checks),
:mod:`~vitq_plugins.fx.report`, :mod:`~vitq_plugins.fx.backend` (``BACKEND``).
Papers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895.
"""

from __future__ import annotations

__all__: list[str] = []
