"""Search orchestration: table -> greedy sweep (+ ILP) -> per-layer :class:`QuantConfig` -> real re-evaluation.

The greedy sweep follows MPTQ-ViT's Greedy MP (arXiv 2401.14895, "MPTQ-style") and AIMET AMP; the exact
solution is HAWQ-V3's ILP (arXiv 2011.10680). Both are always computed (the ILP takes well under a second),
``method`` says which one is *chosen*, and their differences are reported. Chosen points are then
quantized and evaluated for real through :func:`vitq_plugins.pipeline.run_quantize`, so every point carries
both the additive estimate and the measured numbers.

Config format: the searched units are written as exact-FQN overrides. Linear space: ``{fqn: {w_bits,
a_bits}}``; the config's defaults (``w_bits`` = highest candidate, ``a_bits`` = ``base_a_bits``,
``attn_bits``) govern the sites that are not searched: LayerNorm inputs, GELU output, q/k/v, residual adds
and the attention map. All-sites space: also ``{norm: {a_bits}}`` (LayerNorm input), ``{attn: {a_bits,
attn_bits}}`` (q/k/v and the attention map), and each served module (the GELU before ``fc2``, the block
whose residual a LayerNorm input quantizes) gets its owner's ``a_bits``, so every quantized site of the
recipe carries a searched bit-width.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.search._greedy import Sweep
from vitq_plugins.search._greedy import greedy_sweep
from vitq_plugins.search._ilp import IlpResult
from vitq_plugins.search._ilp import compare_assignments
from vitq_plugins.search._ilp import solve_ilp
from vitq_plugins.search._space import Assignment
from vitq_plugins.search._space import Budget
from vitq_plugins.search._space import SearchSpace
from vitq_plugins.search._table import SensitivityTable

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.evaluation.evaluate import EvalResult

__all__ = ["METHODS", "SearchResult", "evaluate_config", "run_search", "to_quant_config"]

METHODS: tuple[str, ...] = ("greedy", "ilp")


def to_quant_config(
    space: SearchSpace,
    asg: Assignment,
    recipe: str,
    *,
    base_a_bits: int | None = None,
    attn_bits: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> QuantConfig:
    """The per-layer :class:`QuantConfig` of an assignment (every searched unit as an exact FQN key)."""
    top = space.candidates[0]
    a = base_a_bits or top
    layers: dict[str, LayerOverride] = {}
    for ly, w, b in zip(space.layers, asg.w_bits, asg.a_bits, strict=True):
        if ly.op == "ln":
            layers[ly.fqn] = LayerOverride(a_bits=int(b))
        elif ly.op == "attn":
            layers[ly.fqn] = LayerOverride(a_bits=int(b), attn_bits=int(w))
        else:
            layers[ly.fqn] = LayerOverride(w_bits=int(w), a_bits=int(b))
        for served in ly.served:
            layers[served] = LayerOverride(a_bits=int(b))
    return QuantConfig(recipe, top, a, attn_bits or a, layers, dict(options or {}))


@dataclass(frozen=True)
class SearchResult:
    """What a search found.

    Args:
        space: the search space.
        budgets: the budgets.
        method: the method whose solution is chosen.
        sweep: the greedy sweep (the Pareto sweep).
        greedy: the greedy pick under the budgets.
        ilp: the ILP optimum under the budgets.
        comparison: :func:`compare_assignments` of greedy vs ILP.
    """

    space: SearchSpace
    budgets: tuple[Budget, ...]
    method: str
    sweep: Sweep
    greedy: Assignment
    ilp: IlpResult
    comparison: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> Assignment:
        """The assignment of :attr:`method`."""
        return self.ilp.assignment if self.method == "ilp" else self.greedy

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (budgets, chosen estimate and costs, greedy-vs-ILP differences)."""
        chosen = self.chosen
        return {
            "method": self.method,
            "metric": self.space.metric,
            "budgets": {b.kind: b.value for b in self.budgets},
            "candidates": list(self.space.candidates),
            "pins": {self.space.layers[i].fqn: b for i, b in sorted(self.space.pins.items())},
            "groups": len(self.space.groups),
            "est_loss": self.space.estimate(chosen),
            "costs": self.space.costs(chosen),
            "ilp_status": self.ilp.status,
            "greedy_vs_ilp": self.comparison,
            "layers": chosen.as_dict(self.space.layers),
        }


def run_search(
    table: SensitivityTable,
    budgets: Sequence[Budget],
    *,
    method: str = "greedy",
    metric: str = "kl",
    tie: str = "none",
    pins: Sequence[str] = (),
    base_a_bits: int | None = None,
    attn_bits: int | None = None,
) -> SearchResult:
    """Greedy sweep and ILP under ``budgets``; ``method`` picks which solution is chosen.

    Raises:
        VitqError: bad method/metric/tie, unmatched pins (named), or a budget below the smallest
            achievable value (named).
    """
    if method not in METHODS:
        raise VitqError(f"method {method!r} is invalid: valid methods are {', '.join(METHODS)}")
    space = table.space(metric, tie=tie, pins=pins, base_a_bits=base_a_bits, attn_bits=attn_bits)
    space.check_budgets(budgets)
    sweep = greedy_sweep(space, [b.kind for b in budgets])
    greedy = sweep.pick(budgets).assignment
    ilp = solve_ilp(space, budgets)
    comparison = compare_assignments(space, greedy, ilp.assignment)
    return SearchResult(space, tuple(budgets), method, sweep, greedy, ilp, comparison)


def evaluate_config(
    model: str | Path | nn.Module,
    config: QuantConfig,
    *,
    backend: str = "brevitas",
    data: str | Path = "cifar10_bundled",
    n_calib: int = 512,
    n_eval: int | None = None,
    seed: int = 0,
    batch_size: int = 100,
    host: PluginHost | None = None,
    progress: bool = False,
    fp_eval: EvalResult | None = None,
) -> dict[str, Any]:
    """Quantize and evaluate ``config`` for real with :func:`vitq_plugins.pipeline.run_quantize`.

    ``fp_eval`` (from :func:`vitq_plugins.pipeline.fp_evaluation` on the same data, ``n_eval``, ``seed``
    and ``batch_size``) skips the FP pass when several configs are evaluated against one model.

    Returns:
        The pipeline's result dict (``fp_top1``, ``q_top1``, ``agreement``, ``kl``, ``size_mb``, ``bops``...).
    """
    from vitq_plugins.pipeline import run_quantize

    return run_quantize(
        model,
        backend=backend,
        config=config,
        data=data,
        n_calib=n_calib,
        n_eval=n_eval,
        seed=seed,
        host=host,
        progress=progress,
        batch_size=batch_size,
        fp_eval=fp_eval,
    )
