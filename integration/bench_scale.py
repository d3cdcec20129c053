"""Benchmark: every recipe at the shape of a real ViT (timm ``deit_small_patch16_224``: 197 tokens, 384 wide).

Issue #17's scale check: a recipe tuned at the reference model's 65 tokens can break at ViT-S shapes (I-ViT's
Shiftmax output step, 1/128 at 8 bits, is above 99% of the attention probabilities at 197 tokens). For every
registered recipe (or ``--recipes``) and wing, quantize the model through the public API
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
import time
from typing import Any

FIELDS = (
    "model",
    "recipe",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "cosine",
    "rel_err",
    "agreement",
    "quantize_s",
    "quantize_x_fp",
    "fp_forward_s",
    "n_calib",
    "n_eval",
    "status",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="deit_small_patch16_224")
    ap.add_argument("--pretrained", action="store_true", help="timm pretrained weights (needs the Hub)")
    ap.add_argument("--recipes", default="minmax,fqvit,ivit,mptq")
    ap.add_argument("--backends", default="brevitas,fx")
    ap.add_argument("--configs", default="8/8/8", help="comma-separated W/A/ATTN bits")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/measurements/scale_deit_s.csv")
    args = ap.parse_args(argv)

    import timm
    import torch

    from vitq_plugins import QuantConfig
    from vitq_plugins import get_backend
    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.pipeline import split_loader

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    host = get_host()
    model = timm.create_model(args.model, pretrained=args.pretrained).eval()
    calib, _ = split_loader(
        model, "cifar10_bundled", "calib", args.calib, args.seed, host, batch_size=args.batch_size
    )
    evals, _ = split_loader(
        model, "cifar10_bundled", "eval", args.eval, args.seed, host, batch_size=args.batch_size
    )
    calib_images = [x for x, _ in calib]
    eval_images = [x for x, _ in evals]

    def logits(m: Any) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([m(x) for x in eval_images]).float()

    with torch.no_grad():
        t = time.perf_counter()
        for x in calib_images:
            model(x)
        fp_forward_s = time.perf_counter() - t
    ref = logits(model)
    print(
        f"{args.model}: float forward over {args.calib} calibration images {fp_forward_s:.1f} s", flush=True
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for cfg_text in args.configs.split(","):
        w, a, attn = (int(v) for v in cfg_text.split("/"))
        for recipe in args.recipes.split(","):
            for backend in args.backends.split(","):
                row: dict[str, Any] = {
                    "model": args.model,
                    "recipe": recipe,
                    "backend": backend,
                    "w_bits": w,
                    "a_bits": a,
                    "attn_bits": attn,
                    "fp_forward_s": round(fp_forward_s, 2),
                    "n_calib": args.calib,
                    "n_eval": args.eval,
                }
                try:
                    t = time.perf_counter()
                    qmodel = get_backend(backend).quantize(
                        model, QuantConfig(recipe, w, a, attn), calib_images
                    )
                    quantize_s = time.perf_counter() - t
                    q = logits(qmodel)
                except VitqError as exc:  # a refused config is a row, not a crash
                    row["status"] = f"refused: {exc}".splitlines()[0][:200]
                    rows.append(row)
                    print(f"{recipe:8s} {backend:8s} W{w}A{a}attn{attn}: {row['status']}", flush=True)
                    continue
                cos = torch.nn.functional.cosine_similarity(q.flatten(), ref.flatten(), dim=0)
                row.update(
                    cosine=round(float(cos), 4),
                    rel_err=round(float((q - ref).norm() / ref.norm()), 4),
                    agreement=round(float((q.argmax(1) == ref.argmax(1)).float().mean()), 4),
                    quantize_s=round(quantize_s, 1),
                    quantize_x_fp=round(quantize_s / fp_forward_s, 2),
                    status="ok",
                )
                rows.append(row)
                print(
                    f"{recipe:8s} {backend:8s} W{w}A{a}attn{attn}: cosine {row['cosine']:.4f} "
                    f"agreement {row['agreement']:.3f} quantize {row['quantize_s']} s "
                    f"({row['quantize_x_fp']}x the float forward)",
                    flush=True,
                )
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
