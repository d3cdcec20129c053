"""RepQ-ViT (arXiv 2212.08254) pieces as vitq plugins: the ``repq_reparam`` transform (post-LayerNorm scale
reparameterization, §3.2), the ``logsqrt2`` attention-map quantizer (§3.3) and recipe ``repq``."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec
from vitq_plugins.core.specs import TransformSpec


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``logsqrt2``: RepQ-ViT's log-sqrt2 attention-map quantizer."""
    registry.register(
        "logsqrt2",
        QuantizerSpec(
            name="logsqrt2",
            sites=frozenset({"softmax_output"}),
            min_bits=2,
            max_bits=8,
            default_bits=4,
            description="log-sqrt2: b-bit codes c of the attention map, value delta * 2^(-c/2), 0 below the last level",
            paper="RepQ-ViT arXiv 2212.08254 §3.3, eq. 10",
            backends={
                "brevitas": "vitq_plugins.papers.repq.brevitas:logsqrt2",
                "fx": "vitq_plugins.papers.repq.fx:logsqrt2",
                "pt2e": "vitq_plugins.papers.repq.pt2e:logsqrt2",
            },
        ),
    )


@hookimpl
def vitq_register_transforms(registry: Registry[TransformSpec]) -> None:
    """``repq_reparam``: per-channel post-LayerNorm steps folded into LayerNorm and qkv/fc1 (option ``repq_reparam_bits``)."""
    registry.register(
        "repq_reparam",
        TransformSpec(
            "repq_reparam",
            "vitq_plugins.papers.repq.transform:apply_repq_reparam",
            "RepQ-ViT scale reparameterization: per-channel post-LayerNorm steps folded into LayerNorm and qkv/fc1",
            "RepQ-ViT arXiv 2212.08254 §3.2, eqs. 5-8",
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``repq``: RepQ-ViT's reparameterized post-LayerNorm activations and log-sqrt2 attention map, MPTQ's
    OPT-m on the post-GELU activation, MinMax elsewhere; LayerNorm inputs and the residual stream stay float
    (as in RepQ-ViT, whose LayerNorm is float: zkkli/RepQ-ViT issue #1)."""
    quantizers = {site: "minmax" for site in ("weight", "act", "attn_matmul")}
    quantizers.update({"softmax_output": "logsqrt2", "gelu_output": "optm"})
    registry.register(
        "repq",
        RecipeSpec(
            "repq",
            "RepQ-ViT reparameterized post-LayerNorm activations + log-sqrt2 attention map + OPT-m post-GELU "
            "(MPTQ-ViT) + MinMax elsewhere; LayerNorm inputs and residuals float",
            quantizers,
            transforms=("repq_reparam",),
            paper="RepQ-ViT arXiv 2212.08254 §3.2-3.3; OPT-m from MPTQ-ViT arXiv 2401.14895",
        ),
    )
