"""The PT2E observers compute FQ-ViT's uniform qparams with :mod:`vitq_plugins.ops.uniform` and stream."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.ops import uniform as ops_uniform
from vitq_plugins.pt2e.observers import UniformActObserver
from vitq_plugins.pt2e.observers import WeightObserver


def test_act_minmax_matches_ops_over_batches() -> None:
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(4, 5, generator=g) * (i + 1) + 0.5 for i in range(3)]
    obs = UniformActObserver(bits=6)
    for x in xs:
        assert obs(x) is x  # observing only
    allx = torch.cat(xs)
    want = ops_uniform.qparams_from_minmax(
        allx.min().clamp(max=0), allx.max().clamp(min=0), 6, symmetric=False, signed=False
    )
    scale, zp = obs.calculate_qparams()
    torch.testing.assert_close(scale, want[0])
    assert int(zp) == int(want[1]) and (obs.quant_min, obs.quant_max) == (0, 63)
    assert obs.dtype == torch.uint8 and obs.qscheme == torch.per_tensor_affine


def test_weight_per_channel_symmetric() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    obs = WeightObserver(bits=8)
    obs(w)
    scale, zp = obs.calculate_qparams()
    torch.testing.assert_close(scale, torch.tensor([2.0, 0.5]) / 127.5)
    assert zp.tolist() == [0, 0] and obs.dtype == torch.int8 and (obs.quant_min, obs.quant_max) == (-128, 127)


@pytest.mark.parametrize("method", ["percentile", "omse"])
def test_clipping_methods_shrink_the_range(method: str) -> None:
    x = torch.cat([torch.linspace(0, 1, 400_000), torch.tensor([100.0])])
    mm, other = UniformActObserver(bits=8), UniformActObserver(bits=8, method=method)  # type: ignore[arg-type]
    mm(x)
    other(x)
    assert float(other.calculate_qparams()[0]) < 0.75 * float(mm.calculate_qparams()[0])


@pytest.mark.parametrize("bits", [1, 9, 16])
def test_bits_beyond_the_8bit_container_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match=r"bits must be in 2..8, got"):
        UniformActObserver(bits=bits)
    with pytest.raises(ValueError, match=r"bits must be in 2..8, got"):
        WeightObserver(bits=bits)


def test_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown uniform method 'kl'"):
        UniformActObserver(method="kl")  # type: ignore[arg-type]
