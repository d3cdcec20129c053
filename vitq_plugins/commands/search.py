"""``vitq search``: mixed-precision search (MPTQ-style greedy or HAWQ-V3 ILP) under a budget.

Greedy MP after MPTQ-ViT (arXiv 2401.14895) and AIMET AMP; the exact option is HAWQ-V3's ILP
(arXiv 2011.10680) via :func:`scipy.optimize.milp`. Writes into ``--out DIR``:

* ``pareto.csv``: every greedy step (the Pareto sweep) with its estimated loss and costs, and the measured
  numbers of the re-evaluated points;
* ``config.json``: the chosen per-layer config (:meth:`QuantConfig.save`), usable as
  ``vitq quantize --config DIR/config.json``;
* ``search.json``: budgets, the chosen assignment, greedy-vs-ILP differences, estimated and measured
  numbers of every re-evaluated point;
* ``sensitivity.json``: the sensitivity table used.

Example:
    vitq search --model vit_tiny_cifar10 --recipe minmax --backend brevitas --avg-bits 5 \\
        --pin 'patch_embed.*' --pin head --out runs/mp-avg5
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import sys
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.commands.sensitivity import add_sensitivity_arguments
from vitq_plugins.commands.sensitivity import table_from_args
from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from vitq_plugins.executors import Executor
    from vitq_plugins.search import SearchResult
    from vitq_plugins.search import SensitivityTable
    from vitq_plugins.search import Step

__all__ = ["MEASURED_KEYS", "add_arguments", "pick_points", "run"]

#: pipeline result keys copied next to the estimate of each re-evaluated point
MEASURED_KEYS = ("fp_top1", "q_top1", "top1_drop", "agreement", "kl", "size_mb", "bops")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``vitq search``."""
    parser.description = (
        "Mixed-precision search under a budget: per-layer sensitivity, a greedy Pareto sweep (MPTQ-style) "
        "and an exact ILP (HAWQ-V3); the chosen points are quantized and evaluated for real."
    )
    add_sensitivity_arguments(parser)
    parser.add_argument(
        "--backend", default="brevitas", help="backend for the re-evaluation (default brevitas)"
    )
    parser.add_argument("--budget-mb", type=float, default=None, metavar="X", help="weight size budget in MB")
    parser.add_argument(
        "--avg-bits", type=float, default=None, metavar="X", help="parameter-weighted average of (w + a) / 2"
    )
    parser.add_argument(
        "--bops", type=float, default=None, metavar="X", help="bit-operations budget per image"
    )
    parser.add_argument("--method", default="greedy", choices=("greedy", "ilp"), help="chosen solution")
    parser.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="GLOB[=BITS]",
        help="keep matching layers at BITS (default: the highest candidate); repeatable",
    )
    parser.add_argument(
        "--tie", default="none", choices=("none", "attn", "block"), help="tie qkv/proj or whole blocks"
    )
    parser.add_argument(
        "--base-a-bits",
        type=int,
        default=None,
        metavar="B",
        help="bits of the activation sites that are not searched (default: the highest candidate)",
    )
    parser.add_argument("--attn-bits", type=int, default=None, metavar="B", help="attention-map bits")
    parser.add_argument(
        "--reeval",
        type=int,
        default=1,
        metavar="K",
        help="re-evaluate the chosen point and K-1 more points of the greedy front for real (default 1; 0: none)",
    )
    parser.add_argument(
        "--quant-calib", type=int, default=512, metavar="N", help="backend calibration images"
    )
    parser.add_argument("--eval", type=int, default=None, metavar="N", help="evaluation images (default all)")
    parser.add_argument("--out", required=True, metavar="DIR", help="new directory for the results")


def _budgets(args: argparse.Namespace) -> list[Any]:
    from vitq_plugins.search import Budget

    out = []
    for kind, value in (("mb", args.budget_mb), ("avg_bits", args.avg_bits), ("bops", args.bops)):
        if value is not None:
            out.append(Budget(kind, float(value)))
    if not out:
        raise VitqError("no budget given: pass --budget-mb X, --avg-bits X or --bops X")
    return out


def pick_points(front: list[Step], chosen: Step, k: int) -> list[Step]:
    """``chosen`` plus ``k - 1`` front steps spread evenly over the front (by position)."""
    if k <= 0:
        return []
    picked = [chosen]
    if k > 1 and front:
        n = len(front)
        for t in range(k - 1):
            idx = round(t * (n - 1) / max(k - 2, 1)) if k > 2 else 0
            step = front[min(idx, n - 1)]
            if all(step.index != p.index for p in picked):
                picked.append(step)
    return picked


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VitqError(f"output directory {str(out)!r} already exists and is not empty; choose a new one")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _search_and_reevaluate(
    args: argparse.Namespace, budgets: list[Any], executor: Executor
) -> tuple[SensitivityTable, SearchResult, list[dict[str, Any]]]:
    """The table, the search and the measured points (the re-evaluations run as one sweep on ``executor``)."""
    from vitq_plugins.search import run_search
    from vitq_plugins.search import to_quant_config

    table = table_from_args(args, executor)
    result: SearchResult = run_search(
        table,
        budgets,
        method=args.method,
        metric=args.metric,
        tie=args.tie,
        pins=args.pin,
        base_a_bits=args.base_a_bits,
        attn_bits=args.attn_bits,
    )
    space = result.space

    def config_of(asg: Any) -> Any:
        return to_quant_config(
            space, asg, args.recipe, base_a_bits=args.base_a_bits, attn_bits=args.attn_bits
        )

    chosen_step = result.sweep.pick(result.budgets)
    front = result.sweep.front()
    targets: list[tuple[str, Any]] = []
    if args.method == "ilp":
        targets.append(("ilp", result.ilp.assignment))
        targets += [
            (f"step{s.index}", s.assignment) for s in pick_points(front, chosen_step, args.reeval)[1:]
        ]
    else:
        targets += [(f"step{s.index}", s.assignment) for s in pick_points(front, chosen_step, args.reeval)]
    targets = targets[: max(args.reeval, 0)]
    if not targets:
        return table, result, []
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import fp_evaluation
    from vitq_plugins.pipeline import quantize_sweep

    # one FP model and one FP pass for all re-evaluated points, shipped once to the executor's workers
    fp_model, model_name = resolve_model(args.model, pretrained=not args.no_pretrained, arch=args.arch)
    fp_eval = fp_evaluation(fp_model, args.data, args.eval, args.seed, progress=not args.no_progress)
    outcome = quantize_sweep(
        fp_model,
        [{"backend": args.backend, "config": config_of(asg)} for _, asg in targets],
        executor=executor,
        labels=[f"point {label}" for label, _ in targets],
        name=model_name,
        fp_eval=fp_eval,
        progress=not args.no_progress,
        data=args.data,
        n_calib=args.quant_calib,
        n_eval=args.eval,
        seed=args.seed,
    )
    points: list[dict[str, Any]] = []
    for (label, asg), measured in zip(targets, outcome.unwrap("search re-evaluation"), strict=True):
        point: dict[str, Any] = {"point": label, "est_loss": space.estimate(asg), **space.costs(asg)}
        point.update({f"measured_{k}": measured.get(k) for k in MEASURED_KEYS})
        points.append(point)
    return table, result, points


def run(args: argparse.Namespace) -> int:
    """Search, write the results, print a summary; ``VitqError`` on bad input (the CLI exits 2)."""
    import json

    from vitq_plugins.commands import executor_from_args
    from vitq_plugins.search import format_cost
    from vitq_plugins.search import to_quant_config

    budgets = _budgets(args)
    out = Path(args.out)
    _check_out(out)
    if args.reeval < 0:
        raise VitqError(f"--reeval {args.reeval} is invalid: expected 0 or more")
    with executor_from_args(args) as executor:
        table, result, points = _search_and_reevaluate(args, budgets, executor)
    space = result.space

    def config_of(asg: Any) -> Any:
        return to_quant_config(
            space, asg, args.recipe, base_a_bits=args.base_a_bits, attn_bits=args.attn_bits
        )

    chosen_step = result.sweep.pick(result.budgets)
    front = result.sweep.front()
    out.mkdir(parents=True, exist_ok=True)
    front_ids = {s.index for s in front}
    by_label = {p["point"]: p for p in points}
    rows = []
    for s in result.sweep.steps:
        row = {**s.to_row(), "on_front": s.index in front_ids, "chosen": s.index == chosen_step.index}
        m = by_label.get(f"step{s.index}")
        row.update({f"measured_{k}": (m or {}).get(f"measured_{k}") for k in MEASURED_KEYS})
        rows.append(row)
    if "ilp" in by_label:
        p = by_label["ilp"]
        rows.append(
            {
                "step": "ilp",
                "unit": "",
                "est_loss": p["est_loss"],
                **{k: p[k] for k in ("mb", "avg_bits", "bops")},
                "chosen": True,
                **{k: v for k, v in p.items() if k.startswith("measured_")},
            }
        )
    _write_csv(out / "pareto.csv", rows)
    config_of(result.chosen).save(out / "config.json")
    table.save(out / "sensitivity.json")
    summary = {
        **result.summary(),
        "model": table.meta.get("model"),
        "recipe": args.recipe,
        "backend": args.backend,
        "sensitivity": {k: v for k, v in table.meta.items() if k != "key"},
        "points": points,
        "files": {n: str(out / n) for n in ("pareto.csv", "config.json", "search.json", "sensitivity.json")},
    }
    (out / "search.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
        return 0
    costs = summary["costs"]
    print(
        f"{args.method} under {', '.join(b.describe() for b in result.budgets)}: est {space.metric} "
        f"{summary['est_loss']:.4g}; {format_cost('mb', costs['mb'])}, {costs['avg_bits']:.3f} avg bits, "
        f"{costs['bops']:.4g} BOPs"
    )
    diff = result.comparison["differences"]
    print(
        "greedy and ILP agree"
        if not diff
        else f"greedy and ILP differ on {len(diff)} knob(s): "
        + ", ".join(f"{d['layer']}:{d['kind']} {d['greedy']}->{d['ilp']}" for d in diff[:8])
        + (" ..." if len(diff) > 8 else "")
    )
    for p in points:
        print(
            f"{p['point']:>8}: est {space.metric} {p['est_loss']:.4g}, {p['mb']:.4f} MB, avg {p['avg_bits']:.3f} "
            f"-> measured top-1 {p['measured_q_top1']:.4f} (FP {p['measured_fp_top1']:.4f}), "
            f"agreement {p['measured_agreement']:.4f}, size {p['measured_size_mb']:.4f} MB"
        )
    print(f"wrote {out}/pareto.csv, config.json, search.json, sensitivity.json")
    return 0
