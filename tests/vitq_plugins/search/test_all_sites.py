"""The all-sites (fully quantized) search space on ``vit_test_tiny``: units, cost model, budgets, the emitted
config and what each wing applies from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.search import Assignment
from vitq_plugins.search import Budget
from vitq_plugins.search import Layer
from vitq_plugins.search import SearchSpace
from vitq_plugins.search import SensitivityTable
from vitq_plugins.search import greedy_sweep
from vitq_plugins.search import measure_sensitivity
from vitq_plugins.search import sensitivity_table
from vitq_plugins.search import solve_ilp
from vitq_plugins.search import to_quant_config
from vitq_plugins.sites import plan_sites

CANDS = (8, 6, 5, 4)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    from vitq_plugins.models.reference import vit_test_tiny

    return vit_test_tiny().eval()


@pytest.fixture(scope="module")
def data() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]


@pytest.fixture(scope="module")
def table(model: torch.nn.Module, data: list[torch.Tensor]) -> SensitivityTable:
    return measure_sensitivity(model, data, CANDS, anchors=[4], sites="all")


def test_space_lists_every_activation_site(table: SensitivityTable) -> None:
    by = {ly.fqn: ly for ly in table.layers}
    assert {ly.op for ly in table.layers} == {"conv", "linear", "ln", "attn"}
    for b in (0, 1):
        assert by[f"blocks.{b}.norm1"].op == by[f"blocks.{b}.norm2"].op == "ln"
        att = by[f"blocks.{b}.attn"]
        assert att.op == "attn" and att.map_elems == 2 * 17 * 17 and att.act_elems == 17 * 3 * 64
        assert by[f"blocks.{b}.mlp.fc2"].served == (f"blocks.{b}.mlp.act",)  # fc2's input = GELU output
        assert by[f"blocks.{b}.mlp.fc1"].served == ()
    # the residual stream is quantized once, by the LayerNorm input it enters
    assert by["blocks.1.norm1"].served == ("blocks.0",) and by["norm"].served == ("blocks.1",)
    assert by["blocks.0.norm1"].served == () and by["blocks.0.norm2"].served == ()
    assert table.meta["sites"] == "all" and table.matmul_macs["qk"] > 0
    i_ln, i_attn = (list(by).index(n) for n in ("blocks.0.norm2", "blocks.0.attn"))
    kl_w, kl_a = table.loss("kl", "w"), table.loss("kl", "a")
    assert (kl_w[i_ln] == 0).all()  # a LayerNorm unit has no weight knob
    for arr in (kl_a[i_ln], kl_w[i_attn], kl_a[i_attn]):
        assert arr[3] > arr[0] >= 0  # 4 bits hurt more than 8
    again = SensitivityTable.from_dict(table.to_dict())
    assert again.layers == table.layers


def test_all_sites_cost_model(table: SensitivityTable) -> None:
    space = table.space("kl")
    assert space.cost.all_sites
    for w, a in ((8, 8), (5, 5), (4, 8)):
        assert space.costs(space.uniform(w, a))["avg_bits"] == pytest.approx((w + a) / 2)
    # lowering only the attention maps lowers the all-sites average (the linear definition would not see it)
    hi = space.all_high()
    is_attn = [ly.op == "attn" for ly in space.layers]
    maps_low = Assignment(tuple(4 if t else w for t, w in zip(is_attn, hi.w_bits, strict=True)), hi.a_bits)
    assert space.costs(maps_low)["avg_bits"] < 8.0
    assert space.costs(maps_low)["mb"] == space.costs(hi)["mb"]
    # BOPs: the attention matmuls are searched, MACs/2 * a * (a + w) each
    ref = sum(ly.macs * 8 * 8 for ly in space.layers)
    assert space.costs(hi)["bops"] == pytest.approx(ref) and space.cost.fixed_bops == 0.0
    linear = SensitivityTable(
        tuple(ly for ly in table.layers if ly.op in ("linear", "conv")),
        table.candidates,
        {
            m: {k: v[[ly.op in ("linear", "conv") for ly in table.layers]] for k, v in d.items()}
            for m, d in table.losses.items()
        },
        table.float_params,
        table.matmul_macs,
    ).space("kl")
    assert not linear.cost.all_sites and linear.cost.fixed_bops > 0


@pytest.mark.parametrize("method", ["greedy", "ilp"])
def test_budget_holds_over_all_sites(table: SensitivityTable, method: str) -> None:
    space = table.space("kl")
    size5 = space.costs(space.uniform(5, 5))["mb"]
    budgets = [Budget("avg_bits", 5.0), Budget("mb", size5)]
    if method == "greedy":
        asg = greedy_sweep(space, ["avg_bits", "mb"]).pick(budgets).assignment
    else:
        asg = solve_ilp(space, budgets).assignment
    costs = space.costs(asg)
    assert costs["avg_bits"] <= 5.0 + 1e-9 and costs["mb"] <= size5 + 1e-12
    acts = [a for ly, a in zip(space.layers, asg.a_bits, strict=True) if ly.op in ("ln", "attn")]
    assert set(acts) <= set(CANDS) and len(acts) == 7 and min(acts) < 8  # 2 x (norm1, norm2, attn) + norm
    # LayerNorm units keep their (inert) weight knob at the top
    assert all(w == 8 for ly, w in zip(space.layers, asg.w_bits, strict=True) if ly.op == "ln")


def test_bit_ranges_are_respected() -> None:
    layers = [
        Layer("blocks.0.attn.qkv", "linear", 1000, 10_000, "blocks.0", "blocks.0.attn", act_elems=100),
        Layer("blocks.0.attn", "attn", 0, 2000, "blocks.0", "blocks.0.attn", 300, 100, (), (6, 8), (5, 8)),
        Layer("blocks.0.norm1", "ln", 0, 0, "blocks.0", "", 100),
    ]
    lw = np.tile([0.0, 0.1, 0.2, 0.3], (3, 1))
    space = SearchSpace.build(layers, CANDS, lw, lw * 0.01, float_params=10)
    assert space.all_low().w_bits[1] == 6 and space.all_low().a_bits[1] == 5
    for budgets in (
        [Budget("avg_bits", space.smallest("avg_bits"))],
        [Budget("bops", space.smallest("bops"))],
    ):
        for asg in (
            greedy_sweep(space, [b.kind for b in budgets]).pick(budgets).assignment,
            solve_ilp(space, budgets).assignment,
        ):
            assert asg.w_bits[1] >= 6 and asg.a_bits[1] >= 5 and asg.w_bits[2] == 8
    with pytest.raises(VitqError, match="valid w bits 9..16"):
        SearchSpace.build([Layer("a", "attn", 0, 1, w_range=(9, 16))], CANDS, lw[:1], lw[:1])


def _hand_config(table: SensitivityTable) -> tuple[QuantConfig, dict[str, int]]:
    """A config with distinct bits per site kind, and the bits each activation site key must get."""
    space = table.space("kl")
    pick = {"ln": (8, 6), "attn": (4, 5), "linear": (5, 7), "conv": (8, 8)}
    asg = Assignment(
        tuple(pick[ly.op][0] for ly in space.layers), tuple(pick[ly.op][1] for ly in space.layers)
    )
    want = {}
    for ly in space.layers:
        if ly.op == "ln":
            want[f"{ly.fqn}:ln_input"] = 6
        elif ly.op == "attn":
            want[f"{ly.fqn}:softmax_output"], want[f"{ly.fqn}:attn_matmul"] = 4, 5
        elif ly.served:
            want[f"{ly.served[0]}:gelu_output"] = pick[ly.op][1]
    return to_quant_config(space, asg, "minmax"), want


def test_config_round_trips_and_plans_every_site(table: SensitivityTable, model: torch.nn.Module) -> None:
    cfg, want = _hand_config(table)
    assert QuantConfig.from_json(cfg.to_json()) == cfg
    plan = plan_sites(model, cfg)
    assert {k: plan[k].bits for k in want} == want
    # residual sites follow the LayerNorm input that quantizes the same tensor
    assert plan["blocks.0:residual"].bits == plan["blocks.1.norm1:ln_input"].bits == 6


def test_brevitas_applies_the_searched_bits(
    table: SensitivityTable, model: torch.nn.Module, data: list[torch.Tensor]
) -> None:
    from vitq_plugins import get_backend

    cfg, want = _hand_config(table)
    qm = get_backend("brevitas").quantize(model, cfg, data[:1])
    got: dict[str, int] = {}
    for fqn, m in qm.named_modules():
        name = type(m).__name__
        if name == "QuantLayerNorm" and m.input_quant is not None:
            got[f"{fqn}:ln_input"] = int(m.input_quant.act_quant.bit_width())
        elif name == "QuantAttention":
            got[f"{fqn}:attn_matmul"] = int(m.q_quant.act_quant.bit_width())
            got[f"{fqn}:softmax_output"] = int(m.softmax.quant.act_quant.bit_width())
        elif name == "QuantGELU":
            got[f"{fqn}:gelu_output"] = int(m.quant.act_quant.bit_width())
    assert {k: got[k] for k in want} == want


def test_fx_applies_the_searched_bits(table: SensitivityTable, model: torch.nn.Module) -> None:
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.fx import quantize as fxq
    from vitq_plugins.fx.assign import _labels
    from vitq_plugins.fx.backend import example_input

    cfg, want = _hand_config(table)
    prep = fxq.prepare(model, cfg, example_input(model), host=get_host())
    gm = prep.model
    got: dict[str, set[int]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = gm.get_submodule(str(node.target))
            if type(mod).__name__.endswith("Observer") and hasattr(mod, "bits"):
                # a site's tensors also pass 8-bit containers and its neighbours' grids (the map and v both
                # feed attn @ v): the searched bits must be among the grids on the site's tensors
                for key in _labels(gm, node):
                    got.setdefault(key, set()).add(int(mod.bits))
    assert all(bits in got.get(k, set()) for k, bits in want.items()), (want, got)
    assert all(prep.applied.get(k) == "minmax" for k in want)


def test_sites_mode_is_checked(host: object, tmp_path: Path) -> None:
    with pytest.raises(VitqError, match="sites 'some'"):
        sensitivity_table("vit_test_tiny", "minmax", n_calib=8, cache_dir=tmp_path, host=host, sites="some")  # type: ignore[arg-type]
