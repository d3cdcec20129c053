"""I-ViT's integer-program kernels equal the paper's reference kernels bit for bit."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.intexec.extension import layernorm_bias
from vitq_plugins.intexec.extension import layernorm_scale
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
from vitq_plugins.papers.ivit.integer import ilayernorm_int
from vitq_plugins.papers.ivit.shift import GELU_SIGMOID_FACTOR
from vitq_plugins.papers.ivit.shift import exp_unit
from vitq_plugins.papers.ivit.shift import shiftgelu
from vitq_plugins.papers.ivit.shift import shiftgelu_unit
from vitq_plugins.papers.ivit.shift import shiftmax
from vitq_plugins.papers.ivit.shift import shiftmax_unit


def _ints(lo: int, hi: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(lo, hi, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int64)


@pytest.mark.parametrize("scale", [0.004, 0.05, 0.3])
def test_shiftmax_unit_equals_shiftmax(scale: float) -> None:
    x = _ints(-128, 128, (2, 3, 17, 17))
    ref, _ = shiftmax(x, scale, n=15, out_bits=8)
    out = shiftmax_unit(x, exp_unit(scale), n=15, out_bits=8)
    assert torch.equal(out, ref)
    assert int(out.max()) > 0


@pytest.mark.parametrize("scale", [0.01, 0.03, 0.2])
def test_shiftgelu_unit_equals_shiftgelu(scale: float) -> None:
    x = _ints(-128, 128, (4, 9, 64), seed=1)
    ref, _ = shiftgelu(x, scale, n=23, out_bits=8)
    out = shiftgelu_unit(x, exp_unit(scale * GELU_SIGMOID_FACTOR), n=23, out_bits=8)
    assert torch.equal(out, ref)
    assert bool((out != 0).any())


def test_exp_unit_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        exp_unit(1.5)
    with pytest.raises(ValueError, match="x0"):
        from vitq_plugins.papers.ivit.shift import shift_exp_unit

        shift_exp_unit(torch.zeros(3, dtype=torch.int64), 0)


def test_ilayernorm_int_equals_i_layernorm() -> None:
    g = torch.Generator().manual_seed(2)
    c = 48
    x = _ints(-128, 128, (3, 5, c), seed=3)
    x[0, 0] = 7  # constant row: var = 0
    w = torch.randn(c, generator=g)
    w[0] = 0.0  # gamma floor
    b = torch.randn(c, generator=g)
    ref, ref_scale = i_layernorm(x, 0.02, w, b)
    out = ilayernorm_int(x, layernorm_bias(w, b))
    assert torch.equal(out, ref)
    assert torch.equal(layernorm_scale(w), ref_scale)
    # and it is a LayerNorm
    y = out.double() * ref_scale.double()
    expect = torch.nn.functional.layer_norm(x[1:].double(), (c,), w.double(), b.double(), eps=1e-12)
    assert float((y[1:] - expect).abs().max()) < 0.05
