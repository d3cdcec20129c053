"""Benchmark the ``vitq_plugins.ops`` numerics core against float PyTorch on ViT-S-sized activations.

For every op: median wall time over ``--repeats`` runs (``torch.set_num_threads(--threads)``) of the op and of
its float counterpart, and the error of the op's dequantized output versus the float result. Also measures the
cost of streaming PTS (FQ-ViT Power-of-Two Factor) calibration: observer updates on every LayerNorm input of a
12-block ViT over ``--calib-images`` images, compared with the plain float forward of the same images
(target: < 2x).

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python integration/bench_ops.py --out runs/bench_ops.csv
    # kernel errors on the trained reference model's own activations (every block, 64 images):
    .venv/bin/python integration/bench_ops.py --real 64 --out docs/measurements/bench_ops_real.csv

Writes a CSV (or a markdown table if ``--out`` ends in ``.md``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import csv
from dataclasses import dataclass
from functools import partial
import math
import os
from pathlib import Path
import statistics
import time

import torch
import torch.nn.functional as F

from vitq_plugins.ops import MinMaxObserver
from vitq_plugins.ops import dyadic_from_scale
from vitq_plugins.ops import dyadic_requant
from vitq_plugins.ops import fake_quant
from vitq_plugins.ops import qparams_from_minmax
from vitq_plugins.papers.fqvit.lis import lis_attn_v
from vitq_plugins.papers.fqvit.lis import lis_dequant
from vitq_plugins.papers.fqvit.lis import lis_softmax_int
from vitq_plugins.papers.fqvit.pts import PTSObserver
from vitq_plugins.papers.fqvit.pts import pts_fake_quant
from vitq_plugins.papers.fqvit.pts import pts_int_layernorm
from vitq_plugins.papers.fqvit.pts import pts_quantize
from vitq_plugins.papers.ivit.ilayernorm import i_layernorm
from vitq_plugins.papers.ivit.shift import shiftgelu
from vitq_plugins.papers.ivit.shift import shiftmax


@dataclass
class Row:
    """One benchmark line."""

    op: str
    shape: str
    float_ms: float
    op_ms: float
    err_max: float
    err_mean: float
    note: str

    @property
    def ratio(self) -> float:
        """Op time / float time."""
        return self.op_ms / self.float_ms if self.float_ms > 0 else math.nan


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def errors(approx: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Max and mean absolute error."""
    d = (approx.double() - ref.double()).abs()
    return float(d.max()), float(d.mean())


def ln_like(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Residual-stream-like activations: per-channel scales/offsets, a few 50x outlier channels."""
    c = shape[-1]
    scales = torch.exp(torch.empty(c).uniform_(math.log(0.2), math.log(2.0), generator=gen))
    scales[:: c // 4] *= 50.0
    return torch.randn(shape, generator=gen) * scales + torch.randn(c, generator=gen) * 0.5


def bench_ops(b: int, n: int, c: int, heads: int, repeats: int) -> list[Row]:
    """Time every op against its float counterpart."""
    g = torch.Generator().manual_seed(0)
    rows: list[Row] = []
    shape = f"({b},{n},{c})"
    x = ln_like((b, n, c), g)

    # uniform per-tensor uint8 fake-quant (baseline) vs identity
    scale, zp = qparams_from_minmax(x.min(), x.max(), 8, symmetric=False, signed=False)
    y = fake_quant(x, scale, zp, 0, 255)
    rows.append(
        Row(
            "fake_quant uint8 minmax",
            shape,
            median_ms(lambda: x.clone(), repeats),
            median_ms(lambda: fake_quant(x, scale, zp, 0, 255), repeats),
            *errors(y, x),
            "vs identity",
        )
    )

    # PTS fake-quant vs identity
    obs = PTSObserver(c)
    obs.update(x)
    p = obs.compute()
    y = pts_fake_quant(x, p)
    rows.append(
        Row(
            "pts_fake_quant",
            shape,
            median_ms(lambda: x.clone(), repeats),
            median_ms(lambda: pts_fake_quant(x, p), repeats),
            *errors(y, x),
            "vs identity",
        )
    )

    # PTS integer LayerNorm vs float LayerNorm on the same (fake-quantized) input
    w = torch.rand(c, generator=g) + 0.5
    bias = torch.randn(c, generator=g) * 0.1
    xq = pts_quantize(x, p)
    xfq = pts_fake_quant(x, p)
    ref = F.layer_norm(xfq, (c,), w, bias, 1e-6)
    out_scale = float(ref.abs().max() / 127)
    y = pts_int_layernorm(xq, p, w, bias, 1e-6, out_scale)
    rows.append(
        Row(
            "pts_int_layernorm",
            shape,
            median_ms(lambda: F.layer_norm(xfq, (c,), w, bias, 1e-6), repeats),
            median_ms(lambda: pts_int_layernorm(xq, p, w, bias, 1e-6, out_scale), repeats),
            *errors(y * out_scale, ref),
            f"out LSB {out_scale:.3g}",
        )
    )

    # I-ViT I-LayerNorm on 16-bit input
    s16 = float(x.abs().max() / (2**15 - 1))
    x16 = torch.round(x / s16).long()
    ref = F.layer_norm(x16 * s16, (c,), w, bias, 1e-6)
    y16, ys = i_layernorm(x16, s16, w, bias)
    rows.append(
        Row(
            "i_layernorm (16-bit in)",
            shape,
            median_ms(lambda: F.layer_norm(x16 * s16, (c,), w, bias, 1e-6), repeats),
            median_ms(lambda: i_layernorm(x16, s16, w, bias), repeats),
            *errors(y16 * ys, ref),
            "int32-like out",
        )
    )

    # I-ViT ShiftGELU on 8-bit input
    h = torch.randn(b, n, c, generator=g) * 1.5
    sg = float(h.abs().max() / 127)
    h8 = torch.round(h / sg).long()
    ref = F.gelu(h8 * sg)
    o, so = shiftgelu(h8, sg)
    rows.append(
        Row(
            "shiftgelu (8-bit in)",
            shape,
            median_ms(lambda: F.gelu(h8 * sg), repeats),
            median_ms(lambda: shiftgelu(h8, sg), repeats),
            *errors(o * so, ref),
            "n=23, k_out=8",
        )
    )

    # dyadic requantization vs float rescale + round
    acc = torch.randint(-(2**20), 2**20, (b, n, c), generator=g)
    m, sh = dyadic_from_scale(0.00123)
    ref = torch.clamp(torch.round(acc * 0.00123), -128, 127)
    yq = dyadic_requant(acc, m, sh, out_bits=8)
    rows.append(
        Row(
            "dyadic_requant int32->int8",
            shape,
            median_ms(lambda: torch.clamp(torch.round(acc * 0.00123), -128, 127), repeats),
            median_ms(lambda: dyadic_requant(acc, m, sh, out_bits=8), repeats),
            *errors(yq, ref),
            "half_up",
        )
    )

    # attention: logits (B, H, N, N)
    d = c // heads
    ashape = f"({b},{heads},{n},{n})"
    logits = torch.randn(b, heads, n, n, generator=g) * 3
    sl = float(logits.abs().max() / 127)
    l8 = torch.round(logits / sl).long()
    ref_p = F.softmax(l8 * sl, dim=-1)
    o, so = shiftmax(l8, sl)
    rows.append(
        Row(
            "shiftmax (8-bit in)",
            ashape,
            median_ms(lambda: F.softmax(l8 * sl, dim=-1), repeats),
            median_ms(lambda: shiftmax(l8, sl), repeats),
            *errors(o * so, ref_p),
            "n=15, k_out=8",
        )
    )
    codes = lis_softmax_int(l8, sl)
    rows.append(
        Row(
            "lis_softmax_int (4-bit log2)",
            ashape,
            median_ms(lambda: F.softmax(l8 * sl, dim=-1), repeats),
            median_ms(lambda: lis_softmax_int(l8, sl), repeats),
            *errors(lis_dequant(codes), ref_p),
            "n=30, int64",
        )
    )
    v = torch.randint(-128, 128, (b, heads, n, d), generator=g)
    pf = ref_p.float()
    vf = v.float()
    deq = lis_dequant(codes).double()
    vd = v.double()
    av = lis_attn_v(codes, v)
    rows.append(
        Row(
            "lis_attn_v (shift matmul)",
            f"{ashape}@({b},{heads},{n},{d})",
            median_ms(lambda: torch.matmul(pf, vf), repeats),
            median_ms(lambda: lis_attn_v(codes, v), repeats),
            *errors(av.double() * 2.0**-15, torch.matmul(deq, vd)),
            "float: softmax@V; err vs float64 2^-code@V (exactness)",
        )
    )
    return rows


def bench_calibration(images: int, batch: int, repeats: int) -> list[Row]:
    """PTS observer cost on every LayerNorm input of a 12-block ViT vs the float forward."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3, num_classes=10
    ).eval()
    lns = [mod for mod in model.modules() if isinstance(mod, torch.nn.LayerNorm)]
    data = torch.randn(images, 3, 32, 32)

    def forward() -> None:
        with torch.no_grad():
            for i in range(0, data.shape[0], batch):
                model(data[i : i + batch])

    def calibrate(kind: str) -> None:
        observers: list[PTSObserver | MinMaxObserver] = [
            PTSObserver(192) if kind == "pts" else MinMaxObserver(-1) for _ in lns
        ]
        hooks = [
            ln.register_forward_pre_hook(lambda _m, args, o=o: o.update(args[0]))
            for ln, o in zip(lns, observers, strict=True)
        ]
        try:
            forward()
        finally:
            for hk in hooks:
                hk.remove()
        for o in observers:
            if isinstance(o, PTSObserver):
                o.compute()

    t_fwd = median_ms(forward, repeats)
    t_pts = median_ms(lambda: calibrate("pts"), repeats)
    t_mm = median_ms(lambda: calibrate("minmax"), repeats)
    shape = f"{images} imgs, {len(lns)} LN inputs"
    return [
        Row(
            "calib: forward + MinMax hooks", shape, t_fwd, t_mm, math.nan, math.nan, "ratio vs float forward"
        ),
        Row(
            "calib: forward + PTS hooks + compute",
            shape,
            t_fwd,
            t_pts,
            math.nan,
            math.nan,
            "ratio vs float forward (target < 2x)",
        ),
    ]


def bench_real(images: int, repeats: int) -> list[Row]:
    """Kernel errors (and times) on the trained reference model's own activations, every block.

    Captures LayerNorm inputs, attention logits and fc1 outputs of ``vit_tiny_cifar10`` on ``images``
    bundled CIFAR-10 test images; every kernel gets the same 8-bit per-tensor input as its float
    counterpart, so the error is the kernel's. PTS is compared with per-tensor MinMax by MSE ratio.
    """
    from vitq_plugins.data.cifar import bundled_cifar10
    from vitq_plugins.evaluation.capture import capture_block_activations
    from vitq_plugins.models.reference import vit_tiny_cifar10

    model = vit_tiny_cifar10()
    ds = bundled_cifar10("test")
    x = torch.stack([ds[i][0] for i in range(images)])
    acts = capture_block_activations(model, x, list(range(len(model.blocks))))
    rows: list[Row] = []

    def int8(t: torch.Tensor) -> tuple[torch.Tensor, float]:
        s = float(t.abs().max() / 127)
        return torch.round(t / s).long(), s

    with torch.no_grad():
        for name, t in acts.items():
            shape = "(" + ",".join(str(d) for d in t.shape) + ")"
            if name.endswith(("norm1", "norm2")):
                mod = model.get_submodule(name)
                obs = PTSObserver(t.shape[-1])
                obs.update(t)
                p = obs.compute()
                scale, zp = qparams_from_minmax(t.min(), t.max(), 8, symmetric=False, signed=False)
                mse_pts = float(((pts_fake_quant(t, p) - t) ** 2).mean())
                mse_mm = float(((fake_quant(t, scale, zp, 0, 255) - t) ** 2).mean())
                rows.append(
                    Row(
                        f"{name} pts vs minmax",
                        shape,
                        0.0,
                        0.0,
                        mse_pts,
                        mse_mm,
                        f"err columns: PTS MSE, MinMax MSE; ratio {mse_mm / mse_pts:.2f}x",
                    )
                )
                xi, s = int8(t)
                ref = F.layer_norm(xi * s, mod.normalized_shape, mod.weight, mod.bias, mod.eps)
                y, ys = i_layernorm(xi, s, mod.weight, mod.bias)
                rows.append(
                    Row(
                        f"{name} i_layernorm",
                        shape,
                        median_ms(
                            partial(F.layer_norm, xi * s, mod.normalized_shape, mod.weight, mod.bias), repeats
                        ),
                        median_ms(partial(i_layernorm, xi, s, mod.weight, mod.bias), repeats),
                        *errors(y * ys, ref),
                        f"out range {float(ref.abs().max()):.3g}",
                    )
                )
            elif name.endswith("logits"):
                li, s = int8(t)
                ref = F.softmax(li * s, dim=-1)
                o, so = shiftmax(li, s)
                rows.append(
                    Row(
                        f"{name} shiftmax",
                        shape,
                        median_ms(partial(F.softmax, li * s, dim=-1), repeats),
                        median_ms(partial(shiftmax, li, s), repeats),
                        *errors(o * so, ref),
                        f"logit scale {s:.3g}",
                    )
                )
                codes = lis_softmax_int(li, s)
                rows.append(
                    Row(
                        f"{name} lis_softmax_int",
                        shape,
                        median_ms(partial(F.softmax, li * s, dim=-1), repeats),
                        median_ms(partial(lis_softmax_int, li, s), repeats),
                        *errors(lis_dequant(codes), ref),
                        "4-bit log2",
                    )
                )
            else:
                hi, s = int8(t)
                ref = F.gelu(hi * s)
                for division in ("official", "exact"):
                    o, so = shiftgelu(hi, s, division=division)
                    rows.append(
                        Row(
                            f"{name} shiftgelu",
                            shape,
                            median_ms(partial(F.gelu, hi * s), repeats),
                            median_ms(partial(shiftgelu, hi, s, division=division), repeats),
                            *errors(o * so, ref),
                            f"division={division}",
                        )
                    )
    return rows


def to_markdown(rows: list[Row]) -> str:
    """Render rows as a markdown table."""
    head = "| op | shape | float ms | op ms | op/float | max abs err | mean abs err | note |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r.op} | {r.shape} | {r.float_ms:.1f} | {r.op_ms:.1f} | {r.ratio:.2f} | {r.err_max:.3g} | {r.err_mean:.3g} | {r.note} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_ops.csv"), help="CSV (or .md) output path")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=197)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--calib-images", type=int, default=128)
    ap.add_argument("--calib-batch", type=int, default=32)
    ap.add_argument("--skip-calib", action="store_true")
    ap.add_argument("--calib-only", action="store_true")
    ap.add_argument(
        "--real",
        type=int,
        default=0,
        metavar="N",
        help="only the kernel errors on the reference model's activations over N bundled test images",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.real:
        rows = bench_real(args.real, args.repeats)
    else:
        rows = (
            [] if args.calib_only else bench_ops(args.batch, args.tokens, args.dim, args.heads, args.repeats)
        )
    if not args.skip_calib and not args.real:
        rows += bench_calibration(args.calib_images, args.calib_batch, args.repeats)
    table = to_markdown(rows)
    load = os.getloadavg()
    table += f"\nthreads={args.threads}, repeats={args.repeats}, load average at end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".md":
        args.out.write_text(table)
    else:
        with args.out.open("w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["op", "shape", "float_ms", "op_ms", "ratio", "err_max", "err_mean", "note"])
            for r in rows:
                wr.writerow(
                    [
                        r.op,
                        r.shape,
                        f"{r.float_ms:.3f}",
                        f"{r.op_ms:.3f}",
                        f"{r.ratio:.3f}",
                        r.err_max,
                        r.err_mean,
                        r.note,
                    ]
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
