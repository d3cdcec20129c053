"""I-ViT's shift-based exponential at a higher internal precision (used by ``shiftmax_log2`` and ``shiftgelu_fine``).

I-ViT (arXiv 2207.01405, Sec. 3.3, eqs. 9-13): ``I_p = I + (I >> 1) - (I >> 4)`` (``x log2 e``), split as
``I_p = q I0 + r`` with ``I0 = floor(-1/S)`` (one octave), ``2^(r S)`` of the fraction approximated by
``1 + r S / 2``, then shifted by ``n - q``. Two things limit its precision on an 8-bit grid:

* ``I0 = floor(-1/S)`` spans one octave only to ``S`` (10% at ``S = 0.1``), and that error compounds over
  the ``q`` octaves. Here the grid is refined by a power of two to ``S <= 2^-10`` first (the codes ``<< k``:
  the same real values, no rounding; :func:`exp_constants`), so ``I0`` spans an octave to 0.1%;
* ``1 + r S / 2`` is up to 6% off ``2^(r S)``. Here the fraction is looked up in an integer table of ``|I0|``
  entries (:func:`pow2_table`, ``30 - n`` fraction bits);
* ``x log2 e ~ 1.4375 x`` is 0.36% low (3.7% at a distance of 10); two more shift terms make it 0.02%.

The result is ``e = table[-r] << (n - q)``: shifts and one table lookup, integer only, ``<= 2^30`` (``e^0``).
"""

from __future__ import annotations

import math

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._intmath import grid_refinement

__all__ = ["EXP_BITS", "EXP_GRID", "exp_constants", "pow2_table", "shift_exp_fine"]

#: the grid is refined to a scale ``<= EXP_GRID`` before the exponential
EXP_GRID = 2.0**-10
#: the exponential is ``table << (n - q) <= 2^EXP_BITS``
EXP_BITS = 30
_EXP_BITS = EXP_BITS


def pow2_table(x0: int, n: int) -> torch.Tensor:
    """``round(2^(30 - n) 2^(-j / |I0|))`` for ``j = 0..|I0| - 1``: ``2^(r S)`` of the fraction ``r = -j``."""
    if x0 >= 0:
        raise ValueError(f"x0 = floor(-1/S) must be negative, got {x0}")
    check_bits(n, lo=0, hi=_EXP_BITS, what="n")
    j = torch.arange(-x0, dtype=torch.float64)
    return torch.round(2.0 ** (_EXP_BITS - n) * torch.pow(2.0, -j / -x0)).to(torch.int64)


def exp_constants(scale: float) -> tuple[int, int]:
    """``(k, I0)``: the refinement ``k`` of the logit grid ``S`` (``S / 2^k <= 2^-10``) and ``I0 = floor(-2^k / S)``.

    Raises:
        ValueError: a scale that is not positive and finite.
    """
    k = grid_refinement(float(scale), EXP_GRID)
    return k, math.floor(-(2.0**k) / float(scale))


def shift_exp_fine(x: torch.Tensor, x0: int, n: int, table: torch.Tensor) -> torch.Tensor:
    """I-ViT's shift exponential of max-subtracted codes ``x <= 0`` with the ``2^r`` table of :func:`pow2_table`.

    ``I_p = x + (x >> 1) - (x >> 4) + (x >> 8) + (x >> 10)`` (``x log2 e`` to 0.02%; I-ViT's first three terms
    are 0.36% low), clamped at ``n I0``; ``q = floor(I_p / I0)``, ``r = I_p - q I0``;
    ``e = table[-r] << (n - q)`` (``<= 2^30``, scale ``2^-30`` relative to ``e^0``).
    """
    x = x.to(torch.int64)
    x = x + (x >> 1) - (x >> 4) + (x >> 8) + (x >> 10)
    x = torch.clamp(x, min=n * x0, max=0)
    q = torch.div(x, x0, rounding_mode="floor")
    r = x - q * x0
    return table[-r] << (n - q)
