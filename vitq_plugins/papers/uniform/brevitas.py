"""The Brevitas adapters of this package's quantizers (``QuantizerSpec.backends["brevitas"]`` points here)."""

from __future__ import annotations

from vitq_plugins.brevitas.factories import minmax
from vitq_plugins.brevitas.factories import omse
from vitq_plugins.brevitas.factories import percentile

__all__ = ["minmax", "omse", "percentile"]
