"""Dyadic requantization matches float rounding and keeps int64 products in range."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant
from vitq_plugins.intexec.requant import dyadic_constants


def test_requant_matches_float_round() -> None:
    g = QParams(0.05, 10, 0, 255, "out")
    ratio = torch.tensor([0.0013, 0.0021, 0.0007], dtype=torch.float64)
    x = torch.randint(-(2**20), 2**20, (1000, 3), generator=torch.Generator().manual_seed(0))
    rq = Requant(ratio, g, 2**20)
    expect = (torch.floor(x.double() * ratio + 0.5) + 10).clamp(0, 255)
    diff = (rq(x) - expect.long()).abs()
    assert int(diff.max()) <= 1
    assert float((diff > 0).double().mean()) < 1e-3


def test_fractional_bias_is_added() -> None:
    g = QParams(1.0, 0, -(2**31), 2**31 - 1, "")
    rq = Requant(torch.tensor([0.25]), g, 100, frac=torch.tensor([0.5]))
    # (x + 0.5) * 0.25 rounded: x = 1 -> 0.375 -> 0; x = 2 -> 0.625 -> 1
    assert rq(torch.tensor([[1], [2], [5]])).reshape(-1).tolist() == [0, 1, 1]


def test_mantissa_shortened_for_large_inputs() -> None:
    m, k = dyadic_constants(0.3, 2**40)
    assert int(m.max()) * 2**40 < 2**62
    assert abs(float(m) / 2 ** float(k) - 0.3) < 1e-6
    with pytest.raises(ValueError, match="mantissa"):
        dyadic_constants(0.3, 2**60)


def test_ratios_below_2_pow_minus_31_keep_shift_62() -> None:
    """A LayerNorm channel with an almost-zero gain gives a ratio below 2^-31 (the converged reference model at
    4 bits): the shift stays at 62 and the mantissa gets shorter, exact to 2^-62."""
    ratio = torch.tensor([1.1e-10, 2.0**-40, 3.0e-3], dtype=torch.float64)
    m, k = dyadic_constants(ratio, 2**20)
    assert k[:2].tolist() == [62, 62] and int(m[0]) > 2**28
    assert torch.allclose(m.double() / torch.pow(2.0, k.double()), ratio, rtol=1e-8, atol=2.0**-62)
    x = torch.tensor([[2**20, -(2**20) + 3, 12345]], dtype=torch.int64)
    rq = Requant(ratio, QParams(1.0, 0, -(2**30), 2**30), 2**20)
    assert torch.equal(rq(x), torch.round(x.double() * ratio).to(torch.int64))
    with pytest.raises(ValueError, match="> 0"):
        dyadic_constants(torch.tensor([0.0, 1e-12], dtype=torch.float64), 10)
