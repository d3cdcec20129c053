"""CPU latency of the torch.ao FX int8 model against fp32, measured side by side in one process.

The reference model ``vit_tiny_cifar10`` (DeiT-Tiny blocks, arXiv 2012.12877, at 32x32) is quantized by
the FX backend (recipes of FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895)
and timed on the x86 quantized engine with 2 threads. For each batch size, fp32 and int8 runs alternate
(fp32, int8, fp32, int8, ...) so that machine noise hits both; the table reports medians.

Example:
    .venv/bin/python integration/bench_fx_latency.py --out runs/fx_latency.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import statistics
import sys
import time

import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.fx.backend import BACKEND
from vitq_plugins.fx.report import report
from vitq_plugins.models.reference import CIFAR10_MEAN
from vitq_plugins.models.reference import CIFAR10_STD
from vitq_plugins.models.reference import REFERENCE_WEIGHTS
from vitq_plugins.models.reference import vit_tiny_cifar10


def _calibration(n: int, batch: int) -> tuple[list[torch.Tensor], str]:
    try:
        from vitq_plugins.data.cifar import bundled_cifar10

        ds = bundled_cifar10("calib")
        imgs = torch.stack([torch.as_tensor(ds[i][0]).float() for i in range(n)])
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        imgs = (imgs - mean) / std
        src = f"cifar10_bundled[calib] x{n}"
    except Exception as exc:  # noqa: BLE001 - latency does not depend on the data
        imgs = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        src = f"random x{n} ({type(exc).__name__})"
    return list(imgs.split(batch)), src


@torch.no_grad()
def _time(model: nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    model(x)
    return (time.perf_counter() - t0) * 1e3


@torch.no_grad()
def side_by_side(
    fp32: nn.Module, int8: nn.Module, x: torch.Tensor, reps: int, warmup: int
) -> tuple[float, float]:
    """Median ms of alternating fp32/int8 runs on ``x``."""
    for _ in range(warmup):
        fp32(x)
        int8(x)
    a: list[float] = []
    b: list[float] = []
    for _ in range(reps):
        a.append(_time(fp32, x))
        b.append(_time(int8, x))
    return statistics.median(a), statistics.median(b)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Quantize, time and write the CSV."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", default="minmax,fqvit,ivit,mptq", help="comma-separated recipes")
    ap.add_argument("--batches", default="8,1", help="comma-separated batch sizes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--calib", type=int, default=64, help="calibration images")
    ap.add_argument("--out", type=Path, default=Path("runs/fx_latency.csv"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "x86"
    pretrained = REFERENCE_WEIGHTS.exists()
    fp32 = vit_tiny_cifar10(pretrained=pretrained).eval()
    calib, src = _calibration(args.calib, 32)
    print(
        f"model vit_tiny_cifar10 (weights: {'bundled' if pretrained else 'NOT FOUND, random init'}), calib {src}, "
        f"threads {args.threads}, torch {torch.__version__}",
        file=sys.stderr,
    )
    rows: list[dict[str, object]] = []
    for recipe in [r for r in args.recipes.split(",") if r]:
        cfg = QuantConfig(recipe, attn_bits=4 if recipe == "fqvit" else 8)
        t0 = time.perf_counter()
        int8 = BACKEND.quantize(fp32, cfg, calib, progress=False)
        tq = time.perf_counter() - t0
        rep = report(int8)
        with torch.no_grad():
            xs = torch.cat(calib)[:64]
            agree = float((int8(xs).argmax(1) == fp32(xs).argmax(1)).float().mean())
        for bs in [int(b) for b in args.batches.split(",") if b]:
            x = calib[0][:bs] if bs <= calib[0].shape[0] else torch.randn(bs, 3, 32, 32)
            f_ms, q_ms = side_by_side(fp32, int8, x, args.reps, args.warmup)
            rows.append(
                {
                    "recipe": recipe,
                    "batch": bs,
                    "fp32_ms": round(f_ms, 3),
                    "int8_ms": round(q_ms, 3),
                    "speedup": round(f_ms / q_ms, 3),
                    "quantize_s": round(tq, 2),
                    "top1_agree_fp32": round(agree, 4),
                    "q_linear": rep.linear,
                    "q_matmul": rep.matmul,
                    "q_layernorm": rep.layernorm,
                    "q_softmax": rep.softmax,
                    "q_add": rep.add,
                    "threads": args.threads,
                    "reps": args.reps,
                    "weights": "bundled" if pretrained else "random",
                    "torch": torch.__version__,
                }
            )
            print(f"done {rows[-1]}", file=sys.stderr, flush=True)
            _write_csv(args.out, rows)  # after every row, so a long run keeps what it measured
    hdr = f"{'recipe':8} {'batch':>5} {'fp32 ms':>9} {'int8 ms':>9} {'speedup':>8} {'quant s':>8} {'top1 agree':>10}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(
            f"{r['recipe']!s:8} {r['batch']!s:>5} {r['fp32_ms']!s:>9} {r['int8_ms']!s:>9} {r['speedup']!s:>8} "
            f"{r['quantize_s']!s:>8} {r['top1_agree_fp32']!s:>10}"
        )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
