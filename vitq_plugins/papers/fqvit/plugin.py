"""FQ-ViT (Lin et al., IJCAI 2022, arXiv 2111.13824): Power-of-Two Factor scales for LayerNorm inputs
(PTS/PTF, eqs. 9–10) and 4-bit Log-Int-Softmax (LIS, eqs. 13–16)."""

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
    """``pts`` (LayerNorm inputs) and ``lis`` (softmax output)."""
    registry.register(
        "pts",
        QuantizerSpec(
            "pts",
            frozenset({"ln_input"}),
            2,
            16,
            8,
            "Power-of-Two Factor: one layer scale s, channel c uses s*2^alpha_c, alpha_c in 0..K",
            "FQ-ViT arXiv 2111.13824 §3.2, eqs. 9-10",
            _refs("pts"),
        ),
    )
    registry.register(
        "lis",
        QuantizerSpec(
            "lis",
            frozenset({"softmax_output"}),
            2,
            8,
            4,
            "Log-Int-Softmax: b-bit log2 codes of the attention map, attn@V as shifts",
            "FQ-ViT arXiv 2111.13824 §3.3, eqs. 13-16",
            _refs("lis"),
        ),
    )


@hookimpl
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """``fqvit``: PTS on LayerNorm inputs, LIS on the softmax, MinMax elsewhere."""
    quantizers = {site: "minmax" for site in SITES}
    quantizers.update({"ln_input": "pts", "softmax_output": "lis"})
    registry.register(
        "fqvit",
        RecipeSpec(
            "fqvit",
            "FQ-ViT: PTS on LayerNorm inputs + LIS on the attention map + MinMax elsewhere",
            quantizers,
            integer=True,
            paper="FQ-ViT arXiv 2111.13824",
        ),
    )
