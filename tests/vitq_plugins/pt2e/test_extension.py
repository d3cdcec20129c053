"""The public PT2E extension API builds QuantizationSpecs that agree with their observers."""

from __future__ import annotations

import pytest
import torch
from torchao.quantization.pt2e.quantizer import QuantizationSpec

from vitq_plugins.pt2e.extension import act_spec
from vitq_plugins.pt2e.extension import spec_for
from vitq_plugins.pt2e.extension import weight_spec


def test_act_and_weight_specs() -> None:
    a = act_spec(4, "percentile")
    assert isinstance(a, QuantizationSpec)
    assert (a.dtype, a.quant_min, a.quant_max, a.qscheme, a.ch_axis) == (
        torch.uint8,
        0,
        15,
        torch.per_tensor_affine,
        None,
    )
    obs = a.observer_or_fake_quant_ctr()
    assert obs.method == "percentile" and obs.bits == 4
    w = weight_spec(6)
    assert (w.dtype, w.quant_min, w.quant_max, w.qscheme, w.ch_axis) == (
        torch.int8,
        -32,
        31,
        torch.per_channel_symmetric,
        0,
    )


def test_spec_for_refuses_foreign_observers() -> None:
    from torchao.quantization.pt2e import MinMaxObserver

    with pytest.raises(TypeError, match="VitqObserver subclasses, got MinMaxObserver"):
        spec_for(MinMaxObserver.with_args())
