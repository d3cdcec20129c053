"""FQ-ViT (Lin et al., IJCAI 2022, arXiv 2111.13824): Power-of-Two Factor scales for LayerNorm inputs
(PTS, §3.2 eqs. 9-10) and Log-Int-Softmax (LIS, §3.3 eqs. 13-16).

Modules: :mod:`.pts` (PTS observer, fake-quant and FQ-ViT's integer LayerNorm), :mod:`.lis` (log2
quantizer, integer softmax and the shift-based attn@V), :mod:`.plugin` (registration).

The names below are imported on first use, so registering the plugin imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from vitq_plugins.papers.fqvit.lis import int_exp
    from vitq_plugins.papers.fqvit.lis import lis_attn_v
    from vitq_plugins.papers.fqvit.lis import lis_dequant
    from vitq_plugins.papers.fqvit.lis import lis_softmax_int
    from vitq_plugins.papers.fqvit.lis import log2_fake_quant
    from vitq_plugins.papers.fqvit.lis import log2_quant
    from vitq_plugins.papers.fqvit.pts import PTSObserver
    from vitq_plugins.papers.fqvit.pts import PTSParams
    from vitq_plugins.papers.fqvit.pts import pts_fake_quant
    from vitq_plugins.papers.fqvit.pts import pts_int_layernorm
    from vitq_plugins.papers.fqvit.pts import pts_quantize

_WHERE: dict[str, str] = {
    "int_exp": "lis",
    "lis_attn_v": "lis",
    "lis_dequant": "lis",
    "lis_softmax_int": "lis",
    "log2_fake_quant": "lis",
    "log2_quant": "lis",
    "PTSObserver": "pts",
    "PTSParams": "pts",
    "pts_fake_quant": "pts",
    "pts_int_layernorm": "pts",
    "pts_quantize": "pts",
}

__all__ = [
    "PTSObserver",
    "PTSParams",
    "int_exp",
    "lis_attn_v",
    "lis_dequant",
    "lis_softmax_int",
    "log2_fake_quant",
    "log2_quant",
    "pts_fake_quant",
    "pts_int_layernorm",
    "pts_quantize",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
