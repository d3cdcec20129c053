"""Uniform baseline: qparams (FQ-ViT conventions), fake-quant, streaming MinMax / Percentile / OMSE."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import torch

from vitq_plugins.ops import MinMaxObserver
from vitq_plugins.ops import OMSEObserver
from vitq_plugins.ops import PercentileObserver
from vitq_plugins.ops import dequantize
from vitq_plugins.ops import fake_quant
from vitq_plugins.ops import omse_search
from vitq_plugins.ops import qparams_from_minmax
from vitq_plugins.ops import qrange
from vitq_plugins.ops import quantize

EPS = np.finfo(np.float32).eps


# ----------------------------------------------- reference: FQ-ViT observers in numpy (reference §1.1)
def ref_qparams(
    mn: np.ndarray, mx: np.ndarray, qmin: int, qmax: int, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    mn, mx = mn.astype(np.float32), mx.astype(np.float32)
    if symmetric:
        scale = np.maximum(np.maximum(-mn, mx) / np.float32((qmax - qmin) / 2), EPS)
        return scale, np.zeros_like(scale, dtype=np.int64)
    scale = np.maximum((mx - mn) / np.float32(qmax - qmin), EPS).astype(np.float32)
    zp = np.clip(qmin - np.round(mn / scale), qmin, qmax).astype(np.int64)
    return scale, zp


def ref_omse(x: np.ndarray, mn: float, mx: float, qmin: int, qmax: int) -> tuple[int, list[float]]:
    best, best_i, scores = 1e10, -1, []
    for i in range(90):
        nmx = np.float32(mx) * np.float32(1.0 - i * 0.01)
        nmn = np.float32(mn) * np.float32(1.0 - i * 0.01)
        scale = max(np.float32((nmx - nmn) / np.float32(qmax - qmin)), EPS)
        zp = np.clip(qmin - np.round(nmn / scale), qmin, qmax)
        xq = (np.clip(np.round(x / scale + zp), qmin, qmax) - zp) * scale
        score = float(np.mean((x.astype(np.float64) - xq) ** 2))
        scores.append(score)
        if score < best:
            best, best_i = score, i
    return best_i, scores


# ---------------------------------------------------------------------------------------------- qparams
def test_qrange() -> None:
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(8, True, narrow=True) == (-127, 127)
    assert qrange(4, False, narrow=True) == (0, 14)
    assert qrange(1, False) == (0, 1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    bits=st.sampled_from([2, 4, 8]),
    symmetric=st.booleans(),
    channels=st.sampled_from([0, 1, 7]),
)
def test_qparams_match_fqvit(seed: int, bits: int, symmetric: bool, channels: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (channels,) if channels else ()
    mn = (-np.abs(rng.normal(size=shape)) * 3).astype(np.float32)
    mx = (np.abs(rng.normal(size=shape)) * 3).astype(np.float32)
    signed = symmetric
    qmin, qmax = qrange(bits, signed)
    scale, zp = qparams_from_minmax(
        torch.tensor(mn), torch.tensor(mx), bits, symmetric=symmetric, signed=signed
    )
    rscale, rzp = ref_qparams(mn, mx, qmin, qmax, symmetric)
    np.testing.assert_array_equal(scale.numpy(), rscale)
    np.testing.assert_array_equal(zp.numpy(), rzp)


def test_degenerate_range_clamps_scale() -> None:
    scale, zp = qparams_from_minmax(torch.tensor(0.0), torch.tensor(0.0), 8, symmetric=False, signed=False)
    assert float(scale) == EPS and int(zp) == 0


def test_quantize_dequantize_fake_quant_per_channel() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, generator=g, requires_grad=True)
    obs = MinMaxObserver(per_channel_axis=1)
    obs.update(x)
    scale, zp = obs.qparams(8, symmetric=False, signed=False)
    q = quantize(x, scale, zp, 0, 255, axis=1)
    assert q.dtype == torch.int64 and int(q.min()) >= 0 and int(q.max()) <= 255
    deq = dequantize(q, scale, zp, axis=1)
    assert (deq - x).abs().max() <= scale.max() / 2 + 1e-6
    y = fake_quant(x, scale, zp, 0, 255, axis=1)
    assert torch.equal(y.detach(), deq.to(y.dtype))
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))  # straight-through


# ---------------------------------------------------------------------------------------------- observers
def test_minmax_streaming_equals_concat() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 5, 6, generator=g) * (i + 1) for i in range(4)]
    full = torch.cat(batches)
    for axis in (None, -1, 1):
        obs = MinMaxObserver(axis)
        for b in batches:
            obs.update(b)
        ref = MinMaxObserver(axis)
        ref.update(full)
        assert torch.equal(obs.min, ref.min) and torch.equal(obs.max, ref.max)


def test_percentile_ema_matches_fqvit() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.standard_t(3, size=(4, 50, 16)).astype(np.float32) for _ in range(3)]
    obs = PercentileObserver(0.999)
    rmin = rmax = None
    for b in batches:
        obs.update(torch.from_numpy(b))
        cmax = np.percentile(b.reshape(-1), 99.9)
        cmin = np.percentile(b.reshape(-1), 100 * (1 - 0.999))
        rmax = cmax if rmax is None else rmax + 0.01 * (cmax - rmax)
        rmin = cmin if rmin is None else rmin + 0.01 * (cmin - rmin)
    assert float(obs.max) == pytest.approx(rmax, rel=1e-5)
    assert float(obs.min) == pytest.approx(rmin, rel=1e-5)


def test_percentile_histogram_is_all_data_quantile() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 200, generator=g) * (1 + i) for i in range(4)]
    obs = PercentileObserver(0.99, method="histogram")
    for b in batches:
        obs.update(b)
    full = torch.cat([b.reshape(-1) for b in batches])
    assert float(obs.max) == pytest.approx(float(torch.quantile(full, 0.99)), rel=0.01)
    assert float(obs.min) == pytest.approx(float(torch.quantile(full, 0.01)), rel=0.01)
    scale, zp = obs.qparams(8, symmetric=False, signed=False)
    assert float(scale) > 0 and 0 <= int(zp) <= 255


def test_omse_matches_fqvit_loop() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_t(4, size=(3, 64, 32)).astype(np.float32)
    mn, mx = float(x.min()), float(x.max())
    res = omse_search(torch.from_numpy(x), mn, mx, 8)
    ref_i, ref_scores = ref_omse(x, mn, mx, 0, 255)
    assert res.index == ref_i
    np.testing.assert_allclose(res.errors.numpy(), ref_scores, rtol=1e-5)
    assert float(res.max_val) == pytest.approx(mx * (1 - 0.01 * ref_i), rel=1e-6)


def test_omse_streaming_all_vs_last() -> None:
    g = torch.Generator().manual_seed(2)
    batches = [torch.distributions.StudentT(3.0).sample((4, 128, 16)) for _ in range(5)]
    del g
    full = torch.cat(batches)
    exact = omse_search(full, full.min(), full.max(), 8)
    obs_all, obs_last = OMSEObserver(8, stats="all"), OMSEObserver(8, stats="last")
    for b in batches:
        obs_all.update(b)
        obs_last.update(b)
    r_all, r_last = obs_all.compute(), obs_last.compute()
    # histogram errors track the exact all-data errors closely and pick a near-optimal candidate
    np.testing.assert_allclose(r_all.errors.numpy(), exact.errors.numpy(), rtol=0.02)
    assert float(exact.errors[r_all.index]) <= float(exact.errors.min()) * 1.005
    assert torch.equal(r_last.errors, omse_search(batches[-1], full.min(), full.max(), 8).errors)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"bits must be in \[2, 32\], got 1"):
        qrange(1, True)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 32\], got 0"):
        qrange(0, False)
    with pytest.raises(ValueError, match="bits"):
        qparams_from_minmax(torch.tensor(0.0), torch.tensor(1.0), 64, symmetric=False, signed=False)
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        qparams_from_minmax(torch.tensor(2.0), torch.tensor(1.0), 8, symmetric=False, signed=False)
    with pytest.raises(ValueError, match="same shape"):
        qparams_from_minmax(torch.zeros(3), torch.zeros(4), 8, symmetric=False, signed=False)
    with pytest.raises(ValueError, match="finite"):
        quantize(torch.tensor([float("nan")]), 0.1, 0, 0, 255)
    with pytest.raises(ValueError, match="non-empty"):
        fake_quant(torch.zeros(0), 0.1, 0, 0, 255)
    with pytest.raises(ValueError, match="scale"):
        quantize(torch.ones(3), -0.1, 0, 0, 255)
    with pytest.raises(ValueError, match="qmin must be < qmax"):
        quantize(torch.ones(3), 0.1, 0, 5, 5)
    with pytest.raises(ValueError, match=r"scale must be 0-d or of shape \(3,\)"):
        quantize(torch.ones(2, 3), torch.ones(2), 0, 0, 255, axis=1)
    obs = MinMaxObserver(-1)
    with pytest.raises(RuntimeError, match="before any update"):
        _ = obs.min
    obs.update(torch.ones(2, 3))
    with pytest.raises(ValueError, match="channel count changed"):
        obs.update(torch.ones(2, 4))
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(0.3)
    with pytest.raises(ValueError, match="finite"):
        PercentileObserver().update(torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match="0-d"):
        omse_search(torch.ones(4), torch.zeros(2), torch.ones(2), 8)
    with pytest.raises(ValueError, match="stats"):
        OMSEObserver(8, stats="first")  # type: ignore[arg-type]
