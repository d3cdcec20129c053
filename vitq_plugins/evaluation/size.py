"""Model size at the configured weight bit-widths.

Every parameter counts: Linear/Conv weights at their ``w_bits`` (32 when the layer is ``keep_float``,
when there is no config, or when the backend's ``sites`` map has no ``"<fqn>:weight"`` entry for it);
everything else (biases, LayerNorm, class token, position embedding) at 32 bits. Quantization scales
and zero-points are not counted (a few values per tensor or channel). 1 MB = 10⁶ bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from torch import nn

from vitq_plugins.evaluation.macs import compute_layers

if TYPE_CHECKING:
    from vitq_plugins.config import QuantConfig

__all__ = ["BYTES_PER_MB", "weight_bits", "weight_size_mb"]

BYTES_PER_MB = 1_000_000
_FLOAT = 32


def weight_bits(
    model: nn.Module, config: QuantConfig | None = None, sites: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Weight bit-width of every Linear/Conv layer by FQN."""
    out: dict[str, int] = {}
    for fqn in compute_layers(model):
        if config is None:
            out[fqn] = _FLOAT
            continue
        res = config.resolve(fqn)
        quantized = not res.keep_float and (sites is None or f"{fqn}:weight" in sites)
        out[fqn] = res.w_bits if quantized else _FLOAT
    return out


def weight_size_mb(
    model: nn.Module, config: QuantConfig | None = None, sites: Mapping[str, str] | None = None
) -> float:
    """Parameter storage in MB (10⁶ bytes) at the configured bits; the FP size without ``config``.

    Example:
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> weight_size_mb(vit_test_tiny())
        0.457
    """
    bits = weight_bits(model, config, sites)
    total_bits = 0
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        b = bits[owner] if leaf == "weight" and owner in bits else _FLOAT
        total_bits += p.numel() * b
    return total_bits / 8 / BYTES_PER_MB
