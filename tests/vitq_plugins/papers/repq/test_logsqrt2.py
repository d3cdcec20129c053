"""RepQ-ViT log√2 quantizer: grid properties, against log2, and its Brevitas / FX adapters."""

from __future__ import annotations

import math

import pytest
import torch

from vitq_plugins.core.manager import PluginHost
from vitq_plugins.papers.repq.logsqrt2 import logsqrt2_codes
from vitq_plugins.papers.repq.logsqrt2 import logsqrt2_fake_quant


@pytest.mark.parametrize("bits", [2, 3, 4, 6])
def test_levels_are_powers_of_sqrt2_and_nearest_in_log(bits: int) -> None:
    x = torch.rand(20000, dtype=torch.float32) ** 4  # many small probabilities
    y = logsqrt2_fake_quant(x, 1.0, bits)
    nz = y > 0
    c = -2.0 * torch.log2(y[nz])
    torch.testing.assert_close(c, torch.round(c), rtol=0, atol=1e-4)  # levels 2^(-c/2), c integer
    assert float(c.max()) <= 2**bits - 1 + 1e-4 and float(c.min()) >= -1e-4
    # nearest level in the log domain: |log2 x - log2 y| <= 1/4 for every represented value
    assert float((torch.log2(x[nz]) - torch.log2(y[nz])).abs().max()) <= 0.25 + 1e-5
    # below the last level (code >= 2^b after rounding) everything is 0
    smallest = 2.0 ** (-(2**bits - 0.5) / 2)
    assert bool((y[x < smallest * 0.999] == 0).all())


def test_delta_scales_the_grid_and_codes() -> None:
    x = torch.tensor([0.5, 0.25, 0.1])
    torch.testing.assert_close(logsqrt2_fake_quant(x, 0.5, 4), 0.5 * logsqrt2_fake_quant(x / 0.5, 1.0, 4))
    codes, zero = logsqrt2_codes(torch.tensor([1.0, 2**-0.5, 0.5, 0.0]), 1.0, 3)
    assert codes.tolist()[:3] == [0, 1, 2] and zero.tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="bits"):
        logsqrt2_fake_quant(x, 1.0, 9)
    with pytest.raises(ValueError, match="delta"):
        logsqrt2_fake_quant(x, 0.0, 4)


def test_finer_than_log2_on_large_probabilities() -> None:
    """Where the attention map's mass is (p > 2^-4), log√2 levels are twice as dense as log2's."""
    p = torch.softmax(torch.randn(64, 65) * 3, -1).flatten()
    big = p[p > 2**-4]
    log2 = torch.pow(2.0, -torch.round(-torch.log2(big)))
    err_sqrt2 = (logsqrt2_fake_quant(big, 1.0, 4) - big).pow(2).mean()
    assert float(err_sqrt2) < float((log2 - big).pow(2).mean())


def test_registered_in_every_wing() -> None:
    spec = PluginHost().quantizers.get("logsqrt2")
    assert set(spec.backends) == {"brevitas", "fx", "pt2e"} and spec.sites == frozenset({"softmax_output"})
    assert "2212.08254" in spec.paper


def test_brevitas_adapter_calibrates_delta_and_quantizes() -> None:
    from brevitas.graph.calibrate import calibration_mode

    from vitq_plugins.brevitas import QuantSoftmax
    from vitq_plugins.papers.repq.brevitas import logsqrt2

    sm = QuantSoftmax(dim=-1, act_quant=logsqrt2("softmax_output", 4))
    logits = torch.randn(8, 65, 65) * 2
    with torch.no_grad(), calibration_mode(sm):
        sm(logits)
    sm.eval()
    with torch.no_grad():
        out = sm(logits)
    out_t = out.value if hasattr(out, "value") else out
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(out_t, logsqrt2_fake_quant(p, p.max(), 4))


def test_fx_marker_kernel_matches_the_numerics() -> None:
    from vitq_plugins.papers.repq.fx import LogSqrt2Softmax
    from vitq_plugins.papers.repq.fx import RunningMax
    from vitq_plugins.papers.repq.fx import logsqrt2

    spec = logsqrt2("softmax_output", 4)
    assert spec.float_cls is LogSqrt2Softmax and spec.fixed_out_scale is not None
    assert math.isclose(spec.fixed_out_scale(4), 2**-8)
    marker = LogSqrt2Softmax(dim=-1, bits=4)
    state = marker.make_state()
    assert isinstance(state, RunningMax)
    logits = torch.randn(4, 65, 65)
    state(marker.reference(logits))

    class _Obs:
        pass

    obs = _Obs()
    obs.state = state  # type: ignore[attr-defined]
    out = marker.kernel(logits, obs)  # type: ignore[arg-type]
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(out, logsqrt2_fake_quant(p, p.max(), 4))
