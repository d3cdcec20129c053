"""Benchmark: what the explorer's user waits for, through the app's own service functions.

Times, on the app's defaults (``vit_tiny_cifar10``, all 2,000 bundled test images, 512 calibration images,
``fqvit`` W8A8 with 4-bit attention on Brevitas; override with the ``VITQ_EXPLORER_*`` variables):

* loading the FP model (the ``st.cache_resource`` step of the first page);
* the FP evaluation that every config is compared with (once per model and data, then cached);
* evaluating one config (calibration + quantized pass) with the FP evaluation cached: the acceptance
  figure (< 30 s on 2 cores), for the default recipe and the uniform W8A8 ``minmax`` baseline;
* the same config through ``run_quantize`` without the cached FP evaluation, side by side.

Each timing is the median of ``--repeats`` runs (the disk cache of results is pointed at a temporary
directory so nothing is reused between runs). Prints a table and writes it as CSV.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python integration/bench_explorer.py --out docs/measurements/explorer_timing.csv
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path("runs/explorer_timing.csv"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--default-only", action="store_true", help="time only the app's default config")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ["VITQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitq-bench-explorer-")
    from explorer_app import services
    from explorer_app.state import Settings
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.pipeline import run_quantize

    settings = Settings.from_env()
    rows: list[tuple[str, float, str]] = []

    t = time.perf_counter()
    fp = services.load_fp_model(settings.model)
    rows.append(("load FP model", time.perf_counter() - t, settings.model))
    t = time.perf_counter()
    fp_eval = services.fp_evaluation(settings, fp)
    rows.append(("FP evaluation (once, cached)", time.perf_counter() - t, f"{fp_eval.n} images"))

    configs = {
        f"{settings.recipe} W{settings.w_bits}A{settings.a_bits} attn{settings.attn_bits}": QuantConfig(
            settings.recipe, settings.w_bits, settings.a_bits, settings.attn_bits
        ),
        "minmax W8A8 attn8": QuantConfig("minmax", 8, 8, 8),
    }
    if args.default_only:
        configs = dict(list(configs.items())[:1])
    for label, cfg in configs.items():
        cached, uncached = [], []
        top1 = 0.0
        for _ in range(args.repeats):  # interleaved, so both see the same machine state
            os.environ["VITQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitq-bench-explorer-")  # cold disk cache
            t = time.perf_counter()
            rec, hit = services.evaluate(settings, fp, cfg, {}, label=label, source="bench")
            cached.append(time.perf_counter() - t)
            assert not hit, "the result cache must be cold for a timing"
            top1 = float(rec["result"]["q_top1"])
            t = time.perf_counter()
            run_quantize(
                fp.module,
                backend=settings.backend,
                config=cfg,
                data=settings.data,
                n_calib=settings.n_calib,
                n_eval=settings.n_eval_or_none,
                seed=settings.seed,
                progress=False,
                batch_size=settings.batch_size,
            )
            uncached.append(time.perf_counter() - t)
        rows.append(
            (
                f"evaluate one config: {label} (app, FP cached)",
                statistics.median(cached),
                f"top-1 {top1:.4f}; {settings.backend}; {fp_eval.n} images; {settings.n_calib} calib",
            )
        )
        rows.append(
            (f"same through run_quantize, FP pass included: {label}", statistics.median(uncached), "")
        )

    load = os.getloadavg()
    print("| step | median s | note |\n|---|---|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.1f} | {note} |")
    print(
        f"\nthreads={args.threads}, repeats={args.repeats}, load average at end {load[0]:.1f}/{load[1]:.1f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "median_s", "note", "threads", "repeats"])
        for name, sec, note in rows:
            w.writerow([name, f"{sec:.2f}", note, args.threads, args.repeats])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
