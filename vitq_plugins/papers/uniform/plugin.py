"""Uniform affine baselines (MinMax, Percentile, OMSE) and the ``minmax`` recipe.

``minmax`` on every site is FQ-ViT's "vanilla fully quantized" baseline (arXiv 2111.13824, Table 1).
Weights are quantized per output channel symmetric, activations per tensor asymmetric.
"""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec

_ACT_SITES = frozenset(s for s in SITES if s != "weight")


def _refs(name: str) -> dict[str, str]:
    """This package's adapter of quantizer ``name`` for each wing."""
    return {
        "brevitas": f"vitq_plugins.papers.uniform.brevitas:{name}",
        "fx": f"vitq_plugins.papers.uniform.fx:{name}",
        "pt2e": f"vitq_plugins.papers.uniform.pt2e:{name}",
    }


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """MinMax (every site), Percentile and OMSE (activation sites)."""
    registry.register(
        "minmax",
        QuantizerSpec(
            name="minmax",
            sites=frozenset(SITES),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="uniform MinMax: weights per-channel symmetric, activations per-tensor asymmetric",
            paper="FQ-ViT arXiv 2111.13824 §4.1 (baseline)",
            backends=_refs("minmax"),
            wing_bits={"fx": (2, 8), "pt2e": (2, 8)},  # FX: quint8/qint8; PT2E: uint8/int8 q/dq
        ),
    )
    registry.register(
        "percentile",
        QuantizerSpec(
            name="percentile",
            sites=_ACT_SITES,
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="uniform, range clipped at the 99.999th percentile (EMA over batches)",
            paper="FQ-ViT arXiv 2111.13824 Table 1 (baseline)",
            backends=_refs("percentile"),
            wing_bits={"fx": (2, 8), "pt2e": (2, 8)},  # FX: quint8/qint8; PT2E: uint8/int8 q/dq
        ),
    )
    registry.register(
        "omse",
        QuantizerSpec(
            name="omse",
            sites=_ACT_SITES,
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="uniform, range shrunk to minimise the L2 quantization error",
            paper="OMSE, Choukroun et al. 2019; FQ-ViT Table 1 (baseline)",
            backends=_refs("omse"),
            wing_bits={"fx": (2, 8), "pt2e": (2, 8)},  # FX: quint8/qint8; PT2E: uint8/int8 q/dq
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``minmax``: every site uniform MinMax."""
    registry.register(
        "minmax",
        RecipeSpec(
            "minmax",
            "every site uniform MinMax (FQ-ViT's vanilla fully-quantized baseline)",
            {site: "minmax" for site in SITES},
            paper="FQ-ViT arXiv 2111.13824 Fig. 1 / Table 1",
        ),
    )
