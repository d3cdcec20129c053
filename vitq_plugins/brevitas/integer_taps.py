"""Integer codes of a calibrated Brevitas fake-quant model at its activation quantizers (the reference side of
:func:`vitq_plugins.intexec.agreement_report`, which compares them with every requantized tensor of the integer
program, I-ViT arXiv 2207.01405 eq. 7: ``round(y / S) + z``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitq_plugins.brevitas.integer_check import proxy_quantizer
from vitq_plugins.brevitas.quant import ObserverActQuant
from vitq_plugins.intexec.extension import find_integer_form

__all__ = ["FakeQuantTaps"]

_TQ_SUFFIX = ".fused_activation_quant_proxy.tensor_quant"


def _has_grid_reader(qmodel: nn.Module, name: str) -> bool:
    """Whether tensor quantizer ``name`` belongs to a quantizer whose integer grid a registered reader gives."""
    if not name.endswith(_TQ_SUFFIX):
        return False
    proxy = qmodel.get_submodule(name[: -len(_TQ_SUFFIX)])
    return find_integer_form("grid", proxy_quantizer(proxy)) is not None


class FakeQuantTaps:
    """Forward hooks on the fake-quant model's activation quantizers, recording integer codes."""

    def __init__(self, qmodel: nn.Module) -> None:
        self.codes: dict[str, torch.Tensor] = {}
        self._handles = []
        for name, mod in qmodel.named_modules():
            if isinstance(mod, ObserverActQuant) or _has_grid_reader(qmodel, name):
                key = name[: -len(_TQ_SUFFIX)] if name.endswith(_TQ_SUFFIX) else name
                self._handles.append(mod.register_forward_hook(self._hook(key)))

    def _hook(self, key: str) -> Any:
        def fn(mod: Any, _inp: Any, out: Any) -> None:
            y, scale, zp = out[0], out[1], out[2]
            if y.dim() == 0 or scale is None:
                return
            self.codes[key] = torch.round(y / scale + zp).to(torch.int64)

        return fn

    def close(self) -> None:
        for h in self._handles:
            h.remove()
