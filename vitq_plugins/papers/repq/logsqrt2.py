"""RepQ-ViT's log√2 quantizer of the attention map (arXiv 2212.08254, §3.3, eq. 10; ``zkkli/RepQ-ViT``
``quant/quantizer.py`` ``LogSqrt2Quantizer``).

Codes ``c = round(-2 log2(x / Δ))`` in ``[0, 2^b - 1]``; a code ``>= 2^b`` (a probability below the smallest
level) is 0; the value is ``Δ · 2^(-c / 2)``, i.e. ``2^(-ceil(c/2)) · Δ`` times ``√2`` for odd ``c``. Against
FQ-ViT's log2 (``2^-c``) it halves the ratio between adjacent levels (finer where the large probabilities
are) at the price of a shallower range (``2^-(2^b - 1)/2``). ``Δ`` is the calibrated maximum of the map
(streaming; at most 1 for a softmax).
"""

from __future__ import annotations

import torch

__all__ = ["logsqrt2_codes", "logsqrt2_dequant", "logsqrt2_fake_quant", "logsqrt2_tables"]


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"log-sqrt2 bits must be an integer in 1..8, got {bits!r}")


def _delta(delta: torch.Tensor | float) -> torch.Tensor:
    d = torch.as_tensor(delta, dtype=torch.float32)
    if not bool((d > 0).all()):
        raise ValueError(f"log-sqrt2 delta must be > 0, got {delta!r}")
    return d


def logsqrt2_tables(delta: torch.Tensor | float, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid as two float32 tables: ``thresholds`` ``Δ·2^(-(k + 1/2)/2)`` for ``k = 0..2^b - 1`` (the
    rounding boundaries of ``-2 log2(x/Δ)``) and ``levels`` ``Δ·2^(-c/2)`` for ``c = 0..2^b - 1`` plus a final 0.

    Raises:
        ValueError: bad ``bits`` or a non-positive ``delta``.
    """
    _check_bits(bits)
    d = _delta(delta).double()
    k = torch.arange(2**bits, dtype=torch.float64)
    thresholds = (d * torch.pow(2.0, -(k + 0.5) / 2.0)).float()
    levels = torch.cat([d * torch.pow(2.0, -k / 2.0), torch.zeros(1, dtype=torch.float64)]).float()
    return thresholds, levels


def logsqrt2_codes(
    x: torch.Tensor, delta: torch.Tensor | float, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and the "is zero" mask of ``x >= 0`` on the ``b``-bit log√2 grid below ``delta``.

    ``c = round(-2 log2(x/Δ))`` is computed as the number of rounding boundaries above ``x`` (no ``log``, so
    the exported graph and every runtime give the same codes).

    Returns:
        ``(codes, zero)``: int64 codes in ``[0, 2^b - 1]`` and a bool mask of the entries quantized to 0.

    Raises:
        ValueError: bad ``bits`` or a non-positive ``delta``.
    """
    thresholds, _ = logsqrt2_tables(delta, bits)
    c = (x.float().unsqueeze(-1) < thresholds).sum(-1)
    zero = c >= 2**bits
    return c.clamp(max=2**bits - 1), zero


def logsqrt2_dequant(codes: torch.Tensor, zero: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """``Δ · 2^(-c/2)`` (0 where ``zero``) as float32."""
    d = _delta(delta)
    return torch.where(zero, 0.0, d * torch.pow(2.0, -codes.float() / 2.0))


def logsqrt2_fake_quant(x: torch.Tensor, delta: torch.Tensor | float, bits: int) -> torch.Tensor:
    """Quantize-dequantize ``x`` on the log√2 grid (eq. 10), in ``x``'s dtype: one comparison against the
    boundaries and one table look-up (the same ops the export writes).

    Example:
        >>> logsqrt2_fake_quant(torch.tensor([1.0, 0.7, 0.5, 0.001]), 1.0, 3).tolist()  # doctest: +ELLIPSIS
        [1.0, 0.707..., 0.5, 0.0]
    """
    thresholds, levels = logsqrt2_tables(delta, bits)
    c = (x.float().unsqueeze(-1) < thresholds).sum(-1)
    return levels[c].to(x.dtype)
