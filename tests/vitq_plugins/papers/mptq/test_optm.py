"""MPTQ-style OPT-m: two-region post-GELU quantizer and the next-Linear-MSE search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.ops import fake_quant
from vitq_plugins.papers.mptq.optm import DEFAULT_TOP_K
from vitq_plugins.papers.mptq.optm import OptMSearch
from vitq_plugins.papers.mptq.optm import search_optm
from vitq_plugins.papers.mptq.optm import twin_dequantize
from vitq_plugins.papers.mptq.optm import twin_fake_quant
from vitq_plugins.papers.mptq.optm import twin_quantize


def post_gelu(n: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.gelu(torch.randn(n, c, generator=g) * 2.0)


def ref_twin(x: np.ndarray, dn: float, m: int, bits: int) -> np.ndarray:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    dp = np.float32(dn) * np.float32(2.0**m)
    neg = np.clip(np.round(x / np.float32(dn)), lo, 0) * np.float32(dn)
    pos = np.clip(np.round(x / dp), 0, hi) * dp
    return np.where(x < 0, neg, pos).astype(np.float32)


def test_twin_code_layout() -> None:
    x = torch.tensor([-0.17, -0.05, 0.0, 0.04, 0.5, 3.0, 100.0])
    q = twin_quantize(x, 0.01, 4, bits=4)
    assert q.tolist() == [-8, -5, 0, 0, 3, 7, 7]  # negatives use delta_n, positives delta_p = 16 * delta_n
    deq = twin_dequantize(q, 0.01, 4, bits=4)
    torch.testing.assert_close(deq, torch.tensor([-0.08, -0.05, 0.0, 0.0, 0.48, 1.12, 1.12]))
    xg = x.clone().requires_grad_(True)
    y = twin_fake_quant(xg, 0.01, 4, bits=4)
    torch.testing.assert_close(y.detach(), deq)
    y.sum().backward()
    assert xg.grad is not None and torch.equal(xg.grad, torch.ones_like(x))
    np.testing.assert_allclose(y.detach().numpy(), ref_twin(x.numpy(), 0.01, 4, 4), rtol=1e-6)


def test_search_matches_bruteforce() -> None:
    x = post_gelu(256, 32, 0)
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    res = search_optm(x, w, None, bits=4, m_values=range(0, 6), n_grid=12)
    dp_max = float(x.max()) / 7
    best, best_cfg = np.inf, (0.0, -1)
    for m in range(6):
        for f in np.linspace(0.05, 1.0, 12, dtype=np.float32):
            dn = float(np.float32(dp_max * f) / np.float32(2.0**m))
            xq = torch.from_numpy(ref_twin(x.numpy(), dn, m, 4))
            mse = float((((xq - x) @ w.t()) ** 2).mean())
            if mse < best * (1 - 1e-6):
                best, best_cfg = mse, (dn, m)
    assert res.m == best_cfg[1]
    assert res.delta_n == pytest.approx(best_cfg[0], rel=1e-6)
    assert res.mse == pytest.approx(best, rel=1e-4)
    assert res.errors.shape == (6, 12)


def test_streaming_equals_one_shot_and_beats_uniform() -> None:
    x = post_gelu(300, 64, 2)
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(3)) / 8
    one = search_optm(x, w, torch.zeros(32), bits=4)
    stream = OptMSearch(w, 4, float(x.max()))
    for part in x.split(100):
        stream.update(part)
    res = stream.result()
    assert (res.m, res.delta_n) == (one.m, one.delta_n)
    torch.testing.assert_close(res.errors, one.errors, rtol=1e-6, atol=0.0)
    # baseline: signed 4-bit symmetric min/max uniform
    scale = float(x.abs().max()) / 7.5
    mse_uniform = float((((fake_quant(x, scale, 0, -8, 7) - x) @ w.t()) ** 2).mean())
    assert one.mse * 1.5 < mse_uniform  # measured 1.93x lower
    assert one.m > 0  # post-GELU negatives need a finer scale than positives


def test_bad_inputs() -> None:
    x = post_gelu(8, 4, 0)
    w = torch.ones(2, 4)
    with pytest.raises(ValueError, match="delta_n"):
        twin_fake_quant(x, 0.0, 2, 4)
    with pytest.raises(ValueError, match=r"m must be an integer in \[0, 30\]"):
        twin_quantize(x, 0.1, -1, 4)
    with pytest.raises(ValueError, match=r"bits must be in \[2, 16\], got 1"):
        twin_fake_quant(x, 0.1, 2, 1)
    with pytest.raises(ValueError, match="finite"):
        search_optm(torch.full((2, 4), float("nan")), w, None, 4)
    with pytest.raises(ValueError, match="positive value"):
        search_optm(-x.abs() - 1, w, None, 4)
    with pytest.raises(ValueError, match="last dimension 4"):
        OptMSearch(w, 4, 1.0).update(torch.ones(3, 5))
    with pytest.raises(ValueError, match="m_values"):
        search_optm(x, w, None, 4, m_values=[])
    with pytest.raises(RuntimeError, match="before any update"):
        OptMSearch(w, 4, 1.0).result()


@pytest.mark.parametrize("bits", [4, 8])
def test_screened_search_keeps_the_exact_minimum_and_scores_only_top_k(bits: int) -> None:
    # correlated channels (a low-rank mixing) so that the screen's diagonal proxy is not the objective
    g = torch.Generator().manual_seed(5)
    x = F.gelu(torch.randn(512, 8, generator=g) @ torch.randn(8, 96, generator=g))
    w = torch.randn(48, 96, generator=g) / 10
    exact = search_optm(x, w, None, bits)
    screened = search_optm(x, w, None, bits, top_k=32)
    assert screened.mse <= exact.mse * 1.02
    scored = torch.isfinite(screened.errors)
    assert int(scored.sum()) == 32 and screened.errors.shape == exact.errors.shape
    torch.testing.assert_close(screened.errors[scored], exact.errors[scored], rtol=1e-9, atol=0.0)
    assert float(screened.errors.min()) == pytest.approx(screened.mse)
    one = search_optm(x, w, None, bits, top_k=1)  # the screen's own choice, scored exactly
    assert one.mse >= exact.mse
    with pytest.raises(ValueError, match="last dimension 96"):
        search_optm(x[:, :5], w, None, bits, top_k=4)


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_wings_pass_the_search_options(backend: str) -> None:
    from vitq_plugins.core.manager import get_host

    made = get_host().quantizers.get("optm").factory(backend)("gelu_output", 4, optm_max_m=3, optm_top_k=0)
    if backend == "brevitas":
        assert (int(made.optm_max_m), int(made.optm_top_k)) == (3, 0)
    else:
        assert made.kwargs == {"bits": 4, "max_m": 3, "top_k": 0}
    default = get_host().quantizers.get("optm").factory(backend)("gelu_output", 4)
    top_k = int(default.optm_top_k) if backend == "brevitas" else default.kwargs["top_k"]
    assert top_k == DEFAULT_TOP_K
