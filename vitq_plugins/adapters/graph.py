"""Attention found from its traced graph, not from its names: ``matmul -> softmax -> matmul``.

A module with at least two ``nn.Linear`` children is traced with ``torch.fx``; if its graph holds exactly one
softmax between two matmuls (ViT, arXiv 2010.11929, eq. 5: ``softmax(q·kᵀ·scale)·v``), the q, k and v operands are
followed back through shape-only ops (reshape, view, permute, transpose, chunk, unbind, indexing) and constant
scalings to the Linear(s) that make them (one fused Linear, its thirds told apart by the index taken, or three
separate ones), and the matmul's output forward to the output projection. The scale is the product of the constant
scalings found on the way. The head count is read from an integer attribute that divides the attention width or
else searched among its divisors; the rewrite (timm ``Attention``) is kept only when it computes the same function
on random tokens. A module whose q/k/v Linears do not read the module input directly (a pre-norm inside), adds a
mask or bias to the logits, or has any other shape is not of this family (``None``).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx
from torch import nn
import torch.nn.functional as F

from vitq_plugins.adapters import canonical
from vitq_plugins.adapters.apply import check_same_function
from vitq_plugins.core.errors import VitqError
from vitq_plugins.sites import is_attention

__all__ = ["rewrite_traced_attention"]

_SHAPE_METHODS = frozenset(
    {
        "reshape",
        "view",
        "permute",
        "transpose",
        "contiguous",
        "chunk",
        "unbind",
        "split",
        "flatten",
        "unflatten",
    }
)
_SHAPE_FUNCS = frozenset(
    {torch.reshape, torch.permute, torch.transpose, torch.chunk, torch.unbind, torch.flatten}
)
_MATMULS = frozenset({torch.matmul, operator.matmul, torch.bmm})
_PASS_MODULES = (nn.Dropout, nn.Identity)


def _is_softmax(gm: fx.GraphModule, n: fx.Node) -> bool:
    if n.op == "call_function":
        return n.target in (F.softmax, torch.softmax)
    if n.op == "call_method":
        return n.target == "softmax"
    return n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), nn.Softmax)


def _is_matmul(n: fx.Node) -> bool:
    return n.op == "call_function" and n.target in _MATMULS


def _is_shape(n: fx.Node) -> bool:
    if n.op == "call_method":
        return n.target in _SHAPE_METHODS
    return n.op == "call_function" and (n.target in _SHAPE_FUNCS or n.target is operator.getitem)


def _scale_of(n: fx.Node) -> float | None:
    """The constant of ``x * c``, ``c * x`` or ``x / c`` (as a factor), else ``None``."""
    if n.op != "call_function" or len(n.args) != 2:
        return None
    a, b = n.args
    if n.target in (operator.mul, torch.mul):
        c = b if isinstance(a, fx.Node) else a
        return float(c) if isinstance(c, float | int) and not isinstance(c, bool) else None
    if n.target in (operator.truediv, torch.div) and isinstance(b, float | int) and not isinstance(b, bool):
        return 1.0 / float(b)
    return None


def _to_linear(gm: fx.GraphModule, n: Any, scale: list[float]) -> tuple[fx.Node, int | None] | None:
    """Follow ``n`` back through shape ops and constant scalings to an ``nn.Linear`` call: ``(node, third)``."""
    index: int | None = None
    while isinstance(n, fx.Node):
        if n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), nn.Linear):
            return n, index
        c = _scale_of(n)
        if c is not None:
            scale.append(c)
        elif not _is_shape(n):
            return None
        elif n.target is operator.getitem and isinstance(n.args[1], int) and index is None:
            index = n.args[1]
        n = n.args[0]
    return None


def _skip_back(gm: fx.GraphModule, n: Any) -> Any:
    while (
        isinstance(n, fx.Node)
        and n.op == "call_module"
        and isinstance(gm.get_submodule(str(n.target)), _PASS_MODULES)
    ):
        n = n.args[0]
    return n


def _out_proj(gm: fx.GraphModule, n: fx.Node) -> nn.Module | None:
    """The Linear the attention output flows into (through shape ops) when the module returns its output."""
    while True:
        users = list(n.users)
        if len(users) != 1:
            return None
        n = users[0]
        if n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), nn.Linear):
            proj = gm.get_submodule(str(n.target))
            out = n
            while True:
                nxt = list(out.users)
                if len(nxt) != 1:
                    return None
                out = nxt[0]
                if out.op == "output":
                    return proj
                if not (
                    out.op == "call_module" and isinstance(gm.get_submodule(str(out.target)), _PASS_MODULES)
                ):
                    return None
        if not _is_shape(n):
            return None


def _trace(m: nn.Module) -> fx.GraphModule | None:
    linears = sum(isinstance(c, nn.Linear) for c in m.children())
    if linears < 2 or is_attention(m) or isinstance(m, nn.Sequential | nn.ModuleList | nn.ModuleDict):
        return None
    try:
        return fx.symbolic_trace(m)
    except Exception:  # noqa: BLE001 - a module fx cannot trace is not of this family
        return None


def _heads_candidates(m: nn.Module, attn_dim: int) -> list[int]:
    attrs = [
        v for v in vars(m).values() if isinstance(v, int) and not isinstance(v, bool) and 1 <= v < attn_dim
    ]
    divisors = [d for d in range(1, attn_dim + 1) if attn_dim % d == 0]
    return [h for h in attrs if attn_dim % h == 0] + [d for d in divisors if d not in attrs]


def rewrite_traced_attention(m: nn.Module) -> nn.Module | None:
    """timm ``Attention`` for a module whose traced graph is one self-attention (see the module docstring)."""
    gm = _trace(m)
    if gm is None:
        return None
    nodes = list(gm.graph.nodes)
    soft = [n for n in nodes if _is_softmax(gm, n)]
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(soft) != 1 or not placeholders:
        return None
    scale: list[float] = []
    logits = soft[0].args[0]
    while isinstance(logits, fx.Node) and _scale_of(logits) is not None:
        scale.append(float(_scale_of(logits) or 1.0))
        logits = logits.args[0]
    users = [u for u in soft[0].users]
    av = users[0] if len(users) == 1 else None
    while (
        av is not None
        and av.op == "call_module"
        and isinstance(gm.get_submodule(str(av.target)), _PASS_MODULES)
    ):
        av = next(iter(av.users)) if len(av.users) == 1 else None
    if not (isinstance(logits, fx.Node) and _is_matmul(logits) and av is not None and _is_matmul(av)):
        return None
    if _skip_back(gm, av.args[0]) is not soft[0]:
        return None
    found = [_to_linear(gm, a, scale) for a in (logits.args[0], logits.args[1], av.args[1])]
    if any(f is None for f in found) or any(
        f[0].args[0] is not placeholders[0] for f in found if f is not None
    ):
        return None
    proj = _out_proj(gm, av)
    if proj is None:
        return None
    lins = [gm.get_submodule(str(f[0].target)) for f in found if f is not None]
    thirds = [f[1] for f in found if f is not None]
    qkv = _qkv(lins, thirds)
    if qkv is None:
        return None
    factor = 1.0
    for c in scale:
        factor *= c
    attn_dim = qkv.out_features // 3
    for heads in _heads_candidates(m, attn_dim):
        cand = canonical.attention(qkv, proj, heads, factor)
        try:
            check_same_function(type(m).__name__, m, cand, "traced_attention")
        except VitqError:
            continue
        return cand
    return None


def _qkv(lins: list[nn.Module], thirds: list[int | None]) -> nn.Linear | None:
    """One ``qkv`` Linear (rows q, k, v) from three separate Linears or from one fused Linear's thirds."""
    q, k, v = lins
    assert isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and isinstance(v, nn.Linear)
    if q is not k and k is not v and q is not v:
        return canonical.fuse_qkv(q, k, v)
    if not (q is k is v) or sorted(t for t in thirds if t is not None) != [0, 1, 2] or q.out_features % 3:
        return None
    a = q.out_features // 3
    rows = [q.weight[t * a : (t + 1) * a] for t in thirds if t is not None]
    out = nn.Linear(q.in_features, q.out_features, bias=q.bias is not None)
    with torch.no_grad():
        out.weight.copy_(torch.cat(rows, 0))
        if q.bias is not None and out.bias is not None:
            out.bias.copy_(torch.cat([q.bias[t * a : (t + 1) * a] for t in thirds if t is not None]))
    return out
