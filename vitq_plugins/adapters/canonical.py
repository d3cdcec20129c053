"""Builders of vitq's canonical modules: timm ``Attention`` (fused ``qkv`` Linear, ``num_heads``, ``proj``), timm
``Mlp`` (``fc1``/``act``/``fc2``) and timm ``Block`` (pre-norm ``norm1``/``attn``/``norm2``/``mlp``), made from the
parts of a foreign module so that they compute the same function (ViT, arXiv 2010.11929, eqs. 2-3 and 5-6).

The timm modules are built on the ``meta`` device and their parameterised parts replaced by the given ones, so no
weight is initialised twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import cast

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError

__all__ = [
    "BlockSequence",
    "attention",
    "block",
    "fuse_qkv",
    "mlp",
    "mlp_from_sequence",
    "plain_linear",
]

_DROPOUTS = (nn.Dropout, nn.Identity)


class BlockSequence(nn.Module):
    """Canonical blocks run in order, then an optional final norm (a user transformer's body)."""

    def __init__(self, blocks: Sequence[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm if norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.norm(self.blocks(x))
        return out


def plain_linear(m: nn.Module) -> nn.Module:
    """``m`` as an exact ``nn.Linear`` (a subclass such as ``NonDynamicallyQuantizableLinear`` is copied: the
    wings' layer maps match the class), or ``m`` itself when it is one already or not a Linear."""
    if not isinstance(m, nn.Linear) or type(m) is nn.Linear:
        return m
    new = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, device="meta")
    new.weight = m.weight
    new.bias = m.bias
    return new


def fuse_qkv(q: nn.Linear, k: nn.Linear, v: nn.Linear) -> nn.Linear:
    """One ``qkv`` Linear whose output is ``[q(x), k(x), v(x)]`` (a missing bias is a zero bias)."""
    if not q.in_features == k.in_features == v.in_features or not q.out_features == k.out_features:
        raise VitqError(
            f"separate q/k/v projections of different shapes ({tuple(q.weight.shape)}, {tuple(k.weight.shape)}, "
            f"{tuple(v.weight.shape)}) cannot be fused into one qkv Linear"
        )
    layers = (q, k, v)
    has_bias = any(m.bias is not None for m in layers)
    out = nn.Linear(q.in_features, sum(m.out_features for m in layers), bias=has_bias)
    with torch.no_grad():
        out.weight.copy_(torch.cat([m.weight for m in layers], 0))
        if out.bias is not None:
            out.bias.copy_(
                torch.cat([m.bias if m.bias is not None else torch.zeros(m.out_features) for m in layers])
            )
    return out


def attention(qkv: nn.Linear, proj: nn.Module, num_heads: int, scale: float | None = None) -> nn.Module:
    """timm ``Attention`` running ``qkv`` (rows: q, k, v; heads contiguous in each) and ``proj``.

    ``scale`` multiplies q before q·kᵀ (default ``head_dim ** -0.5``).
    """
    from timm.layers.attention import Attention

    attn_dim, rem = divmod(qkv.out_features, 3)
    if rem or attn_dim % num_heads:
        raise VitqError(
            f"a qkv Linear with {qkv.out_features} outputs cannot hold q, k and v of {num_heads} heads"
        )
    a = Attention(qkv.in_features, num_heads=num_heads, attn_head_dim=attn_dim // num_heads, device="meta")
    a.qkv = plain_linear(qkv)  # type: ignore[assignment]
    a.proj = plain_linear(proj)  # type: ignore[assignment]
    if scale is not None:
        a.scale = float(scale)
    return a


def mlp(fc1: nn.Module, act: nn.Module, fc2: nn.Module) -> nn.Module:
    """timm ``Mlp`` (``fc1`` -> ``act`` -> ``fc2``) holding the given modules."""
    from timm.layers.mlp import Mlp

    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        raise VitqError("an MLP needs two nn.Linear layers")
    m = Mlp(fc1.in_features, fc1.out_features, fc2.out_features, device="meta")
    m.fc1, m.act, m.fc2 = plain_linear(fc1), act, plain_linear(fc2)  # type: ignore[assignment]
    return m


def mlp_from_sequence(seq: nn.Module) -> tuple[nn.Module | None, nn.Module] | None:
    """``(pre_norm, Mlp)`` of a Sequential ``[LayerNorm?, Linear, act, Dropout*, Linear, Dropout*]``
    (torchvision's ``MLPBlock``, a user's feed-forward, or a module whose only child is such a Sequential), or
    ``None`` if it is not of that form."""
    kids = list(seq.children())
    if not isinstance(seq, nn.Sequential) and len(kids) == 1 and isinstance(kids[0], nn.Sequential):
        seq = kids[0]  # a feed-forward module holding its Sequential (``self.net``)
    if not isinstance(seq, nn.Sequential):
        return None
    parts = [m for m in seq if not isinstance(m, _DROPOUTS)]
    norm = parts.pop(0) if parts and isinstance(parts[0], nn.LayerNorm) else None
    if len(parts) != 3 or not isinstance(parts[0], nn.Linear) or not isinstance(parts[2], nn.Linear):
        return None
    if any(p.numel() for p in parts[1].parameters()):
        return None  # a parameterised "activation" is not an activation
    return norm, mlp(parts[0], parts[1], parts[2])


def block(norm1: nn.Module, attn: nn.Module, norm2: nn.Module, mlp_: nn.Module) -> nn.Module:
    """timm ``Block``: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""
    from timm.models.vision_transformer import Block

    qkv = attn.get_submodule("qkv")
    assert isinstance(qkv, nn.Linear)
    b = Block(qkv.in_features, int(cast(Any, attn).num_heads), device="meta")
    b.norm1, b.attn, b.norm2, b.mlp = norm1, attn, norm2, mlp_
    return b
