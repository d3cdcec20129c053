"""FQ-ViT Power-of-Two Factor (PTF/"PTS") observer, fake-quant and the integer LayerNorm."""

from __future__ import annotations

from fractions import Fraction
import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.ops import MinMaxObserver
from vitq_plugins.ops import fake_quant
from vitq_plugins.papers.fqvit.pts import PTSObserver
from vitq_plugins.papers.fqvit.pts import PTSParams
from vitq_plugins.papers.fqvit.pts import pts_fake_quant
from vitq_plugins.papers.fqvit.pts import pts_int_layernorm
from vitq_plugins.papers.fqvit.pts import pts_quantize

EPS32 = np.finfo(np.float32).eps


def ln_like(batches: int, tokens: int, c: int, seed: int, outlier: float = 100.0) -> torch.Tensor:
    """LayerNorm-input-like data: per-channel offsets and log-uniform scales, one channel ``outlier`` x larger."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.empty(c).uniform_(math.log(0.1), math.log(2.0), generator=g))
    scales[c // 3] *= outlier
    offsets = torch.randn(c, generator=g) * 0.3
    return torch.randn(batches, tokens, c, generator=g) * scales + offsets


# ---------------------------------------------------- reference: FQ-ViT PtfObserver, numpy float32 (reference §1.2)
def ref_ptf(
    last: np.ndarray, mn: np.ndarray, mx: np.ndarray, bits: int = 8
) -> tuple[np.float32, np.ndarray, int]:
    qmin, qmax = 0, 2**bits - 1
    scale8 = np.float32(max(np.float32((mx.max() - mn.min()) / np.float32(qmax - qmin)), EPS32))
    scale1 = np.float32(scale8 / 8)
    zp = int(np.clip(qmin - np.round(mn.min() / scale8), qmin, qmax))
    alpha = np.zeros(last.shape[-1], dtype=np.int64)
    for j in range(last.shape[-1]):
        data = last[..., j]
        scores = []
        for a in range(4):
            s = np.float32(scale1 * 2**a)
            dq = (np.clip(np.round(data / s + zp), qmin, qmax) - zp) * s
            scores.append(float(np.mean((data.astype(np.float64) - dq) ** 2)))
        alpha[j] = scores.index(min(scores))
    return scale1, alpha, zp


def test_last_matches_official_ptf() -> None:
    batches = [ln_like(2, 50, 96, seed=s) for s in range(3)]
    obs = PTSObserver(96, stats="last")
    for b in batches:
        obs.update(b)
    p = obs.compute()
    full = torch.cat(batches).reshape(-1, 96).numpy()
    base, alpha, zp = ref_ptf(batches[-1].reshape(-1, 96).numpy(), full.min(0), full.max(0))
    assert float(p.scale_base) == base
    assert int(p.zero_point) == zp
    np.testing.assert_array_equal(p.alpha.numpy(), alpha)
    assert set(p.alpha.tolist()) >= {0, 3}  # the outlier channel needs the largest factor
    torch.testing.assert_close(p.scale, p.scale_base * 2.0 ** p.alpha.float())


def test_zero_point_paper_vs_official() -> None:
    x = ln_like(2, 64, 32, seed=0)
    off = PTSObserver(32, zero_point="official")
    pap = PTSObserver(32, zero_point="paper")
    off.update(x)
    pap.update(x)
    po, pp = off.compute(), pap.compute()
    scale8 = float(po.scale_base) * 8
    assert int(po.zero_point) == int(np.clip(-np.round(float(x.min()) / scale8), 0, 255))
    assert int(pp.zero_point) == int(np.clip(-np.round(float(x.min()) / float(po.scale_base)), 0, 255))
    assert int(pp.zero_point) > int(po.zero_point)


def test_pts_beats_per_tensor_minmax_by_4x() -> None:
    x = ln_like(4, 197, 192, seed=1)
    obs = PTSObserver(192)
    mm = MinMaxObserver()
    for b in x.split(1):
        obs.update(b)
        mm.update(b)
    p = obs.compute()
    scale, zp = mm.qparams(8, symmetric=False, signed=False)
    mse_pts = float(((pts_fake_quant(x, p) - x) ** 2).mean())
    mse_mm = float(((fake_quant(x, scale, zp, 0, 255) - x) ** 2).mean())
    assert mse_pts * 4 <= mse_mm  # measured 48.6x


def test_all_statistics_vs_last_batch() -> None:
    c = 128
    batches = [ln_like(2, 64, c, seed=10 + i) for i in range(6)]
    batches[-1][..., :48] *= 0.02  # the last batch under-represents 48 channels
    obs_all, obs_last = PTSObserver(c, stats="all"), PTSObserver(c, stats="last")
    for b in batches:
        obs_all.update(b)
        obs_last.update(b)
    p_all, p_last = obs_all.compute(), obs_last.compute()
    full = torch.cat(batches)
    exact = PTSObserver(c, stats="last")
    exact.update(full)  # errors on all data at once
    p_exact = exact.compute()
    assert (p_all.alpha == p_exact.alpha).float().mean() >= 0.99
    torch.testing.assert_close(obs_all.candidate_errors(), exact.candidate_errors(), rtol=0.05, atol=1e-12)
    mse_all = float(((pts_fake_quant(full, p_all) - full) ** 2).mean())
    mse_last = float(((pts_fake_quant(full, p_last) - full) ** 2).mean())
    assert mse_all < mse_last
    assert (p_last.alpha[:48] < p_all.alpha[:48]).any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), outlier=st.sampled_from([1.0, 10.0, 100.0]), growth=st.floats(0.5, 2.0))
def test_all_statistics_match_exact_alpha(seed: int, outlier: float, growth: float) -> None:
    x = ln_like(4, 40, 64, seed=seed % 10_000, outlier=outlier)
    stream = [b * growth**i for i, b in enumerate(x.split(1))]  # ranges grow or shrink over the stream
    obs = PTSObserver(64)
    for b in stream:
        obs.update(b)
    exact = PTSObserver(64, stats="last")
    exact.update(torch.cat(stream))
    e_all, e_exact = obs.candidate_errors(), exact.candidate_errors()
    chosen = e_exact.gather(1, e_all.argmin(1, keepdim=True))
    best = e_exact.min(1, keepdim=True).values
    assert bool((chosen <= best * 1.02 + 1e-12).all())  # near-optimal alpha in every channel
    assert (e_all.argmin(1) == e_exact.argmin(1)).float().mean() >= 0.95


# ------------------------------------------------------------------------------- integer LayerNorm
def ref_pts_ln(
    q: np.ndarray,
    p: PTSParams,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    out_scale: float,
    newton: bool,
) -> np.ndarray:
    """Official QIntLayerNorm int mode, with s_min cancelled analytically, exact int64 sums (reference §1.3)."""
    c = q.shape[-1]
    alpha = p.alpha.numpy()
    amin = int(alpha.min())
    x = (q.astype(np.int64) - int(p.zero_point)) * (2 ** (alpha - amin))
    s1 = x.sum(-1, keepdims=True)
    d = c * (x * x).sum(-1, keepdims=True) - s1 * s1
    s_min = float(p.scale_base) * 2.0**amin
    if eps > 0:
        d = d + math.ceil(eps * c * c / (s_min * s_min))
    d = np.maximum(d, 1)
    if newton:
        r = np.array([math.isqrt(int(v)) for v in d.reshape(-1)], dtype=np.float64).reshape(d.shape)
    else:
        r = np.sqrt(d.astype(np.float64))
    a = c * gamma / (r * out_scale)
    mant, exp = np.frexp(np.abs(a))
    n = np.clip(7 - np.where(np.abs(a) > 0, exp - 1, -(10**9)), 0, 31).astype(np.int64)
    m = np.clip(np.floor(np.abs(a) * 2.0**n), 0, 255).astype(np.int64)
    b = np.round((beta - s1 * gamma / r) / out_scale * 2.0**n).astype(np.int64)
    num = np.sign(a).astype(np.int64) * m * x + b
    flat = [
        round(Fraction(v, 2**sh))
        for v, sh in zip(num.reshape(-1).tolist(), n.reshape(-1).tolist(), strict=True)
    ]
    return np.array(flat, dtype=np.int64).reshape(num.shape)  # round(): ties to even, like torch.round


def official_float_ln(
    q: np.ndarray, p: PTSParams, gamma: np.ndarray, beta: np.ndarray, out_scale: float
) -> np.ndarray:
    """Literal QIntLayerNorm transcription in float64 (s_min kept, no eps)."""
    c = q.shape[-1]
    in_scale = p.scale.double().numpy()
    x = (q - int(p.zero_point)) * in_scale
    x_q = np.round(x / in_scale)
    s1 = in_scale.min()
    x_q = x_q * np.round(in_scale / s1)
    mean = x_q.mean(-1) * s1
    std = (s1 / c) * np.sqrt(c * (x_q**2).sum(-1) - x_q.sum(-1) ** 2)
    a = (s1 / std)[..., None] * gamma / out_scale
    n = np.clip(7 - np.floor(np.log2(np.abs(a))), 0, 31)
    m = np.clip(np.floor(np.abs(a) * 2**n), 0, 255)
    b = np.round((beta - (mean / std)[..., None] * gamma) / out_scale * 2**n)
    return np.round((np.sign(a) * m * x_q + b) / 2**n).astype(np.int64)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), eps=st.sampled_from([0.0, 1e-6, 1e-5]), newton=st.booleans())
def test_int_layernorm_bit_exact(seed: int, eps: float, newton: bool) -> None:
    x = ln_like(1, 12, 48, seed=seed % 10_000)
    obs = PTSObserver(48, stats="last")
    obs.update(x)
    p = obs.compute()
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.3, 1.5, 48) * rng.choice([-1.0, 1.0], 48)
    beta = rng.normal(0, 0.2, 48)
    q = pts_quantize(x, p)
    out_scale = 0.05
    got = pts_int_layernorm(
        q,
        p,
        torch.from_numpy(gamma),
        torch.from_numpy(beta),
        eps,
        out_scale,
        sqrt="newton" if newton else "float",
    )
    np.testing.assert_array_equal(got.numpy(), ref_pts_ln(q.numpy(), p, gamma, beta, eps, out_scale, newton))


def test_int_layernorm_vs_official_and_float() -> None:
    x = ln_like(2, 197, 192, seed=3)
    obs = PTSObserver(192)
    obs.update(x)
    p = obs.compute()
    g = torch.Generator().manual_seed(0)
    w = torch.rand(192, generator=g) + 0.5
    b = torch.randn(192, generator=g) * 0.1
    xq = pts_quantize(x, p)
    ref = F.layer_norm(pts_fake_quant(x, p), (192,), w, b, eps=1e-6)
    out_scale = float(ref.abs().max() / 127)
    y = pts_int_layernorm(xq, p, w, b, 0.0, out_scale)
    official = official_float_ln(xq.numpy(), p, w.double().numpy(), b.double().numpy(), out_scale)
    diff = np.abs(y.numpy() - official)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    err = (y * out_scale - ref).abs()
    # measured: max 1.13 output LSB, mean 0.25 LSB (0.5 LSB from rounding, the rest from the 8-bit mantissa M)
    assert float(err.max()) < 1.3 * out_scale and float(err.mean()) < 0.3 * out_scale
    y_newton = pts_int_layernorm(xq, p, w, b, 0.0, out_scale, sqrt="newton")
    assert int((y_newton - y).abs().max()) <= 1
    codes = pts_int_layernorm(xq, p, w, b, 1e-6, out_scale, out_bits=8, out_zero_point=128)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 255


# ------------------------------------------------------------------------------- bad input
def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="stats"):
        PTSObserver(8, stats="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero_point"):
        PTSObserver(8, zero_point="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"bits must be in \[2, 16\], got 0"):
        PTSObserver(8, bits=0)
    obs = PTSObserver(8)
    with pytest.raises(ValueError, match="last dimension 8"):
        obs.update(torch.ones(3, 7))
    with pytest.raises(ValueError, match="finite"):
        obs.update(torch.full((3, 8), float("nan")))
    with pytest.raises(ValueError, match="non-empty"):
        obs.update(torch.ones(0, 8))
    with pytest.raises(RuntimeError, match="before any update"):
        obs.compute()
    obs.update(torch.randn(4, 8))
    p = obs.compute()
    q = pts_quantize(torch.randn(4, 8), p)
    w, b = torch.ones(8), torch.zeros(8)
    with pytest.raises(ValueError, match="integer tensor"):
        pts_int_layernorm(q.float(), p, w, b, 0.0, 0.1)
    with pytest.raises(ValueError, match=r"codes in \[0, 255\]"):
        pts_int_layernorm(q + 1000, p, w, b, 0.0, 0.1)
    with pytest.raises(ValueError, match="out_scale"):
        pts_int_layernorm(q, p, w, b, 0.0, -1.0)
    with pytest.raises(ValueError, match=r"weight must have shape \(8,\)"):
        pts_int_layernorm(q, p, torch.ones(3), b, 0.0, 0.1)
    with pytest.raises(ValueError, match="eps"):
        pts_int_layernorm(q, p, w, b, -1.0, 0.1)
    wide = PTSParams(torch.tensor(1e-3), torch.tensor([0, 16] * 4), torch.tensor(0), 16)
    with pytest.raises(ValueError, match="overflow"):
        pts_int_layernorm(torch.full((2, 8), 2**16 - 1), wide, w, b, 0.0, 0.1)
