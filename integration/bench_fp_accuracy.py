"""FP accuracy of ``vit_tiny_cifar10`` on the full CIFAR-10 test split (and on the bundled 2,000 subset).

The reference weights are whatever ``integration/train_reference.py`` last wrote into
``vitq_plugins/assets`` (the JSON records the training metadata it reports alongside).

Usage:
    python integration/bench_fp_accuracy.py --data ../shared/data/cifar10 --out runs/fp_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitq_plugins.commands import format_table  # noqa: E402
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
    args = ap.parse_args(argv)

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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(args.out)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
