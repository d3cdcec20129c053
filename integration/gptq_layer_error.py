"""Per-layer output error of GPTQ (arXiv 2210.17323) vs the wings' round-to-nearest on the reference model.

For every Linear/Conv2d of the float model, the Hessian ``2 X^T X / N`` of its inputs is streamed over the
calibration images (one pass of the float model, i.e. not sequential) and the layer output error
``tr((W - Q) H (W - Q)^T)`` is computed for: the wings' per-channel MinMax round-to-nearest, round-to-nearest on
GPTQ's searched scale, and GPTQ. ``rel_rtn`` is the RTN error relative to the output energy ``tr(W H W^T)``: how
much of the layer's output the weight quantization alone disturbs.

Example:
    OMP_NUM_THREADS=1 python integration/gptq_layer_error.py --calib 128 --out docs/measurements/gptq_layer_error.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="vit_tiny_cifar10")
    ap.add_argument("--calib", type=int, default=128)
    ap.add_argument("--bits", default="4,6")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/measurements/gptq_layer_error.csv")
    args = ap.parse_args(argv)

    import torch
    from torch import nn
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.ops import gptq as G
    from vitq_plugins.ops import uniform as U
    from vitq_plugins.pipeline import split_loader
    from vitq_plugins.transforms.gptq import _layer_input

    model, _ = resolve_model(args.model)
    model.eval()
    loader, _ = split_loader(model, "cifar10_bundled", "calib", args.calib, 0, get_host(), batch_size=64)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}
    accs: dict[str, G.HessianAccumulator] = {}

    def hook(n: str) -> Any:
        def f(mod: nn.Module, inp: Any, _out: Any) -> None:
            rows = _layer_input(mod, inp[0])
            accs.setdefault(n, G.HessianAccumulator(rows.shape[-1])).update(rows)

        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    with torch.no_grad():
        for x, _ in tqdm(loader, desc="hessians", unit="batch"):
            model(x)
    for h in handles:
        h.remove()
    rows: list[dict[str, Any]] = []
    for bits in (int(b) for b in args.bits.split(",")):
        qmin, qmax = U.qrange(bits, signed=True)
        for n, m in tqdm(layers.items(), desc=f"W{bits}", unit="layer"):
            w = m.weight.data.reshape(m.weight.shape[0], -1)
            h = accs[n].hessian()
            t = time.perf_counter()
            res = G.gptq_quantize(w, h, bits)
            dt = time.perf_counter() - t
            s0, _ = U.qparams_from_minmax(w.min(1).values, w.max(1).values, bits, symmetric=True, signed=True)
            e_rtn = G.layer_output_error(w, U.fake_quant(w, s0, 0, qmin, qmax, axis=0), h)
            e_rtn_s = G.layer_output_error(w, G.rtn_codes(w, res.scale, bits).float() * res.scale[:, None], h)
            e_gptq = G.layer_output_error(w, res.dequantized(), h)
            energy = G.layer_output_error(w, torch.zeros_like(w), h)
            rows.append(
                {
                    "layer": n,
                    "w_bits": bits,
                    "err_rtn": f"{e_rtn:.6g}",
                    "err_rtn_searched_scale": f"{e_rtn_s:.6g}",
                    "err_gptq": f"{e_gptq:.6g}",
                    "gptq_over_rtn": round(e_gptq / e_rtn, 4),
                    "rel_rtn": f"{e_rtn / energy:.3g}",
                    "gptq_s": round(dt, 3),
                }
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for bits in (int(b) for b in args.bits.split(",")):
        sel = [r for r in rows if r["w_bits"] == bits]
        ratios = sorted(float(r["gptq_over_rtn"]) for r in sel)
        rel = sorted(float(r["rel_rtn"]) for r in sel)
        print(
            f"W{bits}: GPTQ/RTN output error median {ratios[len(ratios) // 2]:.3f} (min {ratios[0]:.3f}, max "
            f"{ratios[-1]:.3f}) over {len(sel)} layers; RTN relative output error median {rel[len(rel) // 2]:.2g}, "
            f"max {rel[-1]:.2g}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
