"""MPTQ's PT2E adapter: OPT-m as a calibrated custom op with the numerics core's values, searched on the
output MSE of the (transformed) fc2 it feeds."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from vitq_plugins.config import QuantConfig  # noqa: E402
from vitq_plugins.core.errors import ConfigError  # noqa: E402
from vitq_plugins.core.errors import VitqError  # noqa: E402
from vitq_plugins.core.manager import get_host  # noqa: E402
from vitq_plugins.models.reference import vit_test_tiny  # noqa: E402
from vitq_plugins.papers.mptq import optm as ops_optm  # noqa: E402
from vitq_plugins.papers.mptq import pt2e  # noqa: E402
from vitq_plugins.pt2e.backend import calibrate  # noqa: E402
from vitq_plugins.pt2e.backend import prepare  # noqa: E402
from vitq_plugins.pt2e.extension import is_custom_op  # noqa: E402
from vitq_plugins.sites import plan_sites  # noqa: E402

TWIN = torch.ops.vitq_mptq.twin_fake_quant.default


def test_twin_op_is_the_numerics_core_and_passes_opcheck() -> None:
    x = torch.nn.functional.gelu(torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(0)) * 3)
    for bits, m in ((8, 3), (4, 1), (12, 0)):
        torch.testing.assert_close(TWIN(x, 0.01, m, bits), ops_optm.twin_fake_quant(x, 0.01, m, bits))
    torch.library.opcheck(TWIN, (x, 0.02, 2, 6))


def test_observer_searches_on_the_reservoir_with_the_given_weight() -> None:
    g = torch.Generator().manual_seed(1)
    xs = [torch.nn.functional.gelu(torch.randn(3, 50, 8, generator=g) * 2) for _ in range(3)]
    w = torch.randn(5, 8, generator=g)
    spec = pt2e.optm("gelu_output", 6, optm_max_m=4, optm_top_k=0)
    assert spec.dtype == torch.int8 and (spec.quant_min, spec.quant_max) == (-32, 31)
    obs, ref = spec.observer_or_fake_quant_ctr(), ops_optm.TokenReservoir(pt2e.OPTM_SAMPLES)
    for x in xs:
        assert obs(x) is x  # observing passes the tensor through
        ref.update(x)
    obs.set_next_weight(w)
    want = ops_optm.search_optm(ref.data(), w, None, 6, m_values=range(5))
    assert obs.op_args() == (want.delta_n, want.m, 6)
    assert is_custom_op(spec)


def test_bad_site_and_no_data() -> None:
    with pytest.raises(ConfigError, match=r"gelu_output\) only, not 'act'"):
        pt2e.optm("act", 8)
    with pytest.raises(VitqError, match="no calibration data"):
        pt2e.optm("gelu_output", 8).observer_or_fake_quant_ctr().op_args()


def test_mptq_on_the_pt2e_wing_searches_against_fc2() -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model, cfg = vit_test_tiny(), QuantConfig("mptq", w_bits=6, a_bits=6, attn_bits=6)
    calib = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    prep = prepare(model, cfg, calib[0][:2], transform_batches=calib)
    calibrate(prep.model, calib, progress=False)
    observers = [m for m in prep.model.modules() if isinstance(m, pt2e.OptMObserver)]
    params = dict(prep.model.named_parameters()) | dict(prep.model.named_buffers())
    fc2 = [params[f"blocks.{i}.mlp.fc2.weight"].detach() for i in range(2)]
    with torch.no_grad():
        qm = convert_pt2e(prep.model)
    assert len(observers) == 2
    ops = [n for n in qm.graph.nodes if n.target is TWIN]
    for obs, w, n in zip(observers, fc2, ops, strict=True):
        assert obs._weight is not None and torch.equal(obs._weight, w)  # the (SQ-b transformed) fc2 weight
        want = ops_optm.search_optm(obs._sample.data(), w, None, 6, m_values=range(9), top_k=32)
        assert n.args[1:] == (want.delta_n, want.m, 6)
        # the twin values feed fc2 directly (no uniform q/dq between them)
        assert [u.target for u in n.users] == [torch.ops.aten.linear.default]


@pytest.mark.parametrize(
    ("recipe", "first_op"),
    [
        ("mptq", "'logsqrt2' at blocks.0.attn:softmax_output"),
        ("mptq_fq", "'optm' at blocks.0.mlp.act:gelu_output"),
    ],
)
def test_mptq_recipe_sites_and_export_refusal(recipe: str, first_op: str) -> None:
    model, cfg = vit_test_tiny(), QuantConfig(recipe)
    pt = get_host().backends.get("pt2e").load()
    qm = pt.quantize(model, cfg, [torch.randn(4, 3, 32, 32)], progress=False)
    assert set(pt.sites(qm, cfg)) == set(plan_sites(model, cfg))
    assert qm(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    with pytest.raises(VitqError, match=f"{first_op} is the custom op"):
        pt.check_export(model, cfg, "qcdq")
