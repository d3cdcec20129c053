"""Observer assignment (``vitq_plugins.fx.assign``): every site grid placed before ``convert_fx`` is one the
converted model computes on (issue #17)."""

from __future__ import annotations

import copy
import operator

import pytest
import torch
from torch import nn

import vitq_plugins as vq
from vitq_plugins.config import QuantConfig
from vitq_plugins.fx import quantize as fxq
from vitq_plugins.fx.modules import QuantizedCustom
from vitq_plugins.fx.observers import VitqObserver


def _converted_scales(qm: torch.fx.GraphModule) -> list[float]:
    """Every per-tensor output scale of the converted model: quantize nodes, quantized modules and ops."""
    out: list[float] = []
    for node in qm.graph.nodes:
        if node.op == "get_attr" and "scale" in str(node.target):
            t = getattr(qm, str(node.target))
            if isinstance(t, torch.Tensor) and t.numel() == 1:
                out.append(float(t))
    for mod in qm.modules():
        if isinstance(mod, QuantizedCustom):
            out.append(mod.out_scale)
        elif isinstance(getattr(mod, "scale", None), float | torch.Tensor):
            scale = torch.as_tensor(mod.scale)
            if scale.numel() == 1:
                out.append(float(scale))
    return out


@pytest.mark.parametrize("recipe", vq.list_recipes())
def test_every_coarse_site_grid_survives_convert(
    recipe: str, tiny: nn.Module, calib: list[torch.Tensor]
) -> None:
    """A sub-8-bit grid behind Identity/Dropout/reshape (q after ``q_norm``, the map after ``attn_drop``, the
    proj input after ``attn.norm``) was dropped by ``convert_fx``, which keeps the first observer of such a
    chain: FX ran q, k, the attention map and the proj/fc2 inputs at 8 bits where Brevitas used 4, and
    repq/fqvit/mptq W4A4 differed by 2.5-4.5 pt between the wings."""
    cfg = QuantConfig(recipe, w_bits=4, a_bits=4, attn_bits=4)
    torch.manual_seed(0)
    prep = fxq.prepare(tiny, cfg, calib[0][:1], transform_batches=calib)
    fxq.calibrate(prep.model, calib, progress=False)
    gm = prep.model
    wanted: dict[str, float] = {}
    for node in gm.graph.nodes:
        mod = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        if not isinstance(mod, VitqObserver) or mod.quant_max - mod.quant_min >= 255:
            continue
        p = node.args[0]
        if isinstance(p, torch.fx.Node) and p.op == "call_function" and p.target in (operator.mul, torch.mul):
            continue  # x86 mul_scalar rescales its input grid exactly (see fake_quant_model)
        scale = mod.calculate_qparams()[0]
        if scale.numel() == 1:
            wanted[str(node.target)] = float(scale)
    assert wanted
    qm = fxq.convert(copy.deepcopy(gm))
    have = torch.tensor(_converted_scales(qm), dtype=torch.float64)
    lost = [k for k, s in wanted.items() if not bool(torch.isclose(have, torch.tensor(s).double()).any())]
    assert not lost, f"{recipe}: site grids dropped by convert_fx: {lost}"
