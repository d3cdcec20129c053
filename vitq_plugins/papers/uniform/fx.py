"""The torch.ao FX adapters of this package's quantizers (``QuantizerSpec.backends["fx"]`` points here)."""

from __future__ import annotations

from vitq_plugins.fx.factories import minmax
from vitq_plugins.fx.factories import omse
from vitq_plugins.fx.factories import percentile

__all__ = ["minmax", "omse", "percentile"]
