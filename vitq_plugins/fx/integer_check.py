"""Which nodes of a prepared or converted FX ViT have an integer form (the ``int-onnx`` check before any work).

A LayerNorm, softmax or GELU node has one when its custom module's quantizer has a registered integer form
with an FX builder (``from_fx``; I-ViT arXiv 2207.01405 eqs. 9-18, FQ-ViT arXiv 2111.13824 eqs. 9-16), or, for
a float GELU, when its output is only ever quantized to quint8 (a 256-entry table lookup).
:func:`fx_float_ops_left` names every other such node; :mod:`vitq_plugins.fx.integer` builds the program of a
graph without any.
"""

from __future__ import annotations

import torch
from torch import fx
from torch import nn
import torch.nn.functional as F

from vitq_plugins.intexec.extension import discover_integer_forms
from vitq_plugins.intexec.extension import find_integer_form
from vitq_plugins.intexec.extension import integer_form_names

__all__ = ["fx_float_ops_left"]

_SITE_KINDS = ("layernorm", "softmax", "gelu")
_FLOAT_FUNCS = {
    F.gelu: "GELU",
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.layer_norm: "LayerNorm",
    torch.layer_norm: "LayerNorm",
}


def fx_float_ops_left(gm: nn.Module) -> list[str]:
    """Nodes of a prepared or converted FX ViT without an integer form, as ``"<target>: <why>"`` (graph order).

    Works on the model returned by ``FxBackend.quantize`` and on the ``prepare_fx`` model (before calibration).
    """
    from vitq_plugins.fx.modules import ObservedCustom
    from vitq_plugins.fx.modules import QuantizedCustom

    graph = getattr(gm, "graph", None)
    if not isinstance(graph, fx.Graph):
        return [f"{type(gm).__name__}: not a torch.fx GraphModule (quantize it with the fx backend)"]
    out: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module":
            mod = gm.get_submodule(str(node.target))
            where = str(node.target)
            if isinstance(mod, QuantizedCustom | ObservedCustom):
                q = mod.quantizer
                if any(find_integer_form(kind, q, "fx") is not None for kind in _SITE_KINDS):
                    continue
                out.append(
                    f"{where}: quantizer {q!r} has no integer form (an integer GELU needs one of "
                    f"{_choices('gelu')}, or a float GELU with a uint8 output)"
                )
            elif isinstance(mod, nn.LayerNorm):
                out.append(
                    f"{where}: LayerNorm stays float ({type(mod).__module__}.{type(mod).__name__}); an "
                    f"integer LayerNorm needs one of the quantizers {_choices('layernorm')}"
                )
            elif isinstance(mod, nn.Softmax):
                out.append(
                    f"{where}: softmax stays float ({type(mod).__module__}.{type(mod).__name__}); an "
                    f"integer softmax needs one of the quantizers {_choices('softmax')}"
                )
            elif isinstance(mod, nn.GELU) and not _gelu_to_uint8(gm, node):
                out.append(
                    f"{where}: GELU stays float; an integer GELU needs one of the quantizers {_choices('gelu')} "
                    "or a uint8 output quantizer (a table lookup)"
                )
        elif node.op == "call_function" and node.target in _FLOAT_FUNCS:
            out.append(f"{node.name}: {_FLOAT_FUNCS[node.target]} stays float (functional call)")
    return out


def _choices(kind: str) -> str:
    discover_integer_forms()
    return ", ".join(repr(n) for n in integer_form_names(kind, "fx")) or "none registered"


def _gelu_to_uint8(gm: nn.Module, node: fx.Node) -> bool:
    """Whether a float GELU's output is only ever quantized to quint8 (then it is a 256-entry table lookup)."""
    users = list(node.users)
    if not users:
        return False
    for u in users:
        if u.op == "call_function" and u.target is torch.quantize_per_tensor:
            if u.args[3] != torch.quint8:
                return False
        elif u.op == "call_module":
            if getattr(gm.get_submodule(str(u.target)), "dtype", None) != torch.quint8:
                return False
        else:
            return False
    return True
