"""Compiled speed of the PT2E wing, shared by ``integration/bench_pt2e.py`` and ``integration/benchmark.py``.

``torch.compile`` (Inductor, x86, ``freezing``) of the converted int8 model against ``torch.compile`` of the fp32
model, side by side in one process, with accuracy beside speed. For each model and batch size the compiled
engines alternate (fp32, int8, fp32, ...) so that machine noise hits both; the rows hold medians, the ratio to
compiled fp32 from the same run (above 1 is faster), compile time (first call) separately, and the load average
before and after.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import os
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import get_host
from vitq_plugins.models.resolve import resolve_model
from vitq_plugins.pipeline import split_loader

__all__ = ["FIELDS", "SETTINGS", "bench_model"]

FIELDS = [
    "model",
    "weights",
    "engine",
    "recipe",
    "w_bits",
    "a_bits",
    "attn_bits",
    "batch",
    "median_ms",
    "speedup_vs_fp32_compiled",
    "compile_s",
    "quantize_s",
    "top1",
    "fp_top1",
    "n_eval",
    "n_calib",
    "threads",
    "reps",
    "load_before",
    "load_after",
    "note",
    "torch",
    "torchao",
]

#: recipe -> (w_bits, a_bits, attn_bits)
SETTINGS: dict[str, tuple[int, int, int]] = {"minmax": (8, 8, 8), "fqvit": (8, 8, 4)}


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


@torch.no_grad()
def _ms(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(x)
    return (time.perf_counter() - t0) * 1e3


@torch.no_grad()
def _top1(
    fn: Callable[[torch.Tensor], torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    ok = n = 0
    for x, y in batches:
        ok += int((fn(x).argmax(-1) == y).sum())
        n += int(y.numel())
    return ok / n


def _model(name: str) -> tuple[nn.Module, str]:
    host = get_host()
    if name in host.models:
        m, _ = resolve_model(name, host=host)
        return m.eval(), "converged"
    m, _ = resolve_model(name, host=host, pretrained=False)
    return m.eval(), "random"


def bench_model(name: str, args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> None:
    """Quantize ``name`` with every recipe of ``args.recipes`` on the PT2E wing, compile each engine and fp32,
    time them side by side for every batch of ``args.batches`` and ``emit`` one :data:`FIELDS` row per engine.

    ``args`` needs ``recipes``, ``batches``, ``calib``, ``eval``, ``reps`` and ``warmup``.
    """
    import torchao

    from vitq_plugins.pt2e.compile import compile_x86

    host = get_host()
    backend = host.backends.get("pt2e").load()
    fp, weights = _model(name)
    calib, _ = split_loader(fp, "cifar10_bundled", "calib", args.calib, 0, host, batch_size=32)
    calib_batches = list(calib.image_batches())
    eval_batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    if weights == "converged":
        ev, _ = split_loader(fp, "cifar10_bundled", "eval", args.eval, 0, host, batch_size=8)
        eval_batches = [(x, y) for x, y in ev]
    engines: dict[str, nn.Module] = {"fp32": fp}
    meta: dict[str, dict[str, Any]] = {"fp32": {"recipe": "", "w_bits": 32, "a_bits": 32, "attn_bits": 32}}
    for recipe in args.recipes.split(","):
        w, a, at = SETTINGS[recipe]
        cfg = QuantConfig(recipe, w_bits=w, a_bits=a, attn_bits=at)
        row = {"recipe": recipe, "w_bits": w, "a_bits": a, "attn_bits": at}
        try:
            t0 = time.perf_counter()
            qm = backend.quantize(fp, cfg, calib_batches, progress=False)
            row["quantize_s"] = round(time.perf_counter() - t0, 2)
        except VitqError as exc:  # a refused recipe is a row with the reason
            print(f"{name} {recipe}: refused: {exc}", file=sys.stderr)
            emit(
                {
                    "model": name,
                    "weights": weights,
                    "engine": f"pt2e_{recipe}",
                    **row,
                    "note": f"refused: {exc}",
                    "torch": torch.__version__,
                    "torchao": torchao.__version__,
                }
            )
            continue
        engines[f"pt2e_{recipe}"] = qm
        meta[f"pt2e_{recipe}"] = row
    fp_top1 = None
    for batch in [int(b) for b in args.batches.split(",")]:
        x = calib_batches[0][:1].expand(batch, *calib_batches[0].shape[1:]).contiguous()
        load_before = _load()
        compiled: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        compile_s: dict[str, float] = {}
        for eng, m in engines.items():
            compiled[eng], compile_s[eng] = compile_x86(m, x)
            print(f"{name} b{batch} {eng}: compiled in {compile_s[eng]:.1f} s", file=sys.stderr)
        times: dict[str, list[float]] = {e: [] for e in compiled}
        for fn in compiled.values():
            for _ in range(args.warmup):
                _ms(fn, x)
        for _ in range(args.reps):
            for e, fn in compiled.items():
                times[e].append(_ms(fn, x))
        load_after = _load()
        top1: dict[str, float | None] = {e: None for e in compiled}
        if eval_batches and batch == 8:
            top1 = {e: round(_top1(fn, eval_batches), 4) for e, fn in compiled.items()}
            fp_top1 = top1["fp32"]
        med = {e: statistics.median(t) for e, t in times.items()}
        for e in compiled:
            row = {
                "model": name,
                "weights": weights,
                "engine": f"{e}_compiled",
                **meta[e],
                "batch": batch,
                "median_ms": round(med[e], 3),
                "speedup_vs_fp32_compiled": round(med["fp32"] / med[e], 3),
                "compile_s": round(compile_s[e], 1),
                "top1": top1[e],
                "fp_top1": fp_top1 if top1[e] is not None else None,
                "n_eval": sum(int(y.numel()) for _, y in eval_batches) if top1[e] is not None else None,
                "n_calib": args.calib,
                "threads": torch.get_num_threads(),
                "reps": args.reps,
                "load_before": load_before,
                "load_after": load_after,
                "torch": torch.__version__,
                "torchao": torchao.__version__,
            }
            emit(row)
            print(
                {
                    k: row[k]
                    for k in (
                        "model",
                        "engine",
                        "batch",
                        "median_ms",
                        "speedup_vs_fp32_compiled",
                        "compile_s",
                        "top1",
                    )
                },
                file=sys.stderr,
            )
        torch._dynamo.reset()
