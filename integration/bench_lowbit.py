"""Benchmark: GPTQ weight rounding (arXiv 2210.17323, ``options={"weight_rounding": "gptq"}``) against the wings'
round-to-nearest at low bits on the converged reference model, both wings.

For every recipe x (W, A, attn) x backend x rounding: quantize with :func:`vitq_plugins.pipeline.run_quantize`
(512 calibration images from the bundled calibration split), evaluate on the bundled test images against one
shared FP pass, and record top-1, the drop vs FP, the agreement with FP and the wall time of the quantization
(transforms + GPTQ + calibration). Rows are appended to the CSV as they finish.

Example:
    OMP_NUM_THREADS=1 python integration/bench_lowbit.py --out docs/measurements/lowbit.csv

RepQ-ViT recipe ``repq`` (``docs/measurements/lowbit_repq.csv``, #17; 4/4/4 first, then the other configs):
    OMP_NUM_THREADS=1 python integration/bench_lowbit.py --recipes repq --configs 4/4/4 \
        --backends brevitas,fx --roundings nearest --out docs/measurements/lowbit_repq.csv
    OMP_NUM_THREADS=1 python integration/bench_lowbit.py --recipes repq --configs 6/6/6,8/8/4,8/8/8 \
        --backends brevitas,fx --roundings nearest --out docs/measurements/lowbit_repq.csv

``mptq`` with the screened OPT-m search (``docs/measurements/lowbit_mptq_optm_screened.csv``; its FX rows predate
the FX grid fixes of #17, see ``wing_agreement.csv`` for the current FX figures):
    OMP_NUM_THREADS=1 python integration/bench_lowbit.py --recipes mptq --configs 8/8/8,6/6/6,4/4/4 \
        --roundings nearest --out docs/measurements/lowbit_mptq_optm_screened.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import time
from typing import Any

CONFIGS = ((4, 4, 4), (4, 8, 8), (6, 6, 6))
FIELDS = (
    "recipe",
    "w_bits",
    "a_bits",
    "attn_bits",
    "backend",
    "rounding",
    "fp_top1",
    "q_top1",
    "drop_pt",
    "agreement",
    "quantize_s",
    "gptq_s",
    "n_calib",
    "n_eval",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="vit_tiny_cifar10")
    ap.add_argument("--recipes", default="fqvit,mptq,minmax")
    ap.add_argument("--configs", default=",".join("/".join(map(str, c)) for c in CONFIGS))
    ap.add_argument("--backends", default="brevitas,fx")
    ap.add_argument("--roundings", default="gptq,nearest")
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--eval", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--extra-options", default="", help="k=v,... added to the gptq options (e.g. gptq_sequential=false)"
    )
    ap.add_argument("--out", default="docs/measurements/lowbit.csv")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from vitq_plugins import QuantConfig
    from vitq_plugins import get_backend
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import fp_evaluation
    from vitq_plugins.search import evaluate_config

    extra: dict[str, Any] = {}
    for kv in filter(None, args.extra_options.split(",")):
        k, _, v = kv.partition("=")
        extra[k] = {"true": True, "false": False}.get(v, int(v) if v.isdigit() else v)
    fp_model, _ = resolve_model(args.model)
    t = time.perf_counter()
    fp_eval = fp_evaluation(fp_model, n_eval=args.eval, progress=True)
    print(f"FP evaluation: {time.perf_counter() - t:.1f} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for cfg in args.configs.split(","):
            w, a, attn = (int(x) for x in cfg.split("/"))
            for recipe in args.recipes.split(","):
                for backend in args.backends.split(","):
                    for rounding in args.roundings.split(","):
                        opts: dict[str, Any] = (
                            {"weight_rounding": "gptq", **extra} if rounding == "gptq" else {}
                        )
                        config = QuantConfig(recipe, w, a, attn, options=opts)
                        t = time.perf_counter()
                        res = evaluate_config(
                            fp_model,
                            config,
                            backend=backend,
                            n_calib=args.calib,
                            n_eval=args.eval,
                            fp_eval=fp_eval,
                        )
                        total = time.perf_counter() - t
                        quant_s = float(res.get("calib_s", float("nan")))
                        last = getattr(get_backend(backend), "last_calibration", {}) or {}
                        row = {
                            "recipe": recipe,
                            "w_bits": w,
                            "a_bits": a,
                            "attn_bits": attn,
                            "backend": backend,
                            "rounding": rounding
                            + ("+" + args.extra_options if extra and rounding == "gptq" else ""),
                            "fp_top1": round(100 * res["fp_top1"], 2),
                            "q_top1": round(100 * res["q_top1"], 2),
                            "drop_pt": round(100 * (res["fp_top1"] - res["q_top1"]), 2),
                            "agreement": round(100 * res["agreement"], 2),
                            "quantize_s": round(float(quant_s), 1) if quant_s == quant_s else round(total, 1),
                            "gptq_s": round(float(last.get("gptq_seconds", 0.0)), 1)
                            if backend == "brevitas"
                            else "",
                            "n_calib": args.calib,
                            "n_eval": args.eval,
                        }
                        writer.writerow(row)
                        fh.flush()
                        print(
                            f"{recipe:7s} W{w}A{a}attn{attn} {backend:8s} {row['rounding']:8s} top-1 {row['q_top1']:6.2f} "
                            f"drop {row['drop_pt']:6.2f} agree {row['agreement']:6.2f} quantize {row['quantize_s']} s "
                            f"(total {total:.0f} s)",
                            flush=True,
                        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
