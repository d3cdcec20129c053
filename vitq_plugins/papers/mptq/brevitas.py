"""The Brevitas adapters of this package's quantizers (``QuantizerSpec.backends["brevitas"]`` points here)."""

from __future__ import annotations

from vitq_plugins.brevitas.factories import optm

__all__ = ["optm"]
