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


#: the sites MPTQ-ViT's 4-bit single-precision setting quantizes. As in the baselines it compares with
#: (PTQ4ViT, RepQ-ViT), the LayerNorm inputs and the residual stream stay float. The attention map takes
#: RepQ-ViT's log-sqrt2 code (arXiv 2212.08254 §3.3; added here: the paper's attention quantizer is not
#: published), since a uniform 4-bit attention map loses most of the accuracy. FQ-ViT's LIS measured about as
#: well at 4 bits but has no 8-bit form in the FX wing.
_MPTQ_QUANTIZERS: dict[str, str] = {
    "weight": "minmax",
    "act": "minmax",
    "attn_matmul": "minmax",
    "softmax_output": "logsqrt2",
    "gelu_output": "optm",
}


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``mptq`` (the 4-bit single-precision setting) and ``mptq_fq`` (every site quantized, uniform attention).

    ``mptq``: SQ-b folded into LayerNorm/qkv/fc1, OPT-m on the fc2 input, log-sqrt2 on the attention map, MinMax on
    the Linear and matmul inputs; LayerNorm inputs and the residual stream float. ``mptq_fq``: the fully
    quantized form ("5-bit fully quantized" in the paper's mixed-precision claim), which was vitq's ``mptq``
    before the 4-bit setting: MinMax on every site but the post-GELU one, so Greedy MP can search LayerNorm inputs, the
    attention map and the residual too.
    """
    registry.register(
        "mptq",
        RecipeSpec(
            "mptq",
            "MPTQ-style: SQ-b + OPT-m post-GELU twin scales + log-sqrt2 attention map + MinMax on Linear/matmul inputs; "
            "LayerNorm inputs and residual float",
            _MPTQ_QUANTIZERS,
            transforms=("sqb",),
            paper="MPTQ-ViT arXiv 2401.14895 (MPTQ-style); log-sqrt2 from RepQ-ViT arXiv 2212.08254",
        ),
    )
    fully = {site: "minmax" for site in SITES}
    fully.update({"gelu_output": "optm"})
    registry.register(
        "mptq_fq",
        RecipeSpec(
            "mptq_fq",
            "MPTQ-style, fully quantized: SQ-b + OPT-m post-GELU twin scales + MinMax on every other site "
            "(LayerNorm inputs, attention map and residual included)",
            fully,
            transforms=("sqb",),
            paper="MPTQ-ViT arXiv 2401.14895 (MPTQ-style)",
        ),
    )
