"""The torch.ao FX adapters of this package's quantizers (``QuantizerSpec.backends["fx"]`` points here)."""

from __future__ import annotations

from vitq_plugins.fx.factories import ilayernorm
from vitq_plugins.fx.factories import shiftgelu
from vitq_plugins.fx.factories import shiftmax

__all__ = ["ilayernorm", "shiftgelu", "shiftmax"]
