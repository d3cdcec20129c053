"""The integer hard-GELU kernel shared by every form (Brevitas, FX, integer program).

On codes ``q`` of a symmetric grid of step ``S`` (``x = q S``), with ``b`` gate bits:

    m    = round(ALPHA S 2^(b + FRAC_BITS))                  (a constant per grid)
    gate = clip(floor(q m / 2^FRAC_BITS) + 2^(b-1), 0, 2^b)  (hard sigmoid of 1.702 x on 2^-b steps)
    y    = q gate                                            (scale S 2^-b)

so ``y S 2^-b ~ x clip(ALPHA x + 1/2, 0, 1)`` with ``ALPHA = 1.702 / 6`` (Hendrycks & Gimpel arXiv
1606.08415; h-swish of Howard et al. arXiv 1905.02244). ``CALLS`` counts the kernel's runs per form (tests).
"""

from __future__ import annotations

from collections import Counter

import torch

__all__ = ["ALPHA", "CALLS", "FRAC_BITS", "gate_multiplier", "hardgelu_codes", "hardgelu_float"]

#: slope of the hard sigmoid of ``1.702 x``: ``1.702 / 6``
ALPHA = 1.702 / 6
#: fractional bits of the gate multiplier
FRAC_BITS = 16
#: kernel runs per form (``"brevitas"``, ``"fx"``, ``"integer"``, ``"qonnx"``)
CALLS: Counter[str] = Counter()


def hardgelu_float(x: torch.Tensor) -> torch.Tensor:
    """The float hard-GELU ``x * clip(ALPHA x + 1/2, 0, 1)``."""
    return x * torch.clamp(ALPHA * x + 0.5, 0.0, 1.0)


def gate_multiplier(scale: float, gate_bits: int) -> int:
    """``m = round(ALPHA S 2^(b + FRAC_BITS))`` for the grid step ``S = scale``."""
    return int(round(ALPHA * float(scale) * 2.0 ** (gate_bits + FRAC_BITS)))


def hardgelu_codes(q: torch.Tensor, m: int, gate_bits: int) -> torch.Tensor:
    """``q * clip(floor(q m / 2^FRAC_BITS) + 2^(b-1), 0, 2^b)`` in int64 (scale ``S 2^-b``)."""
    q = q.to(torch.int64)
    t = torch.div(q * m, 2**FRAC_BITS, rounding_mode="floor") + 2 ** (gate_bits - 1)
    y: torch.Tensor = q * t.clamp(0, 2**gate_bits)
    return y
