"""Model preparation for torch.ao FX graph mode: make a (timm) ViT traceable with explicit attention.

Tracing rules (frameworks.md §2, verified on torch 2.14.1 / timm 1.0.31):

* timm ``LayerNorm`` subclasses are inlined by the tracer (``F.layer_norm``), so they are swapped for plain
  :class:`torch.nn.LayerNorm` (same parameters) and become matchable modules;
* every timm-style attention (``qkv`` Linear + ``num_heads``: timm ``Attention`` with fused SDPA or not,
  or a user module that calls ``attn.softmax(-1)`` and ``@``) is replaced by :class:`ExplicitAttention`,
  whose q·kᵀ and attn·v are ``torch.matmul`` calls (only that one is lowered to ``quantized::matmul`` on
  x86) and whose softmax is an ``nn.Softmax`` submodule ``<attn>.softmax``; ``prepare_fx`` then traces the
  module hierarchy itself, so per-block qconfigs of function nodes (adds, matmuls) keep their scope;
* :func:`rewrite_graph` does the same rewrites (``@`` -> ``torch.matmul``, ``t.softmax``/``F.softmax`` ->
  ``nn.Softmax``) on any traced graph, for inspection and for callers that quantize a GraphModule;
* ``dynamic_img_size`` is switched off (fixed patch grid, NCHW patch embedding).

The attention follows ViT (Dosovitskiy et al., arXiv 2010.11929, eq. 5-6); the quantization sites are those
of FQ-ViT (arXiv 2111.13824, Fig. 2).
"""

from __future__ import annotations

import operator
from typing import Any
from typing import cast

import torch
from torch import fx
from torch import nn
import torch.nn.functional as F

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.sites import is_attention

__all__ = ["ExplicitAttention", "VitqTracer", "prepare_model", "trace", "rewrite_graph"]


class ExplicitAttention(nn.Module):
    """Multi-head self-attention with explicit ``torch.matmul`` and an ``nn.Softmax`` submodule.

    Built from a timm-style attention (``qkv``, ``proj``, ``num_heads``; optional ``q_norm``/``k_norm``/
    ``norm``/dropouts), sharing its submodules (FQNs such as ``<attn>.qkv`` are kept).

    Args:
        src: The attention module to replace.
    """

    def __init__(self, src: nn.Module) -> None:
        super().__init__()
        qkv = src.qkv
        if not isinstance(qkv, nn.Linear):
            raise VitqError(f"attention {type(src).__name__} has no qkv Linear")
        self.num_heads = int(cast(Any, src).num_heads)
        self.attn_dim = int(getattr(src, "attn_dim", qkv.out_features // 3))
        self.head_dim = int(getattr(src, "head_dim", self.attn_dim // self.num_heads))
        self.scale = float(getattr(src, "scale", self.head_dim**-0.5))
        if getattr(src, "gate", None) is not None:
            raise VitqError(f"gated attention ({type(src).__name__}.gate) is not supported by the fx backend")
        self.qkv: nn.Linear = qkv
        self.q_norm: nn.Module = getattr(src, "q_norm", None) or nn.Identity()
        self.k_norm: nn.Module = getattr(src, "k_norm", None) or nn.Identity()
        self.attn_drop: nn.Module = getattr(src, "attn_drop", None) or nn.Identity()
        self.norm: nn.Module = getattr(src, "norm", None) or nn.Identity()
        self.proj: nn.Module = cast(nn.Module, src.proj)
        self.proj_drop: nn.Module = getattr(src, "proj_drop", None) or nn.Identity()
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, attn_mask: Any = None, is_causal: Any = False) -> torch.Tensor:
        """Self-attention of ``x`` ``(B, N, C)``; ``attn_mask``/``is_causal`` are accepted and ignored
        (ViT classification passes none; see :func:`trace`)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        q = q * self.scale
        attn = torch.matmul(q, k.transpose(-2, -1))
        attn = self.softmax(attn)
        attn = self.attn_drop(attn)
        out = torch.matmul(attn, v)
        out = out.transpose(1, 2).reshape(b, n, self.attn_dim)
        y: torch.Tensor = self.proj_drop(self.proj(self.norm(out)))
        return y


def _to_plain_layernorm(m: nn.LayerNorm) -> nn.LayerNorm:
    new = nn.LayerNorm(
        m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine, bias=m.bias is not None
    )
    new.load_state_dict(m.state_dict())
    return new.train(m.training)


def _set(root: nn.Module, fqn: str, new: nn.Module) -> None:
    parent, _, name = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def prepare_model(model: nn.Module) -> nn.Module:
    """Rewrite ``model`` in place for FX: plain LayerNorms, explicit attention, no dynamic image size.

    Args:
        model: A (copied) float ViT.

    Returns:
        ``model`` (modified).
    """
    for fqn, m in list(model.named_modules()):
        if not fqn:
            continue
        if isinstance(m, nn.LayerNorm) and type(m) is not nn.LayerNorm and not isinstance(m, CustomFloat):
            _set(model, fqn, _to_plain_layernorm(m))
        elif is_attention(m) and not isinstance(m, ExplicitAttention):
            _set(model, fqn, ExplicitAttention(m))
    if getattr(model, "dynamic_img_size", False):
        model.dynamic_img_size = False  # type: ignore[assignment]
        pe = getattr(model, "patch_embed", None)
        if pe is not None:
            from timm.layers.format import Format

            pe.flatten, pe.output_fmt, pe.strict_img_size = True, Format.NCHW, True
    return model


class VitqTracer(fx.Tracer):
    """``torch.fx`` tracer that keeps vitq custom modules as leaves and reports untraceable code clearly."""

    def __init__(self) -> None:
        super().__init__()
        self.current: list[str] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, CustomFloat) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.current.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.current.pop()

    def _where(self) -> str:
        return repr(self.current[-1]) if self.current and self.current[-1] else "the model's forward"

    def to_bool(self, obj: fx.Proxy) -> bool:
        raise VitqError(
            f"cannot trace for the fx backend: node {obj.node.name!r} ({obj.node.format_node()}) is used in "
            f"Python control flow inside module {self._where()}; make that branch static or use --backend brevitas"
        )

    def iter(self, obj: fx.Proxy) -> Any:  # noqa: A003 - torch.fx API name
        raise VitqError(
            f"cannot trace for the fx backend: node {obj.node.name!r} ({obj.node.format_node()}) is iterated "
            f"inside module {self._where()}; use --backend brevitas"
        )


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` with :class:`VitqTracer` and apply :func:`rewrite_graph`.

    Raises:
        VitqError: the model cannot be traced; the message names the failing node and module.
    """
    tracer = VitqTracer()
    try:
        graph = tracer.trace(model)
    except VitqError:
        raise
    except Exception as exc:  # noqa: BLE001 - any tracing failure becomes a clear user error
        raise VitqError(
            f"cannot trace {type(model).__name__} for the fx backend inside module {tracer._where()}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    return rewrite_graph(gm)


def _scope_of(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        last = list(stack.values())[-1]
        return str(last[0] if isinstance(last, tuple) else last)
    return ""


def rewrite_graph(gm: fx.GraphModule) -> fx.GraphModule:
    """``operator.matmul`` -> ``torch.matmul``; softmax methods/functions -> ``nn.Softmax`` submodules."""
    counter: dict[str, int] = {}
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is operator.matmul:
            node.target = torch.matmul
            continue
        is_method = node.op == "call_method" and node.target == "softmax"
        is_fn = node.op == "call_function" and node.target in (F.softmax, torch.softmax)
        if not (is_method or is_fn):
            continue
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        if not isinstance(dim, int):
            raise VitqError(
                f"softmax node {node.name!r} needs a constant integer dim to become nn.Softmax, got {dim!r}"
            )
        scope = _scope_of(node)
        base = f"{scope}.softmax" if scope else "softmax"
        i = counter.get(base, 0)
        counter[base] = i + 1
        name = base if i == 0 else f"{base}_{i}"
        while True:
            try:
                gm.get_submodule(name)
            except AttributeError:
                break
            name += "_"
        gm.add_submodule(name, nn.Softmax(dim=dim))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, (node.args[0],))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return gm
