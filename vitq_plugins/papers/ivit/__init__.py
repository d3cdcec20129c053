"""I-ViT (Li & Gu, ICCV 2023, arXiv 2207.01405): integer-only Shiftmax (§3.3 eqs. 9-14), ShiftGELU
(§3.4 eqs. 15-17) and I-LayerNorm (§3.5); dyadic requantization (§3.2) is shared core numerics
(:mod:`vitq_plugins.ops.dyadic`).

Modules: :mod:`.shift` (Shiftmax, ShiftGELU), :mod:`.ilayernorm` (I-LayerNorm), :mod:`.plugin` (registration).

The names below are imported on first use, so registering the plugin imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
    from vitq_plugins.papers.ivit.shift import shift_exp
    from vitq_plugins.papers.ivit.shift import shiftgelu
    from vitq_plugins.papers.ivit.shift import shiftmax

_WHERE: dict[str, str] = {
    "i_layernorm": "ilayernorm",
    "shift_exp": "shift",
    "shiftgelu": "shift",
    "shiftmax": "shift",
}

__all__ = [
    "i_layernorm",
    "shift_exp",
    "shiftgelu",
    "shiftmax",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
