"""I-ViT I-LayerNorm and the exact integer square root."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.ops import isqrt_newton
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm

INT31 = 2**31 - 1


# ------------------------------------------------ reference: official IntLayerNorm, float64 numpy (reference §2.4)
def ref_i_layernorm(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, official_sqrt: bool
) -> tuple[np.ndarray, np.ndarray]:
    c = x.shape[-1]
    xf = x.astype(np.float64)
    mean = np.round(xf.mean(axis=-1, keepdims=True))
    y = xf - mean
    var = (y**2).sum(axis=-1, keepdims=True)
    if official_sqrt:
        k = np.full_like(var, 2.0**16)
        for _ in range(10):
            k = np.floor((k + np.floor(var / k)) / 2)
        std = k
    else:
        std = np.array([math.isqrt(int(v)) for v in var.reshape(-1)], dtype=np.float64).reshape(var.shape)
    std = np.maximum(std, 1)
    factor = np.floor(INT31 / std)
    y = np.floor(y * factor / 2)
    scale = math.sqrt(c) / 2**30
    bias_int = np.floor((beta / gamma) / scale)
    return (y + bias_int).astype(np.int64), (scale * gamma).astype(np.float32)


# ------------------------------------------------------------------------------------------------- isqrt
EDGE = [
    0,
    1,
    2,
    3,
    4,
    15,
    16,
    17,
    2**32 - 1,
    2**32,
    2**52 + 1,
    2**62,
    2**63 - 1,
    (2**31 - 1) ** 2,
    3037000499**2,
]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=64))
def test_isqrt_exact_for_all_int64(values: list[int]) -> None:
    v = torch.tensor(values + EDGE, dtype=torch.int64)
    got = isqrt_newton(v).tolist()
    assert got == [math.isqrt(t) for t in values + EDGE]


def test_isqrt_squares_neighbours() -> None:
    r = torch.randint(0, 3037000499, (2000,), generator=torch.Generator().manual_seed(0))
    for v in (r * r, r * r - 1, r * r + r, (r * r - 1).clamp(min=0)):
        assert isqrt_newton(v.clamp(min=0)).tolist() == [math.isqrt(int(t)) for t in v.clamp(min=0)]


def test_isqrt_official_is_not_exact_everywhere() -> None:
    v = torch.tensor([0, 1, 2**20, 2**44, 2**50])
    off = isqrt_newton(v, init="official").tolist()
    assert off[2] == 1024 and off[3] == 2**22  # converged in the range the official code is used for
    assert off[0] == 64 and off[1] == 64  # halving from 2^16 for 10 steps never reaches sqrt
    assert off[4] == 34806499  # 2^25 expected: not converged after 10 steps from below
    assert isqrt_newton(v).tolist() == [0, 1, 1024, 2**22, 2**25]


# --------------------------------------------------------------------------------------------- I-LayerNorm
KINDS = st.sampled_from(["random16", "random8", "equal", "zeros", "outlier", "tiny"])


def make_input(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if kind == "random8":
        return rng.integers(-128, 128, size=shape)
    if kind == "equal":
        return np.full(shape, int(rng.integers(-30000, 30000)), dtype=np.int64)
    if kind == "zeros":
        return np.zeros(shape, dtype=np.int64)
    if kind == "outlier":
        x = rng.integers(-300, 300, size=shape)
        x[:, 3] *= 100
        return x
    if kind == "tiny":
        return rng.integers(-1, 2, size=shape)
    return rng.integers(-(2**15), 2**15, size=shape)


@settings(max_examples=50, deadline=None)
@given(kind=KINDS, seed=st.integers(0, 2**31), official=st.booleans())
def test_i_layernorm_bit_exact(kind: str, seed: int, official: bool) -> None:
    rng = np.random.default_rng(seed)
    x = make_input(kind, rng, (5, 48))
    gamma = rng.uniform(0.2, 2.0, 48) * rng.choice([-1.0, 1.0], 48)
    beta = rng.normal(0, 0.5, 48)
    got, got_scale = i_layernorm(
        torch.from_numpy(x),
        0.01,
        torch.from_numpy(gamma),
        torch.from_numpy(beta),
        sqrt_mode="official" if official else "exact",
    )
    ref, ref_scale = ref_i_layernorm(x, gamma, beta, official)
    np.testing.assert_array_equal(got.numpy(), ref)
    np.testing.assert_array_equal(got_scale.numpy(), ref_scale)


def test_i_layernorm_error_vs_float() -> None:
    g = torch.Generator().manual_seed(0)
    xf = torch.randn(8, 197, 384, generator=g) * torch.linspace(0.5, 3, 384) + torch.linspace(-2, 2, 384)
    xf[..., 7] *= 30  # outlier channel
    scale = float(xf.abs().max() / (2**15 - 1))
    x = torch.round(xf / scale).long()
    w = torch.rand(384, generator=g) + 0.5
    b = torch.randn(384, generator=g) * 0.1
    ref = F.layer_norm(x * scale, (384,), w, b, eps=1e-6)
    y, ys = i_layernorm(x, scale, w, b)
    err = (y * ys - ref).abs()
    # measured: max 1.08e-3, mean 2.24e-4 (both sqrt modes); dominated by round(mean) = +-0.5 input LSB
    # relative to the per-token std, which the 30x outlier channel makes coarse for the other channels
    assert err.max() < 1.3e-3 and err.mean() < 2.7e-4


def test_gamma_zero_guard() -> None:
    x = torch.randint(-1000, 1000, (4, 16), generator=torch.Generator().manual_seed(0))
    w = torch.ones(16)
    w[2] = 0.0
    w[5] = -1e-12
    b = torch.full((16,), 0.3)
    y, ys = i_layernorm(x, 0.01, w, b, gamma_min=1e-6)
    assert torch.isfinite(ys).all() and (ys != 0).all()
    ref = F.layer_norm(x * 0.01, (16,), w, b, eps=0.0)
    err = (y * ys - ref).abs()
    assert err[:, [2, 5]].max() < 1e-5  # guarded channels: output ~ beta (measured 1.4e-6)
    assert err.max() < 1.3e-3  # measured 1.1e-3 (round(mean) with |x| <= 1000 over 16 channels)


def test_out_bits_saturates() -> None:
    x = torch.randint(-(2**15), 2**15, (4, 64), generator=torch.Generator().manual_seed(0))
    y, _ = i_layernorm(x, 0.01, torch.ones(64), torch.zeros(64), out_bits=16)
    assert int(y.max()) <= 2**15 - 1 and int(y.min()) >= -(2**15)


def test_bad_inputs() -> None:
    x = torch.zeros(2, 8, dtype=torch.int64)
    w, b = torch.ones(8), torch.zeros(8)
    with pytest.raises(ValueError, match="integer tensor"):
        i_layernorm(x.float(), 0.1, w, b)
    with pytest.raises(ValueError, match=r"weight must have shape \(8,\)"):
        i_layernorm(x, 0.1, torch.ones(4), b)
    with pytest.raises(ValueError, match="finite"):
        i_layernorm(x, 0.1, w, torch.full((8,), float("nan")))
    with pytest.raises(ValueError, match="scale"):
        i_layernorm(x, -0.1, w, b)
    with pytest.raises(ValueError, match="< 2\\^31"):
        i_layernorm(torch.full((2, 8), 2**40), 0.1, w, b)
    with pytest.raises(ValueError, match="out_bits"):
        i_layernorm(x, 0.1, w, b, out_bits=1)
    with pytest.raises(ValueError, match="sqrt_mode"):
        i_layernorm(x, 0.1, w, b, sqrt_mode="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="v >= 0"):
        isqrt_newton(torch.tensor([-1]))
    with pytest.raises(ValueError, match="int64"):
        isqrt_newton(torch.tensor([1], dtype=torch.int32))


@pytest.mark.parametrize("channels", [384, 768])
@pytest.mark.parametrize("outlier", [10.0, 100.0])
def test_i_layernorm_at_vit_widths_with_outlier_channels(channels: int, outlier: float) -> None:
    """ViT-S/B widths with a few channels 10-100x the median (as pretrained ViTs' residual streams have).

    On 16-bit codes (what I-ViT feeds it) the kernel is within 0.01% of float LayerNorm on the same codes and
    the int64 sums cannot overflow. On 8-bit codes the integer mean and ``floor((2^31 - 1) / std)`` of a
    small std cost up to 0.8% (measured 0.54-0.75%); the same codes refined to 16 bits (``x << 8``, the same
    real values) bring it back to 0.004%: the kernels do not refine LayerNorm inputs yet (left to #17).
    """
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(4, 197, channels, generator=g, dtype=torch.float64)
    x[..., :6] *= outlier  # outlier channels
    x[..., 6:12] += 3.0 * outlier  # and an offset, so the mean is large too
    w = 1 + 0.1 * torch.randn(channels, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(channels, generator=g, dtype=torch.float64)
    for bits, shift, bound in ((16, 0, 1e-4), (8, 0, 0.01), (8, 8, 1e-4)):
        s = float(x.abs().max()) / (2 ** (bits - 1) - 1)
        xi = torch.round(x / s).long()
        y, ys = i_layernorm(xi << shift, s / 2**shift, w, b)
        ref = F.layer_norm(xi.double() * s, (channels,), w, b, eps=1e-12)
        err = float((y.double() * ys.double() - ref).abs().max()) / float(ref.abs().max())
        assert err < bound, (bits, shift, err)
