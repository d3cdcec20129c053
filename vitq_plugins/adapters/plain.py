"""A plain user ViT (the style of lucidrains' vit-pytorch): attention with a fused ``to_qkv`` (bias or not) or
separate ``to_q``/``to_k``/``to_v`` Linears, a head count, an ``nn.Softmax`` module and an output projection;
feed-forwards as ``nn.Sequential`` ``[LayerNorm, Linear, act, Dropout, Linear, Dropout]``; the pre-norms either
inside these modules (``self.norm``) or in a ``PreNorm(norm, fn)`` wrapper; a transformer holding
``layers = ModuleList([ModuleList([attn, ff]), ...])`` run as ``x = attn(x) + x; x = ff(x) + x`` and a final
``norm``.

Two adapters: :func:`rewrite_attention` turns such an attention (without its own pre-norm) into timm
``Attention`` wherever it sits (e.g. in a user block that already has ``norm1``/``attn``/``norm2``/``mlp``);
:func:`rewrite_transformer` turns the whole ``layers`` stack into canonical timm ``Block`` s
(:class:`~vitq_plugins.adapters.canonical.BlockSequence`). The residual structure is assumed from the layout
and checked in float by :func:`vitq_plugins.adapters.apply.check_same_function`. Attention: ViT (arXiv
2010.11929, eqs. 5-6).
"""

from __future__ import annotations

from torch import nn

from vitq_plugins.adapters import canonical
from vitq_plugins.core.errors import VitqError

__all__ = ["rewrite_attention", "rewrite_transformer"]

_HEADS = ("heads", "num_heads", "n_heads", "n_head")
_FUSED = ("to_qkv", "qkv_proj", "in_proj", "qkv")
_SEPARATE = (
    ("to_q", "to_k", "to_v"),
    ("q_proj", "k_proj", "v_proj"),
    ("query", "key", "value"),
    ("q", "k", "v"),
)
_OUT = ("to_out", "out_proj", "proj", "o_proj")


def _heads(m: nn.Module) -> int | None:
    for a in _HEADS:
        v = getattr(m, a, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _out_proj(m: nn.Module) -> nn.Module | None:
    for a in _OUT:
        out = getattr(m, a, None)
        if isinstance(out, nn.Sequential):
            kept = [p for p in out if not isinstance(p, nn.Dropout | nn.Identity)]
            out = kept[0] if len(kept) == 1 else (nn.Identity() if not kept else None)
        if isinstance(out, nn.Linear | nn.Identity):
            return out
    return None


def _qkv(m: nn.Module) -> nn.Linear | None:
    for a in _FUSED:
        lin = getattr(m, a, None)
        if isinstance(lin, nn.Linear):
            return lin
    for names in _SEPARATE:
        lins = [getattr(m, a, None) for a in names]
        if all(isinstance(x, nn.Linear) for x in lins):
            q, k, v = lins
            assert isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and isinstance(v, nn.Linear)
            return canonical.fuse_qkv(q, k, v)
    return None


def _is_plain_attention(m: nn.Module) -> bool:
    return any(isinstance(c, nn.Softmax) for c in m.children()) and _heads(m) is not None


def _attention(m: nn.Module) -> tuple[nn.Module | None, nn.Module]:
    """``(pre_norm, timm Attention)`` of a plain attention module.

    Raises:
        VitqError: a module with an ``nn.Softmax`` and a head count that misses a projection (names it).
    """
    qkv, out, heads = _qkv(m), _out_proj(m), _heads(m)
    if qkv is None or out is None or heads is None:
        what = [
            n
            for n, ok in (
                (f"a fused q/k/v Linear ({'/'.join(_FUSED)}) or separate ones (to_q/to_k/to_v, ...)", qkv),
                (f"an output projection ({'/'.join(_OUT)})", out),
            )
            if ok is None
        ]
        raise VitqError(f"attention {type(m).__name__} has an nn.Softmax but no {' and no '.join(what)}")
    norm = getattr(m, "norm", None)
    norm = norm if isinstance(norm, nn.LayerNorm) else None
    scale = getattr(m, "scale", None)
    return norm, canonical.attention(
        qkv, out, heads, float(scale) if isinstance(scale, float | int) else None
    )


def rewrite_attention(m: nn.Module) -> nn.Module | None:
    """timm ``Attention`` for a plain attention module without its own pre-norm, else ``None``."""
    if not _is_plain_attention(m) or isinstance(getattr(m, "norm", None), nn.LayerNorm):
        return None
    return _attention(m)[1]


def _unwrap(m: nn.Module) -> tuple[nn.Module | None, nn.Module]:
    """``PreNorm(norm, fn)`` -> ``(norm, fn)``; anything else -> ``(None, m)``."""
    norm, fn = getattr(m, "norm", None), getattr(m, "fn", None)
    if isinstance(norm, nn.LayerNorm) and isinstance(fn, nn.Module):
        return norm, fn
    return None, m


def _block(pair: nn.Module) -> nn.Module | None:
    kids = list(pair.children()) if isinstance(pair, nn.ModuleList | nn.Sequential) else []
    if len(kids) != 2:
        return None
    (n1, attn), (n2, ff) = _unwrap(kids[0]), _unwrap(kids[1])
    if not _is_plain_attention(attn):
        return None
    inner_norm, canon = _attention(attn)
    n1 = n1 or inner_norm
    parts = canonical.mlp_from_sequence(ff)
    if parts is None:
        return None
    n2 = n2 or parts[0]
    if n1 is None or n2 is None:
        return None
    return canonical.block(n1, canon, n2, parts[1])


def rewrite_transformer(m: nn.Module) -> nn.Module | None:
    """:class:`~vitq_plugins.adapters.canonical.BlockSequence` for a transformer whose ``layers`` are
    ``[attn, ff]`` pairs of the plain form, else ``None``."""
    layers = getattr(m, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return None
    blocks = [_block(pair) for pair in layers]
    if any(b is None for b in blocks):
        return None
    norm = getattr(m, "norm", None)
    return canonical.BlockSequence(
        [b for b in blocks if b is not None], norm if isinstance(norm, nn.Module) else None
    )
