"""FP accuracy of ``vit_tiny_cifar10`` on the full CIFAR-10 test split (and on the bundled 2,000 subset).

The reference weights are whatever ships in ``vitq_plugins/assets`` (the JSON beside them records where
they came from). ``--update-metadata`` writes the measured CPU fp32 accuracies into that JSON
(``full_test_top1``, ``bundled_test2000_top1`` and how they were measured), so the shipped figure is the one
this script printed, never one typed by hand.

Usage:
    python integration/bench_fp_accuracy.py --data ../shared/data/cifar10 --out runs/fp_accuracy.json
    python integration/bench_fp_accuracy.py --update-metadata   # after shipping new weights
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitq_plugins.commands import format_table  # noqa: E402
from vitq_plugins.models.reference import REFERENCE_META  # noqa: E402
from vitq_plugins.models.reference import reference_metadata  # noqa: E402
from vitq_plugins.pipeline import run_evaluate  # noqa: E402

KEYS = ("data", "n_eval", "top1", "top5", "eval_s", "images_per_s")


def main(argv: list[str] | None = None) -> int:
    """Evaluate on the full test split and the bundled subset, print a table, save JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/cifar10", help="directory of cifar10-test.jpeg.npz")
    ap.add_argument("--model", default="vit_tiny_cifar10", help="model name or checkpoint")
    ap.add_argument("--out", type=Path, default=Path("runs/fp_accuracy.json"))
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--no-bundled", action="store_true", help="skip the bundled 2,000-image subset")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--update-metadata",
        action="store_true",
        help="write the measured top-1 into vitq_plugins/assets/vit_tiny_cifar10.json (reference model only)",
    )
    args = ap.parse_args(argv)
    if args.update_metadata and (args.model != "vit_tiny_cifar10" or args.no_bundled):
        ap.error("--update-metadata needs --model vit_tiny_cifar10 and the bundled subset (no --no-bundled)")

    runs: dict[str, Any] = {}
    sources = {"full_test": Path(args.data)} | (
        {} if args.no_bundled else {"bundled_test2000": "cifar10_bundled"}
    )
    for key, data in sources.items():
        runs[key] = run_evaluate(
            args.model, data=data, batch_size=args.batch_size, progress=not args.no_progress
        )
    meta = reference_metadata() if args.model == "vit_tiny_cifar10" else {}
    report = {"model": args.model, "runs": runs, "training_metadata": meta}

    for key, res in runs.items():
        print(f"[{key}]")
        print(format_table(res, KEYS))
    if meta:
        print(f"training metadata: { {k: v for k, v in meta.items() if not isinstance(v, dict | list)} }")
    _write_json(args.out, report)
    print(f"saved {args.out}")
    if args.update_metadata:
        import torch

        meta["full_test_top1"] = runs["full_test"]["top1"]
        meta["bundled_test2000_top1"] = runs["bundled_test2000"]["top1"]
        meta["measured_with"] = {
            "command": "python integration/bench_fp_accuracy.py --update-metadata",
            "device": "cpu",
            "dtype": "float32",
            "n_full_test": runs["full_test"]["n_eval"],
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        }
        _write_json(REFERENCE_META, meta)
        print(f"updated {REFERENCE_META}")
    return 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (nothing half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
