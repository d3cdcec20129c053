"""Capture a (timm) ViT for PT2E and map the exported ATen nodes back to the float model's module FQNs.

* every timm-style attention (``qkv`` Linear + ``num_heads``) runs unfused (``fused_attn = False``), so its
  q·kᵀ and attn·v are ``aten.matmul`` nodes and its softmax an ``aten.softmax`` node;
* :func:`capture` is ``torch.export.export(strict=False)`` with a dynamic batch dimension, then
  ``.module()`` (the ATen graph ``prepare_pt2e`` takes);
* the scope of a node is the innermost module of ``node.meta["nn_module_stack"]`` (an FQN of the float model);
* evaluation-mode dropouts (``aten.dropout`` with ``train=False``) are identities and are removed, so a site's
  tensor is the direct input of its consumer.

Sites: FQ-ViT (arXiv 2111.13824, Fig. 2); attention: ViT (arXiv 2010.11929, eqs. 5-6).
"""

from __future__ import annotations

import copy

import torch
from torch import fx
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.sites import is_attention

__all__ = ["capture", "scope_of", "strip_eval_dropout", "unfuse_attention"]

_MAX_BATCH = 4096


def unfuse_attention(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) whose timm attentions run the explicit softmax path.

    Raises:
        VitqError: an attention module that has no ``fused_attn`` switch (its softmax cannot be reached).
    """
    work = copy.deepcopy(model).eval()
    for fqn, m in work.named_modules():
        if is_attention(m):
            if not hasattr(m, "fused_attn"):
                raise VitqError(
                    f"attention {fqn!r} ({type(m).__name__}) has no fused_attn switch: the pt2e backend needs "
                    "timm's explicit softmax path (q @ k.transpose, softmax, @ v)"
                )
            m.fused_attn = False
    return work


def capture(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """``torch.export.export(model, (example,), strict=False)`` with a dynamic batch (1..4096), as a GraphModule.

    Raises:
        VitqError: the model cannot be exported (the message carries torch's reason).
    """
    x = example if example.shape[0] >= 2 else example.expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    try:
        ep = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as exc:  # torch raises many types here; name the model and the reason
        raise VitqError(f"torch.export of {type(model).__name__} failed: {exc}") from exc
    gm = ep.module()
    assert isinstance(gm, fx.GraphModule)
    return gm


def scope_of(node: fx.Node) -> str:
    """FQN of the innermost module that ran ``node`` ("" for the root or an unknown scope)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    fqn = str(list(stack.values())[-1][0])
    return "" if fqn.startswith("_empty_nn_module_stack") else fqn


def strip_eval_dropout(gm: fx.GraphModule) -> int:
    """Remove ``aten.dropout(x, p, train=False)`` nodes (identities); returns how many."""
    n = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten.dropout.default:
            train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train", True)
            p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
            if train and p:
                continue
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            n += 1
    if n:
        gm.graph.lint()
        gm.recompile()
    return n
