"""I-ViT (Li & Gu, ICCV 2023, arXiv 2207.01405): integer-only Shiftmax, ShiftGELU and I-LayerNorm with
dyadic requantization (§3.2–3.5)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec


def _refs(name: str) -> dict[str, str]:
    """This package's adapter of quantizer ``name`` for each wing."""
    return {
        "brevitas": f"vitq_plugins.papers.ivit.brevitas:{name}",
        "fx": f"vitq_plugins.papers.ivit.fx:{name}",
    }


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``shiftmax``, ``shiftgelu`` and ``ilayernorm``."""
    registry.register(
        "shiftmax",
        QuantizerSpec(
            name="shiftmax",
            sites=frozenset({"softmax_output"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="Shiftmax: integer softmax from shift-based exp (x*log2e by shifts, 2^r ~ r/2+1)",
            paper="I-ViT arXiv 2207.01405 §3.3, eqs. 9-14",
            backends=_refs("shiftmax"),
            integer="vitq_plugins.papers.ivit.integer",
        ),
    )
    registry.register(
        "shiftgelu",
        QuantizerSpec(
            name="shiftgelu",
            sites=frozenset({"gelu_output"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="ShiftGELU: x*sigmoid(1.702x) with shift-based exps",
            paper="I-ViT arXiv 2207.01405 §3.4, eqs. 15-17",
            backends=_refs("shiftgelu"),
            integer="vitq_plugins.papers.ivit.integer",
        ),
    )
    registry.register(
        "ilayernorm",
        QuantizerSpec(
            name="ilayernorm",
            sites=frozenset({"ln_input"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="I-LayerNorm: integer mean/variance, Newton integer sqrt, dyadic affine",
            paper="I-ViT arXiv 2207.01405 §3.5",
            backends=_refs("ilayernorm"),
            integer="vitq_plugins.papers.ivit.integer",
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``ivit``: Shiftmax, ShiftGELU, I-LayerNorm, dyadic requantization, MinMax elsewhere."""
    quantizers = {site: "minmax" for site in SITES}
    quantizers.update({"ln_input": "ilayernorm", "softmax_output": "shiftmax", "gelu_output": "shiftgelu"})
    registry.register(
        "ivit",
        RecipeSpec(
            "ivit",
            "I-ViT: Shiftmax + ShiftGELU + I-LayerNorm with dyadic requantization (PTQ use of a QAT method)",
            quantizers,
            integer=True,
            paper="I-ViT arXiv 2207.01405",
        ),
    )
