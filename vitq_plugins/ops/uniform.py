"""Uniform (affine) quantization baseline: ranges, qparams, fake-quant and streaming observers.

Follows the conventions of the FQ-ViT code base (arXiv 2111.13824, Sec. 4.1 "baselines"; official
``models/ptq/observer/{minmax,percentile,omse}.py``), against which PTS/LIS/Shift ops are compared:

* signed symmetric: ``scale = max(|min|, max) / ((qmax - qmin) / 2)``, ``zero_point = 0``;
* unsigned asymmetric: ``scale = (max - min) / (qmax - qmin)``,
  ``zero_point = clamp(qmin - round(min / scale), qmin, qmax)``;
* ``scale`` is clamped to ``float32`` epsilon, rounding is ``torch.round`` (ties to even).

Observers are streaming (memory independent of the number of batches):

* :class:`MinMaxObserver` - running min/max, per-tensor or per-channel.
* :class:`PercentileObserver` - ``method="ema"`` reproduces FQ-ViT (per-batch percentile, EMA with
  ``sigma = 0.01``, first batch initialises); ``method="histogram"`` reads the percentile of *all* data from a
  fixed-size :class:`~vitq_plugins.ops.histogram.MomentHistogram` (order independent).
* :func:`omse_search` / :class:`OMSEObserver` - OMSE range shrinking ``(1 - 0.01 i)``, ``i = 0..89``,
  minimising the L2 error; vectorised over candidates. ``stats="last"`` evaluates the error on the last batch
  like the official code, ``stats="all"`` on a moment histogram of all batches.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Literal

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_finite_fast
from vitq_plugins.ops._checks import check_finite_stats
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops.histogram import MomentHistogram

__all__ = [
    "MinMaxObserver",
    "OMSEObserver",
    "OMSEResult",
    "PercentileObserver",
    "dequantize",
    "fake_quant",
    "omse_search",
    "qparams_from_minmax",
    "qrange",
    "quantize",
]

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
_CHUNK_ELEMS = 1 << 22


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """Integer code range of a ``bits``-bit quantizer.

    Args:
        bits: Bit-width, 1..32 unsigned or 2..32 signed.
        signed: Two's complement range if True, else ``[0, 2**bits - 1]``.
        narrow: Drop the most negative code (signed: ``[-2**(b-1)+1, 2**(b-1)-1]``) or the largest code
            (unsigned: ``[0, 2**b - 2]``), as in Brevitas ``narrow_range``.

    Returns:
        ``(qmin, qmax)``.

    Raises:
        ValueError: If ``bits`` is out of range.
    """
    check_bits(bits, lo=2 if signed else 1, hi=32, what="bits")
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    if narrow and bits == 1:
        raise ValueError("narrow unsigned range needs bits >= 2, got bits=1")
    return 0, 2**bits - 1 - int(narrow)


def qparams_from_minmax(
    min_val: torch.Tensor,
    max_val: torch.Tensor,
    bits: int,
    *,
    symmetric: bool,
    signed: bool,
    narrow: bool = False,
    eps: float = FLOAT32_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point from a (per-tensor or per-channel) range, FQ-ViT conventions.

    Args:
        min_val: Minimum, 0-d (per-tensor) or 1-d (per-channel).
        max_val: Maximum, same shape as ``min_val``; ``max_val >= min_val``.
        bits: Bit-width.
        symmetric: ``scale = max(-min, max) / ((qmax - qmin) / 2)`` and ``zero_point = 0`` if True,
            else asymmetric ``scale = (max - min) / (qmax - qmin)``.
        signed: Signed integer range (see :func:`qrange`).
        narrow: Narrow range (see :func:`qrange`).
        eps: Lower clamp of the scale (FQ-ViT: ``float32`` epsilon).

    Returns:
        ``(scale, zero_point)``: float tensor and int64 tensor of the shape of ``min_val``.

    Raises:
        ValueError: On mismatched shapes, non-finite values, ``min > max`` or bad ``bits``.
    """
    min_t = torch.as_tensor(min_val)
    max_t = torch.as_tensor(max_val)
    if min_t.shape != max_t.shape:
        raise ValueError(
            f"min_val and max_val must have the same shape, got {tuple(min_t.shape)} and {tuple(max_t.shape)}"
        )
    check_nonempty(min_t, "min_val")
    check_finite(min_t, "min_val")
    check_finite(max_t, "max_val")
    if bool((min_t > max_t).any()):
        raise ValueError(
            f"min_val must be <= max_val, got min {min_t.max().item()} > max {max_t.min().item()}"
        )
    check_positive(eps, "eps")
    qmin, qmax = qrange(bits, signed, narrow)
    if not min_t.is_floating_point():
        min_t, max_t = min_t.float(), max_t.float()
    if symmetric:
        scale = (torch.maximum(-min_t, max_t) / ((qmax - qmin) / 2.0)).clamp(min=eps)
        zero_point = torch.zeros(min_t.shape, dtype=torch.int64)
    else:
        scale = ((max_t - min_t) / float(qmax - qmin)).clamp(min=eps)
        zero_point = (qmin - torch.round(min_t / scale)).clamp(qmin, qmax).to(torch.int64)
    return scale, zero_point


def _bcast(t: torch.Tensor | float | int, x: torch.Tensor, axis: int | None, what: str) -> torch.Tensor:
    tt = torch.as_tensor(t, device=x.device)
    if axis is None or tt.dim() == 0:
        return tt
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis must be in [{-x.dim()}, {x.dim() - 1}] for a {x.dim()}-d input, got {axis}")
    ax = axis % x.dim()
    if tt.dim() != 1 or tt.shape[0] != x.shape[ax]:
        raise ValueError(
            f"{what} must be 0-d or of shape ({x.shape[ax]},) for axis={axis}, got {tuple(tt.shape)}"
        )
    shape = [1] * x.dim()
    shape[ax] = tt.shape[0]
    return tt.reshape(shape)


def _check_range(qmin: int, qmax: int) -> None:
    if qmin >= qmax:
        raise ValueError(f"qmin must be < qmax, got qmin={qmin}, qmax={qmax}")


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    qmin: int,
    qmax: int,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize to int64 codes ``clamp(round(x / scale) + zero_point, qmin, qmax)``.

    Args:
        x: Float input.
        scale: Positive scale, scalar or per-channel along ``axis``.
        zero_point: Integer zero point, scalar or per-channel along ``axis``.
        qmin: Smallest code.
        qmax: Largest code.
        axis: Channel axis of per-channel ``scale``/``zero_point``; ``None`` for per-tensor or pre-broadcast.

    Returns:
        int64 codes with the shape of ``x``.

    Raises:
        ValueError: On empty/non-finite input, non-positive scale, bad axis/shape or ``qmin >= qmax``.
    """
    check_nonempty(x, "x")
    check_finite(x, "x")
    check_positive(torch.as_tensor(scale), "scale")
    _check_range(qmin, qmax)
    s = _bcast(scale, x, axis, "scale")
    zp = _bcast(zero_point, x, axis, "zero_point")
    return torch.clamp(torch.round(x / s) + zp, qmin, qmax).to(torch.int64)


def dequantize(
    q: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """Dequantize integer codes: ``(q - zero_point) * scale``.

    Args:
        q: Integer codes.
        scale: Scale, scalar or per-channel along ``axis``.
        zero_point: Zero point, scalar or per-channel along ``axis``.
        axis: Channel axis for per-channel parameters.

    Returns:
        Float tensor (dtype of ``scale`` if floating, else float32).
    """
    check_nonempty(q, "q")
    s = _bcast(scale, q, axis, "scale")
    if not s.is_floating_point():
        s = s.float()
    zp = _bcast(zero_point, q, axis, "zero_point")
    return (q - zp).to(s.dtype) * s


def fake_quant(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    qmin: int,
    qmax: int,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize-dequantize with a straight-through estimator (value ``dequant(quant(x))``, identity gradient).

    The gradient w.r.t. ``x`` is the identity (no clipping mask), as in FQ-ViT's fake-quant modules. It is
    written ``xq.detach() + (x - x.detach())`` rather than ``x + (xq - x).detach()``: same gradient, but the
    forward value is exactly ``xq`` (the latter loses float32 precision when ``|x| >> |xq|``, e.g. clipped
    outliers).

    Args:
        x: Float input.
        scale: Positive scale, scalar or per-channel along ``axis``.
        zero_point: Integer zero point.
        qmin: Smallest code.
        qmax: Largest code.
        axis: Channel axis of per-channel parameters.

    Returns:
        Float tensor like ``x`` holding values on the quantization grid.
    """
    check_nonempty(x, "x")
    _check_range(qmin, qmax)
    s = _bcast(scale, x, axis, "scale")
    zp = _bcast(zero_point, x, axis, "zero_point")
    check_positive(s, "scale")
    check_finite_fast(x, "x")
    # the codes stay in floating point (exact below 2^24, i.e. for every supported bit-width): the same
    # values as ``dequantize(quantize(x))`` without two int64 conversions of the whole activation
    if not (x.requires_grad and torch.is_grad_enabled()):
        # inference: one allocation, in-place passes, no straight-through term
        out = torch.round(x / s)
        if out.dtype != x.dtype or not torch.is_floating_point(out):
            out = out.to(torch.promote_types(x.dtype, s.dtype))
        return out.add_(zp).clamp_(qmin, qmax).sub_(zp).mul_(s).to(x.dtype)
    codes = torch.clamp(torch.round(x / s) + zp, qmin, qmax)
    xq = ((codes - zp) * s).to(x.dtype)
    return xq.detach() + (x - x.detach())


def _reduce_minmax(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if axis is None:
        mn, mx = torch.aminmax(x)
        return mn, mx
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"per_channel_axis must be in [{-x.dim()}, {x.dim() - 1}], got {axis}")
    x2 = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    mn, mx = torch.aminmax(x2, dim=1)
    return mn, mx


class MinMaxObserver:
    """Running min/max (FQ-ViT ``MinmaxObserver``), per-tensor or per-channel.

    Args:
        per_channel_axis: Axis holding channels, or ``None`` for per-tensor statistics.
    """

    def __init__(self, per_channel_axis: int | None = None) -> None:
        self.per_channel_axis = per_channel_axis
        self._min: torch.Tensor | None = None
        self._max: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch into the running min/max.

        Raises:
            ValueError: On an empty/non-finite batch or a channel-count change.
        """
        check_nonempty(x, "x")
        mn, mx = _reduce_minmax(x.detach(), self.per_channel_axis)
        check_finite_stats("x", mn, mx)
        if self._min is None or self._max is None:
            self._min, self._max = mn.clone(), mx.clone()
            return
        if mn.shape != self._min.shape:
            raise ValueError(
                f"channel count changed: observed {tuple(self._min.shape)}, got {tuple(mn.shape)}"
            )
        self._min = torch.minimum(self._min, mn)
        self._max = torch.maximum(self._max, mx)

    @property
    def min(self) -> torch.Tensor:
        """Running minimum (0-d or ``(C,)``)."""
        if self._min is None:
            raise RuntimeError("MinMaxObserver.min read before any update()")
        return self._min

    @property
    def max(self) -> torch.Tensor:
        """Running maximum (0-d or ``(C,)``)."""
        if self._max is None:
            raise RuntimeError("MinMaxObserver.max read before any update()")
        return self._max

    def qparams(
        self, bits: int, *, symmetric: bool, signed: bool, narrow: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` from the observed range, see :func:`qparams_from_minmax`."""
        return qparams_from_minmax(
            self.min, self.max, bits, symmetric=symmetric, signed=signed, narrow=narrow
        )


def _quantile(flat: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(flat, q)`` (linear interpolation) via ``kthvalue``; no input-size limit."""
    n = flat.numel()
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    v_lo = torch.kthvalue(flat, lo + 1).values
    if hi == lo or pos == lo:
        return v_lo
    v_hi = torch.kthvalue(flat, hi + 1).values
    return v_lo + (pos - lo) * (v_hi - v_lo)


class PercentileObserver:
    """Per-tensor percentile range (FQ-ViT ``PercentileObserver``).

    Args:
        percentile: Upper percentile ``p`` in ``(0.5, 1]``; the lower one is ``1 - p``. FQ-ViT: 0.99999.
        sigma: EMA factor for ``method="ema"``: ``v <- v + sigma * (v_batch - v)`` (FQ-ViT: 0.01).
        method: ``"ema"`` (FQ-ViT, order dependent, O(1) memory) or ``"histogram"`` (percentile of all
            samples from a fixed-size moment histogram, interpolated inside bins).
        bins: Histogram bins for ``method="histogram"``.
    """

    def __init__(
        self,
        percentile: float = 0.99999,
        *,
        sigma: float = 0.01,
        method: Literal["ema", "histogram"] = "ema",
        bins: int = 4096,
    ) -> None:
        if not 0.5 < percentile <= 1.0:
            raise ValueError(f"percentile must be in (0.5, 1], got {percentile}")
        if not 0.0 < sigma <= 1.0:
            raise ValueError(f"sigma must be in (0, 1], got {sigma}")
        if method not in ("ema", "histogram"):
            raise ValueError(f"method must be 'ema' or 'histogram', got {method!r}")
        self.percentile = percentile
        self.sigma = sigma
        self.method = method
        self._hist = MomentHistogram(1, bins) if method == "histogram" else None
        self._min: torch.Tensor | None = None
        self._max: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics (layer-wise)."""
        check_nonempty(x, "x")
        check_finite(x, "x")
        flat = x.detach().reshape(-1)
        if self._hist is not None:
            self._hist.update(flat.unsqueeze(1))
            return
        if not flat.is_floating_point():
            flat = flat.float()
        cur_max = _quantile(flat, self.percentile)
        cur_min = _quantile(flat, 1.0 - self.percentile)
        if self._min is None or self._max is None:
            self._min, self._max = cur_min, cur_max
        else:
            self._max = self._max + self.sigma * (cur_max - self._max)
            self._min = self._min + self.sigma * (cur_min - self._min)

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._hist is not None:
            if not self._hist.initialized:
                raise RuntimeError("PercentileObserver read before any update()")
            hi = self._hist.quantile(self.percentile)[0].float()
            lo = self._hist.quantile(1.0 - self.percentile)[0].float()
            return lo, hi
        if self._min is None or self._max is None:
            raise RuntimeError("PercentileObserver read before any update()")
        return self._min, self._max

    @property
    def min(self) -> torch.Tensor:
        """Lower percentile estimate (0-d)."""
        return self._range()[0]

    @property
    def max(self) -> torch.Tensor:
        """Upper percentile estimate (0-d)."""
        return self._range()[1]

    def qparams(
        self, bits: int, *, symmetric: bool, signed: bool, narrow: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` from the percentile range, see :func:`qparams_from_minmax`."""
        lo, hi = self._range()
        return qparams_from_minmax(lo, hi, bits, symmetric=symmetric, signed=signed, narrow=narrow)


@dataclass(frozen=True)
class OMSEResult:
    """Outcome of an OMSE search.

    Attributes:
        scale: Selected scale (0-d float).
        zero_point: Selected zero point (0-d int64).
        min_val: Shrunk minimum of the selected candidate.
        max_val: Shrunk maximum of the selected candidate.
        index: Selected candidate ``i`` (range factor ``1 - step * i``).
        errors: Mean squared error of every candidate, float64 ``(num_candidates,)``.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    min_val: torch.Tensor
    max_val: torch.Tensor
    index: int
    errors: torch.Tensor


def _omse_candidates(
    min_val: torch.Tensor,
    max_val: torch.Tensor,
    bits: int,
    symmetric: bool,
    signed: bool,
    num_candidates: int,
    step: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    check_bits(num_candidates, lo=1, hi=10_000, what="num_candidates")
    if not 0.0 < step or step * (num_candidates - 1) >= 1.0:
        raise ValueError(
            f"step must be > 0 with step*(num_candidates-1) < 1, got step={step}, n={num_candidates}"
        )
    mn = torch.as_tensor(min_val).float()
    mx = torch.as_tensor(max_val).float()
    if mn.dim() != 0 or mx.dim() != 0:
        raise ValueError(
            f"OMSE is per-tensor: min_val/max_val must be 0-d, got {tuple(mn.shape)}/{tuple(mx.shape)}"
        )
    factors = 1.0 - step * torch.arange(num_candidates, dtype=torch.float32)
    cmin, cmax = mn * factors, mx * factors
    scale, zp = qparams_from_minmax(cmin, cmax, bits, symmetric=symmetric, signed=signed)
    return cmin, cmax, scale, zp


def omse_search(
    x: torch.Tensor | MomentHistogram,
    min_val: torch.Tensor | float,
    max_val: torch.Tensor | float,
    bits: int,
    *,
    symmetric: bool = False,
    signed: bool = False,
    num_candidates: int = 90,
    step: float = 0.01,
) -> OMSEResult:
    """OMSE: shrink ``[min, max]`` by ``1 - step * i`` and keep the candidate with the lowest L2 error.

    FQ-ViT ``OmseObserver`` (activations, layer-wise). Evaluated for all candidates at once; the data is
    processed in chunks of ~4M candidate-elements to bound memory. Ties pick the smallest ``i``.

    Args:
        x: Calibration data (any shape) or a 1-channel :class:`MomentHistogram` of it (streaming).
        min_val: Observed minimum (0-d).
        max_val: Observed maximum (0-d).
        bits: Bit-width.
        symmetric: Symmetric qparams (see :func:`qparams_from_minmax`).
        signed: Signed integer range.
        num_candidates: Number of shrink factors (FQ-ViT: 90).
        step: Shrink step (FQ-ViT: 0.01).

    Returns:
        :class:`OMSEResult`.

    Raises:
        ValueError: On bad inputs (empty/non-finite data, bad bits, bad candidate grid).
    """
    cmin, cmax, scale, zp = _omse_candidates(
        torch.as_tensor(min_val), torch.as_tensor(max_val), bits, symmetric, signed, num_candidates, step
    )
    qmin, qmax = qrange(bits, signed)
    if isinstance(x, MomentHistogram):
        if x.num_channels != 1:
            raise ValueError(f"omse_search needs a 1-channel histogram, got {x.num_channels} channels")
        errors = (x.quant_sse(scale.double(), zp.double(), qmin=qmin, qmax=qmax)[0] / x.total[0]).double()
    else:
        check_nonempty(x, "x")
        check_finite(x, "x")
        flat = x.detach().reshape(-1).float()
        sse = torch.zeros(num_candidates, dtype=torch.float64)
        chunk = max(1, _CHUNK_ELEMS // num_candidates)
        s_col, zp_col = scale.unsqueeze(1), zp.float().unsqueeze(1)
        for start in range(0, flat.numel(), chunk):
            part = flat[start : start + chunk].unsqueeze(0)
            xq = (torch.clamp(torch.round(part / s_col + zp_col), qmin, qmax) - zp_col) * s_col
            sse += ((part - xq) ** 2).sum(dim=1, dtype=torch.float64)
        errors = sse / flat.numel()
    best = int(torch.argmin(errors))
    return OMSEResult(scale[best], zp[best], cmin[best], cmax[best], best, errors)


class OMSEObserver:
    """Streaming OMSE observer: running min/max plus either the last batch or a moment histogram.

    Args:
        bits: Bit-width.
        symmetric: Symmetric qparams.
        signed: Signed integer range.
        stats: ``"last"`` evaluates candidates on the last batch (official FQ-ViT); ``"all"`` on a
            :class:`MomentHistogram` of all batches (bounded memory).
        bins: Histogram bins for ``stats="all"``.
        num_candidates: Number of shrink factors.
        step: Shrink step.
    """

    def __init__(
        self,
        bits: int = 8,
        *,
        symmetric: bool = False,
        signed: bool = False,
        stats: Literal["all", "last"] = "all",
        bins: int = 4096,
        num_candidates: int = 90,
        step: float = 0.01,
    ) -> None:
        qrange(bits, signed)
        if stats not in ("all", "last"):
            raise ValueError(f"stats must be 'all' or 'last', got {stats!r}")
        self.bits, self.symmetric, self.signed, self.stats = bits, symmetric, signed, stats
        self.num_candidates, self.step = num_candidates, step
        self._minmax = MinMaxObserver(None)
        self._hist = MomentHistogram(1, bins) if stats == "all" else None
        self._last: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics."""
        self._minmax.update(x)
        if self._hist is not None:
            self._hist.update(x.detach().reshape(-1, 1))
        else:
            self._last = x.detach().clone()

    def compute(self) -> OMSEResult:
        """Run the OMSE search on the accumulated statistics."""
        data: torch.Tensor | MomentHistogram
        if self._hist is not None:
            data = self._hist
        elif self._last is not None:
            data = self._last
        else:
            raise RuntimeError("OMSEObserver.compute called before any update()")
        return omse_search(
            data,
            self._minmax.min,
            self._minmax.max,
            self.bits,
            symmetric=self.symmetric,
            signed=self.signed,
            num_candidates=self.num_candidates,
            step=self.step,
        )
