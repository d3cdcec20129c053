"""The torch.ao FX adapters of this package's quantizers (``QuantizerSpec.backends["fx"]`` points here)."""

from __future__ import annotations

from vitq_plugins.fx.factories import lis
from vitq_plugins.fx.factories import pts

__all__ = ["lis", "pts"]
