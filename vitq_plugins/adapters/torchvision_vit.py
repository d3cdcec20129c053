"""torchvision ``VisionTransformer``: each ``EncoderBlock`` (``ln_1`` -> ``nn.MultiheadAttention`` -> dropout -> add,
``ln_2`` -> ``MLPBlock`` -> add) becomes a timm ``Block`` whose ``Attention`` runs MultiheadAttention's packed
``in_proj`` as its ``qkv`` and ``out_proj`` as its ``proj`` (the same rows: q, k, v, heads contiguous; the same
``head_dim ** -0.5`` scale), so it computes the same function (ViT, arXiv 2010.11929, eqs. 2-3).

Recognised by structure (``ln_1``, ``self_attention``, ``ln_2``, ``mlp``), so a copy of torchvision's code is
recognised too; the float check of :func:`vitq_plugins.adapters.apply.check_same_function` guards the assumption.
"""

from __future__ import annotations

from torch import nn

from vitq_plugins.adapters import canonical
from vitq_plugins.core.errors import VitqError

__all__ = ["rewrite_encoder_block", "mha_attention"]


def mha_attention(mha: nn.MultiheadAttention, where: str) -> nn.Module:
    """The timm ``Attention`` computing ``mha(x, x, x)[0]`` for batch-first tokens ``x``.

    Raises:
        VitqError: a MultiheadAttention that is not plain batch-first self-attention (``where`` names it).
    """
    missing = []
    if not mha.batch_first:
        missing.append("batch_first=True")
    if not mha._qkv_same_embed_dim:
        missing.append("kdim == vdim == embed_dim (packed in_proj_weight)")
    if mha.bias_k is not None or mha.add_zero_attn:
        missing.append("no add_bias_kv / add_zero_attn")
    if missing:
        raise VitqError(
            f"{where} (nn.MultiheadAttention) cannot be rewritten into explicit attention: needs "
            + ", ".join(missing)
        )
    dim = mha.embed_dim
    qkv = nn.Linear(dim, 3 * dim, bias=mha.in_proj_bias is not None, device="meta")
    qkv.weight = mha.in_proj_weight
    qkv.bias = mha.in_proj_bias
    return canonical.attention(qkv, mha.out_proj, mha.num_heads)


def rewrite_encoder_block(m: nn.Module) -> nn.Module | None:
    """A timm ``Block`` for a torchvision ``EncoderBlock`` (by structure), else ``None``.

    Raises:
        VitqError: an EncoderBlock whose attention or MLP is not of the plain form (names what is missing).
    """
    mha = getattr(m, "self_attention", None)
    if not isinstance(mha, nn.MultiheadAttention) or not all(hasattr(m, a) for a in ("ln_1", "ln_2", "mlp")):
        return None
    where = f"{type(m).__name__}.self_attention"
    ln_1, ln_2, ff = m.get_submodule("ln_1"), m.get_submodule("ln_2"), m.get_submodule("mlp")
    parts = canonical.mlp_from_sequence(ff)
    if parts is None or parts[0] is not None:
        raise VitqError(
            f"{type(m).__name__}.mlp ({type(ff).__name__}) is not a Sequential [Linear, activation, Dropout, "
            "Linear, Dropout]: vitq cannot rewrite it into an Mlp (fc1, act, fc2)"
        )
    return canonical.block(ln_1, mha_attention(mha, where), ln_2, parts[1])
