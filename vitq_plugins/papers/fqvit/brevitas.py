"""The Brevitas adapters of this package's quantizers (``QuantizerSpec.backends["brevitas"]`` points here)."""

from __future__ import annotations

from vitq_plugins.brevitas.factories import lis
from vitq_plugins.brevitas.factories import pts

__all__ = ["lis", "pts"]
