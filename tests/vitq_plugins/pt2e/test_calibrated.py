"""Calibrated custom-op observers: ``convert_pt2e`` replaces them by their op with the calibrated arguments, and
:func:`consumer_weight` reads the float weight of the Linear they feed (through its weight observer)."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation
from torchao.quantization.pt2e.quantizer import Quantizer

from vitq_plugins.pt2e.extension import CalibratedOpObserver
from vitq_plugins.pt2e.extension import consumer_weight
from vitq_plugins.pt2e.extension import is_custom_op
from vitq_plugins.pt2e.extension import spec_for
from vitq_plugins.pt2e.extension import weight_spec


@torch.library.custom_op("vitq_test::clip_above", mutates_args=())
def clip_above(x: torch.Tensor, hi: float, tag: int) -> torch.Tensor:
    return x.clamp(max=hi)


@clip_above.register_fake
def _(x: torch.Tensor, hi: float, tag: int) -> torch.Tensor:
    return torch.empty_like(x)


class HalfMax(CalibratedOpObserver):
    """Clips at half the calibrated maximum; remembers the consumer's weight."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("halfmax", 8, torch.ops.vitq_test.clip_above.default)
        self.hi = 0.0
        self.weight: torch.Tensor | None = None

    def observe(self, x: torch.Tensor) -> None:
        self.hi = max(self.hi, float(x.max()))

    def bind(self, model: fx.GraphModule, node: fx.Node) -> None:
        self.weight = consumer_weight(model, node)

    def op_args(self) -> tuple[float, int]:
        return self.hi / 2, 7


class _OnGelu(Quantizer):  # type: ignore[misc]
    def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
        for n in model.graph.nodes:
            if n.target is torch.ops.aten.gelu.default:
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    output_qspec=spec_for(HalfMax.with_args()), _annotated=True
                )
            if n.target is torch.ops.aten.linear.default and n.args[0].target is torch.ops.aten.gelu.default:
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={n.args[1]: weight_spec(8)}, _annotated=True
                )
        return model

    def validate(self, model: fx.GraphModule) -> None:
        pass


def test_observer_becomes_its_op_with_the_calibrated_arguments() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3)).eval()
    x = torch.randn(5, 4)
    gm = torch.export.export(model, (x,)).module()
    prepared = prepare_pt2e(gm, _OnGelu())
    prepared(x)
    prepared(2 * x)
    (obs,) = [m for m in prepared.modules() if isinstance(m, HalfMax)]
    qm = convert_pt2e(prepared)
    (op,) = [n for n in qm.graph.nodes if n.target is torch.ops.vitq_test.clip_above.default]
    hi = float(torch.nn.functional.gelu(model[0](2 * x)).max()) / 2
    assert op.args[1] == hi and op.args[2] == 7
    assert obs.weight is not None and torch.equal(obs.weight, model[2].weight)  # float, not the int8 codes
    assert not any(isinstance(m, HalfMax) for m in qm.modules())
    with torch.no_grad():
        y = model[0](x)
        want = model[2](torch.nn.functional.gelu(y).clamp(max=hi))
        torch.testing.assert_close(qm(x), want, atol=0.05, rtol=0.05)  # fc2's weight is int8 q/dq
    assert is_custom_op(spec_for(HalfMax.with_args()))
    assert not is_custom_op(weight_spec(8))
