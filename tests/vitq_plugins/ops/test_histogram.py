"""Streaming moment histogram: exact moments under range growth, near-exact quantization error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest
import torch

from vitq_plugins.ops import MomentHistogram


def exact_sse(x: torch.Tensor, scale: torch.Tensor, zp: float, qmin: int, qmax: int) -> torch.Tensor:
    xd = x.double().unsqueeze(-1)
    xq = (torch.clamp(torch.round(xd / scale + zp), qmin, qmax) - zp) * scale
    return ((xd - xq) ** 2).sum(dim=0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), growth=st.floats(0.5, 50.0), offset=st.floats(-100, 100))
def test_moments_exact_and_merge_invariant(seed: int, growth: float, offset: float) -> None:
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randn(64, 5, generator=g) * growth**i + offset for i in range(4)]
    h = MomentHistogram(5, bins=64)
    for b in batches:
        h.update(b)
    full = torch.cat(batches).double()
    assert torch.equal(h.total, torch.full((5,), 256.0, dtype=torch.float64))
    torch.testing.assert_close(h.sum.sum(1), full.sum(0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h.sumsq.sum(1), (full**2).sum(0), rtol=1e-9, atol=1e-9)
    assert torch.equal(h.min, full.min(0).values) and torch.equal(h.max, full.max(0).values)
    one = MomentHistogram(5, bins=64)
    one.update(torch.cat(batches))
    assert torch.equal(one.exponent, h.exponent) and torch.equal(one.start, h.start)
    assert torch.equal(one.count, h.count)  # power-of-two merging is exact
    torch.testing.assert_close(one.sum, h.sum, rtol=1e-9, atol=1e-9)


def test_quant_sse_close_to_exact() -> None:
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.1, 1.0, 10.0])
    x = torch.randn(20000, 3, generator=g) * scales
    h = MomentHistogram(3, bins=256)
    for part in x.split(5000):
        h.update(part)
    cand = torch.tensor([0.001, 0.01, 0.05, 0.2])
    sc = cand.double().unsqueeze(0).expand(3, -1)
    got = h.quant_sse(sc, 128.0, qmin=0, qmax=255)
    ref = torch.stack([exact_sse(x[:, c], cand.double(), 128.0, 0, 255) for c in range(3)])
    torch.testing.assert_close(got, ref, rtol=0.02, atol=0.0)


def test_quant_sse_exact_on_grid_points() -> None:
    # bins of width 0.25 hold a single lattice value each: M2 = 0 -> the point formula is exact, ties included
    x = torch.randint(-20, 21, (500, 2)).float() * 0.5
    h = MomentHistogram(2, bins=128)
    h.update(x)
    got = h.quant_sse(torch.tensor([0.5, 1.0]), 0.0, qmin=-8, qmax=7)
    ref = torch.stack(
        [exact_sse(x[:, c], torch.tensor([0.5, 1.0], dtype=torch.float64), 0.0, -8, 7) for c in range(2)]
    )
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-9)


def test_constant_and_extreme_channels() -> None:
    x = torch.stack([torch.zeros(100), torch.full((100,), 3.0), torch.linspace(-1e6, 1e6, 100)], dim=1)
    h = MomentHistogram(3, bins=16)
    h.update(x)
    h.update(x * 2)
    assert torch.equal(h.total, torch.full((3,), 200.0, dtype=torch.float64))
    sse = h.quant_sse(torch.tensor([1.0]), 0.0, qmin=-128, qmax=127)
    assert sse[0, 0] == 0.0 and sse[1, 0] == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="bins"):
        MomentHistogram(3, bins=2)
    h = MomentHistogram(3)
    with pytest.raises(RuntimeError, match="before any update"):
        h.quant_sse(torch.ones(1), 0.0, qmin=0, qmax=255)
    with pytest.raises(ValueError, match="last dimension 3"):
        h.update(torch.ones(4, 2))
    with pytest.raises(ValueError, match="finite"):
        h.update(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="non-empty"):
        h.update(torch.ones(0, 3))
