"""MPTQ-ViT (Tai & Wu, arXiv 2401.14895; no public code, so "MPTQ-style"): SmoothQuant with bias (SQ-b),
the post-GELU scale-ratio search (OPT-m); Greedy MP is the generic search in :mod:`vitq_plugins.search`.

Modules: :mod:`.sqb` (SQ-b numerics), :mod:`.smoothing` (the SQ-b model transform), :mod:`.optm` (OPT-m twin
scales and search), :mod:`.plugin` (registration).

The names below are imported on first use, so registering the plugin imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from vitq_plugins.papers.mptq.optm import OptMResult
    from vitq_plugins.papers.mptq.optm import OptMSearch
    from vitq_plugins.papers.mptq.optm import search_optm
    from vitq_plugins.papers.mptq.optm import twin_dequantize
    from vitq_plugins.papers.mptq.optm import twin_fake_quant
    from vitq_plugins.papers.mptq.optm import twin_quantize
    from vitq_plugins.papers.mptq.sqb import fold_sqb_
    from vitq_plugins.papers.mptq.sqb import sqb_params

_WHERE: dict[str, str] = {
    "OptMResult": "optm",
    "OptMSearch": "optm",
    "search_optm": "optm",
    "twin_dequantize": "optm",
    "twin_fake_quant": "optm",
    "twin_quantize": "optm",
    "fold_sqb_": "sqb",
    "sqb_params": "sqb",
}

__all__ = [
    "OptMResult",
    "OptMSearch",
    "fold_sqb_",
    "search_optm",
    "sqb_params",
    "twin_dequantize",
    "twin_fake_quant",
    "twin_quantize",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
