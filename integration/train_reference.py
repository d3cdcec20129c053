"""Train the reference model ``vit_tiny_cifar10`` on the CIFAR-10 train split (never selects on test).

GPU mode (the default when CUDA is available) reproduces the recipe of the shipped weights
(``vitq_plugins/assets/vit_tiny_cifar10.json``, 84.26% full test on one H100 in 7.5 minutes): 150 epochs,
AdamW lr 2e-3 at batch 512, betas (0.9, 0.999), weight decay 0.05, 5 warm-up epochs then cosine to 0,
grad-norm clip 1.0, drop-path 0.1, bf16 autocast, ``torch.compile``, seed 0. The data are decoded once into
a uint8 tensor on the device and augmented there (random numbers from a device generator): reflect-pad 4 +
random 32x32 crop, horizontal flip, then with probability 0.8 mixup or cutmix (half each, lambda ~ Beta(1, 1),
i.e. uniform), label smoothing 0.1.

CPU fallback: the same loop with bf16 autocast (about 100 img/s on 2 cores, 11-13 minutes an epoch), so only
a short schedule fits: ``--time-budget-min`` anneals the cosine over a wall-clock budget. Such a run does
not converge (the earlier bundled CPU checkpoint reached 64.6% after 9.7 epochs); use a GPU for the recipe.

Writes ``<out>/vit_tiny_cifar10.safetensors`` (fp16) and ``<out>/vit_tiny_cifar10.json`` (command, seed,
epochs, full-test accuracy on the device, commit) atomically, after every epoch (so a stopped run leaves
usable weights) and at the end. ``--init-from`` continues from earlier weights. After shipping new weights,
``integration/bench_fp_accuracy.py --update-metadata`` records their CPU fp32 accuracy in the JSON.

Usage:
    python integration/train_reference.py --data ../shared/data/cifar10                 # GPU: the recipe
    python integration/train_reference.py --data ../shared/data/cifar10 --device cpu --epochs 30 \
        --batch-size 128 --lr 1e-3 --warmup-epochs 1 --drop-path 0 --mixup 0 --cutmix 0 \
        --time-budget-min 110 --threads 2                                               # CPU fallback
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitq_plugins.data.packed import read_packed  # noqa: E402
from vitq_plugins.models.checkpoint import load_weights_into  # noqa: E402
from vitq_plugins.models.reference import ASSETS  # noqa: E402
from vitq_plugins.models.reference import CIFAR10_MEAN  # noqa: E402
from vitq_plugins.models.reference import CIFAR10_STD  # noqa: E402
from vitq_plugins.models.reference import build_reference_arch  # noqa: E402
from vitq_plugins.provenance import git_commit  # noqa: E402


def load_split(data: Path, split: str, cache: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N,3,32,32) images and int64 labels; decoded once and cached as .npy if ``cache``."""
    if cache is not None:
        xi, yi = cache / f"cifar10-{split}-x.npy", cache / f"cifar10-{split}-y.npy"
        if xi.exists() and yi.exists():
            return torch.from_numpy(np.load(xi)), torch.from_numpy(np.load(yi))
    packed = read_packed(data / f"cifar10-{split}.jpeg.npz")
    x = np.ascontiguousarray(packed.images.transpose(0, 3, 1, 2))
    y = packed.labels.astype(np.int64)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(xi, x)
        np.save(yi, y)
    return torch.from_numpy(x), torch.from_numpy(y)


def normalize(x_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, device=x_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=x_u8.device).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Reflect-pad 4 + random crop + horizontal flip, vectorized over the batch (float input).

    ``gen`` lives on ``x``'s device, so the whole augmentation stays there.
    """
    b = x.shape[0]
    xp = F.pad(x, (4, 4, 4, 4), mode="reflect")
    ox = torch.randint(0, 9, (b,), generator=gen, device=x.device)
    oy = torch.randint(0, 9, (b,), generator=gen, device=x.device)
    ar = torch.arange(32, device=x.device)
    rows = (oy[:, None] + ar[None, :])[:, None, :, None].expand(b, 3, 32, 40)
    xp = torch.gather(xp, 2, rows)
    cols = (ox[:, None] + ar[None, :])[:, None, None, :].expand(b, 3, 32, 32)
    xp = torch.gather(xp, 3, cols)
    flip = torch.rand(b, generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], xp.flip(3), xp)


def mix(
    x: torch.Tensor, y: torch.Tensor, p_mixup: float, p_cutmix: float, gen: torch.Generator, n_cls: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-level mixup or cutmix with lambda ~ Beta(1, 1), which is the uniform law on [0, 1] (drawn from
    ``gen``, on ``x``'s device); returns mixed images and soft targets."""
    t = F.one_hot(y, n_cls).float()
    draws = torch.rand(2, generator=gen, device=x.device).tolist()  # one sync per batch
    r, lam = draws[0], draws[1]
    if r >= p_mixup + p_cutmix:
        return x, t
    perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
    if r < p_mixup:
        return lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]
    h = w = x.shape[-1]
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = (int(v) for v in torch.randint(0, h, (2,), generator=gen, device=x.device).tolist())
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * t + (1 - lam) * t[perm]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str, bs: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], bs):
        xb = normalize(x[i : i + bs].to(device))
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            logits = model(xb)
        correct += int((logits.argmax(-1).cpu() == y[i : i + bs]).sum())
    return correct / x.shape[0]


def save(model: torch.nn.Module, out: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    wt, mt = out / "vit_tiny_cifar10.safetensors.tmp", out / "vit_tiny_cifar10.json.tmp"
    save_file(sd, str(wt))
    mt.write_text(json.dumps(meta, indent=2) + "\n")
    for tmp in (wt, mt):
        tmp.chmod(0o644)  # safetensors writes 0600; the weights ship inside the package
    wt.replace(out / "vit_tiny_cifar10.safetensors")
    mt.replace(out / "vit_tiny_cifar10.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/cifar10"))
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak lr at --batch-size")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=5)
    ap.add_argument("--drop-path", type=float, default=0.1)
    ap.add_argument("--mixup", type=float, default=0.4, help="probability of mixup per batch")
    ap.add_argument("--cutmix", type=float, default=0.4, help="probability of cutmix per batch")
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model (default: on for CUDA, off on the CPU)",
    )
    ap.add_argument("--init-from", type=Path, default=None, help="continue from these weights")
    ap.add_argument("--cache", type=Path, default=Path(".cache/cifar10"), help="decoded-array cache dir")
    ap.add_argument("--out", type=Path, default=ASSETS)
    ap.add_argument(
        "--time-budget-min",
        type=float,
        default=0.0,
        help="CPU fallback: anneal the cosine schedule over this many minutes (or the epochs, whichever ends "
        "first) and stop there; the steps actually taken are recorded",
    )
    ap.add_argument("--eval-every", type=int, default=0, help="full-test eval every N epochs (0 = end only)")
    args = ap.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    use_compile = (device == "cuda") if args.compile is None else args.compile

    t0 = time.perf_counter()
    xtr, ytr = load_split(args.data, "train", args.cache)
    xte, yte = load_split(args.data, "test", args.cache)
    print(
        f"data: train {tuple(xtr.shape)} test {tuple(xte.shape)} in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    xtr, ytr = xtr.to(device), ytr.to(device)

    model = build_reference_arch(drop_path_rate=args.drop_path).to(device)
    if args.init_from is not None:
        load_weights_into(model, args.init_from)
        print(f"initialised from {args.init_from}", flush=True)
    decay = [
        p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n
    ]
    no_decay = [
        p
        for n, p in model.named_parameters()
        if not (p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n)
    ]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    fwd = torch.compile(model) if use_compile else model
    steps_per_epoch = xtr.shape[0] // args.batch_size
    total = steps_per_epoch * args.epochs
    warm = int(steps_per_epoch * args.warmup_epochs)

    budget_s = args.time_budget_min * 60.0

    def progress(step: int) -> float:
        """Fraction of the schedule done: by steps, or by wall time under --time-budget-min."""
        p = (step - warm) / max(1, total - warm)
        if budget_s > 0 and step >= warm:
            p = max(p, (time.perf_counter() - t_anneal[0]) / max(1.0, budget_s - t_anneal[1]))
        return min(max(p, 0.0), 1.0)

    def lr_at(step: int) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        return 0.5 * args.lr * (1 + math.cos(math.pi * progress(step)))

    t_anneal = [0.0, 0.0]  # (start of the cosine phase, seconds spent before it)

    meta: dict[str, Any] = {
        "model": "vit_tiny_cifar10",
        "command": "python integration/train_reference.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "epochs_planned": args.epochs,
        "epochs": 0,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "data": "CIFAR-10 train split, packed JPEG (50,000 images)",
        "init_from": str(args.init_from) if args.init_from else None,
        "commit": git_commit(Path(__file__).parent),
        "torch": torch.__version__,
        "history": [],
    }
    step = 0
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen, device=device)
        te = time.perf_counter()
        run_loss = 0.0
        for i in range(steps_per_epoch):
            if step == warm:
                t_anneal[0] = time.perf_counter()
                t_anneal[1] = time.perf_counter() - t_train
            if step >= warm and progress(step) >= 1.0:
                break
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb = augment(normalize(xtr[idx]), gen)
            xb, tb = mix(xb, ytr[idx], args.mixup, args.cutmix, gen)
            tb = tb * (1 - args.smoothing) + args.smoothing / tb.shape[1]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                logits = fwd(xb)
            loss = torch.sum(-tb * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            run_loss += float(loss.detach())
            if (i + 1) % 50 == 0:
                rate = (i + 1) * args.batch_size / (time.perf_counter() - te)
                print(
                    f"epoch {epoch + 1} step {i + 1}/{steps_per_epoch} loss {run_loss / (i + 1):.4f} {rate:.0f} img/s",
                    flush=True,
                )
        done = i + 1 if i + 1 == steps_per_epoch else i
        rec: dict[str, Any] = {
            "epoch": epoch + 1,
            "steps": done,
            "loss": run_loss / max(1, done),
            "seconds": time.perf_counter() - te,
        }
        last = epoch + 1 == args.epochs or (step >= warm and progress(step) >= 1.0)
        if last or (args.eval_every and (epoch + 1) % args.eval_every == 0):
            rec["test_top1"] = evaluate(model, xte, yte, device)
        meta["history"].append(rec)
        meta["epochs"] = epoch + 1
        meta["steps"] = step
        meta["batch_size"] = args.batch_size
        meta["train_seconds"] = time.perf_counter() - t_train
        if last:
            meta["full_test_top1"] = rec["test_top1"]
        save(model, args.out, meta)
        print(json.dumps(rec), flush=True)
        if last:
            break
    print(json.dumps({"full_test_top1": meta.get("full_test_top1"), "train_seconds": meta["train_seconds"]}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TIMM_FUSED_ATTN", "1")
    raise SystemExit(main())
