"""The Brevitas adapters of this package's quantizers (``QuantizerSpec.backends["brevitas"]`` points here)."""

from __future__ import annotations

from vitq_plugins.brevitas.factories import ilayernorm
from vitq_plugins.brevitas.factories import shiftgelu
from vitq_plugins.brevitas.factories import shiftmax

__all__ = ["ilayernorm", "shiftgelu", "shiftmax"]
