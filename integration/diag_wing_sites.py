"""Diagnosis (issue #17): where do the Brevitas and FX wings start to compute different functions?

Quantizes the reference model with both wings on the same calibration images, runs the same evaluation
images through both and compares, module by module (same FQN in both models, in FX graph order), the
dequantized outputs: cosine, relative L2 error and the share of equal values. The first module whose
agreement drops is where the wings' numerics differ. Prints a table and the top-1 of both wings; writes
nothing (a diagnosis, not a measurement).

Example:
    OMP_NUM_THREADS=1 python integration/diag_wing_sites.py --recipe repq --bits 4/4/4 --calib 64 --eval 100
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any


def _deq(t: Any) -> Any:
    import torch

    if isinstance(t, tuple | list):
        t = t[0]
    if hasattr(t, "value") and not isinstance(t, torch.Tensor):  # a brevitas QuantTensor
        t = t.value
    if isinstance(t, torch.Tensor):
        return (t.dequantize() if t.is_quantized else t).detach().float()
    return None


def _record(model: Any, names: set[str]) -> tuple[dict[str, list[Any]], list[Any]]:
    store: dict[str, list[Any]] = {}
    handles = []
    for name, mod in model.named_modules():
        if name in names:

            def hook(m: Any, args: Any, out: Any, name: str = name) -> None:
                store.setdefault(name, []).append(_deq(out))

            handles.append(mod.register_forward_hook(hook))
    return store, handles


def _batches(loader: Any) -> Iterator[Any]:
    yield from loader.image_batches()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", default="vit_tiny_cifar10")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--bits", default="4/4/4", help="W/A/attn")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--only", default="", help="print only modules whose name contains this")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from vitq_plugins import QuantConfig
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import split_loader

    host = get_host()
    w, a, at = (int(x) for x in args.bits.split("/"))
    cfg = QuantConfig(args.recipe, w_bits=w, a_bits=a, attn_bits=at)
    fp_model, _ = resolve_model(args.model)
    calib, _ = split_loader(fp_model, "cifar10_bundled", "calib", args.calib, 0, host, batch_size=args.batch)
    evl, _ = split_loader(fp_model, "cifar10_bundled", "eval", args.eval, 0, host, batch_size=args.batch)
    models = {}
    for wing in ("brevitas", "fx"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            impl = host.backends.get(wing).load()
            models[wing] = impl.quantize(fp_model, cfg, calib.image_batches(), progress=False)
    fxm, brm = models["fx"], models["brevitas"]
    fx_names = [str(n.target) for n in fxm.graph.nodes if n.op == "call_module"]
    common = set(fx_names) & {n for n, _ in brm.named_modules()} | {""}
    stores = {}
    labels = []
    for wing, m in models.items():
        st, hs = _record(m, common)
        ys = []
        with torch.no_grad():
            for xb, yb in evl:
                ys.append(_deq(m(xb)).argmax(-1))
                if wing == "fx":
                    labels.append(yb)
        for h in hs:
            h.remove()
        stores[wing] = (st, torch.cat(ys))
    y = torch.cat(labels)
    for wing, (_, pred) in stores.items():
        print(f"{wing}: top-1 {100 * float((pred == y).double().mean()):.2f}")
    pb, pf = stores["brevitas"][1], stores["fx"][1]
    print(f"prediction agreement brevitas/fx: {100 * float((pb == pf).double().mean()):.2f}")
    print(f"{'module':40s} {'cos':>8s} {'relerr':>8s} {'equal%':>7s}  {'fx type'}")
    order = list(dict.fromkeys([*fx_names, ""]))
    for name in order:
        if args.only and args.only not in name:
            continue
        b, f = stores["brevitas"][0].get(name), stores["fx"][0].get(name)
        if not b or not f or b[0] is None or f[0] is None:
            continue
        bt, ft = torch.cat(b), torch.cat(f)
        if bt.shape != ft.shape:
            print(f"{name:40s} shape {tuple(bt.shape)} vs {tuple(ft.shape)}")
            continue
        cos = torch.nn.functional.cosine_similarity(bt.flatten(), ft.flatten(), dim=0)
        rel = (bt - ft).norm() / bt.norm().clamp_min(1e-12)
        eq = ((bt - ft).abs() <= 1e-5 * bt.abs().amax().clamp_min(1e-12)).double().mean()
        kind = type(fxm.get_submodule(name)).__name__ if name else "model"
        print(f"{name or '(logits)':40s} {float(cos):8.5f} {float(rel):8.4f} {100 * float(eq):7.2f}  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
