"""Greedy mixed-precision sweep, MPTQ-style.

After the Greedy MP of MPTQ-ViT (Tai & Wu, arXiv 2401.14895; the paper has no public code, so this is an
"MPTQ-style" reconstruction) and AIMET AMP phase 2 (``aimet_common/amp/mixed_precision_algo.py``): start
with every layer at the highest candidate and repeatedly lower the one (layer or tied group, weights or
activations) whose move has the smallest Δloss / Δcost. A move may jump to any lower candidate (this is the
convex-hull greedy of the multiple-choice knapsack). Every step is recorded; the sequence *is* the Pareto
sweep, and the configuration for a budget is the best feasible step of it.

With several budgets, Δcost is the sum of each budget's saving normalized by that budget's range (all-high
minus all-low), so each constraint counts alike. Moves that save nothing (activations under a size budget)
are never taken, so the cost strictly decreases along the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search._space import BUDGET_KINDS
from vitq_plugins.search._space import KINDS
from vitq_plugins.search._space import Assignment
from vitq_plugins.search._space import Budget
from vitq_plugins.search._space import SearchSpace
from vitq_plugins.search._space import format_cost

__all__ = ["Step", "Sweep", "greedy_sweep"]

_EPS = 1e-12


@dataclass(frozen=True)
class Step:
    """One point of the greedy sweep (step 0 is the all-high start).

    Args:
        index: step number.
        unit: the lowered unit, ``"<layer or group>:<w|a>"`` ("" for the start).
        from_bits: its bits before the step.
        to_bits: its bits after the step.
        loss: the additive loss estimate after the step.
        costs: every cost metric after the step.
        assignment: per-layer bits after the step.
    """

    index: int
    unit: str
    from_bits: int
    to_bits: int
    loss: float
    costs: dict[str, float]
    assignment: Assignment

    def feasible(self, budgets: Sequence[Budget]) -> bool:
        """Whether every budget is met."""
        return all(self.costs[b.kind] <= b.value * (1 + 1e-12) for b in budgets)

    def to_row(self) -> dict[str, Any]:
        """A flat row for the Pareto CSV."""
        return {
            "step": self.index,
            "unit": self.unit,
            "from_bits": self.from_bits,
            "to_bits": self.to_bits,
            "est_loss": self.loss,
            **{k: self.costs[k] for k in BUDGET_KINDS},
        }


@dataclass(frozen=True)
class Sweep:
    """The greedy sequence of steps, all-high first."""

    space: SearchSpace
    cost_kinds: tuple[str, ...]
    steps: tuple[Step, ...]

    def pick(self, budgets: Sequence[Budget]) -> Step:
        """The feasible step with the lowest estimated loss (ties: the earliest, i.e. the largest).

        Raises:
            VitqError: no step meets every budget (the message names the smallest value reached).
        """
        self.space.check_budgets(budgets)
        ok = [s for s in self.steps if s.feasible(budgets)]
        if not ok:
            last = self.steps[-1]
            reached = ", ".join(format_cost(b.kind, last.costs[b.kind]) for b in budgets)
            raise VitqError(
                f"no point of the greedy sweep meets every budget ({', '.join(b.describe() for b in budgets)}); "
                f"it ends at {reached}"
            )
        return min(ok, key=lambda s: (s.loss, s.index))

    def front(self) -> list[Step]:
        """The steps that no earlier (costlier) step beats in estimated loss: the estimated Pareto front."""
        out: list[Step] = []
        best = np.inf
        for s in reversed(self.steps):  # from cheapest to costliest
            if s.loss < best - _EPS:
                out.append(s)
                best = s.loss
        return out[::-1]


def greedy_sweep(space: SearchSpace, cost_kinds: Sequence[str] = ("mb",)) -> Sweep:
    """Run the greedy sweep from all-high until no move saves cost.

    Args:
        space: the search space (losses, groups, pins, cost model).
        cost_kinds: the cost metric(s) a move's saving is measured in (those of the budgets).

    Returns:
        The :class:`Sweep` of every step.

    Raises:
        VitqError: an unknown cost kind.

    Example:
        >>> sweep = greedy_sweep(space, ["mb"])  # doctest: +SKIP
        >>> step = sweep.pick([Budget("mb", 1.5)])  # doctest: +SKIP
    """
    kinds = tuple(dict.fromkeys(cost_kinds))
    bad = [k for k in kinds if k not in BUDGET_KINDS]
    if bad or not kinds:
        raise VitqError(f"cost kind(s) {bad or kinds!r} invalid: valid kinds are {', '.join(BUDGET_KINDS)}")
    n_groups = len(space.groups)
    cands = np.asarray(space.candidates, dtype=np.float64)
    n_c = len(cands)
    member = space.membership()  # (G, L)
    unit_loss = {k: member @ space.loss_table(k) for k in KINDS}  # (G, C)
    allowed = {k: space.group_allowed(k) for k in KINDS}  # (G, C)
    hi, lo = space.all_high(), space.all_low()
    norm = {}
    for k in kinds:
        span = space.cost.cost(k, hi.w_bits, hi.a_bits) - space.cost.cost(k, lo.w_bits, lo.a_bits)
        norm[k] = span if span > _EPS else 1.0
    levels = {k: np.zeros(n_groups, dtype=np.int64) for k in KINDS}
    asg = space.assignment(levels["w"].tolist(), levels["a"].tolist())
    steps = [Step(0, "", 0, 0, space.estimate(asg), space.costs(asg), asg)]
    rows = np.arange(n_groups)
    while True:
        w_layer = np.asarray(asg.w_bits, dtype=np.float64)
        a_layer = np.asarray(asg.a_bits, dtype=np.float64)
        best: tuple[float, int, int, int, str] | None = None  # (score, jump, group, level, kind)
        for k in KINDS:
            cur = levels[k]
            d_loss = unit_loss[k] - unit_loss[k][rows, cur][:, None]
            saving = np.zeros((n_groups, n_c))
            for ck in kinds:
                # every layer's cost with knob k at each candidate (the other knob as it is): (C, L)
                w_try = np.broadcast_to(cands[:, None], (n_c, w_layer.size)) if k == "w" else w_layer[None, :]
                a_try = np.broadcast_to(cands[:, None], (n_c, a_layer.size)) if k == "a" else a_layer[None, :]
                now = space.cost.contributions(ck, w_layer, a_layer)
                delta = space.cost.contributions(ck, w_try, a_try) - now[None, :]  # (C, L)
                saving += -(member @ delta.T) / norm[ck]
            valid = (np.arange(n_c)[None, :] > cur[:, None]) & (saving > _EPS) & allowed[k]
            if not valid.any():
                continue
            score = np.where(valid, d_loss / np.where(valid, saving, 1.0), np.inf)
            g, j = (int(v) for v in np.unravel_index(int(np.argmin(score)), score.shape))
            cand = (float(score[g, j]), j - int(cur[g]), g, j, k)
            if best is None or cand[:2] < best[:2]:  # ties: weights first, then group order
                best = cand
        if best is None:
            break
        _, _, g, j, k = best
        from_bits = space.candidates[int(levels[k][g])]
        levels[k][g] = j
        asg = space.assignment(levels["w"].tolist(), levels["a"].tolist())
        steps.append(
            Step(
                len(steps),
                f"{space.group_name(g)}:{k}",
                from_bits,
                space.candidates[j],
                space.estimate(asg),
                space.costs(asg),
                asg,
            )
        )
    return Sweep(space, kinds, tuple(steps))
