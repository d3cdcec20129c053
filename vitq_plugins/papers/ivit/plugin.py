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
        "pt2e": f"vitq_plugins.papers.ivit.pt2e:{name}",
    }


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``shiftmax``, ``shiftmax_log2``, ``shiftgelu``, ``shiftgelu_fine`` and ``ilayernorm``."""
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
        "shiftmax_log2",
        QuantizerSpec(
            name="shiftmax_log2",
            sites=frozenset({"softmax_output"}),
            min_bits=2,
            max_bits=8,
            default_bits=4,
            description="Shiftmax's shift-based exp with a b-bit log2 output code (LIS-style), attn@V as shifts",
            paper="I-ViT arXiv 2207.01405 §3.3 eqs. 9-13 (exp) + FQ-ViT arXiv 2111.13824 §3.3 eqs. 13-16 (code)",
            backends=_refs("shiftmax_log2"),
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
        "shiftgelu_fine",
        QuantizerSpec(
            name="shiftgelu_fine",
            sites=frozenset({"gelu_output"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="ShiftGELU x*sigmoid(1.702x) on a refined grid, 2^r table, per-element stabiliser",
            paper="I-ViT arXiv 2207.01405 §3.4, eqs. 15-17 (higher internal precision added)",
            backends=_refs("shiftgelu_fine"),
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
    """``ivit``: Shiftmax (with a log2 output code), ShiftGELU, I-LayerNorm, dyadic requantization, MinMax
    elsewhere.

    The paper's uniform Shiftmax output (``shiftmax``) collapses with 4-bit attention and with 197 tokens; the
    recipe uses ``shiftmax_log2`` and ``shiftgelu_fine`` (the same formulas at a higher internal precision).
    The faithful recipe is ``QuantConfig("ivit", layers={"re:.*": {"quantizers": {"softmax_output":
    "shiftmax", "gelu_output": "shiftgelu"}}})``.

    I-LayerNorm's input, the residual stream, takes at least 8 bits (``min_bits``): I-ViT's code keeps it at 16
    bits (``QuantAct(16)`` before each LayerNorm); 8 is the widest grid every wing holds (FX/PT2E containers are
    8-bit). An explicit ``a_bits`` for a LayerNorm in ``layers`` still sets it lower.
    """
    quantizers = {site: "minmax" for site in SITES}
    quantizers.update(
        {"ln_input": "ilayernorm", "softmax_output": "shiftmax_log2", "gelu_output": "shiftgelu_fine"}
    )
    registry.register(
        "ivit",
        RecipeSpec(
            "ivit",
            "I-ViT: Shiftmax (log2-coded output) + ShiftGELU + I-LayerNorm with dyadic requantization (PTQ)",
            quantizers,
            integer=True,
            paper="I-ViT arXiv 2207.01405",
            min_bits={"ln_input": 8},
        ),
    )
