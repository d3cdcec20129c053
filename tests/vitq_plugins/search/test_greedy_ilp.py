"""Greedy sweep and ILP on synthetic sensitivity tables (no torch)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search import Assignment
from vitq_plugins.search import Budget
from vitq_plugins.search import Layer
from vitq_plugins.search import SearchSpace
from vitq_plugins.search import compare_assignments
from vitq_plugins.search import greedy_sweep
from vitq_plugins.search import parse_pins
from vitq_plugins.search import solve_ilp

CANDS = (8, 6, 5, 4)


def _layers(n: int, rng: np.random.Generator) -> list[Layer]:
    names = ["patch_embed.proj"]
    for b in range((n - 2 + 3) // 4):
        names += [
            f"blocks.{b}.attn.qkv",
            f"blocks.{b}.attn.proj",
            f"blocks.{b}.mlp.fc1",
            f"blocks.{b}.mlp.fc2",
        ]
    names = names[: n - 1] + ["head"]
    out = []
    for fqn in names:
        parts = fqn.split(".")
        block = ".".join(parts[:2]) if parts[0] == "blocks" else ""
        attn = ".".join(parts[:3]) if len(parts) > 2 and parts[2] == "attn" else ""
        p = int(rng.integers(100, 5000))
        out.append(Layer(fqn, "linear", p, p * int(rng.integers(1, 65)), block, attn))
    return out


def _space(n: int = 10, seed: int = 0, monotone: bool = True, **kw: object) -> SearchSpace:
    rng = np.random.default_rng(seed)
    layers = _layers(n, rng)
    c = len(CANDS)
    if monotone:  # loss grows as bits fall: cumulative sums of positive increments
        lw = np.cumsum(rng.exponential(1.0, (n, c)) * [0.01, 1, 1, 1], axis=1)
        la = np.cumsum(rng.exponential(1.0, (n, c)) * [0.01, 1, 1, 1], axis=1)
    else:
        lw, la = rng.normal(size=(n, c)), rng.normal(size=(n, c))
    return SearchSpace.build(layers, CANDS, lw, la, float_params=1000, fixed_bops=1e5, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["mb", "avg_bits", "bops"])
def test_sweep_is_monotone_and_ends_all_low(kind: str) -> None:
    space = _space()
    sweep = greedy_sweep(space, [kind])
    costs = [s.costs[kind] for s in sweep.steps]
    losses = [s.loss for s in sweep.steps]
    assert all(b < a for a, b in itertools.pairwise(costs))
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(losses))  # monotone tables
    assert sweep.steps[0].assignment == space.all_high()
    end = sweep.steps[-1].assignment
    assert set(end.w_bits) == {4}
    if kind == "mb":
        assert set(end.a_bits) == {8}  # activations never change the size, so they are never lowered
    else:
        assert set(end.a_bits) == {4}
    for s in sweep.steps:
        assert s.loss == pytest.approx(space.estimate(s.assignment))
        assert s.costs == pytest.approx(space.costs(s.assignment))


@pytest.mark.parametrize(("kind", "frac"), [("mb", 0.3), ("avg_bits", 0.5), ("bops", 0.7)])
def test_pick_respects_budget(kind: str, frac: float) -> None:
    space = _space(seed=3)
    hi = space.costs(space.all_high())[kind]
    lo = space.smallest(kind)
    budget = Budget(kind, lo + frac * (hi - lo))
    step = greedy_sweep(space, [kind]).pick([budget])
    assert step.costs[kind] <= budget.value
    assert step.costs[kind] > lo


def test_pins_respected() -> None:
    rng = np.random.default_rng(0)
    layers = _layers(10, rng)
    pins = parse_pins(["patch_embed.*", "head=6"], layers, CANDS)
    assert pins == {0: 8, 9: 6}
    space = _space(pins=pins)
    sweep = greedy_sweep(space, ["avg_bits"])
    for s in sweep.steps:
        assert (s.assignment.w_bits[0], s.assignment.a_bits[0]) == (8, 8)
        assert (s.assignment.w_bits[9], s.assignment.a_bits[9]) == (6, 6)
    assert "head" not in " ".join(s.unit for s in sweep.steps)


def test_unmatched_pins_are_named() -> None:
    layers = _layers(6, np.random.default_rng(0))
    with pytest.raises(VitqError, match=r"'nothing\*', 'heda' match no quantizable layer"):
        parse_pins(["head", "nothing*", "heda"], layers, CANDS)
    with pytest.raises(VitqError, match="not a candidate"):
        parse_pins(["head=7"], layers, CANDS)


@pytest.mark.parametrize("kind", ["mb", "avg_bits", "bops"])
def test_budget_below_minimum_names_smallest(kind: str) -> None:
    space = _space()
    low = space.smallest(kind)
    with pytest.raises(VitqError, match="below the smallest achievable") as exc:
        greedy_sweep(space, [kind]).pick([Budget(kind, low * 0.9)])
    assert f"{low:.3f}"[:4] in str(exc.value) or f"{low:.4g}" in str(exc.value)
    with pytest.raises(VitqError, match="below the smallest achievable"):
        solve_ilp(space, [Budget(kind, low * 0.9)])
    assert greedy_sweep(space, [kind]).pick([Budget(kind, low)]).costs[kind] == pytest.approx(low)


def test_budget_message_value() -> None:
    space = _space()
    low = space.smallest("avg_bits")
    assert low == pytest.approx(4.0)
    with pytest.raises(
        VitqError, match=r"budget 3\.500 average bits is below the smallest achievable 4\.000"
    ):
        space.check_budgets([Budget("avg_bits", 3.5)])


def _brute_force(space: SearchSpace, budgets: list[Budget]) -> float:
    best = np.inf
    n = len(space.groups)
    levels = range(len(space.candidates))
    for wl in itertools.product(levels, repeat=n):
        for al in itertools.product(levels, repeat=n):
            asg = space.assignment(list(wl), list(al))
            costs = space.costs(asg)
            if all(costs[b.kind] <= b.value for b in budgets):
                best = min(best, space.estimate(asg))
    return best


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["mb", "avg_bits", "bops"]),
    frac=st.floats(0.05, 0.95),
    loss_scale=st.sampled_from([1.0, 1e-6]),
)
def test_ilp_is_optimal_vs_brute_force(seed: int, kind: str, frac: float, loss_scale: float) -> None:
    # loss_scale 1e-6: real KL sensitivities are ~1e-7..1e-5, below HiGHS's default absolute MIP gap.
    space = SearchSpace.build(
        *(
            lambda s: (
                s.layers,
                (8, 6, 4),
                s.loss_w[:, [0, 1, 3]] * loss_scale,
                s.loss_a[:, [0, 1, 3]] * loss_scale,
            )
        )(_space(n=3, seed=seed, monotone=seed % 2 == 0)),
        float_params=10,
    )
    hi = space.costs(space.all_high())[kind]
    lo = space.smallest(kind)
    budgets = [Budget(kind, lo + frac * (hi - lo))]
    res = solve_ilp(space, budgets)
    assert res.costs[kind] <= budgets[0].value * (1 + 1e-9)
    assert res.loss == pytest.approx(_brute_force(space, budgets), rel=1e-6, abs=1e-9 * loss_scale)
    greedy = greedy_sweep(space, [kind]).pick(budgets)
    assert res.loss <= greedy.loss + 1e-9 * loss_scale


def test_ilp_ties_groups_and_two_budgets() -> None:
    space = _space(n=10, tie="block")
    assert any(len(g) == 4 for g in space.groups)
    budgets = [Budget("avg_bits", 5.5), Budget("mb", space.smallest("mb") * 1.3)]
    res = solve_ilp(space, budgets)
    for g in space.groups:
        assert len({res.assignment.w_bits[i] for i in g}) == 1
        assert len({res.assignment.a_bits[i] for i in g}) == 1
    assert res.costs["avg_bits"] <= 5.5 + 1e-9
    step = greedy_sweep(space, ["avg_bits", "mb"]).pick(budgets)
    assert step.feasible(budgets)
    assert res.loss <= step.loss + 1e-9


def test_tie_attn_groups_qkv_with_proj() -> None:
    space = _space(n=10, tie="attn")
    names = [[space.layers[i].fqn for i in g] for g in space.groups]
    assert ["blocks.0.attn.qkv", "blocks.0.attn.proj"] in names
    assert ["blocks.0.mlp.fc1"] in names


def test_compare_reports_differences() -> None:
    space = _space(n=4)
    a = space.all_high()
    w = list(a.w_bits)
    w[1] = 4
    b = Assignment(tuple(w), a.a_bits)
    rep = compare_assignments(space, a, b)
    assert not rep["same"]
    assert rep["differences"] == [
        {
            "layer": space.layers[1].fqn,
            "kind": "w",
            "greedy": 8,
            "ilp": 4,
            "d_loss": pytest.approx(space.loss_w[1, 3] - space.loss_w[1, 0]),
        }
    ]
    assert rep["ilp"]["mb"] < rep["greedy"]["mb"]
    assert compare_assignments(space, a, a)["same"]


def test_front_is_pareto() -> None:
    space = _space(monotone=False)
    sweep = greedy_sweep(space, ["bops"])
    front = sweep.front()
    for a, b in itertools.pairwise(front):
        assert b.costs["bops"] < a.costs["bops"] and b.loss > a.loss
