"""What one benchmark run measures: the configurations, engines, CSV columns and the parsed plan."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


MODEL = "vit_tiny_cifar10"
#: (w_bits, a_bits, attn_bits), FQ-ViT's W/A/Attn columns
#: 4/8/8 (weights only at 4 bits) is no acceptance row and cost ~15 min of the full run; ``--settings`` still takes it
SETTINGS: tuple[tuple[int, int, int], ...] = ((8, 8, 8), (8, 8, 4), (6, 6, 6), (4, 4, 4))
QUICK_SETTINGS: tuple[tuple[int, int, int], ...] = ((8, 8, 4),)
QUICK_RECIPES: tuple[str, ...] = ("minmax", "fqvit")
MP_BITS: tuple[float, ...] = (5.0, 6.0)
QUICK_MP_BITS: tuple[float, ...] = (6.0,)
#: the uniform configuration exported to QCDQ (ORT) and converted with torch.ao for the speed table
SPEED_CFG = ("minmax", 8, 8, 8)
SPEED_BATCHES: tuple[int, ...] = (8, 1)
#: the papers' recipes also exported to QCDQ and evaluated in ONNX Runtime (full runs only)
QCDQ_EXTRA_CFGS: tuple[tuple[str, int, int, int], ...] = (("fqvit", 8, 8, 4), ("ivit", 8, 8, 8))
#: ``--compile``: the models and PT2E recipes of the compiled-speed table (``torch.compile`` of the converted int8
#: model against ``torch.compile`` of fp32; DeiT-S with random weights is speed only, issue #18)
COMPILE_MODELS: tuple[str, ...] = ("deit_small_patch16_224", MODEL)
COMPILE_RECIPES: tuple[str, ...] = ("minmax", "fqvit")
COMPILE_BATCHES: tuple[int, ...] = (8, 1)
#: ``--scale``: every recipe x wing at W8A8 on a ViT-S shape (197 tokens, 384 wide; random weights), issue #17
SCALE_MODEL = "deit_small_patch16_224"
SCALE_SETTING: tuple[int, int, int] = (8, 8, 8)
SCALE_IMAGES = 64
ENGINES: tuple[str, ...] = (
    "torch fp32",
    "ORT fp32",
    "ORT int8 (vitq QCDQ)",
    "ORT int8 (quantize_static)",
    "torch.ao x86 int8",
)
ORT_FP32 = "ORT fp32"
QCDQ_ENGINE = "ORT int8 (vitq QCDQ)"
CSV_COLUMNS: tuple[str, ...] = (
    "section",
    "name",
    "recipe",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "status",
    "reason",
    "top1",
    "top1_drop",
    "agreement",
    "kl",
    "size_mb",
    "bops",
    "calib_s",
    "calib_x_fp",
    "search_s",
    "eval_s",
    "wall_s",
    "batch",
    "median_ms",
    "x_ort_fp32",
    "n_eval",
    "n_calib",
    "model",
    "x_fp32_compiled",
    "compile_s",
    "cosine",
)


@dataclass(frozen=True)
class Plan:
    """What one run measures (``--quick`` shrinks every part)."""

    settings: tuple[tuple[int, int, int], ...]
    recipes: tuple[str, ...]
    backends: tuple[str, ...]
    mp_bits: tuple[float, ...]
    n_eval: int | None
    n_calib: int
    n_ort_calib: int
    n_mp_calib: int
    reps: int
    warmup: int


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan from the command line (``--quick`` defaults, then explicit overrides)."""
    quick = bool(args.quick)

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    def csv_list(value: str | None, full: tuple[str, ...], small: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v for v in value.split(",") if v) if value else (small if quick else full)

    settings: tuple[tuple[int, int, int], ...]
    if args.settings:
        settings = tuple(_parse_setting(s) for s in args.settings.split(",") if s)
    else:
        settings = QUICK_SETTINGS if quick else SETTINGS
    mp = args.mp_bits
    return Plan(
        settings=settings,
        recipes=csv_list(args.recipes, registered_recipes(), QUICK_RECIPES),
        backends=csv_list(args.backends, registered_backends(), registered_backends()),
        mp_bits=tuple(float(b) for b in mp.split(",") if b)
        if mp is not None
        else (QUICK_MP_BITS if quick else MP_BITS),
        n_eval=pick(args.eval, None, 256),
        n_calib=pick(args.calib, 512, 128),
        n_ort_calib=pick(args.ort_calib, 256, 64),
        n_mp_calib=pick(args.mp_calib, 128, 32),
        reps=pick(args.reps, 30, 15),
        warmup=pick(args.warmup, 5, 3),
    )


def _parse_setting(text: str) -> tuple[int, int, int]:
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise SystemExit(f"--settings entry {text!r} is not W/A/ATTN, e.g. 8/8/4")
    w, a, attn = (int(p) for p in parts)
    return w, a, attn


def default_data() -> Path | str:
    """The full packed CIFAR-10 (``$VITQ_CIFAR10_DIR`` or ``../shared/data/cifar10`` beside the repo)."""
    env = os.environ.get("VITQ_CIFAR10_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "cifar10"


def registered_recipes() -> tuple[str, ...]:
    """Every recipe in the ``recipes`` registry (built-ins and plugins), in registry order."""
    from vitq_plugins.core.manager import get_host

    return tuple(get_host().recipes)


def registered_backends() -> tuple[str, ...]:
    """Every wing in the ``backends`` registry (built-ins and plugins), in registry order."""
    from vitq_plugins.core.manager import get_host

    return tuple(get_host().backends)
