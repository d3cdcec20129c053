"""Exact mixed precision as an integer linear program, HAWQ-V3 style.

HAWQ-V3 (Yao et al., arXiv 2011.10680, §3.4, ``ILP.ipynb``) minimizes the summed per-layer sensitivity
subject to model size / BOPs / latency limits, one integer variable per layer, tied layers joined by
equality constraints. Here each decision unit (a layer or a tied group) gets one-hot binaries over its
*joint* (weight bits, activation bits) choices, so that BOPs (MACs·w·a, bilinear in the two knobs) stay
linear; it is solved with HiGHS through :func:`scipy.optimize.milp` (no PuLP/CBC binaries needed).

:func:`compare_assignments` reports where two solutions (greedy and ILP) choose differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search._space import KINDS
from vitq_plugins.search._space import Assignment
from vitq_plugins.search._space import Budget
from vitq_plugins.search._space import SearchSpace

__all__ = ["IlpResult", "compare_assignments", "solve_ilp"]


@dataclass(frozen=True)
class IlpResult:
    """An optimal assignment and its estimated loss and costs."""

    assignment: Assignment
    loss: float
    costs: dict[str, float]
    status: str


def solve_ilp(space: SearchSpace, budgets: Sequence[Budget], *, time_limit: float = 60.0) -> IlpResult:
    """Minimize the additive loss estimate subject to every budget.

    Args:
        space: the search space.
        budgets: upper bounds; all must hold.
        time_limit: HiGHS time limit in seconds.

    Returns:
        The optimal :class:`IlpResult`.

    Raises:
        VitqError: a budget below the smallest achievable value, or the solver found no solution.

    Example:
        >>> res = solve_ilp(space, [Budget("avg_bits", 5.0)])  # doctest: +SKIP
    """
    from scipy.optimize import Bounds
    from scipy.optimize import LinearConstraint
    from scipy.optimize import milp

    space.check_budgets(budgets)
    n_g, n_c = len(space.groups), len(space.candidates)
    n_pair = n_c * n_c
    member = space.membership()
    loss_w = member @ space.loss_w  # (G, C)
    loss_a = member @ space.loss_a
    # variable x[g, i, j]: group g has weight level i and activation level j.
    objective = (loss_w[:, :, None] + loss_a[:, None, :]).reshape(-1)
    cands = np.asarray(space.candidates, dtype=np.float64)
    pinned = sorted(space.pins)
    pin_bits = np.zeros(len(space.layers))
    pin_bits[pinned] = [space.pins[i] for i in pinned]
    rows: list[np.ndarray] = []
    upper: list[float] = []
    for b in budgets:
        per_layer = np.stack(
            [np.stack([space.cost.contributions(b.kind, wi, aj) for aj in cands]) for wi in cands]
        )  # (C, C, L)
        coef = np.einsum("gl,ijl->gij", member, per_layer)
        fixed = space.cost.constant(b.kind)
        if pinned:
            fixed += float(space.cost.contributions(b.kind, pin_bits, pin_bits)[pinned].sum())
        rows.append(coef.reshape(-1))
        upper.append(b.value - fixed)
    one_hot = np.kron(np.eye(n_g), np.ones((1, n_pair)))
    # a (w, a) pair outside a knob's valid bits is fixed at 0
    ok = space.group_allowed("w")[:, :, None] & space.group_allowed("a")[:, None, :]  # (G, C, C)
    upper_x = ok.reshape(-1).astype(np.float64)
    constraints = [
        LinearConstraint(one_hot, np.ones(n_g), np.ones(n_g)),
        LinearConstraint(np.vstack(rows), -np.inf, np.asarray(upper) + 1e-9 * np.abs(np.asarray(upper))),
    ]
    # Sensitivities are tiny (KL ~1e-5): HiGHS stops at an absolute MIP gap of 1e-6, which would accept a
    # solution several percent worse than the optimum. Scale the objective to O(1) first.
    scale = float(np.abs(objective).max()) or 1.0
    res = milp(
        objective / scale,
        constraints=constraints,
        integrality=np.ones(objective.size),
        bounds=Bounds(0, upper_x),
        options={"time_limit": time_limit, "disp": False},
    )
    if res.x is None:
        raise VitqError(f"the ILP found no solution ({res.message})")
    x = np.round(res.x).reshape(n_g, n_c, n_c)
    w_levels = [int(np.argmax(x[g].sum(axis=1))) for g in range(n_g)]
    a_levels = [int(np.argmax(x[g].sum(axis=0))) for g in range(n_g)]
    asg = space.assignment(w_levels, a_levels)
    status = "optimal" if res.status == 0 else str(res.message)
    return IlpResult(asg, space.estimate(asg), space.costs(asg), status)


def compare_assignments(
    space: SearchSpace, first: Assignment, second: Assignment, names: tuple[str, str] = ("greedy", "ilp")
) -> dict[str, Any]:
    """Where two assignments differ, and what each is estimated to cost and lose.

    Returns:
        ``{"same": bool, "differences": [{"layer", "kind", <name1>, <name2>, "d_loss"}], "<name>":
        {"est_loss", costs...}}``; ``d_loss`` is the second minus the first's loss on that knob.
    """
    diffs: list[dict[str, Any]] = []
    idx = {b: j for j, b in enumerate(space.candidates)}
    for i, ly in enumerate(space.layers):
        for k in KINDS:
            if k == "w" and ly.w_inert:
                continue
            b1 = (first.w_bits if k == "w" else first.a_bits)[i]
            b2 = (second.w_bits if k == "w" else second.a_bits)[i]
            if b1 != b2:
                table = space.loss_table(k)
                diffs.append(
                    {
                        "layer": ly.fqn,
                        "kind": k,
                        names[0]: int(b1),
                        names[1]: int(b2),
                        "d_loss": float(table[i, idx[b2]] - table[i, idx[b1]]),
                    }
                )
    summary = {
        n: {"est_loss": space.estimate(a), **space.costs(a)}
        for n, a in zip(names, (first, second), strict=True)
    }
    return {"same": not diffs, "differences": diffs, **summary}
