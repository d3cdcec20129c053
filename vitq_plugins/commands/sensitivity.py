"""``vitq sensitivity``: per-layer loss when only one layer's weights or inputs are lowered.

AIMET AMP phase 1 / MPTQ-ViT Greedy MP (arXiv 2401.14895) layer-wise measurement; see
:func:`vitq_plugins.search.sensitivity_table`. Results are cached on disk (JSON) under ``--cache-dir``.

Example:
    vitq sensitivity --model vit_tiny_cifar10 --recipe minmax --candidates 8,6,5,4 --metric kl --calib 256
    vitq sensitivity --model vit_tiny_cifar10 --executor ray --num-workers 4   # layer tasks on Ray
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.commands import add_executor_arguments
from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from vitq_plugins.executors import Executor
    from vitq_plugins.search import SensitivityTable

__all__ = ["add_arguments", "add_sensitivity_arguments", "parse_candidates", "run", "table_from_args"]

_METRICS = ("kl", "agreement", "mse")


def parse_candidates(text: str, flag: str = "--candidates") -> tuple[int, ...]:
    """``"8,6,5,4"`` -> ``(8, 6, 5, 4)``.

    Raises:
        VitqError: not a comma-separated list of distinct whole numbers in 2..16.
    """
    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise VitqError(f"{flag} {text!r} is invalid: expected bit-widths like 8,6,5,4") from None
    if not vals or len(set(vals)) != len(vals) or any(not 2 <= v <= 16 for v in vals):
        raise VitqError(
            f"--candidates {text!r} is invalid: expected distinct bit-widths in 2..16, like 8,6,5,4"
        )
    return tuple(sorted(vals, reverse=True))


def add_sensitivity_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``vitq sensitivity`` and ``vitq search``."""
    parser.add_argument("--model", required=True, help="registered or timm model name, or a checkpoint file")
    parser.add_argument("--arch", default=None, help="architecture to load a checkpoint into")
    parser.add_argument(
        "--no-pretrained", action="store_true", help="random weights for registered/timm names"
    )
    parser.add_argument("--recipe", default="minmax", help="registered recipe (default minmax)")
    parser.add_argument(
        "--candidates", default="8,6,5,4", metavar="B,B,...", help="candidate bit-widths (default 8,6,5,4)"
    )
    parser.add_argument(
        "--anchors",
        default=None,
        metavar="B,...",
        help="candidates measured through the network; the others are scaled from the nearest anchor by the "
        "layer's local output-error energy (default: measure every candidate; '4' is ~4x faster)",
    )
    parser.add_argument("--metric", default="kl", choices=_METRICS, help="sensitivity metric (default kl)")
    parser.add_argument(
        "--data", default="cifar10_bundled", help="dataset name or path; its calibration split is used"
    )
    parser.add_argument(
        "--calib", type=int, default=256, metavar="N", help="images to measure sensitivity on (default 256)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, metavar="B", help="images per batch (default 128)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subset (default 0)")
    parser.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="sensitivity cache (default $VITQ_CACHE_DIR or ~/.cache/vitq)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    add_executor_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``vitq sensitivity``."""
    parser.description = (
        "Per-layer sensitivity: the loss (KL to FP, 1 - top-1 agreement, or logit MSE) when only one "
        "layer's weights or input activations are at a lower bit-width and the rest stays float."
    )
    add_sensitivity_arguments(parser)
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the table (.json or .csv)")


def table_from_args(args: argparse.Namespace, executor: Executor | None = None) -> SensitivityTable:
    """Measure (or load from cache) the table the flags describe, on ``executor`` (default serial)."""
    from vitq_plugins.search import sensitivity_table

    return sensitivity_table(
        args.model,
        args.recipe,
        data=args.data,
        n_calib=args.calib,
        candidates=parse_candidates(args.candidates),
        seed=args.seed,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=not args.no_progress,
        arch=args.arch,
        pretrained=not args.no_pretrained,
        anchors=None if args.anchors is None else parse_candidates(args.anchors, "--anchors"),
        executor=executor,
    )


def _payload(table: SensitivityTable, metric: str) -> dict[str, Any]:
    meta = {k: v for k, v in table.meta.items() if k != "key"}
    layers = []
    for i, ly in enumerate(table.layers):
        layers.append(
            {
                "layer": ly.fqn,
                "params": ly.params,
                "macs": ly.macs,
                "w": [float(v) for v in table.loss(metric, "w")[i]],
                "a": [float(v) for v in table.loss(metric, "a")[i]],
            }
        )
    return {"metric": metric, "candidates": list(table.candidates), "meta": meta, "layers": layers}


def _write(table: SensitivityTable, path: Path) -> None:
    if path.suffix == ".csv":
        import csv

        rows = table.rows()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif path.suffix == ".json":
        table.save(path)
    else:
        raise VitqError(f"--out {str(path)!r}: use a .json or .csv file name")


def run(args: argparse.Namespace) -> int:
    """Measure and print the table; raises ``VitqError`` on bad input (the CLI exits 2)."""
    import json

    if args.out is not None and Path(args.out).suffix not in (".json", ".csv"):
        raise VitqError(f"--out {args.out!r}: use a .json or .csv file name")
    from vitq_plugins.commands import executor_from_args

    with executor_from_args(args) as executor:
        table = table_from_args(args, executor)
    if args.out is not None:
        _write(table, Path(args.out))
    payload = _payload(table, args.metric)
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    cands = table.candidates
    width = max(len(ly.fqn) for ly in table.layers)
    head = "  ".join(f"w{b:<8}" for b in cands) + "  " + "  ".join(f"a{b:<8}" for b in cands)
    print(f"{'layer'.ljust(width)}  {head}")
    for row in payload["layers"]:
        vals = "  ".join(f"{v:<9.3g}" for v in row["w"] + row["a"])
        print(f"{row['layer'].ljust(width)}  {vals}")
    m = payload["meta"]
    print(
        f"metric {args.metric} on {m.get('n_images')} images of {m.get('data')}; "
        f"cache {m.get('cache')} ({m.get('cache_path') or 'off'}); {m.get('seconds', 0.0):.1f} s to measure"
    )
    return 0
