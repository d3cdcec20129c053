"""MPTQ-style (after MPTQ-ViT, Tai & Wu, arXiv 2401.14895, which has no public code): SmoothQuant with a
bias term (SQ-b), a search for the post-GELU scale ratio (OPT-m). Greedy MP lives in the search module.
Every choice the abstract leaves open is a parameter; this is "inspired by", not bit-exact."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec
from vitq_plugins.core.specs import TransformSpec


def _refs(name: str) -> dict[str, str]:
    """This package's adapter of quantizer ``name`` for each wing."""
    return {
        "brevitas": f"vitq_plugins.papers.mptq.brevitas:{name}",
        "fx": f"vitq_plugins.papers.mptq.fx:{name}",
        "pt2e": f"vitq_plugins.papers.mptq.pt2e:{name}",
    }


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``optm``: two-region post-GELU quantizer, Δp = 2^m·Δn with m and Δn searched."""
    registry.register(
        "optm",
        QuantizerSpec(
            name="optm",
            sites=frozenset({"gelu_output"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="OPT-m: post-GELU twin scales (positive = 2^m * negative), m and scale searched on fc2 output MSE",
            paper="MPTQ-ViT arXiv 2401.14895 (abstract; MPTQ-style reconstruction)",
            backends=_refs("optm"),
        ),
    )


@hookimpl
def vitq_register_transforms(registry: Registry[TransformSpec]) -> None:
    """``sqb``: SmoothQuant with bias folded into each LayerNorm -> Linear pair (options ``sqb_*``)."""
    registry.register(
        "sqb",
        TransformSpec(
            "sqb",
            "vitq_plugins.papers.mptq.smoothing:apply_sqb",
            "SQ-b: SmoothQuant scales and a bias shift folded into LayerNorm and the Linears it feeds",
            "MPTQ-ViT arXiv 2401.14895 (MPTQ-style); SmoothQuant arXiv 2211.10438",
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``mptq``: SQ-b folded into LayerNorm/qkv/fc1, OPT-m on the fc2 input, MinMax elsewhere."""
    quantizers = {site: "minmax" for site in SITES}
    quantizers.update({"gelu_output": "optm"})
    registry.register(
        "mptq",
        RecipeSpec(
            "mptq",
            "MPTQ-style: SmoothQuant with bias (SQ-b) + OPT-m post-GELU twin scales + MinMax elsewhere",
            quantizers,
            transforms=("sqb",),
            paper="MPTQ-ViT arXiv 2401.14895 (MPTQ-style)",
        ),
    )
