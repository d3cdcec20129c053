"""I-ViT (Li & Gu, ICCV 2023, arXiv 2207.01405): integer-only Shiftmax, ShiftGELU and I-LayerNorm with
dyadic requantization (§3.2–3.5)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec


def _refs(name: str) -> dict[str, str]:
    return {"brevitas": f"vitq_plugins.brevitas.factories:{name}", "fx": f"vitq_plugins.fx.factories:{name}"}


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``shiftmax``, ``shiftgelu`` and ``ilayernorm``."""
    registry.register(
        "shiftmax",
        QuantizerSpec(
            "shiftmax",
            frozenset({"softmax_output"}),
            2,
            16,
            8,
            "Shiftmax: integer softmax from shift-based exp (x*log2e by shifts, 2^r ~ r/2+1)",
            "I-ViT arXiv 2207.01405 §3.3, eqs. 9-14",
            _refs("shiftmax"),
        ),
    )
    registry.register(
        "shiftgelu",
        QuantizerSpec(
            "shiftgelu",
            frozenset({"gelu_output"}),
            2,
            16,
            8,
            "ShiftGELU: x*sigmoid(1.702x) with shift-based exps",
            "I-ViT arXiv 2207.01405 §3.4, eqs. 15-17",
            _refs("shiftgelu"),
        ),
    )
    registry.register(
        "ilayernorm",
        QuantizerSpec(
            "ilayernorm",
            frozenset({"ln_input"}),
            2,
            16,
            8,
            "I-LayerNorm: integer mean/variance, Newton integer sqrt, dyadic affine",
            "I-ViT arXiv 2207.01405 §3.5",
            _refs("ilayernorm"),
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
