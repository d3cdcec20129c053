"""MPTQ-style SQ-b: parameters and in-place folding into LayerNorm + Linears (float function preserved)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.ops import MinMaxObserver
from vitq_plugins.papers.mptq.sqb import fold_sqb_
from vitq_plugins.papers.mptq.sqb import sqb_params


def test_sqb_params_formula() -> None:
    x_min = torch.tensor([-4.0, -1.0, 0.5])
    x_max = torch.tensor([2.0, 3.0, 0.5])
    w = torch.tensor([[1.0, -2.0, 0.5], [0.25, 1.0, -4.0]])
    z, s = sqb_params(x_min, x_max, w, alpha=0.5, eps=1e-5)
    torch.testing.assert_close(z, torch.tensor([-1.0, 1.0, 0.5]))
    expected = torch.tensor([3.0**0.5 / 1.0**0.5, 2.0**0.5 / 2.0**0.5, (1e-5) ** 0.5 / 4.0**0.5])
    torch.testing.assert_close(s, expected)
    z2, s2 = sqb_params(x_min, x_max, [w[:1], w[1:]], alpha=0.5)
    assert torch.equal(z2, z) and torch.equal(s2, s)
    _, s_all_act = sqb_params(x_min, x_max, w, alpha=1.0)
    torch.testing.assert_close(s_all_act, torch.tensor([3.0, 2.0, 1e-5]))


def _block_with_stats() -> tuple[nn.Module, torch.Tensor, dict[str, MinMaxObserver]]:
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    torch.manual_seed(0)
    block = timm_vit.Block(dim=64, num_heads=4).eval()
    with torch.no_grad():
        for ln in (block.norm1, block.norm2):
            ln.weight.copy_(torch.randn(64) * 0.5 + 1.0)
            ln.bias.copy_(torch.randn(64) * 2.0)  # strongly asymmetric LN outputs
    obs = {"norm1": MinMaxObserver(-1), "norm2": MinMaxObserver(-1)}
    hooks = [
        getattr(block, name).register_forward_hook(lambda _m, _i, out, o=o: o.update(out))
        for name, o in obs.items()
    ]
    calib = torch.randn(4, 17, 64) * 3
    with torch.no_grad():
        block(calib)
    for h in hooks:
        h.remove()
    return block, calib, obs


def test_fold_into_timm_block_preserves_output() -> None:
    block, calib, obs = _block_with_stats()
    x = torch.randn(3, 17, 64) * 3
    with torch.no_grad():
        ref = block(x)
        z1, s1 = sqb_params(obs["norm1"].min, obs["norm1"].max, block.attn.qkv.weight)
        z2, s2 = sqb_params(obs["norm2"].min, obs["norm2"].max, block.mlp.fc1.weight)
        fold_sqb_(block.norm1, [block.attn.qkv], z1, s1)
        fold_sqb_(block.norm2, [block.mlp.fc1], z2, s2)
        out = block(x)
        rel = (out - ref).abs().max() / ref.abs().max()
        assert float(rel) <= 1e-4
        # the folded LN output is centred: per-channel ranges become symmetric on the calibration data
        ln_out = block.norm1(calib)
        mn, mx = ln_out.amin(dim=(0, 1)), ln_out.amax(dim=(0, 1))
        assert float((mx + mn).abs().max()) < 1e-3 * float(mx.abs().max())


def test_fold_creates_missing_bias() -> None:
    ln = nn.LayerNorm(8)
    lin = nn.Linear(8, 5, bias=False)
    x = torch.randn(6, 8)
    with torch.no_grad():
        ref = lin(ln(x))
        fold_sqb_(ln, [lin], torch.randn(8), torch.rand(8) + 0.5)
        torch.testing.assert_close(lin(ln(x)), ref, rtol=1e-5, atol=1e-5)
    assert lin.bias is not None


def test_bad_inputs() -> None:
    w = torch.ones(4, 3)
    with pytest.raises(ValueError, match="x_min must be <= x_max"):
        sqb_params(torch.ones(3), torch.zeros(3), w)
    with pytest.raises(ValueError, match=r"weight must be \(out, 3\)"):
        sqb_params(torch.zeros(3), torch.ones(3), torch.ones(4, 5))
    with pytest.raises(ValueError, match="alpha"):
        sqb_params(torch.zeros(3), torch.ones(3), w, alpha=1.5)
    with pytest.raises(ValueError, match="finite"):
        sqb_params(torch.zeros(3), torch.tensor([1.0, float("inf"), 1.0]), w)
    with pytest.raises(ValueError, match="non-empty"):
        sqb_params(torch.zeros(0), torch.zeros(0), torch.ones(4, 0))
    ln, lin = nn.LayerNorm(3), nn.Linear(3, 2)
    with pytest.raises(ValueError, match="s must be > 0"):
        fold_sqb_(ln, [lin], torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        fold_sqb_(ln, [lin], torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="in_features=3"):
        fold_sqb_(ln, [nn.Linear(5, 2)], torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="at least one"):
        fold_sqb_(ln, [], torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="affine"):
        fold_sqb_(nn.LayerNorm(3, elementwise_affine=False), [lin], torch.zeros(3), torch.ones(3))
