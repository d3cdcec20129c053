"""Reading a traced FX graph the way vitq's sites see it: shape-only nodes passed through, the real users and
producer of a tensor, a node's module scope, and whether a custom module owns its input grid."""

from __future__ import annotations

import operator

import torch
from torch import fx
from torch import nn

from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.fx.observers import VitqObserver

__all__ = [
    "PASS_MODULES",
    "SHAPE_FUNCS",
    "SHAPE_METHODS",
    "is_pass",
    "owns_input_grid",
    "parent_fqn",
    "real_producer",
    "real_users",
    "scope_of",
]

SHAPE_METHODS = {
    "reshape",
    "view",
    "permute",
    "transpose",
    "flatten",
    "contiguous",
    "unbind",
    "expand",
    "squeeze",
    "unsqueeze",
}


SHAPE_FUNCS = {operator.getitem, torch.reshape, torch.transpose, torch.flatten, torch.permute}


PASS_MODULES = (nn.Identity, nn.Dropout)


def owns_input_grid(mod: nn.Module) -> bool:
    """Whether ``mod`` is a custom module bringing an input grid that no quantized x86 op can output (a
    per-channel one, e.g. FQ-ViT's PTS): the residual add feeding it then stays float. A per-tensor grid
    (e.g. I-ViT's symmetric I-LayerNorm input) is the quantized add's own output grid instead."""
    if not (isinstance(mod, CustomFloat) and mod.spec is not None and mod.spec.input_observer is not None):
        return False
    qscheme = getattr(mod.spec.input_observer(), "qscheme", torch.per_tensor_affine)
    return qscheme not in (torch.per_tensor_affine, torch.per_tensor_symmetric)


def is_pass(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_method" and node.target in SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target in SHAPE_FUNCS:
        return True
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        return isinstance(mod, PASS_MODULES) or isinstance(mod, VitqObserver)
    return False


def real_users(gm: fx.GraphModule, node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    todo = list(node.users)
    seen: set[fx.Node] = set()
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        if is_pass(gm, u):
            todo.extend(u.users)
        else:
            out.append(u)
    return out


def real_producer(gm: fx.GraphModule, node: fx.Node) -> fx.Node:
    while is_pass(gm, node) and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node


def parent_fqn(fqn: str) -> str:
    return fqn.rpartition(".")[0]


def scope_of(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    return str(last[0] if isinstance(last, tuple) else last)
