"""The Brevitas adapters of the uniform baselines (``QuantizerSpec.backends["brevitas"]`` points here).

MinMax, Percentile (FQ-ViT arXiv 2111.13824 §4.1 baselines) and OMSE (Choukroun et al. arXiv 1902.06822) on the
wing's generic uniform injectors: per-tensor activations at every activation site, per-output-channel
symmetric MinMax weights (``minmax`` only). Options (from ``QuantConfig.options``, unknown keys ignored):
``percentile`` (0.99999), ``omse_stats`` ("all"|"last").

Example:
    >>> inj = percentile("act", 6, percentile=0.999)
    >>> int(inj.bit_width), float(inj.percentile)
    (6, 0.999)
"""

from __future__ import annotations

from typing import Any

from vitq_plugins.brevitas.extension import ACT_SITES
from vitq_plugins.brevitas.extension import Int8WeightPerChannelMinMax
from vitq_plugins.brevitas.extension import Uint8ActPerTensorMinMax
from vitq_plugins.brevitas.extension import Uint8ActPerTensorOMSE
from vitq_plugins.brevitas.extension import Uint8ActPerTensorPercentile
from vitq_plugins.brevitas.extension import require_site
from vitq_plugins.core.errors import VitqError

__all__ = ["minmax", "omse", "percentile"]


def _uniform(name: str, base: Any, site: str, bits: int, options: dict[str, Any]) -> Any:
    if site == "weight":
        if name != "minmax":
            raise VitqError(f"quantizer {name!r} has no weight form; use 'minmax' for weights")
        return Int8WeightPerChannelMinMax.let(bit_width=bits, vitq_name=name)
    require_site(name, site, ACT_SITES)
    return base.let(
        bit_width=bits,
        vitq_name=name,
        percentile=float(options.get("percentile", 0.99999)),
        omse_stats=str(options.get("omse_stats", "all")),
    )


def minmax(site: str, bits: int, **options: Any) -> Any:
    """Uniform MinMax: per-channel symmetric weights, per-tensor asymmetric activations."""
    return _uniform("minmax", Uint8ActPerTensorMinMax, site, bits, options)


def percentile(site: str, bits: int, **options: Any) -> Any:
    """Uniform per-tensor activations clipped at a percentile (FQ-ViT baseline)."""
    return _uniform("percentile", Uint8ActPerTensorPercentile, site, bits, options)


def omse(site: str, bits: int, **options: Any) -> Any:
    """Uniform per-tensor activations with the L2-optimal shrunk range (OMSE)."""
    return _uniform("omse", Uint8ActPerTensorOMSE, site, bits, options)
