"""What a converted FX model actually runs in int8: counts of quantized Linear/Conv, matmul, LayerNorm,
softmax, GELU and add sites, plus the quantize/dequantize boundaries left in the graph.

Used to check that a recipe's sites survived ``convert_fx`` (FQ-ViT arXiv 2111.13824 argues that a
"fully quantized" ViT must also cover LayerNorm and softmax).
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
import operator

import torch
from torch import fx
from torch import nn
import torch.ao.nn.quantized as nnq

from vitq_plugins.fx.modules import QuantizedCustom

__all__ = ["FxReport", "report"]


@dataclass(frozen=True)
class FxReport:
    """Counts of quantized sites in a converted GraphModule.

    Attributes:
        linear: ``nnq.Linear`` modules.
        conv: ``nnq.Conv2d`` modules.
        matmul: ``quantized::matmul`` calls.
        layernorm: ``nnq.LayerNorm`` plus integer LayerNorm custom modules (PTS, I-LayerNorm).
        softmax: ``nnq.Softmax`` plus integer softmax custom modules (LIS, Shiftmax).
        gelu: integer GELU custom modules (ShiftGELU, OPT-m) plus float GELUs wrapped in dequantize/quantize.
        add: ``quantized::add`` calls.
        quantize: ``quantize_per_tensor``/``quantize_per_channel`` calls.
        dequantize: ``dequantize`` calls.
        custom: Quantizer name -> number of custom modules.
    """

    linear: int
    conv: int
    matmul: int
    layernorm: int
    softmax: int
    gelu: int
    add: int
    quantize: int
    dequantize: int
    custom: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        """Plain dict (for JSON/CSV)."""
        return asdict(self)

    @property
    def total(self) -> int:
        """Quantized compute sites (linear + conv + matmul + layernorm + softmax + gelu + add)."""
        return self.linear + self.conv + self.matmul + self.layernorm + self.softmax + self.gelu + self.add


def _is_quantized_gelu(gm: fx.GraphModule, node: fx.Node) -> bool:
    src = node.args[0] if node.args else None
    users = list(node.users)
    return (
        isinstance(src, fx.Node)
        and src.op == "call_method"
        and src.target == "dequantize"
        and len(users) == 1
        and users[0].op == "call_function"
        and users[0].target is torch.quantize_per_tensor
    )


def report(gm: nn.Module) -> FxReport:
    """Count the quantized sites of a converted model (see :class:`FxReport`)."""
    if not isinstance(gm, fx.GraphModule):
        raise TypeError(f"report expects a converted fx.GraphModule, got {type(gm).__name__}")
    c = {
        k: 0
        for k in ("linear", "conv", "matmul", "layernorm", "softmax", "gelu", "add", "quantize", "dequantize")
    }
    custom: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = gm.get_submodule(str(node.target))
            if isinstance(mod, nnq.Linear):
                c["linear"] += 1
            elif isinstance(mod, nnq.Conv2d):
                c["conv"] += 1
            elif isinstance(mod, nnq.LayerNorm):
                c["layernorm"] += 1
            elif isinstance(mod, nnq.Softmax):
                c["softmax"] += 1
            elif isinstance(mod, QuantizedCustom):
                custom[mod.quantizer] = custom.get(mod.quantizer, 0) + 1
                inner = mod.observed.inner
                kind = (
                    "layernorm"
                    if isinstance(inner, nn.LayerNorm)
                    else "softmax"
                    if isinstance(inner, nn.Softmax)
                    else "gelu"
                )
                c[kind] += 1
            elif isinstance(mod, nn.GELU) and _is_quantized_gelu(gm, node):
                c["gelu"] += 1
        elif node.op == "call_function":
            if node.target is torch.ops.quantized.matmul:
                c["matmul"] += 1
            elif node.target in (torch.ops.quantized.add, torch.ops.quantized.add_relu):
                c["add"] += 1
            elif node.target in (torch.quantize_per_tensor, torch.quantize_per_channel):
                c["quantize"] += 1
            elif node.target is operator.add:
                pass
        elif node.op == "call_method" and node.target == "dequantize":
            c["dequantize"] += 1
    return FxReport(custom=custom, **c)
