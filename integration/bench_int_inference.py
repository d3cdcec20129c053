"""Integer-only inference of the reference ViT (issue #11): agreement with fake-quant, bit-exact ONNX, CPU speed.

I-ViT (arXiv 2207.01405): the ``ivit`` recipe (Shiftmax, ShiftGELU, I-LayerNorm, dyadic requantization) is
calibrated on the Brevitas backend, converted to the integer program of :mod:`vitq_plugins.intexec` and

1. checked with the float-op guard (no floating-point tensor op inside the program);
2. compared with the fake-quant model on the bundled test images: top-1 agreement, top-1 of both,
   logit error in output steps, per-quantizer max code error, overflow counters. Brevitas: against the
   fake-quant model evaluated exactly (float64, same weight codes and grids: ``vitq_plugins.brevitas.reference.float64_reference``)
   and as it normally runs (float32); the float32-vs-float64 agreement of the fake-quant model itself is its
   rounding-tie noise floor. ``--backend fx``: against the converted torch.ao model (x86 quantized kernels);
3. exported to ONNX with integer ops and run by ONNX Runtime: outputs must equal the executor's bit for bit;
4. timed on the CPU (``--threads``, default 2; the accuracy passes use one thread) side by side in one process: FP32 eager, FP32 ONNX (ORT),
   integer executor (PyTorch), integer ONNX (ORT); runs alternate so machine noise hits all; medians.
   No GPU numbers (none in this environment).

Example:
    OMP_NUM_THREADS=2 .venv/bin/python integration/bench_int_inference.py --out docs/measurements/int_inference
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import csv
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("VITQ_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _data(n_calib: int, n_eval: int, batch: int, seed: int) -> tuple[Any, list[torch.Tensor], list[Any]]:
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import split_loader

    host = get_host()
    fp, _ = resolve_model("vit_tiny_cifar10", host=host)
    fp.eval()
    calib, _ = split_loader(fp, "cifar10_bundled", "calib", n_calib, seed, host, batch_size=batch)
    ev, _ = split_loader(fp, "cifar10_bundled", "eval", n_eval, seed, host, batch_size=batch)
    return fp, list(calib.images()), list(ev)


def _ort_session(path: Path | bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # no busy-waiting pool threads between runs: they would steal the cores of the engines timed next
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), so)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n-calib", type=int, default=512)
    ap.add_argument("--n-eval", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency-batches", default="1,32")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="ivit", choices=["ivit", "fqvit"])
    ap.add_argument("--backend", default="brevitas", choices=["brevitas", "fx"])
    ap.add_argument(
        "--attn-bits", type=int, default=None, help="attention-map bits (fqvit on fx: LIS <= 6, e.g. 4)"
    )
    ap.add_argument(
        "--no-noise-floor", action="store_true", help="skip the exact (float64) fake-quant comparison"
    )
    ap.add_argument(
        "--speed-only",
        action="store_true",
        help="timing run: 2 batches of accuracy checks, no noise floor; with --out, an existing <out>.json keeps "
        "its accuracy and gets the new speed rows",
    )
    ap.add_argument("--out", type=Path, default=None, help="prefix: writes <out>.json and <out>_speed.csv")
    args = ap.parse_args(argv)
    if args.speed_only:
        args.n_eval, args.no_noise_floor = min(args.n_eval, 2 * args.batch), True
    torch.set_num_threads(1)  # accuracy passes on one thread (shared machine); timing uses --threads

    from vitq_plugins.brevitas.integer import convert_brevitas
    from vitq_plugins.brevitas.reference import float64_reference
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.fx.integer import convert_fx
    from vitq_plugins.intexec import run_integer_only
    from vitq_plugins.intexec.onnx_export import export_int_onnx
    from vitq_plugins.intexec.report import agreement_report
    from vitq_plugins.pipeline import versions

    t0 = time.perf_counter()
    fp, calib, evb = _data(args.n_calib, args.n_eval, args.batch, args.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        backend = get_host().backends.get(args.backend).load()
        cfg = QuantConfig(args.recipe, **({} if args.attn_bits is None else {"attn_bits": args.attn_bits}))
        qmodel = backend.quantize(fp, cfg, calib, progress=False)
    fx = args.backend == "fx"
    if fx:
        args.no_noise_floor = True  # the x86 quantized kernels have no float64 form
    # the float64 copy is made before any eval forward (Brevitas caches float32 state on the first one)
    q64 = None if args.no_noise_floor else float64_reference(qmodel)
    ex = convert_fx(qmodel, args.recipe) if fx else convert_brevitas(qmodel, args.recipe)
    res: dict[str, Any] = {
        "model": "vit_tiny_cifar10",
        "recipe": args.recipe,
        "attn_bits": cfg.attn_bits,
        "backend": args.backend,
        "data": "cifar10_bundled",
        "n_calib": args.n_calib,
        "n_eval": sum(int(y.shape[0]) for _, y in evb),
        "seed": args.seed,
        "threads": args.threads,
        "versions": versions(),
        "gpu": "not measured (no GPU in this environment)",
    }

    # 1. float-op guard on one batch
    x0 = ex.quantize_input(evb[0][0][:8])
    (_, _), guard = run_integer_only(ex, x0)
    res["float_op_guard"] = {"passed": True, "torch_calls_checked": len(guard.records)}

    # 2. agreement with the fake-quant model
    fp_correct = 0
    with torch.no_grad():
        for x, y in evb:
            fp_correct += int((fp(x).argmax(1) == y).sum())
    res["fp_top1"] = fp_correct / res["n_eval"]

    def _report(model: Any, key: str, what: str) -> Any:
        r = agreement_report(model, ex, evb, keep_outputs=True)
        assert r.int_logits is not None and r.fq_logits is not None
        d = r.to_dict()
        worst = sorted(d["layer_max_err"].items(), key=lambda kv: -kv[1])
        d["layer_max_err_first_block"] = {
            k: v for k, v in d["layer_max_err"].items() if k.startswith("blocks.0.")
        }
        d["layer_max_err_worst5"] = dict(worst[:5])
        d["reference"] = what
        res[key] = d
        print(
            f"[{what}] agreement {r.agreement:.4f}  fq top1 {r.fq_top1:.4f}  int top1 {r.int_top1:.4f}  "
            f"fp top1 {res['fp_top1']:.4f}  logit err mean/max {r.logit_err_mean_steps:.2f}/"
            f"{r.logit_err_max_steps:.1f} steps  overflow {r.overflow}",
            flush=True,
        )
        return r

    if fx:
        rep = _report(qmodel, "agreement", "torch.ao FX converted model (x86 quantized kernels)")
        rep64 = None
    else:
        rep = _report(qmodel, "agreement", "fake-quant model, float32 (as it normally runs)")
        rep64 = None if q64 is None else _report(q64, "agreement_exact", "fake-quant model, float64 (exact)")
    if rep64 is not None:
        assert rep64.fq_logits is not None and rep.fq_logits is not None
        res["noise_floor"] = {
            "fq_fp32_vs_fq_fp64_agreement": float(
                (rep64.fq_logits.argmax(1) == rep.fq_logits.argmax(1)).double().mean()
            ),
        }
        print(f"noise floor: {res['noise_floor']}", flush=True)

    # 3. integer ONNX, bit-exact against the executor on every image
    with tempfile.TemporaryDirectory() as tmp:
        path = export_int_onnx(ex, Path(tmp) / "model_int.onnx", evb[0][0][:1])
        int_bytes = path.read_bytes()
        fp_path = Path(tmp) / "model_fp32.onnx"
        torch.onnx.export(
            fp, (evb[0][0][:1],), str(fp_path), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        fp_bytes = fp_path.read_bytes()
    sess_int = _ort_session(int_bytes, 1)
    mismatched = 0
    max_diff = 0
    start = 0
    for x, _ in evb:
        li = rep.int_logits[start : start + x.shape[0]].numpy().astype(np.int64)
        start += int(x.shape[0])
        lo = sess_int.run(None, {"input": ex.quantize_input(x).numpy()})[0]
        diff = np.abs(lo.astype(np.int64) - li)
        mismatched += int((diff.max(axis=1) > 0).sum())
        max_diff = max(max_diff, int(diff.max()))
    res["onnx"] = {
        "bit_exact": mismatched == 0,
        "images_differing": mismatched,
        "max_abs_diff": max_diff,
        "ops": sorted({n.op_type for n in __import__("onnx").load_from_string(int_bytes).graph.node}),
        "size_mb": len(int_bytes) / 2**20,
    }
    print(
        f"onnx bit-exact: {mismatched == 0} (images differing {mismatched}, max diff {max_diff})", flush=True
    )

    # 4. speed, side by side
    torch.set_num_threads(args.threads)
    sess_int = _ort_session(int_bytes, args.threads)
    sess_fp = _ort_session(fp_bytes, args.threads)
    rows: list[dict[str, Any]] = []
    engines: dict[str, Callable[[torch.Tensor, torch.Tensor], Any]] = {
        "fp32_torch": lambda xf, xc: fp(xf),
        "fp32_onnx_ort": lambda xf, xc: sess_fp.run(None, {"input": xf.numpy()}),
        "int_executor_torch": lambda xf, xc: ex(xc),
        "int_onnx_ort": lambda xf, xc: sess_int.run(None, {"input": xc.numpy()}),
    }
    pool = torch.cat([x for x, _ in evb[:2]])
    for bs in (int(b) for b in args.latency_batches.split(",")):
        xf = pool[:bs].contiguous()
        xc = ex.quantize_input(xf)
        times: dict[str, list[float]] = {k: [] for k in engines}
        with torch.no_grad():
            for fn in engines.values():
                fn(xf, xc)  # warm-up
            for _ in range(args.reps):
                for name, fn in engines.items():
                    times[name].append(_timed(lambda fn=fn, a=xf, b=xc: fn(a, b)))  # type: ignore[misc]
        base = statistics.median(times["fp32_onnx_ort"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "engine": name,
                    "batch": bs,
                    "threads": args.threads,
                    "median_ms": round(med, 3),
                    "min_ms": round(min(ts), 3),
                    "images_per_s": round(bs / med * 1e3, 2),
                    "vs_fp32_ort": round(base / med, 3),
                    "reps": args.reps,
                }
            )
    res["speed"] = rows
    res["wall_s"] = time.perf_counter() - t0
    print(f"{'engine':<20} {'batch':>5} {'median_ms':>10} {'img/s':>9} {'vs fp32 ORT':>11}")
    for r in rows:
        print(
            f"{r['engine']:<20} {r['batch']:>5} {r['median_ms']:>10.2f} {r['images_per_s']:>9.1f} "
            f"{r['vs_fp32_ort']:>11.3f}"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        full = Path(f"{args.out}.json")
        if args.speed_only and full.exists():
            # a re-timing (e.g. on a quieter machine) keeps the accuracy of the full run and replaces its speed
            kept = json.loads(full.read_text())
            kept["speed"], kept["speed_threads"] = rows, args.threads
            kept["speed_retimed"] = "integration/bench_int_inference.py --speed-only"
            res = kept
        full.write_text(json.dumps(res, indent=2, default=str) + "\n")
        with open(f"{args.out}_speed.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.out}.json and {args.out}_speed.csv")
    exact = rep64 if rep64 is not None else rep
    ok = (
        exact.agreement >= 0.995
        and all(abs(r.int_top1 - r.fq_top1) <= 0.005 for r in (rep, exact))
        and rep.overflow_free
        and res["onnx"]["bit_exact"]
    )
    res["acceptance"] = {
        "passed": ok,
        "rule": "agreement with the exact fake-quant evaluation >= 99.5%, |top1 diff| <= 0.5 pt against both "
        "evaluations, no overflow, bit-exact ONNX",
    }
    print(f"acceptance ({res['acceptance']['rule']}): {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
