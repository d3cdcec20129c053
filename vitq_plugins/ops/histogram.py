"""Streaming per-channel *moment histogram* for single-pass, bounded-memory calibration.

FQ-ViT (arXiv 2111.13824) selects its OMSE clipping range (Sec. 4.1 baselines) and its Power-of-Two Factors
(Sec. 3.2, eqs. 9-10) by the lowest L2 quantization error, but the official code measures that error on the
*last* calibration batch only, because the candidate grids depend on the global min/max, which is only known
after all batches were seen. This module makes the error computable over *all* batches in one pass with
memory independent of the number of batches.

Design (why it is exact enough):
    * Each channel ``c`` owns ``B`` bins of width ``w_c = 2**e_c`` on the absolute grid
      ``[k * w_c, (k+1) * w_c)``; its window starts at absolute bin ``start_c``. Because widths are powers of
      two, ``floor(x / w_c)`` is an exact float operation, and doubling the width maps bin ``k`` to ``k >> 1``
      exactly: growing the range (new min/max) merges bins *exactly* instead of re-binning approximately.
    * Each bin stores the count ``n``, ``sum x`` and ``sum x^2`` (float64) - not only a count. The squared
      error of any quantizer that maps the whole bin to one grid point ``g`` is then exact:
      ``sum (x - g)^2 = M2 + n * (mean - g)^2`` with ``M2 = sum x^2 - n * mean^2``. The only approximation is
      for bins straddling a rounding boundary: there the samples are modelled as uniform with the bin's exact
      mean and variance (see :meth:`MomentHistogram.quant_sse`). With the window fitted to the channel's own
      running range, a bin is at most ``range_c / (B/2 - 1)`` wide. (``M2`` is formed in float64 from raw
      sums; it loses precision only for bins whose mean exceeds ~1e7 times their width.)
    * One ``torch.bincount`` and two ``scatter_add_`` over flattened ``channel * B + bin`` indices per batch:
      fully vectorised, no loop over channels. ``quant_sse`` only visits non-empty bins.
"""

from __future__ import annotations

import math

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_nonempty

__all__ = ["MomentHistogram"]

_E_MIN = -120
_E_MAX = 120
_MAX_INDEX_LOG2 = 60


class MomentHistogram:
    """Per-channel streaming histogram of count, sum and sum of squares.

    Args:
        num_channels: Number of channels ``C`` (use 1 for a per-tensor histogram).
        bins: Bins per channel ``B`` (>= 8). Memory is ``3 * C * B`` float64 values.

    Example:
        >>> h = MomentHistogram(4, bins=64)
        >>> h.update(torch.randn(100, 4))
        >>> sse = h.quant_sse(torch.full((4, 1), 0.1), torch.zeros(4, 1), qmin=-128, qmax=127)
    """

    def __init__(self, num_channels: int, bins: int = 512) -> None:
        check_bits(num_channels, lo=1, hi=2**24, what="num_channels")
        check_bits(bins, lo=8, hi=2**20, what="bins")
        self.num_channels = num_channels
        self.bins = bins
        self.count = torch.zeros(num_channels, bins, dtype=torch.float64)
        self.sum = torch.zeros(num_channels, bins, dtype=torch.float64)
        self.sumsq = torch.zeros(num_channels, bins, dtype=torch.float64)
        self.min = torch.zeros(num_channels, dtype=torch.float64)
        self.max = torch.zeros(num_channels, dtype=torch.float64)
        self.exponent = torch.zeros(num_channels, dtype=torch.int64)
        self.start = torch.zeros(num_channels, dtype=torch.int64)
        self.initialized = False

    def _needed_exponent(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        span = (hi - lo).clamp(min=0.0)
        mag = torch.maximum(lo.abs(), hi.abs())
        e_span = torch.ceil(torch.log2(span.clamp(min=1e-300) / (self.bins - 2)))
        e_mag = torch.ceil(torch.log2(mag.clamp(min=1e-300))) - _MAX_INDEX_LOG2
        e = torch.where(span > 0, torch.maximum(e_span, e_mag), e_mag)
        return e.clamp(_E_MIN, _E_MAX).to(torch.int64)

    def _rebin(self, new_exp: torch.Tensor, new_start: torch.Tensor) -> None:
        c, b = self.num_channels, self.bins
        d = (new_exp - self.exponent).clamp(min=0, max=62).unsqueeze(1)
        old_abs = self.start.unsqueeze(1) + torch.arange(b, dtype=torch.int64).unsqueeze(0)
        new_local = ((old_abs >> d) - new_start.unsqueeze(1)).clamp(0, b - 1)
        flat = (new_local + (torch.arange(c, dtype=torch.int64) * b).unsqueeze(1)).reshape(-1)
        for name in ("count", "sum", "sumsq"):
            old = getattr(self, name)
            new = torch.zeros(c * b, dtype=torch.float64)
            new.index_add_(0, flat, old.reshape(-1))
            setattr(self, name, new.reshape(c, b))
        self.exponent = new_exp
        self.start = new_start

    def update(self, x: torch.Tensor) -> None:
        """Accumulate a batch.

        Args:
            x: Float tensor of shape ``(..., C)`` (channels last). Must be finite and non-empty.

        Raises:
            ValueError: On a wrong last dimension, an empty or a non-finite tensor.
        """
        check_nonempty(x, "x")
        if x.dim() == 0 or x.shape[-1] != self.num_channels:
            raise ValueError(f"x must have last dimension {self.num_channels}, got shape {tuple(x.shape)}")
        x2 = x.detach().reshape(-1, self.num_channels)
        if x2.dtype not in (torch.float32, torch.float64):
            x2 = x2.to(torch.float32)
        bmin, bmax = torch.aminmax(x2, dim=0)  # NaN/Inf propagate into the per-channel extrema
        bmin, bmax = bmin.double(), bmax.double()
        bad = ~(torch.isfinite(bmin) & torch.isfinite(bmax))
        if bool(bad.any()):
            raise ValueError(
                f"x must be finite, got NaN/Inf in {int(bad.sum())} of {self.num_channels} channel(s)"
            )
        if self.initialized:
            lo, hi = torch.minimum(self.min, bmin), torch.maximum(self.max, bmax)
            new_exp = torch.maximum(self.exponent, self._needed_exponent(lo, hi))
        else:
            lo, hi = bmin, bmax
            new_exp = self._needed_exponent(lo, hi)
        new_start = torch.floor(lo * torch.pow(2.0, -new_exp.double())).to(torch.int64)
        if not self.initialized:
            self.exponent, self.start = new_exp, new_start
        elif bool((new_exp != self.exponent).any()) or bool((new_start != self.start).any()):
            self._rebin(new_exp, new_start)
        self.min, self.max, self.initialized = lo, hi, True

        c, b = self.num_channels, self.bins
        inv_w = torch.pow(2.0, -self.exponent.double())
        offset = torch.arange(c, dtype=torch.int64) * b - self.start
        # floor(x / w) is exact for power-of-two w; stay in float while all indices are exact integers there
        limit = 2.0**24 if x2.dtype == torch.float32 else 2.0**53
        biggest = float(torch.maximum(bmin.abs(), bmax.abs()).mul(inv_w).max()) + float(offset.abs().max())
        if biggest < limit:
            lo_f = (torch.arange(c, dtype=torch.float64) * b).to(x2.dtype)
            hi_f = lo_f + (b - 1)
            fidx = torch.floor(x2 * inv_w.to(x2.dtype)).add_(offset.to(x2.dtype))
            flat = torch.minimum(torch.maximum(fidx, lo_f), hi_f).to(torch.int64).reshape(-1)
        else:
            idx = torch.floor(x2 * inv_w.to(x2.dtype)).to(torch.int64) + self.start.neg().unsqueeze(0)
            idx = idx.clamp_(0, b - 1) + torch.arange(c, dtype=torch.int64) * b
            flat = idx.reshape(-1)
        xd = x2.reshape(-1).double()
        self.count.view(-1).add_(torch.bincount(flat, minlength=c * b))
        self.sum.view(-1).scatter_add_(0, flat, xd)
        self.sumsq.view(-1).scatter_add_(0, flat, xd * xd)

    @property
    def total(self) -> torch.Tensor:
        """Number of accumulated samples per channel, float64 ``(C,)``."""
        return self.count.sum(dim=1)

    def bin_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-bin ``(count, mean, M2)``, each float64 ``(C, B)``; empty bins have mean and M2 = 0."""
        n = self.count
        mean = torch.where(n > 0, self.sum / n.clamp(min=1.0), torch.zeros_like(n))
        m2 = (self.sumsq - self.sum * mean).clamp(min=0.0)
        return n, mean, m2

    def quant_sse(
        self, scale: torch.Tensor, zero_point: torch.Tensor | float, *, qmin: int, qmax: int
    ) -> torch.Tensor:
        """Summed squared uniform-quantization error for ``K`` candidate grids per channel.

        Each bin is modelled as a uniform density on ``[mean - w/2, mean + w/2]`` with ``w = sqrt(12 M2 / n)``,
        i.e. with the bin's exact first two moments, and the squared error of
        ``x -> (clamp(round(x/scale) + zp, qmin, qmax) - zp) * scale`` is integrated in closed form over that
        interval (sawtooth antiderivative inside the clamp range, cubic outside). If the interval lies in one
        rounding cell this equals the exact ``M2 + n (mean - g)^2``; only bins that straddle a rounding
        boundary are approximated.

        Args:
            scale: Positive candidate scales, shape ``(C, K)`` or ``(1, K)`` or ``(K,)``.
            zero_point: Integer-valued zero points broadcastable to ``(C, K)``.
            qmin: Smallest integer code.
            qmax: Largest integer code.

        Returns:
            float64 ``(C, K)`` sum of squared errors over all accumulated samples.

        Raises:
            RuntimeError: If nothing was accumulated yet.
        """
        if not self.initialized:
            raise RuntimeError("MomentHistogram.quant_sse called before any update()")
        sc = torch.as_tensor(scale, dtype=torch.float64)
        if sc.dim() == 1:
            sc = sc.unsqueeze(0)
        sc = sc.expand(self.num_channels, -1)
        zp = torch.as_tensor(zero_point, dtype=torch.float64).expand_as(sc)
        n, mean, m2 = self.bin_stats()
        # only non-empty bins contribute: gather them (M, 1) with their channel's candidates (M, K)
        ch, col = torch.nonzero(n > 0, as_tuple=True)
        nb = n[ch, col].unsqueeze(1)
        s_m, zp_m = sc[ch], zp[ch]
        # work in units of the step: u = x / scale; grid points u = q - zp for q in [qmin, qmax]
        u = mean[ch, col].unsqueeze(1) / s_m
        half = torch.sqrt(3.0 * m2[ch, col] / nb.squeeze(1)).unsqueeze(1) / s_m  # half width of the uniform
        g = torch.clamp(torch.round(u) + zp_m, qmin, qmax) - zp_m
        per_bin = (u - g) ** 2 + half**2 / 3.0  # exact when [u - half, u + half] stays in one rounding cell
        g_lo = torch.clamp(torch.round(u - half) + zp_m, qmin, qmax)
        g_hi = torch.clamp(torch.round(u + half) + zp_m, qmin, qmax)
        straddle = (g_lo != g_hi) & (half > 1e-6)
        if bool(straddle.any()):
            a = (qmin - zp_m - 0.5)[straddle]
            bnd = (qmax - zp_m + 0.5)[straddle]
            us, hs = u[straddle], half[straddle]

            def antiderivative(t: torch.Tensor) -> torch.Tensor:
                tc = torch.minimum(torch.maximum(t, a), bnd)
                k = torch.floor(tc + 0.5)
                inner = k / 12.0 + ((tc - k) ** 3 + 0.125) / 3.0
                below = ((torch.minimum(t, a) - a - 0.5) ** 3 + 0.125) / 3.0
                above = ((torch.maximum(t, bnd) - bnd + 0.5) ** 3 - 0.125) / 3.0
                return inner + below + above

            per_bin[straddle] = (antiderivative(us + hs) - antiderivative(us - hs)) / (2.0 * hs)
        sse = torch.zeros_like(sc).index_add_(0, ch, nb * per_bin)
        return sse * sc**2

    def quantile(self, q: float) -> torch.Tensor:
        """Approximate per-channel quantile by linear interpolation inside the histogram bins.

        Args:
            q: Quantile in ``[0, 1]``.

        Returns:
            float64 ``(C,)`` quantile estimate, clamped to the exact running ``[min, max]``.
        """
        if not 0.0 <= q <= 1.0 or math.isnan(q):
            raise ValueError(f"quantile q must be in [0, 1], got {q}")
        if not self.initialized:
            raise RuntimeError("MomentHistogram.quantile called before any update()")
        cdf = torch.cumsum(self.count, dim=1)
        target = q * cdf[:, -1:]
        k = torch.searchsorted(cdf, target).clamp(max=self.bins - 1)
        prev = torch.where(k > 0, cdf.gather(1, (k - 1).clamp(min=0)), torch.zeros_like(target))
        in_bin = self.count.gather(1, k).clamp(min=1.0)
        frac = ((target - prev) / in_bin).clamp(0.0, 1.0)
        w = torch.pow(2.0, self.exponent.double()).unsqueeze(1)
        edge = (self.start.unsqueeze(1) + k).double() * w
        val = (edge + frac * w).squeeze(1)
        return torch.minimum(torch.maximum(val, self.min), self.max)
