"""Shiftmax with a log2 output code: I-ViT's shift-based exponential, an FQ-ViT-style log2 attention code.

I-ViT's Shiftmax (arXiv 2207.01405, Sec. 3.3, eqs. 9-14) ends with ``out = exp * floor((2^31 - 1) / sum) >>
(32 - k_out)``: a *uniform* code of step ``2^-(k_out - 1)``. With 4-bit attention that step is 1/8, and with
197 tokens (ViT-S/B at 224 px) 99% of the probabilities are below 1/128, the 8-bit step: the attention map
collapses to a few entries per row. Here the probabilities are encoded like FQ-ViT's Log-Int-Softmax (arXiv
2111.13824, Sec. 3.3, eqs. 13-16): ``code = round(2^f log2(sum / exp))``, rounded in the log domain, with
``f = max(0, b - 5)`` fraction bits (``b = 4``: FQ-ViT's 4-bit LIS, 16 octaves; ``b = 8``: steps of 1/8
octave over 32 octaves) and the underflow code ``2^b`` (probability 0). ``attn @ V`` consumes the codes as
``P_int[code] @ V`` with the integer probabilities ``P_int = round(2^(F - code / 2^f))`` of :func:`code_table`
(``f = 0``: exactly FQ-ViT eq. 16's shifts ``V >> code``).

The exponential is I-ViT's (eqs. 9-13): ``I_p = I + (I >> 1) - (I >> 4)`` (``x log2 e``), ``I_p = q I0 + r``
with ``I0 = floor(-1/S)``, ``2^(r S)`` shifted by ``n - q``. Two things are computed at a higher internal
precision (``papers.ivit.fineexp.shift_exp_fine``):

* the logit grid is refined by a power of two to ``S <= 2^-10`` (the codes ``<< k``: the same real values, no
  rounding), so that ``I0 = floor(-1/S)`` spans one octave to 0.1%; on an 8-bit grid (``S ~ 0.1``) the octave
  of the official ``I0`` is off by up to ``S``, i.e. 10%, which compounds over the ``q`` octaves;
* ``2^(r S)`` of the fraction ``r`` is an integer table of ``|I0|`` entries with ``30 - n`` fraction bits,
  instead of I-ViT's ``1 + r S / 2`` (up to 6% off).

Everything is integer: the exponential is shifts and one table lookup, the logarithm is the position of the
most significant bit of ``(sum << 16) / exp`` and ``2^f`` comparisons of its mantissa with constants.

From the papers: the shift-based decomposition of the exponential (I-ViT eqs. 9-13) and the log2 code with
``attn @ V`` as shifts (FQ-ViT eqs. 13-16). Added: the refined grid and the ``2^r`` table, the fraction bits of
the code at ``b > 5`` (the log-sqrt(2) quantizer of RepQ-ViT, arXiv 2212.08254, is ``f = 1``), the log-domain
rounding (FQ-ViT's float path) and an unsaturated int64 sum.
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

__all__ = [
    "LOG_FRAC",
    "MAX_CODE_BITS",
    "code_frac_bits",
    "code_table",
    "code_thresholds",
    "log2_codes",
    "log2_dequant",
    "msb",
    "shiftmax_log2",
    "shiftmax_log2_unit",
]

#: fraction bits of the ratio ``sum / exp`` whose log2 is rounded
LOG_FRAC = 16
#: the largest code width (codes ``0..2^b - 1`` and the underflow code ``2^b``)
MAX_CODE_BITS = 8
#: ``sum << LOG_FRAC`` must stay below ``2^63``: each exponential is ``<= 2^30``, so rows up to ``2^16`` entries
_MAX_ROW = 2**16


def msb(v: torch.Tensor) -> torch.Tensor:
    """``floor(log2 v)`` of int64 ``v >= 1`` (6 shift-compare steps; no value check, so it traces to ONNX)."""
    out = torch.zeros_like(v)
    for step in (32, 16, 8, 4, 2, 1):
        out = out + step * ((v >> (out + step)) > 0).to(torch.int64)
    return out


def code_frac_bits(bits: int) -> int:
    """Fraction bits ``f`` of a ``bits``-bit log2 code: ``max(0, bits - 5)`` (at most 32 octaves)."""
    return max(0, int(bits) - 5)


def code_thresholds(bits: int) -> list[int]:
    """``round(2^(31 + (j + 1/2) / 2^f))`` for ``j < 2^f``: a 31-bit mantissa at or above the ``j``-th rounds up."""
    f = code_frac_bits(bits)
    return [round(2.0 ** (31 + (j + 0.5) / 2**f)) for j in range(2**f)]


def log2_codes(exp_int: torch.Tensor, bits: int, dim: int = -1) -> torch.Tensor:
    """``round(2^f log2(sum_j e_j / e_i))`` of integer exponentials, rounded in the log domain (integer ops only).

    Args:
        exp_int: int64 exponentials ``0 <= e <= 2^30``.
        bits: code width ``b`` (1..8, ``f = code_frac_bits(b)``); codes ``>= 2^b`` and ``e = 0`` become the
            underflow code ``2^b``.
        dim: softmax dimension (at most ``2^16`` entries).

    Returns:
        int64 codes in ``[0, 2^b]``; ``2^(-code / 2^f)`` approximates ``e_i / sum_j e_j`` (``2^b``: 0).
    """
    f = code_frac_bits(bits)
    total = exp_int.sum(dim=dim, keepdim=True)
    safe = exp_int.clamp(min=1)
    ratio = torch.div(total << LOG_FRAC, safe, rounding_mode="floor").clamp(min=1)
    t = msb(ratio)
    mant = torch.where(t >= 31, ratio >> (t - 31).clamp(min=0), ratio << (31 - t).clamp(min=0))
    k = (t - LOG_FRAC) * 2**f
    for thr in code_thresholds(bits):
        k = k + (mant >= thr).to(torch.int64)
    zero_code = 2**bits
    return torch.where((exp_int == 0) | (k >= zero_code), torch.full_like(k, zero_code), k.clamp(min=0))


def shiftmax_log2_unit(
    x_int: torch.Tensor, x0: int, table: torch.Tensor, *, n: int = 20, bits: int = 4, dim: int = -1
) -> torch.Tensor:
    """Log2 codes of Shiftmax on (refined) logit codes with precomputed ``I0`` and ``pow2_table(I0, n)``.

    Integer tensor ops only: :func:`shift_exp_fine` of ``x - max(x)``, then :func:`log2_codes`.

    Raises:
        ValueError: On a non-integer/empty input, bad ``bits`` or a row longer than ``2^16``.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(bits, lo=1, hi=MAX_CODE_BITS, what="bits")
    if int(x_int.shape[dim]) > _MAX_ROW:
        raise ValueError(
            f"shiftmax_log2 rows must have at most {_MAX_ROW} entries, got {int(x_int.shape[dim])}"
        )
    x = x_int.to(torch.int64)
    e = shift_exp_fine(x - x.amax(dim=dim, keepdim=True), x0, n, table)
    return log2_codes(e, bits, dim)


def shiftmax_log2(
    x_int: torch.Tensor, scale: torch.Tensor | float, *, n: int = 20, bits: int = 4, dim: int = -1
) -> torch.Tensor:
    """Shiftmax with a ``bits``-bit log2 output code (see the module docstring).

    Args:
        x_int: Integer logits, real value ``x_int * scale``.
        scale: Per-tensor logit scale ``S`` (refined by a power of two to ``<= 2^-10``: :func:`exp_constants`).
        n: Octaves of the exponential before it is floored (``e^(-n ln 2)``), 0..30; the ``2^r`` table keeps
            ``30 - n`` fraction bits.
        bits: Code width ``b`` (1..8).
        dim: Softmax dimension.

    Returns:
        int64 codes in ``[0, 2^b]``: probability :func:`log2_dequant`, 0 for the underflow code ``2^b``.
    """
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.numel() != 1:
        raise ValueError(f"scale must be a scalar (per-tensor), got shape {tuple(s.shape)}")
    check_positive(s, "scale")
    check_int_tensor(x_int, "x_int")
    k, x0 = exp_constants(float(s))
    table = pow2_table(x0, n)
    return shiftmax_log2_unit(x_int.to(torch.int64) << k, x0, table, n=n, bits=bits, dim=dim)


def code_table(bits: int) -> tuple[torch.Tensor, int]:
    """``(P_int, F)``: the integer probability ``round(2^(F - c / 2^f))`` of every code ``c = 0..2^b`` at scale
    ``2^-F`` (0 for the underflow code ``2^b`` and below ``2^-F``), ``F = 24`` (``min(2^b - 1, 24)`` for ``f = 0``,
    where every entry is an exact power of two: FQ-ViT's shifts)."""
    check_bits(bits, lo=1, hi=MAX_CODE_BITS, what="bits")
    f = code_frac_bits(bits)
    frac = min(2**bits - 1, 24) if f == 0 else 24
    c = torch.arange(0, 2**bits + 1, dtype=torch.float64)
    p = torch.round(torch.pow(2.0, frac - c / 2**f)).to(torch.int64)
    p[-1] = 0
    return p, frac


def log2_dequant(codes: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The probability of log2 codes, ``code_table(bits)[0][code] / 2^F`` (traceable: no value checks)."""
    table, frac = code_table(bits)
    return (table.to(codes.device)[codes.to(torch.int64)].to(torch.float64) * 2.0**-frac).to(dtype)
