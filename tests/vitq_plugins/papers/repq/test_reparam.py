"""RepQ-ViT scale reparameterization: per-channel grid == per-tensor grid after the fold, float function kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.ops.uniform import fake_quant
from vitq_plugins.ops.uniform import qparams_from_minmax
from vitq_plugins.papers.repq.reparam import fold_reparam_
from vitq_plugins.papers.repq.reparam import reparam_params


def _channels() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g, dtype=torch.float64)
    return x * torch.logspace(-1, 1.5, 16, dtype=torch.float64) + torch.linspace(
        -3, 5, 16, dtype=torch.float64
    )


def test_per_tensor_grid_after_fold_is_the_per_channel_grid() -> None:
    """eq. 6: Δ_c (q - z_c) / r_c - b_c = Δ̃ (q - z̃): every per-channel level maps onto the per-tensor grid."""
    x = _channels()
    bits = 4
    r, b = reparam_params(x.amin(0), x.amax(0), bits)
    lo, hi = x.amin(0).clamp(max=0.0), x.amax(0).clamp(min=0.0)  # the ranges hold 0
    scale, zp = qparams_from_minmax(lo, hi, bits, symmetric=False, signed=False)
    q = torch.arange(2**bits, dtype=torch.float64)[:, None]
    levels = scale.double() * (q - zp.double())  # (levels, C) of each channel's grid
    mapped = levels / r.double() - b.double()
    s_t = scale.double().mean()
    z_t = torch.round(zp.double().mean())
    torch.testing.assert_close(mapped, (s_t * (q - z_t)).expand_as(mapped), rtol=0, atol=1e-5)
    # the folded activation, quantized per tensor, equals the per-channel fake quant mapped back
    xt = x / r.double() - b.double()
    per_tensor = fake_quant(xt, s_t, z_t.long(), 0, 2**bits - 1)
    per_channel = fake_quant(x, scale.double(), zp, 0, 2**bits - 1, axis=-1)
    torch.testing.assert_close((per_tensor + b.double()) * r.double(), per_channel, rtol=0, atol=1e-4)


def test_fold_preserves_the_float_function() -> None:
    g = torch.Generator().manual_seed(1)
    ln, lin = nn.LayerNorm(16), nn.Linear(16, 8)
    with torch.no_grad():
        ln.weight.copy_(torch.rand(16, generator=g) * 3 + 0.1)
        ln.bias.copy_(torch.randn(16, generator=g))
    x = torch.randn(64, 16, generator=g) * 5
    with torch.no_grad():
        ref = lin(ln(x))
        y = ln(x)
        r, b = reparam_params(y.amin(0), y.amax(0), 4)
        fold_reparam_(ln, [lin], r, b)
        torch.testing.assert_close(lin(ln(x)), ref, rtol=0, atol=1e-5)
        assert float(r.max() / r.min()) > 1.5  # the fold is not the identity


def test_fold_adds_a_bias_when_missing_and_bad_inputs() -> None:
    ln, lin = nn.LayerNorm(4), nn.Linear(4, 3, bias=False)
    x = torch.randn(8, 4)
    with torch.no_grad():
        ref = lin(ln(x))
        y = ln(x)
        r, b = reparam_params(y.amin(0), y.amax(0), 8)
        fold_reparam_(ln, [lin], r, b)
        assert lin.bias is not None
        torch.testing.assert_close(lin(ln(x)), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="x_min must be <= x_max"):
        reparam_params(torch.ones(3), torch.zeros(3), 4)
    with pytest.raises(ValueError, match="1-d"):
        reparam_params(torch.zeros(2, 2), torch.ones(2, 2), 4)
    with pytest.raises(ValueError, match="input channels"):
        fold_reparam_(nn.LayerNorm(4), [nn.Linear(5, 2)], torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match="elementwise_affine"):
        fold_reparam_(nn.LayerNorm(4, elementwise_affine=False), [], torch.ones(4), torch.zeros(4))


def test_per_tensor_4bit_error_drops_after_the_fold() -> None:
    """The point of eq. 6: one per-tensor 4-bit grid on X̃ loses far less than on X (outlier channels)."""
    x = _channels()
    r, b = reparam_params(x.amin(0), x.amax(0), 4)
    xt = x / r.double() - b.double()

    def per_tensor(t: torch.Tensor) -> torch.Tensor:
        s, z = qparams_from_minmax(t.amin(), t.amax(), 4, symmetric=False, signed=False)
        return fake_quant(t, s.double(), z, 0, 15)

    err_plain = (per_tensor(x) - x).pow(2).mean()
    err_fold = ((per_tensor(xt) + b.double()) * r.double() - x).pow(2).mean()
    assert float(err_fold) < 0.5 * float(err_plain)
