"""The uniform baselines' torch.ao FX adapters (``QuantizerSpec.backends["fx"]`` points here).

Each returns an observer constructor of the FX wing's uniform observers (the shared uniform numerics of
:mod:`vitq_plugins.ops.uniform`): :class:`~vitq_plugins.fx.extension.WeightObserver` for ``site="weight"``
(per-channel symmetric qint8), otherwise :class:`~vitq_plugins.fx.extension.UniformActObserver` (per-tensor
asymmetric quint8). Option ``percentile`` (0.99999). Conventions of FQ-ViT (arXiv 2111.13824, Sec. 4.1).
"""

from __future__ import annotations

from typing import Any

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.extension import WeightObserver
from vitq_plugins.fx.extension import check_container_bits

__all__ = ["minmax", "omse", "percentile"]


def _uniform(name: str, site: str, bits: int, options: dict[str, Any]) -> Any:
    check_container_bits(name, site, bits)
    if site == "weight":
        if name != "minmax":
            raise VitqError(f"quantizer {name!r} cannot quantize weights in the fx backend")
        return WeightObserver.with_args(bits=bits)
    kw: dict[str, Any] = {"bits": bits, "method": name}
    if name == "percentile":
        kw["percentile"] = float(options.get("percentile", 0.99999))
    return UniformActObserver.with_args(**kw)


def minmax(site: str, bits: int, **options: Any) -> Any:
    """MinMax observer constructor (weights: per-channel symmetric; activations: per-tensor asymmetric)."""
    return _uniform("minmax", site, bits, options)


def percentile(site: str, bits: int, **options: Any) -> Any:
    """Percentile (EMA, FQ-ViT) activation observer constructor."""
    return _uniform("percentile", site, bits, options)


def omse(site: str, bits: int, **options: Any) -> Any:
    """OMSE activation observer constructor (streaming histogram, all batches)."""
    return _uniform("omse", site, bits, options)
