"""Mixed-precision search: per-layer sensitivity, a greedy Pareto sweep and an exact ILP.

* :mod:`~vitq_plugins.search._measure` - per-layer, per-candidate loss when only that layer's weights
  or activations are lowered (AIMET AMP phase 1), from cached FP block inputs.
* :mod:`~vitq_plugins.search._sensitivity` - the sensitivity table of a model and recipe, cached on disk.
* :mod:`~vitq_plugins.search._greedy` - the MPTQ-style greedy sweep (MPTQ-ViT arXiv 2401.14895 "Greedy MP";
  AIMET AMP phase 2).
* :mod:`~vitq_plugins.search._ilp` - the HAWQ-V3 integer program (arXiv 2011.10680) with
  :func:`scipy.optimize.milp`.
* :mod:`~vitq_plugins.search._space` - layers, cost model (MB, average bits, BOPs), budgets, pins, ties.
* :mod:`~vitq_plugins.search._units` - the fully quantized space (``sites="all"``): LayerNorm inputs,
  q/k/v, attention maps and the GELU output as knobs beside the Linear/Conv weights and inputs.
* :mod:`~vitq_plugins.search._table` - the sensitivity table (JSON on disk).
* :mod:`~vitq_plugins.search._run` - search orchestration, per-layer ``QuantConfig``, real re-evaluation.

Example:
    >>> from vitq_plugins.search import Budget, run_search, sensitivity_table  # doctest: +SKIP
    >>> table = sensitivity_table("vit_tiny_cifar10", "minmax", n_calib=128, anchors=[4])  # doctest: +SKIP
    >>> full = sensitivity_table("vit_tiny_cifar10", "minmax", anchors=[4], sites="all")  # doctest: +SKIP
    >>> res = run_search(table, [Budget("avg_bits", 5.0)], pins=["patch_embed.*", "head"])  # doctest: +SKIP

Nothing here imports torch or scipy at import time.
"""

from __future__ import annotations

from vitq_plugins.search._greedy import Step
from vitq_plugins.search._greedy import Sweep
from vitq_plugins.search._greedy import greedy_sweep
from vitq_plugins.search._ilp import IlpResult
from vitq_plugins.search._ilp import compare_assignments
from vitq_plugins.search._ilp import solve_ilp
from vitq_plugins.search._measure import DEFAULT_CANDIDATES
from vitq_plugins.search._measure import find_layers
from vitq_plugins.search._measure import measure_sensitivity
from vitq_plugins.search._run import METHODS
from vitq_plugins.search._run import SearchResult
from vitq_plugins.search._run import evaluate_config
from vitq_plugins.search._run import run_search
from vitq_plugins.search._run import to_quant_config
from vitq_plugins.search._sensitivity import default_cache_dir
from vitq_plugins.search._sensitivity import sensitivity_table
from vitq_plugins.search._space import BUDGET_KINDS
from vitq_plugins.search._space import KINDS
from vitq_plugins.search._space import TIE_MODES
from vitq_plugins.search._space import Assignment
from vitq_plugins.search._space import Budget
from vitq_plugins.search._space import CostModel
from vitq_plugins.search._space import Layer
from vitq_plugins.search._space import SearchSpace
from vitq_plugins.search._space import format_cost
from vitq_plugins.search._space import parse_pins
from vitq_plugins.search._table import METRICS
from vitq_plugins.search._table import SensitivityTable
from vitq_plugins.search._units import SITE_MODES

__all__ = [
    "BUDGET_KINDS",
    "DEFAULT_CANDIDATES",
    "KINDS",
    "METHODS",
    "METRICS",
    "SITE_MODES",
    "TIE_MODES",
    "Assignment",
    "Budget",
    "CostModel",
    "IlpResult",
    "Layer",
    "SearchResult",
    "SearchSpace",
    "SensitivityTable",
    "Step",
    "Sweep",
    "compare_assignments",
    "default_cache_dir",
    "evaluate_config",
    "find_layers",
    "format_cost",
    "greedy_sweep",
    "measure_sensitivity",
    "parse_pins",
    "run_search",
    "sensitivity_table",
    "solve_ilp",
    "to_quant_config",
]
