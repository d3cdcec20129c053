"""GPTQ numerics (arXiv 2210.17323) on synthetic data: streamed Hessian, output error vs round-to-nearest, the
wings' grid recovered exactly from the stored weight."""

from __future__ import annotations

import warnings

import pytest
import torch

from vitq_plugins.ops import uniform as U
from vitq_plugins.ops.gptq import HessianAccumulator
from vitq_plugins.ops.gptq import gptq_quantize
from vitq_plugins.ops.gptq import layer_output_error
from vitq_plugins.ops.gptq import stored_weight
from vitq_plugins.ops.gptq import wing_scale


def _correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * 0.4 + torch.eye(d)
    return torch.randn(n, d, generator=g) @ mix


def _wing_rtn(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What both wings do to a weight: per-row symmetric MinMax (codes, scale)."""
    qmin, qmax = U.qrange(bits, signed=True)
    scale, _ = U.qparams_from_minmax(w.min(1).values, w.max(1).values, bits, symmetric=True, signed=True)
    return U.quantize(w, scale, 0, qmin, qmax, axis=0), scale


def test_hessian_streamed_equals_one_batch() -> None:
    x = _correlated(900, 24)
    one = HessianAccumulator(24)
    one.update(x)
    streamed = HessianAccumulator(24)
    for chunk in x.reshape(9, 100, 24):  # also (..., d) leading shapes
        streamed.update(chunk.reshape(2, 50, 24))
    assert streamed.count == one.count == 900
    torch.testing.assert_close(streamed.hessian(), one.hessian(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(one.hessian(), 2 * x.double().T @ x.double() / 900, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_gptq_beats_round_to_nearest_on_correlated_inputs(bits: int) -> None:
    x = _correlated(3000, 64, seed=bits)
    acc = HessianAccumulator(64)
    acc.update(x)
    h = acc.hessian()
    w = torch.randn(48, 64, generator=torch.Generator().manual_seed(1)) * 0.05
    res = gptq_quantize(w, h, bits, block_size=16)  # several lazy-batch blocks
    codes, scale = _wing_rtn(w, bits)
    rtn = U.dequantize(codes, scale, 0, axis=0)
    assert layer_output_error(w, res.dequantized(), h) < layer_output_error(w, rtn, h)


@pytest.mark.parametrize("bits", [2, 4, 5, 8])
def test_codes_on_grid_and_recovered_by_both_wings(bits: int) -> None:
    qmin, qmax = U.qrange(bits, signed=True)
    x = _correlated(500, 40)
    acc = HessianAccumulator(40)
    acc.update(x)
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(200, 40, generator=g) * torch.rand(200, 1, generator=g)
    res = gptq_quantize(w, acc.hessian(), bits)
    assert res.codes.dtype == torch.int64
    assert int(res.codes.min()) >= qmin and int(res.codes.max()) <= qmax
    # Brevitas arithmetic: qparams_from_minmax then round(w / s)
    codes, scale = _wing_rtn(res.weight, bits)
    assert torch.equal(scale, res.scale)
    assert torch.equal(codes, res.codes)
    # torch.ao convert arithmetic: torch.quantize_per_channel (reciprocal multiply), qint8 container
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qt = torch.quantize_per_channel(
            res.weight, scale.double(), torch.zeros(200, dtype=torch.int64), 0, torch.qint8
        )
    assert torch.equal(qt.int_repr().long(), res.codes)
    torch.testing.assert_close(res.dequantized(), res.codes.float() * scale[:, None])


def test_stored_weight_needs_an_anchor() -> None:
    w = torch.randn(4, 8)
    grid = wing_scale(w, 4)
    with pytest.raises(ValueError, match="anchor"):
        stored_weight(torch.zeros(4, 8, dtype=torch.int64), grid)


def test_dead_inputs_get_zero_codes() -> None:
    x = _correlated(300, 16)
    x[:, 3] = 0.0
    acc = HessianAccumulator(16)
    acc.update(x)
    w = torch.randn(8, 16)
    w[:, 3] = 0.001  # never the anchor
    res = gptq_quantize(w, acc.hessian(), 4)
    assert torch.equal(res.codes[:, 3], torch.zeros(8, dtype=torch.int64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bits": 1}, "bits"), ({"bits": 4, "block_size": 0}, "block_size"), ({"bits": 4, "damp": 0.0}, "damp")],
)
def test_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    acc = HessianAccumulator(8)
    acc.update(torch.randn(20, 8))
    with pytest.raises(ValueError, match=match):
        gptq_quantize(torch.randn(4, 8), acc.hessian(), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hessian"):
        gptq_quantize(torch.randn(4, 9), acc.hessian(), 4)
    with pytest.raises(ValueError, match="no inputs"):
        HessianAccumulator(8).hessian()
