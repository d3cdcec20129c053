"""GPTQ weight rounding (Frantar et al., arXiv 2210.17323) over a ViT, opt-in via ``QuantConfig.options``.

``options={"weight_rounding": "gptq"}`` makes both wings run :func:`apply_gptq` after the recipe's own transforms
(``sqb`` for ``mptq``: GPTQ sees the smoothed weights) and before they build their quantizers. GPTQ writes weights
that the wing's per-channel MinMax weight quantizer re-quantizes to exactly GPTQ's scales and codes
(:mod:`vitq_plugins.ops.gptq`); activation quantization is then calibrated as usual.

Sequential (default, ``gptq_sequential=True``): layers are grouped by transformer block (a Linear/Conv2d outside a
block is its own group) in execution order; one streaming pass per group accumulates the Hessians ``2 X^T X / N``
of the group's layers with forward hooks (the pass stops right after the group), so the inputs of block ``i``
come from blocks ``< i`` with their weights already GPTQ-quantized (activations float; inside a block the
inputs are those of the block's float weights). ``gptq_sequential=False`` collects every Hessian in one pass
of the float model. Memory is ``sum d^2`` per group, independent of the number of images.

Options (``QuantConfig.options``): ``weight_rounding`` ("nearest" default | "gptq"), ``gptq_block_size`` (128),
``gptq_damp`` (0.01), ``gptq_sequential`` (true).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
import sys
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.core.errors import VitqError
from vitq_plugins.ops.gptq import HessianAccumulator
from vitq_plugins.ops.gptq import gptq_quantize
from vitq_plugins.sites import is_block

__all__ = ["GPTQOptions", "apply_gptq", "gptq_layers", "rounding_options"]

ROUNDINGS = ("nearest", "gptq")


@dataclass(frozen=True)
class GPTQOptions:
    """Validated GPTQ options (see module doc)."""

    block_size: int = 128
    damp: float = 0.01
    sequential: bool = True


def rounding_options(options: Mapping[str, Any]) -> GPTQOptions | None:
    """Validate the weight-rounding options of a config; ``None`` unless ``weight_rounding == "gptq"``.

    Raises:
        VitqError: a bad ``weight_rounding``, ``gptq_block_size``, ``gptq_damp`` or ``gptq_sequential``, or
            ``gptq_*`` options without ``weight_rounding="gptq"``.
    """
    mode = options.get("weight_rounding", "nearest")
    if mode not in ROUNDINGS:
        raise VitqError(f"options['weight_rounding']={mode!r} is invalid: valid {list(ROUNDINGS)}")
    extra = sorted(k for k in options if k.startswith("gptq_"))
    if mode != "gptq":
        if extra:
            raise VitqError(f"options {extra} need options['weight_rounding']='gptq' (got {mode!r})")
        return None
    allowed = {"gptq_block_size", "gptq_damp", "gptq_sequential"}
    unknown = sorted(set(extra) - allowed)
    if unknown:
        raise VitqError(f"unknown GPTQ option(s) {unknown}; valid: {sorted(allowed)}")
    block = options.get("gptq_block_size", 128)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise VitqError(f"options['gptq_block_size']={block!r} is invalid: an integer >= 1")
    damp = options.get("gptq_damp", 0.01)
    if isinstance(damp, bool) or not isinstance(damp, int | float) or not 0.0 < float(damp) <= 1.0:
        raise VitqError(f"options['gptq_damp']={damp!r} is invalid: a number in (0, 1]")
    seq = options.get("gptq_sequential", True)
    if not isinstance(seq, bool):
        raise VitqError(f"options['gptq_sequential']={seq!r} is invalid: true or false")
    return GPTQOptions(int(block), float(damp), seq)


def gptq_layers(plan: Mapping[str, Any], model: nn.Module) -> dict[str, int]:
    """``fqn -> w_bits`` of the layers whose weights the wing quantizes with MinMax (from ``plan_sites``).

    Conv2d layers with ``groups != 1`` are left to round-to-nearest.
    """
    modules = dict(model.named_modules())
    out: dict[str, int] = {}
    for site in plan.values():
        if site.site != "weight" or site.quantizer != "minmax":
            continue
        m = modules.get(site.fqn)
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1):
            out[site.fqn] = int(site.bits)
    return out


class _Stop(Exception):
    """Raised by a hook to end a forward pass once a group's inputs are collected."""


def _layer_input(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows GPTQ sees: ``(..., in_features)`` of a Linear, the unfolded patches of a Conv2d."""
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise VitqError(f"GPTQ: Conv2d padding={m.padding!r} is not supported; use integer padding")
        cols = F.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride)  # (B, C*kh*kw, L)
        return cols.transpose(1, 2)
    return x


def _group_of(fqn: str, blocks: list[str]) -> str:
    for b in blocks:
        if fqn == b or fqn.startswith(b + "."):
            return b
    return fqn


def _execution_order(model: nn.Module, names: list[str], batch: torch.Tensor) -> list[str]:
    order: list[str] = []
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda *_a, n=n: order.append(n) if n not in order else None)
        for n in names
    ]
    try:
        model(batch)
    finally:
        for h in hooks:
            h.remove()
    return order + [n for n in names if n not in order]


def _images(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, tuple | list) else batch
    if not isinstance(x, torch.Tensor):
        raise VitqError(f"GPTQ calibration batches must be image tensors, got {type(x).__name__}")
    return x


@torch.no_grad()
def _collect(
    model: nn.Module,
    names: list[str],
    calib_batches: Iterable[Any],
    stop_after: str | None,
    desc: str,
    progress: bool,
) -> dict[str, HessianAccumulator]:
    from tqdm import tqdm

    modules = dict(model.named_modules())
    accs: dict[str, HessianAccumulator] = {}
    hooks = []
    for n in names:
        m = modules[n]

        def hook(mod: nn.Module, inp: Any, _out: Any, n: str = n) -> None:
            rows = _layer_input(mod, inp[0])
            if n not in accs:
                accs[n] = HessianAccumulator(rows.shape[-1])
            accs[n].update(rows)
            if n == stop_after:
                raise _Stop

        hooks.append(m.register_forward_hook(hook))
    try:
        for batch in tqdm(
            calib_batches, desc=desc, unit="batch", file=sys.stderr, disable=not progress, leave=False
        ):
            try:
                model(_images(batch))
            except _Stop:
                pass
    finally:
        for h in hooks:
            h.remove()
    missing = sorted(set(names) - set(accs))
    if missing:
        raise VitqError(f"GPTQ saw no input for {missing}: calib_batches was empty or the layers never ran")
    return accs


@torch.no_grad()
def apply_gptq(
    model: nn.Module,
    calib_batches: Iterable[Any],
    layers: Mapping[str, int],
    options: GPTQOptions | None = None,
    *,
    progress: bool = False,
    codes_out: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """GPTQ-round the weights of ``layers`` (``fqn -> w_bits``) in place onto the wings' grid.

    Args:
        model: float ViT (modified in place).
        calib_batches: a re-iterable of image batches (read once per group when sequential).
        layers: layers to round and their bit-widths (:func:`gptq_layers`).
        options: :class:`GPTQOptions`.
        progress: tqdm bars on stderr.
        codes_out: if given, filled with ``fqn -> int64 codes (out, in)`` of every rounded layer.

    Returns:
        ``{"layers": n, "passes": p, "seconds": t}``.

    Raises:
        VitqError: no calibration batch, or a named layer missing.
    """
    import time

    opts = options or GPTQOptions()
    t0 = time.perf_counter()
    modules = dict(model.named_modules())
    missing = sorted(n for n in layers if n not in modules)
    if missing:
        raise VitqError(f"GPTQ: no module {missing} in {type(model).__name__}")
    if not layers:
        return {"layers": 0.0, "passes": 0.0, "seconds": 0.0}
    was_training = model.training
    model.eval()
    first = next(iter(calib_batches), None)
    if first is None:
        raise VitqError("GPTQ needs at least one calibration batch; calib_batches was empty")
    order = _execution_order(model, list(layers), _images(first)[:1])
    blocks = [n for n, m in model.named_modules() if is_block(m)]
    groups: list[list[str]] = []
    if opts.sequential:
        for n in order:
            g = _group_of(n, blocks)
            if groups and _group_of(groups[-1][0], blocks) == g:
                groups[-1].append(n)
            else:
                groups.append([n])
    else:
        groups = [order]
    for gi, group in enumerate(groups):
        accs = _collect(
            model,
            group,
            calib_batches,
            group[-1] if opts.sequential else None,
            f"gptq {gi + 1}/{len(groups)}",
            progress,
        )
        for n in group:
            m = modules[n]
            w = m.weight.data
            res = gptq_quantize(
                w.reshape(w.shape[0], -1),
                accs[n].hessian(),
                layers[n],
                block_size=opts.block_size,
                damp=opts.damp,
            )
            m.weight.data.copy_(res.weight.reshape(w.shape))
            if codes_out is not None:
                codes_out[n] = res.codes
    model.train(was_training)
    return {"layers": float(len(layers)), "passes": float(len(groups)), "seconds": time.perf_counter() - t0}
