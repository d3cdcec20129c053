"""Speed of the PT2E wing: ``torch.compile`` (Inductor, x86, ``freezing``) of the converted int8 model against
``torch.compile`` of the fp32 model, side by side in one process, with accuracy beside speed.

Models: timm ``deit_small_patch16_224`` (DeiT, arXiv 2012.12877; random weights: speed only, calibrated on the
bundled images resized to 224) and the reference ``vit_tiny_cifar10`` (converged weights: top-1 of the
*compiled* int8 model on the bundled test images, beside FP). Recipes: ``minmax`` W8A8 (FQ-ViT arXiv 2111.13824
baseline) and ``fqvit`` W8A8/attn4; a recipe the wing refuses is a row with the reason. For each model and batch
size the compiled engines alternate (fp32, int8, fp32, ...) so that machine noise hits both; the table reports
medians, the ratio to compiled fp32 from the same run (above 1 is faster), compile time (first call) separately,
and the load average before and after.

Usage (the committed CSV; it is 2 cores, run it alone):
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=. .venv/bin/python integration/bench_pt2e.py --reps 10 --calib 32 \
        --eval 500 --out docs/measurements/pt2e_speed.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.benchlib.compiled import FIELDS  # noqa: E402
from integration.benchlib.compiled import bench_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/measurements/pt2e_speed.csv"))
    ap.add_argument("--models", default="deit_small_patch16_224,vit_tiny_cifar10")
    ap.add_argument("--recipes", default="minmax,fqvit")
    ap.add_argument("--batches", default="8,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calib", type=int, default=64, help="calibration images per model (default 64)")
    ap.add_argument("--eval", type=int, default=2000, help="test images for the converged model's top-1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for name in args.models.split(","):
            bench_model(name, args, writer.writerow)
            fh.flush()
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
