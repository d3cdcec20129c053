"""Diagnosis of W4A4 (attention 4 bits): which site class costs the accuracy.

Starting from one recipe at W/A/attn = 4/4/4, hold one class of quantization sites at 8 bits (through
``LayerOverride`` regexes or the global bits) and record the top-1 recovered against the all-4-bit config,
on the converged reference model, against one shared FP pass. Rows are appended to the CSV as they finish.

Example (the committed ``docs/measurements/w4a4_ablation.csv``):
    OMP_NUM_THREADS=1 python integration/bench_w4a4_ablation.py --recipe fqvit --backend brevitas \
        --calib 512 --eval 1000 --out docs/measurements/w4a4_ablation.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import time
from typing import Any

_BLOCK = r"blocks\.\d+"

#: class name -> (layer overrides {key: LayerOverride fields}, global (w, a, attn) bits)
CLASSES: dict[str, tuple[dict[str, dict[str, int]], tuple[int, int, int]]] = {
    "none (all 4 bits)": ({}, (4, 4, 4)),
    "weights": ({}, (8, 4, 4)),
    "patch_embed+head (all)": (
        {"patch_embed.proj": {"w_bits": 8, "a_bits": 8}, "head": {"w_bits": 8, "a_bits": 8}},
        (4, 4, 4),
    ),
    "qkv input": ({f"re:{_BLOCK}\\.attn\\.qkv": {"a_bits": 8}}, (4, 4, 4)),
    "proj input": ({f"re:{_BLOCK}\\.attn\\.proj": {"a_bits": 8}}, (4, 4, 4)),
    "fc1 input": ({f"re:{_BLOCK}\\.mlp\\.fc1": {"a_bits": 8}}, (4, 4, 4)),
    "fc2 input": ({f"re:{_BLOCK}\\.mlp\\.fc2": {"a_bits": 8}}, (4, 4, 4)),
    "gelu output": ({f"re:{_BLOCK}\\.mlp\\.act": {"a_bits": 8}}, (4, 4, 4)),
    "post-GELU (gelu output + fc2 input)": (
        {f"re:{_BLOCK}\\.mlp\\.act": {"a_bits": 8}, f"re:{_BLOCK}\\.mlp\\.fc2": {"a_bits": 8}},
        (4, 4, 4),
    ),
    "LayerNorm inputs": ({r"re:(blocks\.\d+\.norm[12]|norm)": {"a_bits": 8}}, (4, 4, 4)),
    "attention map": ({}, (4, 4, 8)),
    "q/k/v matmul operands": ({f"re:{_BLOCK}\\.attn": {"a_bits": 8}}, (4, 4, 4)),
    "residual": ({f"re:{_BLOCK}": {"a_bits": 8}}, (4, 4, 4)),
    "all activations but attention map": ({}, (4, 8, 4)),
}
FIELDS = (
    "recipe",
    "backend",
    "held_at_8",
    "q_top1",
    "recovered_pt",
    "drop_pt",
    "agreement",
    "quantize_s",
    "n_calib",
    "n_eval",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="vit_tiny_cifar10")
    ap.add_argument("--recipe", default="fqvit")
    ap.add_argument("--backend", default="brevitas")
    ap.add_argument("--classes", default="", help="comma-separated subset of the class names (default: all)")
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--eval", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/measurements/w4a4_ablation.csv")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from vitq_plugins import QuantConfig
    from vitq_plugins.config import LayerOverride
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import fp_evaluation
    from vitq_plugins.search import evaluate_config

    fp_model, _ = resolve_model(args.model)
    fp_eval = fp_evaluation(fp_model, n_eval=args.eval, progress=False)
    wanted = [c for c in args.classes.split(",") if c] or list(CLASSES)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    base: float | None = None
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for name in ["none (all 4 bits)", *[c for c in wanted if c != "none (all 4 bits)"]]:
            layers, (w, a, attn) = CLASSES[name]
            config = QuantConfig(
                args.recipe, w, a, attn, layers={k: LayerOverride(**v) for k, v in layers.items()}
            )
            t = time.perf_counter()
            res: dict[str, Any] = evaluate_config(
                fp_model, config, backend=args.backend, n_calib=args.calib, n_eval=args.eval, fp_eval=fp_eval
            )
            total = time.perf_counter() - t
            q = 100 * res["q_top1"]
            base = q if base is None else base
            row = {
                "recipe": args.recipe,
                "backend": args.backend,
                "held_at_8": name,
                "q_top1": round(q, 2),
                "recovered_pt": round(q - base, 2),
                "drop_pt": round(100 * (res["fp_top1"] - res["q_top1"]), 2),
                "agreement": round(100 * res["agreement"], 2),
                "quantize_s": round(float(res.get("calib_s", total)), 1),
                "n_calib": args.calib,
                "n_eval": args.eval,
            }
            writer.writerow(row)
            fh.flush()
            print(
                f"{name:40s} top-1 {row['q_top1']:6.2f} recovered {row['recovered_pt']:+6.2f} ({total:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
