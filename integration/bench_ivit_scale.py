"""I-ViT at low bits and at the scale of real ViTs (issue #17): the ``ivit`` recipe with its log2-coded Shiftmax.

Three parts, each row appended to one CSV as it finishes (``--parts``):

* ``ref``: the converged reference model (``vit_tiny_cifar10``, FP 84.15% on the 2,000 bundled test images),
  ``ivit`` at W/A/attn 8/8/8, 8/8/4 and 6/6/6 on both wings (``--calib`` calibration images, ``--eval`` test
  images): top-1, drop vs FP, agreement with FP, calibration time; ``--faithful`` adds the paper's uniform
  Shiftmax and ShiftGELU (``layers={"re:.*": {"quantizers": {"softmax_output": "shiftmax", "gelu_output":
  "shiftgelu"}}}``) for comparison;
* ``int``: the integer program of ``ivit`` 8/8/4 from each wing, run by the executor and as an integer ONNX
  graph in ONNX Runtime on ``--int-eval`` test images: ``bit_exact`` when every logit is equal;
* ``deit``: timm ``deit_small_patch16_224`` (197 tokens, 384 wide, random weights of seed ``--seed``),
  calibrated on 64 bundled images at 224 px; cosine of the flattened logits of ``--deit-eval`` test images with
  the float model's, for ``minmax``, ``fqvit`` (attention 8) and ``ivit`` at W8A8 in the same run, and the
  calibration time of each.

The committed ``docs/measurements/ivit_scale.csv`` (512 calibration and 2,000 test images for ``ref``):
    OMP_NUM_THREADS=1 .venv/bin/python integration/bench_ivit_scale.py --parts deit,int,ref \
        --configs 8/8/4,6/6/6,8/8/8 --out docs/measurements/ivit_scale.csv
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
import tempfile
import time
from typing import Any

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

FIELDS = (
    "part",
    "model",
    "recipe",
    "variant",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "fp_top1",
    "q_top1",
    "drop_pt",
    "agreement",
    "logit_cosine",
    "bit_exact",
    "images",
    "calib_s",
    "n_calib",
)
FAITHFUL = {"re:.*": {"quantizers": {"softmax_output": "shiftmax", "gelu_output": "shiftgelu"}}}


def _writer(path: Path) -> tuple[Any, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    fh = path.open("a", newline="")
    w = csv.DictWriter(fh, fieldnames=FIELDS)
    if new:
        w.writeheader()
    return fh, w


def _emit(fh: Any, w: Any, row: dict[str, Any]) -> None:
    w.writerow(row)
    fh.flush()
    print(", ".join(f"{k}={v}" for k, v in row.items() if v != ""), flush=True)


def part_ref(args: argparse.Namespace, fh: Any, w: Any) -> None:
    from vitq_plugins import QuantConfig
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import fp_evaluation
    from vitq_plugins.search import evaluate_config

    fp, _ = resolve_model("vit_tiny_cifar10")
    fp_eval = fp_evaluation(fp, n_eval=args.eval, progress=False)
    variants = [("log2", {})] + ([("paper_shiftmax", FAITHFUL)] if args.faithful else [])
    for cfg in args.configs.split(","):
        wb, ab, attn = (int(v) for v in cfg.split("/"))
        for variant, layers in variants:
            for backend in args.backends.split(","):
                res = evaluate_config(
                    fp,
                    QuantConfig("ivit", wb, ab, attn, layers=layers),
                    backend=backend,
                    n_calib=args.calib,
                    n_eval=args.eval,
                    fp_eval=fp_eval,
                )
                row = dict.fromkeys(FIELDS, "")
                row.update(
                    part="ref",
                    model="vit_tiny_cifar10",
                    recipe="ivit",
                    variant=variant,
                    backend=backend,
                    w_bits=wb,
                    a_bits=ab,
                    attn_bits=attn,
                    fp_top1=round(100 * res["fp_top1"], 2),
                    q_top1=round(100 * res["q_top1"], 2),
                    drop_pt=round(100 * (res["fp_top1"] - res["q_top1"]), 2),
                    agreement=round(100 * res["agreement"], 2),
                    images=args.eval,
                    calib_s=round(float(res.get("calib_s", float("nan"))), 1),
                    n_calib=args.calib,
                )
                _emit(fh, w, row)


def part_int(args: argparse.Namespace, fh: Any, w: Any) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from vitq_plugins import QuantConfig
    from vitq_plugins import get_backend
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.intexec import export_integer_onnx
    from vitq_plugins.intexec import run_integer_only
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import split_loader

    host = get_host()
    fp, _ = resolve_model("vit_tiny_cifar10", host=host)
    calib, _ = split_loader(fp, "cifar10_bundled", "calib", args.calib, args.seed, host, batch_size=64)
    ev, _ = split_loader(fp, "cifar10_bundled", "eval", args.int_eval, args.seed, host, batch_size=50)
    batches = [x for x, _ in ev]
    for backend_name in args.backends.split(","):
        backend = get_backend(backend_name)
        cfg = QuantConfig("ivit", 8, 8, 4)
        t = time.perf_counter()
        qmodel = backend.quantize(fp, cfg, list(calib.images()), progress=False)
        calib_s = time.perf_counter() - t
        ex = backend.integer_program(qmodel)  # type: ignore[attr-defined]
        run_integer_only(ex, ex.quantize_input(batches[0][:4]))  # the float-op guard
        with tempfile.TemporaryDirectory() as tmp:
            path = export_integer_onnx(backend_name, qmodel, Path(tmp) / "int.onnx", batches[0][:1])
            sess = ort.InferenceSession(str(path))
        differing = 0
        for x in batches:
            xi = ex.quantize_input(x)
            with torch.no_grad():
                li = ex(xi)[0].numpy().astype(np.int64)
            lo = sess.run(None, {"input": xi.numpy()})[0].astype(np.int64)
            differing += int((np.abs(lo - li).max(axis=1) > 0).sum())
        row = dict.fromkeys(FIELDS, "")
        row.update(
            part="int",
            model="vit_tiny_cifar10",
            recipe="ivit",
            variant="log2",
            backend=backend_name,
            w_bits=8,
            a_bits=8,
            attn_bits=4,
            bit_exact=differing == 0,
            images=sum(int(x.shape[0]) for x in batches),
            calib_s=round(calib_s, 1),
            n_calib=args.calib,
        )
        _emit(fh, w, row)


def part_deit(args: argparse.Namespace, fh: Any, w: Any) -> None:
    import timm
    import torch
    import torch.nn.functional as F

    from vitq_plugins import QuantConfig
    from vitq_plugins import get_backend
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.pipeline import split_loader

    torch.manual_seed(args.seed)
    fp = timm.create_model("deit_small_patch16_224", pretrained=False, num_classes=10).eval()
    host = get_host()
    calib, _ = split_loader(fp, "cifar10_bundled", "calib", 64, args.seed, host, batch_size=16)
    ev, _ = split_loader(fp, "cifar10_bundled", "eval", args.deit_eval, args.seed, host, batch_size=16)
    calib_images = list(calib.images())
    xs = [x for x, _ in ev]
    with torch.no_grad():
        ref = torch.cat([fp(x) for x in xs])
    for backend_name in args.deit_backends.split(","):
        backend = get_backend(backend_name)
        for recipe, attn in (("minmax", 8), ("fqvit", 8), ("ivit", 8)):
            t = time.perf_counter()
            qmodel = backend.quantize(fp, QuantConfig(recipe, 8, 8, attn), calib_images, progress=False)
            calib_s = time.perf_counter() - t
            with torch.no_grad():
                out = torch.cat([qmodel(x) for x in xs])
            cos = float(F.cosine_similarity(out.flatten().double(), ref.flatten().double(), dim=0))
            row = dict.fromkeys(FIELDS, "")
            row.update(
                part="deit",
                model="deit_small_patch16_224 (random weights)",
                recipe=recipe,
                variant="log2" if recipe == "ivit" else "",
                backend=backend_name,
                w_bits=8,
                a_bits=8,
                attn_bits=attn,
                logit_cosine=round(cos, 4),
                images=int(ref.shape[0]),
                calib_s=round(calib_s, 1),
                n_calib=64,
            )
            _emit(fh, w, row)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--parts", default="deit,int,ref")
    ap.add_argument("--configs", default="8/8/8,8/8/4,6/6/6")
    ap.add_argument("--backends", default="brevitas,fx")
    ap.add_argument("--deit-backends", default="brevitas")
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--eval", type=int, default=2000)
    ap.add_argument("--int-eval", type=int, default=200)
    ap.add_argument("--deit-eval", type=int, default=32)
    ap.add_argument("--faithful", action="store_true", help="also the paper's uniform Shiftmax")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/measurements/ivit_scale.csv"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    fh, w = _writer(args.out)
    try:
        for part in args.parts.split(","):
            t = time.perf_counter()
            {"ref": part_ref, "int": part_int, "deit": part_deit}[part](args, fh, w)
            print(f"[{part}] {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        fh.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
