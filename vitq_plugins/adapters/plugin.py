"""The built-in model adapters: torchvision ``VisionTransformer``, torch's ``nn.TransformerEncoder``, the plain
user ViT and attention found from its traced graph (registered like a paper)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import ModelAdapterSpec


@hookimpl
def vitq_register_model_adapters(registry: Registry[ModelAdapterSpec]) -> None:
    """``torchvision_vit``, ``plain_transformer``, ``plain_attention``, ``traced_attention``, ``torch_encoder`` and
    ``torch_encoder_layer``."""
    registry.register(
        "torchvision_vit",
        ModelAdapterSpec(
            "torchvision_vit",
            "vitq_plugins.adapters.torchvision_vit:rewrite_encoder_block",
            "torchvision EncoderBlock (nn.MultiheadAttention, MLPBlock) -> timm Block",
        ),
    )
    registry.register(
        "plain_transformer",
        ModelAdapterSpec(
            "plain_transformer",
            "vitq_plugins.adapters.plain:rewrite_transformer",
            "user transformer with layers=[[attn(to_qkv, nn.Softmax), feed-forward]] -> timm Blocks",
        ),
    )
    registry.register(
        "plain_attention",
        ModelAdapterSpec(
            "plain_attention",
            "vitq_plugins.adapters.plain:rewrite_attention",
            "user attention (to_qkv or to_q/to_k/to_v, heads, nn.Softmax, to_out) -> timm Attention",
        ),
    )
    registry.register(
        "traced_attention",
        ModelAdapterSpec(
            "traced_attention",
            "vitq_plugins.adapters.graph:rewrite_traced_attention",
            "any attention whose fx graph is q/k/v Linears -> matmul -> softmax -> matmul -> Linear -> timm Attention",
        ),
    )
    registry.register(
        "torch_encoder",
        ModelAdapterSpec(
            "torch_encoder",
            "vitq_plugins.adapters.torch_encoder:rewrite_encoder",
            "nn.TransformerEncoder of pre-norm batch-first layers -> timm Blocks and its final norm",
        ),
    )
    registry.register(
        "torch_encoder_layer",
        ModelAdapterSpec(
            "torch_encoder_layer",
            "vitq_plugins.adapters.torch_encoder:rewrite_encoder_layer",
            "nn.TransformerEncoderLayer (norm_first=True, batch_first=True) -> timm Block",
        ),
    )
