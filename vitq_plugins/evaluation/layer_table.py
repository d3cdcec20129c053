"""The per-layer table (FQN, type, params, MACs, bits, BOPs) that the CLI and the explorer show.

It joins :mod:`.macs` (what each layer computes) and :mod:`.bops` (at which bits), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.evaluation.bops import bits_by_layer
from vitq_plugins.evaluation.macs import count_macs
from vitq_plugins.evaluation.macs import split_key

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.config import QuantConfig

__all__ = ["layer_table"]


def layer_table(
    model: nn.Module,
    input_size: Sequence[int],
    config: QuantConfig | None = None,
    sites: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per Linear/Conv layer and attention matmul: FQN, type, params, MACs and bits.

    Args:
        model: the FP model.
        input_size: ``(C, H, W)`` of one image.
        config: quantization config for the bit columns (``None``: 32-bit float everywhere).
        sites: the backend's ``"<fqn>:<site>" -> quantizer`` map, if known (see :mod:`.bops`).

    Returns:
        Dicts with ``fqn``, ``type`` (module class, ``matmul_qk`` or ``matmul_av``), ``params`` (weight
        and bias elements; 0 for matmuls), ``macs``, ``w_bits``, ``a_bits``, ``bops``.
    """
    macs = count_macs(model, input_size)
    bits = bits_by_layer(macs, config, sites)
    modules = dict(model.named_modules())
    rows: list[dict[str, Any]] = []
    for key, m in macs.items():
        fqn, kind = split_key(key)
        mod = modules[fqn]
        params = 0 if kind else sum(p.numel() for p in mod.parameters(recurse=False))
        w, a = bits[key]
        rows.append(
            {
                "fqn": key,
                "type": f"matmul_{kind}" if kind else type(mod).__name__,
                "params": int(params),
                "macs": int(m),
                "w_bits": w,
                "a_bits": a,
                "bops": int(m) * w * a,
            }
        )
    return rows
