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
    return {"brevitas": f"vitq_plugins.brevitas.factories:{name}", "fx": f"vitq_plugins.fx.factories:{name}"}


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """MinMax (every site), Percentile and OMSE (activation sites)."""
    registry.register(
        "minmax",
        QuantizerSpec(
            "minmax",
            frozenset(SITES),
            2,
            16,
            8,
            "uniform MinMax: weights per-channel symmetric, activations per-tensor asymmetric",
            "FQ-ViT arXiv 2111.13824 §4.1 (baseline)",
            _refs("minmax"),
        ),
    )
    registry.register(
        "percentile",
        QuantizerSpec(
            "percentile",
            _ACT_SITES,
            2,
            16,
            8,
            "uniform, range clipped at the 99.999th percentile (EMA over batches)",
            "FQ-ViT arXiv 2111.13824 Table 1 (baseline)",
            _refs("percentile"),
        ),
    )
    registry.register(
        "omse",
        QuantizerSpec(
            "omse",
            _ACT_SITES,
            2,
            16,
            8,
            "uniform, range shrunk to minimise the L2 quantization error",
            "OMSE, Choukroun et al. 2019; FQ-ViT Table 1 (baseline)",
            _refs("omse"),
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
