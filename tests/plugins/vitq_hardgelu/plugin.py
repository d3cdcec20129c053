"""The plugin's hooks: the ``hardgelu`` quantizer and the ``ivit_hardgelu`` recipe (entry point ``vitq``)."""

from __future__ import annotations

from vitq_plugins import SITES
from vitq_plugins import QuantizerSpec
from vitq_plugins import RecipeSpec
from vitq_plugins import Registry
from vitq_plugins import hookimpl

PAPER = "hard sigmoid of GELU ~ x sigmoid(1.702x): arXiv 1606.08415 §2, h-swish arXiv 1905.02244 §5.2"


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``hardgelu``: integer hard-GELU on a signed symmetric input grid of ``bits``."""
    registry.register(
        "hardgelu",
        QuantizerSpec(
            name="hardgelu",
            sites=frozenset({"gelu_output"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="integer hard-GELU x*clip(1.702x/6+1/2,0,1) on the quantized input",
            paper=PAPER,
            backends={"brevitas": "vitq_hardgelu.brevitas:hardgelu", "fx": "vitq_hardgelu.fx:hardgelu"},
            wing_bits={"fx": (2, 8)},
            integer="vitq_hardgelu.integer",
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``ivit_hardgelu``: I-ViT's Shiftmax and I-LayerNorm, hard-GELU, MinMax elsewhere (integer-only)."""
    quantizers = {site: "minmax" for site in SITES}
    quantizers.update({"ln_input": "ilayernorm", "softmax_output": "shiftmax", "gelu_output": "hardgelu"})
    registry.register(
        "ivit_hardgelu",
        RecipeSpec(
            "ivit_hardgelu",
            "I-ViT with an integer hard-GELU (out-of-tree plugin)",
            quantizers,
            integer=True,
            paper=PAPER,
        ),
    )
