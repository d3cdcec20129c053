"""torch's own ``nn.TransformerEncoderLayer`` / ``nn.TransformerEncoder`` (pre-norm: ``norm_first=True``,
``batch_first=True``), the usual bricks of a hand-written ViT: each layer becomes a timm ``Block`` (``self_attn``'s
packed ``in_proj`` -> ``qkv``, ``linear1``/``activation``/``linear2`` -> ``Mlp``), the encoder a
:class:`~vitq_plugins.adapters.canonical.BlockSequence` (its layers, then its ``norm``), as the encoder calls its
layers with mask keywords a timm Block does not take. A post-norm layer (``norm_first=False``, the 2017
Transformer) is not a pre-norm block and is refused by name. Pre-norm: Xiong et al., arXiv 2002.05745.
"""

from __future__ import annotations

from torch import nn
import torch.nn.functional as F

from vitq_plugins.adapters import canonical
from vitq_plugins.adapters.torchvision_vit import mha_attention
from vitq_plugins.core.errors import VitqError

__all__ = ["rewrite_encoder", "rewrite_encoder_layer"]

_FUNCTIONS: dict[object, type[nn.Module]] = {F.gelu: nn.GELU, F.relu: nn.ReLU, F.silu: nn.SiLU}


def _activation(layer: nn.TransformerEncoderLayer) -> nn.Module:
    act = layer.activation
    if isinstance(act, nn.Module):
        return act
    if act in _FUNCTIONS:
        return _FUNCTIONS[act]()
    raise VitqError(
        f"TransformerEncoderLayer.activation {act!r} is not a module nor one of F.gelu, F.relu, F.silu"
    )


def rewrite_encoder_layer(m: nn.Module) -> nn.Module | None:
    """timm ``Block`` for a pre-norm, batch-first ``nn.TransformerEncoderLayer``, else ``None``.

    Raises:
        VitqError: a post-norm layer (names ``norm_first``) or an attention that is not plain self-attention.
    """
    if not isinstance(m, nn.TransformerEncoderLayer):
        return None
    if not m.norm_first:
        raise VitqError(
            "TransformerEncoderLayer has norm_first=False (post-norm): vitq quantizes pre-norm blocks "
            "(norm_first=True) only"
        )
    attn = mha_attention(m.self_attn, "TransformerEncoderLayer.self_attn")
    return canonical.block(m.norm1, attn, m.norm2, canonical.mlp(m.linear1, _activation(m), m.linear2))


def rewrite_encoder(m: nn.Module) -> nn.Module | None:
    """:class:`~vitq_plugins.adapters.canonical.BlockSequence` for an ``nn.TransformerEncoder`` of such layers."""
    if not isinstance(m, nn.TransformerEncoder):
        return None
    blocks = [rewrite_encoder_layer(layer) for layer in m.layers]
    return canonical.BlockSequence([b for b in blocks if b is not None], m.norm)
