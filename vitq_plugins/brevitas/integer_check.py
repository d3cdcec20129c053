"""Which ops of a quantized Brevitas ViT have an integer form (the ``int-onnx`` check before any work).

A LayerNorm, softmax or GELU site has one when a paper registered an integer form (I-ViT arXiv 2207.01405
eqs. 9-18, FQ-ViT arXiv 2111.13824 eqs. 9-16) under its module's kernel or its quantizer's name with a Brevitas
builder (``from_brevitas``), or, for a float GELU, when its output quantizer is uniform with <= 8 bits (a table
lookup). :func:`float_ops_left` names every other such op; :mod:`vitq_plugins.brevitas.integer` builds the
program of a model without any.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vitq_plugins.intexec.extension import discover_integer_forms
from vitq_plugins.intexec.extension import find_integer_form
from vitq_plugins.intexec.extension import integer_form_names

__all__ = ["float_ops_left", "gelu_form", "layernorm_form", "proxy_quantizer", "site_name", "uniform_gelu"]


def proxy_quantizer(proxy: Any) -> str:
    """The vitq quantizer name of a Brevitas activation proxy (``""`` if none; cf. ``modules.quantizer_name``)."""
    inj = getattr(proxy, "quant_injector", None)
    return str(inj.vitq_name) if inj is not None and "vitq_name" in inj else ""


def site_name(kernel: str, quant: Any) -> str:
    """The name a site's integer form is registered under: its module's kernel, else its quantizer's name."""
    from vitq_plugins.brevitas.modules import quantizer_name

    return kernel or quantizer_name(quant)


def _choices(kind: str) -> str:
    discover_integer_forms()
    return ", ".join(repr(n) for n in integer_form_names(kind, "brevitas")) or "none registered"


def float_ops_left(qmodel: nn.Module) -> list[str]:
    """Ops of a quantized Brevitas ViT that have no integer form, as ``"<fqn>: <why>"`` (module order)."""
    from vitq_plugins.brevitas.modules import QuantGELU
    from vitq_plugins.brevitas.modules import QuantLayerNorm
    from vitq_plugins.brevitas.modules import QuantSoftmax
    from vitq_plugins.brevitas.modules import quantizer_name

    out: list[str] = []
    for fqn, m in qmodel.named_modules():
        if isinstance(m, QuantLayerNorm):
            if layernorm_form(m) is None:
                q = quantizer_name(m.input_quant) or "none"
                out.append(
                    f"{fqn}: LayerNorm stays float (input quantizer {q!r}); an integer LayerNorm needs one of "
                    f"the quantizers {_choices('layernorm')}"
                )
        elif isinstance(m, nn.LayerNorm):
            out.append(f"{fqn}: LayerNorm is not quantized (float)")
        elif isinstance(m, QuantSoftmax):
            if find_integer_form("softmax", site_name(m.kernel, m.quant), "brevitas") is None:
                q = quantizer_name(m.quant) or "none"
                out.append(
                    f"{fqn}: softmax stays float (output quantizer {q!r}); an integer softmax needs one of the "
                    f"quantizers {_choices('softmax')}"
                )
        elif isinstance(m, QuantGELU):
            if gelu_form(m) is None and not uniform_gelu(m):
                q = quantizer_name(m.quant) or "none"
                out.append(
                    f"{fqn}: GELU stays float (output quantizer {q!r}); an integer GELU needs one of the "
                    f"quantizers {_choices('gelu')} or a uniform <= 8-bit output (table lookup)"
                )
        elif isinstance(m, nn.GELU | nn.Softmax):
            out.append(f"{fqn}: {type(m).__name__} is not quantized (float)")
    return out


def layernorm_form(norm: Any) -> Any:
    """The LayerNorm form of a ``QuantLayerNorm``: by its kernel, else by its input quantizer."""
    from vitq_plugins.brevitas.modules import quantizer_name

    found = find_integer_form("layernorm", norm.kernel, "brevitas")
    return found or find_integer_form("layernorm", quantizer_name(norm.input_quant), "brevitas")


def gelu_form(act: Any) -> Any:
    return find_integer_form("gelu", act.kernel, "brevitas")


def uniform_gelu(act: Any) -> bool:
    """A float GELU with a uniform output quantizer of <= 8 bits (a table lookup)."""
    from vitq_plugins.brevitas.quant import ObserverActQuant
    from vitq_plugins.brevitas.quant import tensor_quant_of

    tq = tensor_quant_of(getattr(act.quant, "act_quant", None)) if act.quant is not None else None
    return isinstance(tq, ObserverActQuant) and int(tq.bits) <= 8
