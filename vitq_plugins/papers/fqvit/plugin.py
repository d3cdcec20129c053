"""FQ-ViT (Lin et al., IJCAI 2022, arXiv 2111.13824): Power-of-Two Factor scales for LayerNorm inputs
(PTS/PTF, eqs. 9–10) and 4-bit Log-Int-Softmax (LIS, eqs. 13–16)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec


def _refs(name: str) -> dict[str, str]:
    """This package's adapter of quantizer ``name`` for each wing."""
    return {
        "brevitas": f"vitq_plugins.papers.fqvit.brevitas:{name}",
        "fx": f"vitq_plugins.papers.fqvit.fx:{name}",
        "pt2e": f"vitq_plugins.papers.fqvit.pt2e:{name}",
    }


@hookimpl
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """``pts`` (LayerNorm inputs) and ``lis`` (softmax output)."""
    registry.register(
        "pts",
        QuantizerSpec(
            name="pts",
            sites=frozenset({"ln_input"}),
            min_bits=2,
            max_bits=16,
            default_bits=8,
            description="Power-of-Two Factor: one layer scale s, channel c uses s*2^alpha_c, alpha_c in 0..K",
            paper="FQ-ViT arXiv 2111.13824 §3.2, eqs. 9-10",
            backends=_refs("pts"),
            integer="vitq_plugins.papers.fqvit.integer",
            wing_bits={"fx": (2, 8), "pt2e": (2, 8)},  # FX: quint8/qint8; PT2E: uint8 q/dq
        ),
    )
    registry.register(
        "lis",
        QuantizerSpec(
            name="lis",
            sites=frozenset({"softmax_output"}),
            min_bits=2,
            max_bits=8,
            default_bits=4,
            description="Log-Int-Softmax: b-bit log2 codes of the attention map, attn@V as shifts",
            paper="FQ-ViT arXiv 2111.13824 §3.3, eqs. 13-16",
            backends=_refs("lis"),
            integer="vitq_plugins.papers.fqvit.integer",
            wing_bits={"fx": (2, 6)},  # FX: the shift-based attn@V of 8-bit containers
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
