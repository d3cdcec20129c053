"""MPTQ-style OPT-m: two-region (twin) uniform quantization of post-GELU activations with a searched ratio.

MPTQ-ViT (arXiv 2401.14895, Sec. 3 "OPT-m") has no public code; this is an *MPTQ-style* reconstruction in
the spirit of PTQ4ViT's twin-uniform post-GELU quantizer (arXiv 2111.12293, Sec. 4.1) with the region-scale
ratio found by search instead of a hand-crafted rule.

Code layout (one signed ``b``-bit integer grid, two scales):
    * negative region: ``x < 0`` -> ``q = clamp(round(x / delta_n), -2^(b-1), 0)``, value ``q * delta_n``;
    * positive region: ``x >= 0`` -> ``q = clamp(round(x / delta_p), 0, 2^(b-1) - 1)``, value ``q * delta_p``;
    * ``delta_p = 2^m * delta_n``, so decoding is ``q * delta_n`` for ``q <= 0`` and ``(q << m) * delta_n``
      for ``q > 0`` (a shift; one scale ``delta_n`` per tensor plus the integer ``m``).

Search (:func:`search_optm`): for every ``m`` in ``m_values`` and every ``delta_p`` on a linear grid
``delta_p_max * linspace(grid_lo, grid_hi, n_grid)`` (``delta_p_max = max(x) / (2^(b-1) - 1)``), minimise
the MSE of the *next Linear's output*, ``||(x_q - x) W^T||^2 / (N * out)`` (the bias cancels). All candidates are
evaluated batched; candidates are chunked to bound memory. :class:`OptMSearch` accumulates the same per-candidate
errors over calibration batches (streaming), given ``max(x)`` from a previous statistics pass.

Screened search (``search_optm(..., top_k=k)``, what both wings run): the exact objective costs one
``N x C x out`` matmul per candidate (9 x 50 candidates: 12 s per layer of the reference model on one core).
The screen ranks every candidate by the diagonal (per-input-channel) part of the same objective,
``sum_j ||W_:,j||^2 sum_r (x_q - x)_rj^2`` (the cross-channel terms of ``W^T W`` are dropped, as in OBS-style
diagonal Hessian proxies), computed on two weighted histograms of ``x`` (one per region, 4,096 bins each; every
value sits at its bin's weighted mean) so that each candidate costs ``O(bins)``; then only the ``k`` best are
scored exactly and the exact minimum wins. This is vitq's addition for speed, not part of MPTQ-ViT.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive

__all__ = [
    "DEFAULT_TOP_K",
    "OptMResult",
    "OptMSearch",
    "TokenReservoir",
    "search_optm",
    "twin_dequantize",
    "twin_fake_quant",
    "twin_quantize",
]

_CHUNK_ELEMS = 1 << 24
_SCREEN_BINS = 4096
DEFAULT_TOP_K = 32
"""Candidates the wings score exactly after the screen (options ``optm_top_k``; 0 = score all 450 exactly).
On the reference model's twelve fc2 inputs at 4, 6 and 8 bits, 32 always kept the exact minimum (the exact
best ranked at most 23rd on the screen); 8 lost up to 8.7% of fc2-output MSE at 4 bits."""


def _check_twin(delta_n: float | torch.Tensor, m: int | torch.Tensor, bits: int) -> None:
    check_positive(torch.as_tensor(delta_n, dtype=torch.float64), "delta_n")
    check_bits(bits, lo=2, hi=16, what="bits")
    mt = torch.as_tensor(m)
    if mt.is_floating_point() or bool((mt < 0).any()) or bool((mt > 30).any()):
        raise ValueError(f"m must be an integer in [0, 30], got {m}")


def twin_quantize(
    x: torch.Tensor, delta_n: float | torch.Tensor, m: int | torch.Tensor, bits: int
) -> torch.Tensor:
    """Signed two-region codes (see module docstring); ``delta_n``/``m`` may be broadcastable tensors.

    Returns:
        int64 codes in ``[-2^(b-1), 2^(b-1) - 1]``.
    """
    check_nonempty(x, "x")
    check_finite(x, "x")
    _check_twin(delta_n, m, bits)
    dn = torch.as_tensor(delta_n, dtype=x.dtype)
    dp = dn * torch.pow(2.0, torch.as_tensor(m).to(x.dtype))
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    qn = torch.clamp(torch.round(x / dn), lo, 0)
    qp = torch.clamp(torch.round(x / dp), 0, hi)
    return torch.where(x < 0, qn, qp).to(torch.int64)


def twin_dequantize(
    q: torch.Tensor, delta_n: float | torch.Tensor, m: int | torch.Tensor, bits: int
) -> torch.Tensor:
    """Decode two-region codes: ``q * delta_n`` for ``q <= 0``, ``(q << m) * delta_n`` for ``q > 0``.

    Returns:
        float32 tensor.
    """
    _check_twin(delta_n, m, bits)
    mt = torch.as_tensor(m, dtype=torch.int64)
    ints = torch.where(q > 0, q.to(torch.int64) << mt, q.to(torch.int64))
    return ints.to(torch.float32) * torch.as_tensor(delta_n, dtype=torch.float32)


def twin_fake_quant(
    x: torch.Tensor, delta_n: float | torch.Tensor, m: int | torch.Tensor, bits: int
) -> torch.Tensor:
    """Two-region fake quantization with a straight-through estimator.

    Args:
        x: Float input.
        delta_n: Negative-region scale (positive).
        m: Region ratio exponent, ``delta_p = 2^m delta_n``.
        bits: Total code bits (sign included).

    Returns:
        ``dequant(quant(x))`` in value, identity gradient (``xq.detach() + (x - x.detach())``).
    """
    check_nonempty(x, "x")
    check_finite(x, "x")
    _check_twin(delta_n, m, bits)
    with torch.no_grad():
        dn = torch.as_tensor(delta_n, dtype=x.dtype)
        dp = dn * torch.pow(2.0, torch.as_tensor(m).to(x.dtype))
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        xq = torch.where(
            x < 0, torch.clamp(torch.round(x / dn), lo, 0) * dn, torch.clamp(torch.round(x / dp), 0, hi) * dp
        )
    return xq.to(x.dtype).detach() + (x - x.detach())


@dataclass(frozen=True)
class OptMResult:
    """Best OPT-m candidate.

    Attributes:
        delta_n: Negative-region scale.
        m: Region ratio exponent (``delta_p = 2^m delta_n``).
        mse: Next-Linear output MSE of the best candidate.
        errors: MSE of all candidates, float64 ``(len(m_values), n_grid)``.
    """

    delta_n: float
    m: int
    mse: float
    errors: torch.Tensor


class OptMSearch:
    """Streaming OPT-m search over a fixed candidate grid.

    Args:
        weight: Next Linear's weight ``(out, C)``.
        bits: Code bits (sign included).
        x_max: Calibration maximum of the activation (> 0), fixes the candidate grid.
        m_values: Candidate ratio exponents.
        n_grid: Candidates of ``delta_p`` per ``m``.
        grid_lo: Smallest ``delta_p`` factor of ``delta_p_max``.
        grid_hi: Largest factor.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bits: int,
        x_max: float,
        m_values: Iterable[int] = range(0, 9),
        n_grid: int = 50,
        grid_lo: float = 0.05,
        grid_hi: float = 1.0,
    ) -> None:
        check_bits(bits, lo=2, hi=16, what="bits")
        check_bits(n_grid, lo=1, hi=100_000, what="n_grid")
        if weight.dim() != 2:
            raise ValueError(f"weight must be (out, C), got shape {tuple(weight.shape)}")
        check_finite(weight, "weight")
        check_positive(x_max, "x_max")
        if not 0.0 < grid_lo <= grid_hi:
            raise ValueError(f"need 0 < grid_lo <= grid_hi, got {grid_lo}, {grid_hi}")
        ms = [int(v) for v in m_values]
        if not ms or min(ms) < 0 or max(ms) > 30:
            raise ValueError(f"m_values must be a non-empty set of integers in [0, 30], got {ms}")
        self.weight = weight.detach().float()
        self.bits = bits
        self.m_values = torch.tensor(ms, dtype=torch.int64)
        dp_max = float(x_max) / (2 ** (bits - 1) - 1)
        dp = dp_max * torch.linspace(grid_lo, grid_hi, n_grid, dtype=torch.float32)
        self.delta_p = dp.unsqueeze(0).expand(len(ms), -1).reshape(-1)
        self.delta_n = self.delta_p / torch.pow(2.0, self.m_values.float()).repeat_interleave(n_grid)
        self.n_grid = n_grid
        self.sse = torch.zeros(len(ms) * n_grid, dtype=torch.float64)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        """Accumulate the next-Linear output squared error of every candidate for a batch ``(..., C)``."""
        check_nonempty(x, "x")
        check_finite(x, "x")
        c = self.weight.shape[1]
        if x.shape[-1] != c:
            raise ValueError(f"x must have last dimension {c}, got shape {tuple(x.shape)}")
        x2 = x.detach().reshape(-1, c).float()
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        n_cand = self.delta_n.numel()
        per_cand = x2.shape[0] * max(c, self.weight.shape[0])
        step = max(1, _CHUNK_ELEMS // per_cand)
        neg = x2 < 0
        wt = self.weight.t()
        for start in range(0, n_cand, step):
            dn = self.delta_n[start : start + step].view(-1, 1, 1)
            dp = self.delta_p[start : start + step].view(-1, 1, 1)
            xq = torch.where(
                neg,
                torch.clamp(torch.round(x2 / dn), lo, 0) * dn,
                torch.clamp(torch.round(x2 / dp), 0, hi) * dp,
            )
            err = torch.matmul(xq - x2, wt)
            self.sse[start : start + step] += (err * err).sum(dim=(1, 2), dtype=torch.float64)
        self.count += x2.shape[0] * self.weight.shape[0]

    def result(self) -> OptMResult:
        """Best candidate so far (ties -> first in ``(m, grid)`` order)."""
        if self.count == 0:
            raise RuntimeError("OptMSearch.result called before any update()")
        mse = self.sse / self.count
        best = int(torch.argmin(mse))
        return OptMResult(
            delta_n=float(self.delta_n[best]),
            m=int(self.m_values[best // self.n_grid]),
            mse=float(mse[best]),
            errors=mse.reshape(len(self.m_values), self.n_grid),
        )


class TokenReservoir:
    """A uniform sample of at most ``size`` tokens (rows over the last dim) of everything seen: the wings'
    OPT-m calibration data (the same seed, so the same sample from the same batches in every wing).

    Memory is independent of the number of batches (random keys, keep the top ``size``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys = torch.empty(0)
        self._rows: torch.Tensor | None = None
        self._gen = torch.Generator().manual_seed(0)

    def update(self, x: torch.Tensor) -> None:
        """Fold the tokens of a batch ``(..., C)`` into the sample."""
        rows = x.detach().reshape(-1, x.shape[-1]).float()
        keys = torch.rand(rows.shape[0], generator=self._gen)
        if self._rows is not None:
            rows = torch.cat([self._rows, rows])
            keys = torch.cat([self._keys, keys])
        if keys.numel() > self.size:
            idx = torch.topk(keys, self.size).indices
            rows, keys = rows[idx], keys[idx]
        self._rows, self._keys = rows, keys

    def data(self) -> torch.Tensor:
        """The sampled tokens ``(n, C)``.

        Raises:
            VitqError: nothing was sampled yet.
        """
        if self._rows is None:
            raise VitqError("OPT-m has no calibration data")
        return self._rows


def _screen_errors(x2: torch.Tensor, weight: torch.Tensor, search: OptMSearch) -> torch.Tensor:
    """Diagonal proxy of every candidate's next-Linear SSE from two weighted value histograms (module docstring).

    Returns:
        float64 ``(n_candidates,)``.
    """
    lo, hi = -(2 ** (search.bits - 1)), 2 ** (search.bits - 1) - 1
    energy = (weight.float() ** 2).sum(dim=0).expand_as(x2)
    total = torch.zeros(search.delta_n.numel(), dtype=torch.float64)
    neg = x2 < 0
    for mask, scale, qlo, qhi in ((neg, search.delta_n, lo, 0), (~neg, search.delta_p, 0, hi)):
        v, w = x2[mask].double(), energy[mask].double()
        if v.numel() == 0:
            continue
        vmin = v.min()
        width = torch.clamp(v.max() - vmin, min=torch.finfo(torch.float32).tiny) / _SCREEN_BINS
        idx = torch.clamp(((v - vmin) / width).long(), 0, _SCREEN_BINS - 1)
        mass = torch.bincount(idx, weights=w, minlength=_SCREEN_BINS)
        moment = torch.bincount(idx, weights=w * v, minlength=_SCREEN_BINS)
        used = mass > 0
        mass, mean = mass[used], moment[used] / mass[used]
        d = scale.double().unsqueeze(1)
        q = torch.clamp(torch.round(mean / d), qlo, qhi) * d
        total += ((q - mean) ** 2 * mass).sum(dim=1)
    return total


def search_optm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: int,
    m_values: Iterable[int] = range(0, 9),
    n_grid: int = 50,
    *,
    grid_lo: float = 0.05,
    grid_hi: float = 1.0,
    top_k: int | None = None,
) -> OptMResult:
    """One-shot OPT-m search on a calibration tensor (see module docstring).

    Args:
        x: Post-GELU activations ``(..., C)`` (must contain a positive value).
        weight: Next Linear's weight ``(out, C)``.
        bias: Next Linear's bias (unused: it cancels in ``y_q - y``; accepted for API symmetry).
        bits: Code bits (sign included).
        m_values: Candidate ratio exponents.
        n_grid: Candidates of ``delta_p`` per ``m``.
        grid_lo: Smallest ``delta_p`` factor.
        grid_hi: Largest ``delta_p`` factor.
        top_k: score only the ``top_k`` candidates of the histogram screen exactly (module docstring);
            ``None`` scores every candidate exactly.

    Returns:
        :class:`OptMResult`; with ``top_k``, ``errors`` is ``inf`` for the candidates the screen dropped.
    """
    check_nonempty(x, "x")
    check_finite(x, "x")
    if bias is not None:
        check_finite(bias, "bias")
    x_max = float(x.detach().max())
    if x_max <= 0:
        raise ValueError(f"x must contain a positive value to place the positive grid, got max {x_max}")
    search = OptMSearch(weight, bits, x_max, m_values, n_grid, grid_lo, grid_hi)
    if top_k is None or top_k >= search.delta_n.numel():
        search.update(x)
        return search.result()
    check_bits(top_k, lo=1, hi=100_000, what="top_k")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x must have last dimension {weight.shape[1]}, got shape {tuple(x.shape)}")
    x2 = x.detach().reshape(-1, weight.shape[1]).float()
    keep = torch.topk(_screen_errors(x2, search.weight, search), top_k, largest=False).indices
    shortlist = OptMSearch(weight, bits, x_max, m_values, n_grid, grid_lo, grid_hi)
    full_n, full_p = shortlist.delta_n, shortlist.delta_p
    shortlist.delta_n, shortlist.delta_p = full_n[keep], full_p[keep]
    shortlist.sse = torch.zeros(top_k, dtype=torch.float64)
    shortlist.update(x2)
    sse = torch.full((full_n.numel(),), float("inf"), dtype=torch.float64)
    sse[keep] = shortlist.sse
    search.sse, search.count = sse, shortlist.count
    return search.result()
