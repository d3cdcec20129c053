"""Results you can reproduce: accuracy, baselines, speed and cost of vitq on the reference model, in one command.

Writes ``<out-dir>/RESULTS.md`` (the tables the README quotes) and ``<out-dir>/measurements/results.csv``
(every number of those tables, one row per measurement, plus ``results_meta.json`` with the provenance):

* **Accuracy** on the CIFAR-10 test split (all 10,000 images unless ``--eval``) of ``vit_tiny_cifar10``:
  FP; ``minmax``, ``fqvit`` (FQ-ViT, arXiv 2111.13824), ``ivit`` (I-ViT, arXiv 2207.01405) and ``mptq``
  (MPTQ-ViT, arXiv 2401.14895) at W8A8 with 8- and 4-bit attention maps, W6A6, W4A8 and W4A4 on both
  backends (every registered wing); a combination a backend rejects is a row with the reason. Greedy-MP
  (MPTQ-style greedy mixed precision) at 5 and 6 average bits. Columns as in FQ-ViT's table (W/A/Attn
  bits), plus top-1 agreement with FP, KL(FP || quantized) and weight size. The FP logits are computed
  once and every configuration is compared with them.
* **Baseline**: ONNX Runtime's own ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations,
  MinMax calibration fed by a streaming ``CalibrationDataReader``) on the same model, and our Brevitas
  QCDQ export run in ONNX Runtime.
* **Speed**: medians of side-by-side runs (engines interleaved each repetition, ``--speed-threads`` threads,
  default ``--threads``; batch 8 and 1): torch fp32, ORT fp32, ORT int8 of our QCDQ export, ORT ``quantize_static`` int8 and
  torch.ao x86 int8 after ``convert_fx``; ratios to ORT fp32 from the same run.
* **Compiled speed** (``--compile``): ``torch.compile`` (Inductor, x86, freezing) of the PT2E wing's int8
  models (``minmax`` W8A8, ``fqvit`` W8A8/attn4) against ``torch.compile`` of fp32, on timm
  ``deit_small_patch16_224`` (random weights, speed only) and the reference model, batch 8 and 1; compile time
  apart from run time, top-1 of the compiled reference models beside their speed.
* **Scale** (``--scale``): every recipe x wing at W8A8 on timm ``deit_small_patch16_224`` (197 tokens, 384
  wide; random weights, 64 calibration and 64 test images): logit cosine with float and quantize time, each
  beside ``minmax``'s on the same wing.
* **Cost**: each configuration's calibration time as a ratio to the FP forward over the same calibration
  images; the mixed-precision search time (sensitivity + greedy sweep).

Exits 1 when a sanity check fails: a quantized top-1 above FP beyond noise, our QCDQ int8 export not faster than ORT
fp32 at batch 1 in ONNX Runtime, or a missing table row.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python integration/benchmark.py --compile --scale  # full: writes docs/
    .venv/bin/python integration/benchmark.py --quick --out-dir /tmp/bench   # CI-sized (a few hundred images)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import time

os.environ.setdefault("TIMM_FUSED_ATTN", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# the names tests/integration/test_benchmark.py reaches through this script
from integration.benchlib.plan import CSV_COLUMNS  # noqa: E402, F401
from integration.benchlib.plan import ENGINES  # noqa: E402, F401
from integration.benchlib.plan import MODEL  # noqa: E402
from integration.benchlib.plan import ORT_FP32  # noqa: E402, F401
from integration.benchlib.plan import QCDQ_ENGINE  # noqa: E402, F401
from integration.benchlib.plan import SPEED_BATCHES  # noqa: E402, F401
from integration.benchlib.plan import default_data  # noqa: E402
from integration.benchlib.plan import make_plan  # noqa: E402
from integration.benchlib.report import check  # noqa: E402
from integration.benchlib.report import expected_names  # noqa: E402, F401
from integration.benchlib.report import read_csv  # noqa: E402, F401
from integration.benchlib.report import render_markdown  # noqa: E402
from integration.benchlib.report import scale_out_section  # noqa: E402
from integration.benchlib.report import write_outputs  # noqa: E402
from integration.benchlib.runtime import result_row  # noqa: E402, F401
from integration.benchlib.runtime import top1_noise  # noqa: E402, F401
from integration.benchlib.steps import Bench  # noqa: E402
from vitq_plugins.commands import add_executor_arguments  # noqa: E402
from vitq_plugins.commands import executor_from_args  # noqa: E402
from vitq_plugins.core.errors import VitqError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="CI size: 256 images, W8A8 attn4 minmax/fqvit, 6-bit MP, few speed reps",
    )
    ap.add_argument(
        "--eval", type=int, default=None, metavar="N", help="evaluation images (default: all; quick 256)"
    )
    ap.add_argument(
        "--calib", type=int, default=None, metavar="N", help="calibration images (default 512; quick 128)"
    )
    ap.add_argument(
        "--ort-calib",
        type=int,
        default=None,
        metavar="N",
        help="ORT quantize_static calibration images (256; quick 64)",
    )
    ap.add_argument(
        "--mp-calib",
        type=int,
        default=None,
        metavar="N",
        help="sensitivity images for Greedy-MP (128; quick 32)",
    )
    ap.add_argument(
        "--mp-bits", default=None, help="comma-separated average-bit budgets (default 5,6; quick 6)"
    )
    ap.add_argument("--mp-recipe", default="minmax", help="recipe of the Greedy-MP points (default minmax)")
    ap.add_argument(
        "--recipes", default=None, help="comma-separated recipes (default: every registered recipe)"
    )
    ap.add_argument(
        "--backends", default=None, help="comma-separated backends (default: every registered wing)"
    )
    ap.add_argument(
        "--settings",
        default=None,
        help="comma-separated W/A/ATTN bits (default 8/8/8,8/8/4,6/6/6,4/4/4)",
    )
    ap.add_argument("--reps", type=int, default=None, help="speed repetitions (default 30; quick 15)")
    ap.add_argument("--warmup", type=int, default=None, help="speed warm-up runs (default 5; quick 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads (default 2)")
    ap.add_argument(
        "--speed-threads",
        type=int,
        default=None,
        help="intra-op threads of the speed table (default --threads)",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile of the PT2E int8 models against compiled fp32 (DeiT-S and the reference "
        "model, batch 8 and 1; compile time apart)",
    )
    ap.add_argument(
        "--scale",
        action="store_true",
        help="also quantize DeiT-S (random weights, 64 images) with every recipe x wing at W8A8: logit cosine "
        "with float and quantize time against minmax",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument(
        "--data", default=None, help="dataset name or path (default: the full packed CIFAR-10 split)"
    )
    ap.add_argument("--model", default=MODEL)
    ap.add_argument(
        "--out-dir", type=Path, default=ROOT / "docs", help="RESULTS.md here, CSV in measurements/"
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-check", action="store_true", help="exit 0 even when a sanity check fails")
    add_executor_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run every section, write the files, print the tables, check sanity."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    plan = make_plan(args)
    if args.data is None:
        data = default_data()
        if not data.is_dir():
            if not args.quick:
                raise SystemExit(
                    f"the full CIFAR-10 split is not at {data}; pass --data DIR or set VITQ_CIFAR10_DIR"
                )
            data_spec: Path | str = "cifar10_bundled"
        else:
            data_spec = data
        args.data = data_spec
    elif os.sep in args.data or Path(args.data).exists():
        args.data = Path(args.data)
    torch.set_num_threads(args.threads)
    try:
        executor = executor_from_args(args)
    except VitqError as exc:
        print(f"benchmark.py: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter()
    with executor:
        bench = Bench(args, plan, executor)
        try:
            bench.fp()
            bench.configs()
            bench.mixed()
            bench.onnx()
            if args.scale:
                bench.scale()
            if args.compile:
                bench.compiled()
        finally:
            import shutil

            shutil.rmtree(bench.tmp, ignore_errors=True)
    prov = bench.provenance(time.perf_counter() - wall)
    problems = check(bench.rows, plan, args.mp_recipe)
    text = render_markdown(bench.rows, prov, problems) + scale_out_section(args.out_dir / "measurements")
    paths = write_outputs(args.out_dir, bench.rows, prov, text)
    print(text)
    print(
        f"timings: {prov['timings_s']}; total {prov['wall_s']:.1f} s; with every evaluation on the whole split "
        f"~{prov['projected_full_split_s'] / 60:.1f} min",
        file=sys.stderr,
    )
    print(f"wrote {paths['md']}, {paths['csv']}, {paths['meta']}", file=sys.stderr)
    if problems:
        print("SANITY CHECKS FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 0 if args.no_check else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
