"""RepQ-ViT's PT2E adapter: log√2 as a calibrated custom op with the numerics core's values and the Brevitas
wing's ``Δ``; the repq recipe (reparameterization + log√2 + OPT-m) exports, converts and compiles."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from vitq_plugins.config import QuantConfig  # noqa: E402
from vitq_plugins.core.errors import ConfigError  # noqa: E402
from vitq_plugins.core.manager import get_host  # noqa: E402
from vitq_plugins.models.reference import vit_test_tiny  # noqa: E402
from vitq_plugins.papers.mptq import pt2e as mptq_pt2e  # noqa: E402
from vitq_plugins.papers.repq import pt2e  # noqa: E402
from vitq_plugins.papers.repq.brevitas import LogSqrt2Quant  # noqa: E402
from vitq_plugins.papers.repq.logsqrt2 import logsqrt2_fake_quant  # noqa: E402
from vitq_plugins.sites import plan_sites  # noqa: E402

LS2 = torch.ops.vitq_repq.logsqrt2_fake_quant.default
TWIN = torch.ops.vitq_mptq.twin_fake_quant.default
assert mptq_pt2e.OPTM_SAMPLES  # registers the op


def _calib() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]


def test_logsqrt2_op_is_the_numerics_core_and_passes_opcheck() -> None:
    p = torch.softmax(torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(0)) * 4, -1)
    for bits in (3, 4, 8):
        torch.testing.assert_close(LS2(p, 0.9, bits), logsqrt2_fake_quant(p, 0.9, bits))
    torch.library.opcheck(LS2, (p, 0.5, 4))


def test_observer_keeps_the_streaming_maximum() -> None:
    obs = pt2e.logsqrt2("softmax_output", 4).observer_or_fake_quant_ctr()
    assert obs.op_args() == (1.0, 4)  # uncalibrated: delta 1
    for hi in (0.25, 0.75, 0.5):
        obs(torch.tensor([0.0, hi]))
    assert obs.op_args() == (0.75, 4)


def test_bad_site_and_bits() -> None:
    with pytest.raises(ConfigError, match=r"softmax_output\) only, not 'act'"):
        pt2e.logsqrt2("act", 4)
    with pytest.raises(ConfigError, match="1..8 bits, got 9"):
        pt2e.logsqrt2("softmax_output", 9)


def test_repq_on_the_pt2e_wing_uses_the_brevitas_delta() -> None:
    model, cfg, calib = vit_test_tiny(), QuantConfig("repq", attn_bits=4), _calib()
    host = get_host()
    pt = host.backends.get("pt2e").load()
    qm = pt.quantize(model, cfg, calib, progress=False)
    assert set(pt.sites(qm, cfg)) == set(plan_sites(model, cfg))
    ops = [n for n in qm.graph.nodes if n.target is LS2]
    assert len(ops) == 2 and len([n for n in qm.graph.nodes if n.target is TWIN]) == 2
    # the log√2 values feed attn @ v directly (no uniform container in between)
    assert all(u.target is torch.ops.aten.matmul.default for n in ops for u in n.users)
    qb = host.backends.get("brevitas").load().quantize(model, cfg, calib, progress=False)
    brev = [m for m in qb.modules() if isinstance(m, LogSqrt2Quant)]
    assert len(brev) == 2
    for n, b in zip(ops, brev, strict=True):
        assert n.args[2] == 4 and n.args[1] == pytest.approx(float(b.delta), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["repq", "ivit"])  # calibrated ops; kernels replacing float operators
def test_custom_ops_compile_with_inductor(recipe: str) -> None:
    from vitq_plugins.pt2e.compile import compile_x86

    model, calib = vit_test_tiny(), _calib()
    qm = get_host().backends.get("pt2e").load().quantize(model, QuantConfig(recipe), calib, progress=False)
    x = calib[0][:2]
    compiled, _ = compile_x86(qm, x)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), qm(x), atol=1e-3, rtol=1e-3)
