"""I-ViT's PT2E adapters: integer kernels replacing softmax/GELU/LayerNorm as custom ops on their input grid,
with the numerics core's values and the Brevitas wing's input scales."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from vitq_plugins.config import QuantConfig  # noqa: E402
from vitq_plugins.core.errors import ConfigError  # noqa: E402
from vitq_plugins.core.manager import get_host  # noqa: E402
from vitq_plugins.models.reference import vit_test_tiny  # noqa: E402
from vitq_plugins.papers.ivit import pt2e  # noqa: E402
from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine  # noqa: E402
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm  # noqa: E402
from vitq_plugins.papers.ivit.shift import shiftmax  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import log2_dequant  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2  # noqa: E402
from vitq_plugins.sites import plan_sites  # noqa: E402

OPS = torch.ops.vitq_ivit
_aten = torch.ops.aten


def test_ops_are_the_numerics_core_and_pass_opcheck() -> None:
    g = torch.Generator().manual_seed(0)
    s = 0.05
    x = torch.round(torch.randn(2, 3, 9, 9, generator=g) * 40) * s
    codes, st = torch.round(x / s).to(torch.int64), torch.tensor(s)
    want = log2_dequant(shiftmax_log2(codes, st, n=20, bits=4), 4)
    torch.testing.assert_close(OPS.shiftmax(x, s, 20, 4, True), want)
    y, osc = shiftmax(codes, st, n=15, out_bits=8)
    torch.testing.assert_close(OPS.shiftmax(x, s, 15, 8, False), y.float() * osc)
    y, osc = shiftgelu_fine(codes, st, n=20, out_bits=16)
    torch.testing.assert_close(OPS.shiftgelu(x, s, 20, 16, True), (y.double() * osc).float())
    w, b = torch.rand(9, generator=g) + 0.5, torch.randn(9, generator=g)
    y, osc = i_layernorm(codes, st, w, b)
    torch.testing.assert_close(OPS.ilayernorm(x, s, w, b), y.float() * osc.float())
    torch.library.opcheck(OPS.shiftmax.default, (x, s, 20, 4, True))
    torch.library.opcheck(OPS.shiftgelu.default, (x, s, 23, 8, False))
    torch.library.opcheck(OPS.ilayernorm.default, (x, s, w, b))


def test_input_grid_is_signed_symmetric_minmax() -> None:
    spec = pt2e.ilayernorm("ln_input", 6)
    obs = spec.observer_or_fake_quant_ctr()
    # the signed grid [-32, 31] as uint8 codes [0, 63] with zero point 32 (x86 Inductor takes uint8 activations)
    assert spec.dtype == torch.uint8 and (spec.quant_min, spec.quant_max, obs.zero_point) == (0, 63, 32)
    obs(torch.tensor([-3.0, 1.0]))
    obs(torch.tensor([0.5, 2.0]))
    assert obs.input_scale() == pytest.approx(3.0 / 31.5)  # absmax / ((qmax - qmin) / 2)
    assert pt2e.shiftgelu_fine("gelu_output", 4).observer_or_fake_quant_ctr().bits == 8  # max(bits, 8)
    with pytest.raises(ConfigError, match="'shiftmax' quantizes softmax_output only, not 'act'"):
        pt2e.shiftmax("act", 8)


def test_ivit_on_the_pt2e_wing_uses_the_brevitas_input_grids() -> None:
    from vitq_plugins.brevitas.modules import QuantGELU
    from vitq_plugins.brevitas.modules import QuantLayerNorm
    from vitq_plugins.brevitas.modules import QuantSoftmax

    model, cfg = vit_test_tiny(), QuantConfig("ivit", attn_bits=4)
    calib = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(4))]
    host = get_host()
    pt = host.backends.get("pt2e").load()
    qm = pt.quantize(model, cfg, calib, progress=False)
    assert set(pt.sites(qm, cfg)) == set(plan_sites(model, cfg))
    nodes = list(qm.graph.nodes)
    assert not any(
        n.target in (_aten.layer_norm.default, _aten.gelu.default, _aten.softmax.int) for n in nodes
    )
    kernels = [n for n in nodes if str(n.target).startswith("vitq_ivit.")]
    assert [str(n.target).split(".")[1] for n in kernels].count("ilayernorm") == 5
    for n in kernels:  # every kernel reads its input through the q/dq pair of its grid
        assert "dequantize_per_tensor" in str(n.args[0].target) and n.args[0].args[1] == n.args[1]
    softmax = [n for n in kernels if "shiftmax" in str(n.target)]
    assert all(u.target is _aten.matmul.default for n in softmax for u in n.users)  # log2 codes, no container
    gelu = [n for n in kernels if "shiftgelu" in str(n.target)]
    assert all("quantize_per_tensor" in str(u.target) for n in gelu for u in n.users)  # fc2's input quantizer
    qb = host.backends.get("brevitas").load().quantize(model, cfg, calib, progress=False)
    brev = [
        float(m.input_quant.act_quant.scale() if isinstance(m, QuantLayerNorm) else m.quant.act_quant.scale())
        for m in qb.modules()
        if isinstance(m, QuantLayerNorm | QuantGELU | QuantSoftmax)
    ]
    assert [n.args[1] for n in kernels] == pytest.approx(brev, rel=1e-6)
    assert qm(calib[0]).shape == (8, 10)
