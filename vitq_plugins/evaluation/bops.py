"""Bit operations (BOPs): ``Σ MACs × b₁ × b₂`` over layers (Baskin et al.; HAWQ-V3's budget metric).

Bit pairs per :func:`~vitq_plugins.evaluation.macs.count_macs` key:

- Linear/Conv ``fqn``: ``(w_bits, a_bits)`` of ``config.resolve(fqn)``;
- ``"<attn>@qk"`` (``q @ kᵀ``, both activations): ``(a_bits, a_bits)``;
- ``"<attn>@av"`` (``attn @ v``): ``(attn_bits, a_bits)``;
- ``keep_float`` layers, keys missing from ``bits_by_layer`` and everything without a config: 32 x 32.

With the backend's ``sites`` map (``"<fqn>:<site>" -> quantizer``), a Linear/Conv with no site at all
is float (32 x 32) and one without a ``weight`` site keeps 32-bit weights; an attention matmul is
quantized only when the attention module has an ``attn_matmul`` or ``softmax_output`` site.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vitq_plugins.core.errors import VitqError
from vitq_plugins.evaluation.macs import split_key

if TYPE_CHECKING:
    from vitq_plugins.config import QuantConfig

__all__ = ["FLOAT_BITS", "bits_by_layer", "bops"]

FLOAT_BITS = 32
_ATTN_SITES = ("attn_matmul", "softmax_output")


def _layer_sites(fqn: str, sites: Mapping[str, str]) -> set[str]:
    prefix = fqn + ":"
    return {k[len(prefix) :] for k in sites if k.startswith(prefix)}


def _attn_quantized(fqn: str, sites: Mapping[str, str]) -> bool:
    for key in sites:
        owner, _, site = key.rpartition(":")
        if site in _ATTN_SITES and (owner == fqn or owner.startswith(fqn + ".")):
            return True
    return False


def bits_by_layer(
    keys: Iterable[str],
    config: QuantConfig | None = None,
    sites: Mapping[str, str] | None = None,
) -> dict[str, tuple[int, int]]:
    """The ``(b₁, b₂)`` operand bits of every MAC key (see the module docstring for the rules)."""
    out: dict[str, tuple[int, int]] = {}
    for key in keys:
        fqn, kind = split_key(key)
        if config is None:
            out[key] = (FLOAT_BITS, FLOAT_BITS)
            continue
        res = config.resolve(fqn)
        if res.keep_float:
            out[key] = (FLOAT_BITS, FLOAT_BITS)
        elif kind:
            if sites is not None and not _attn_quantized(fqn, sites):
                out[key] = (FLOAT_BITS, FLOAT_BITS)
            else:
                out[key] = (res.a_bits, res.a_bits) if kind == "qk" else (res.attn_bits, res.a_bits)
        elif sites is None:
            out[key] = (res.w_bits, res.a_bits)
        else:
            have = _layer_sites(fqn, sites)
            if not have:
                out[key] = (FLOAT_BITS, FLOAT_BITS)
            else:
                out[key] = (res.w_bits if "weight" in have else FLOAT_BITS, res.a_bits)
    return out


def bops(macs_by_layer: Mapping[str, int], bits_by_layer: Mapping[str, tuple[int, int]]) -> int:
    """``Σ MACs × b₁ × b₂``; layers missing from ``bits_by_layer`` count at 32 x 32.

    Example:
        >>> bops({"fc": 100, "blk.attn@av": 10}, {"fc": (4, 8), "blk.attn@av": (8, 8)})
        3840

    Raises:
        VitqError: a negative MAC count or bits outside 1..32.
    """
    total = 0
    for key, macs in macs_by_layer.items():
        b1, b2 = bits_by_layer.get(key, (FLOAT_BITS, FLOAT_BITS))
        if macs < 0 or not (1 <= b1 <= FLOAT_BITS and 1 <= b2 <= FLOAT_BITS):
            raise VitqError(f"layer {key!r}: MACs {macs} and bits ({b1}, {b2}) must be >= 0 and in 1..32")
        total += int(macs) * int(b1) * int(b2)
    return total
