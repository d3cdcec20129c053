"""Benchmark: every recipe at the shape of a real ViT (timm ``deit_small_patch16_224``: 197 tokens, 384 wide).

Issue #17's scale check: a recipe tuned at the reference model's 65 tokens can break at ViT-S shapes (I-ViT's
Shiftmax output step, 1/128 at 8 bits, is above 99% of the attention probabilities at 197 tokens). For every
registered recipe (or ``--recipes``) and wing (``integration/benchlib/scale.py``), quantize the model through the public API
(``get_backend(b).quantize(model, QuantConfig(recipe, w, a, attn), calib)``) on ``--calib`` bundled CIFAR-10
calibration images resized by the model's own preprocessing, then compare the logits with float on ``--eval``
test images: the cosine of the flattened logits, the relative error and the top-1 agreement with float. The
quantize time (transforms + calibration + searches) is reported with its ratio to one float forward pass over
the same calibration images, measured in the same run. Random weights (``--seed``) unless ``--pretrained``.

Example (what docs/measurements/scale_deit_s.csv holds):
    OMP_NUM_THREADS=2 python integration/bench_scale.py --out docs/measurements/scale_deit_s.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import sys
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.benchlib.scale import FIELDS  # noqa: E402
from integration.benchlib.scale import scale_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="deit_small_patch16_224")
    ap.add_argument("--pretrained", action="store_true", help="timm pretrained weights (needs the Hub)")
    ap.add_argument("--recipes", default=None, help="comma-separated (default: every registered recipe)")
    ap.add_argument("--backends", default=None, help="comma-separated (default: every registered wing)")
    ap.add_argument("--configs", default="8/8/8", help="comma-separated W/A/ATTN bits")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/measurements/scale_deit_s.csv")
    args = ap.parse_args(argv)

    import torch

    from vitq_plugins.core.manager import get_host

    torch.set_num_threads(args.threads)
    host = get_host()
    rows: list[dict[str, Any]] = []
    scale_rows(
        args.model,
        args.recipes.split(",") if args.recipes else list(host.recipes),
        args.backends.split(",") if args.backends else list(host.backends),
        [tuple(int(v) for v in c.split("/")) for c in args.configs.split(",")],  # type: ignore[misc]
        rows.append,
        n_calib=args.calib,
        n_eval=args.eval,
        batch_size=args.batch_size,
        seed=args.seed,
        pretrained=args.pretrained,
        log=lambda m: print(m, flush=True),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
