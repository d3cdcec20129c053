"""The uniform baselines' torchao PT2E adapters (``QuantizerSpec.backends["pt2e"]`` points here).

Each returns a ``QuantizationSpec`` of the PT2E wing's uniform observers (the shared uniform numerics of
:mod:`vitq_plugins.ops.uniform`): per-channel symmetric int8 for ``site="weight"``, otherwise per-tensor
asymmetric uint8. Option ``percentile`` (0.99999). Conventions of FQ-ViT (arXiv 2111.13824, Sec. 4.1).
"""

from __future__ import annotations

from typing import Any

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.pt2e.extension import QuantizationSpec
from vitq_plugins.pt2e.extension import act_spec
from vitq_plugins.pt2e.extension import weight_spec

__all__ = ["minmax", "omse", "percentile"]


def _uniform(name: str, site: str, bits: int, options: dict[str, Any]) -> QuantizationSpec:
    if site == "weight":
        if name != "minmax":
            raise ConfigError(f"quantizer {name!r} cannot quantize weights in the pt2e backend (use minmax)")
        return weight_spec(bits)
    return act_spec(bits, name, float(options.get("percentile", 0.99999)))


def minmax(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """MinMax spec (weights: per-channel symmetric; activations: per-tensor asymmetric)."""
    return _uniform("minmax", site, bits, options)


def percentile(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """Percentile (EMA, FQ-ViT) activation spec."""
    return _uniform("percentile", site, bits, options)


def omse(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """OMSE activation spec (streaming histogram, all batches)."""
    return _uniform("omse", site, bits, options)
