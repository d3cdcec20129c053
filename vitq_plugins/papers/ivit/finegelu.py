"""ShiftGELU at a higher internal precision: I-ViT's ``x sigmoid(1.702 x)`` on the fine shift exponential.

I-ViT's ShiftGELU (arXiv 2207.01405, Sec. 3.4, eqs. 15-17) computes ``sigmoid(1.702 x) = e^(x - m) /
(e^(x - m) + e^(-m))`` with Shiftmax's exponential, the row maximum ``m`` as stabiliser and an 8-bit sigmoid
from a truncated reciprocal. On the reference model's fc1 outputs that is 2-4x the error of the 8-bit input
grid (``tests/vitq_plugins/papers/test_real_activations.py``). Here, as the same formula:

* the exponential is :func:`~vitq_plugins.papers.ivit.fineexp.shift_exp_fine` (grid refined to ``2^-10``,
  ``2^r`` from a table) instead of ``1 + r/2`` on the raw grid;
* the stabiliser is per element, ``m = max(x, 0)`` (one of the two exponentials is ``e^0``), so a row with a
  large maximum does not floor the small ones at ``sigmoid ~ 1/2``;
* the sigmoid has ``out_bits`` (default 16) bits from one exact integer division.

Output ``(x << k) * sigma`` at scale ``S / 2^(k + out_bits - 1)``; the caller requantizes it (fc2's input).
"""

from __future__ import annotations

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.papers.ivit.fineexp import exp_constants
from vitq_plugins.papers.ivit.fineexp import pow2_table
from vitq_plugins.papers.ivit.fineexp import shift_exp_fine
from vitq_plugins.papers.ivit.shift import GELU_SIGMOID_FACTOR

__all__ = ["gelu_constants", "shiftgelu_fine", "shiftgelu_fine_unit"]


def gelu_constants(scale: float) -> tuple[int, int]:
    """``(k, I0)`` of the exponential of ``1.702 x`` on grid ``scale`` (``fineexp.exp_constants(1.702 S)``)."""
    return exp_constants(GELU_SIGMOID_FACTOR * float(scale))


def shiftgelu_fine_unit(
    x: torch.Tensor, x0: int, table: torch.Tensor, *, n: int = 20, out_bits: int = 16
) -> torch.Tensor:
    """``x * sigmoid_int(1.702 x)`` of refined codes ``x`` (``I0``, ``table`` of :func:`gelu_constants` and
    ``fineexp.pow2_table(I0, n)``): integer tensor ops only.

    Returns:
        int64 ``x * sigma`` with ``0 <= sigma <= 2^(out_bits - 1)``.
    """
    check_int_tensor(x, "x")
    check_bits(out_bits, lo=2, hi=31, what="out_bits")
    x = x.to(torch.int64)
    m = x.clamp(min=0)
    e_x = shift_exp_fine(x - m, x0, n, table)
    e_m = shift_exp_fine(-m, x0, n, table)
    sigma = torch.div(e_x << (out_bits - 1), e_x + e_m, rounding_mode="floor")
    return x * sigma


def shiftgelu_fine(
    x_int: torch.Tensor, scale: torch.Tensor | float, *, n: int = 20, out_bits: int = 16
) -> tuple[torch.Tensor, float]:
    """ShiftGELU at a higher internal precision (see the module docstring).

    Args:
        x_int: Integer input, real value ``x_int * scale``, ``|x_int| < 2^31``.
        scale: Per-tensor input scale ``S``.
        n: Octaves of the exponential before it floors (0..30).
        out_bits: Bits of the integer sigmoid (2..31).

    Returns:
        ``(out_int, out_scale)``: int64 and ``S / 2^(k + out_bits - 1)``.

    Raises:
        ValueError: On bad inputs.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.numel() != 1:
        raise ValueError(f"scale must be a scalar (per-tensor), got shape {tuple(s.shape)}")
    check_positive(s, "scale")
    k, x0 = gelu_constants(float(s))
    out = shiftgelu_fine_unit(x_int.to(torch.int64) << k, x0, pow2_table(x0, n), n=n, out_bits=out_bits)
    return out, float(s) / 2.0 ** (k + out_bits - 1)
