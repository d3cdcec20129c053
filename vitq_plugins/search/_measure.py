"""Per-layer sensitivity, measured: the loss when only one layer's weights (or input activations) are lowered.

This is AIMET AMP phase 1 (``aimet_common/amp/mixed_precision_algo.py``: accuracy with a single quantizer
group at a lower candidate) and the layer-wise measurement behind MPTQ-ViT's Greedy MP (arXiv
2401.14895), with the output-level metrics of :mod:`vitq_plugins.evaluation.metrics` (KL to the FP logits,
top-1 disagreement, logit MSE) instead of HAWQ-V3's Hessian proxy (arXiv 2011.10680).

**Every other layer stays float** (not at the high bits): this is what lets the FP activations be
reused. The model is cut into stages (timm ViT: stem = patch embedding + position embedding, then each
block, then the final norm and head). Per batch, the FP input of every stage is computed once and cached;
for a layer in stage ``k`` only stages ``k..end`` run again, with the layer perturbed. Weights are
fake-quantized once per candidate (per output channel, symmetric, vectorized) and swapped in; input
activations are fake-quantized by a forward pre-hook with per-tensor asymmetric parameters from a first,
streaming pass over the data (the recipe's ``act`` observer: MinMax, Percentile or OMSE from
:mod:`vitq_plugins.ops`). The recipe's model transforms (``sqb`` for ``mptq``) are applied first.
With ``sites="all"`` (the fully quantized space of :mod:`vitq_plugins.search._units`) every LayerNorm input
(the residual stream, skip path included), q/k/v and attention map is a knob too: those tensors are
observed and fake-quantized in place by taps (a pre-hook, or the attention/block forward re-stated as the
wings run it), with the same observer, streaming statistics, stage re-runs and anchored estimate (local
energy = the tensor's own quantization error ``||Q(x) - x||²``); the GELU output is ``fc2``'s input knob.
Metrics accumulate as streaming sums, so memory does not grow with the number of images. The cost is
about ``(#layers x 2 x #candidates) x (mean fraction of stages re-run)`` forward passes instead of
``#layers x 2 x #candidates`` full ones (about half for a ViT), with no backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import copy
from dataclasses import dataclass
import time
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search._space import Layer
from vitq_plugins.search._table import METRICS
from vitq_plugins.search._table import SensitivityTable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitq_plugins.executors import Executor

__all__ = ["ACT_OBSERVERS", "DEFAULT_CANDIDATES", "find_layers", "measure_sensitivity"]

DEFAULT_CANDIDATES: tuple[int, ...] = (8, 6, 5, 4)
ACT_OBSERVERS = ("minmax", "percentile", "omse")

Stage = Callable[["torch.Tensor"], "torch.Tensor"]


def find_layers(model: nn.Module, input_size: Sequence[int]) -> tuple[list[Layer], int, dict[str, int]]:
    """The quantizable layers with params and MACs, the float parameter count and the matmul MACs.

    Uses :func:`vitq_plugins.evaluation.macs.count_macs` (one forward of one image).

    Returns:
        ``(layers, float_params, {"qk": macs, "av": macs})``.
    """
    from vitq_plugins.evaluation.macs import compute_layers
    from vitq_plugins.evaluation.macs import count_macs
    from vitq_plugins.evaluation.macs import split_key
    from vitq_plugins.sites import is_attention
    from vitq_plugins.sites import is_block

    macs = count_macs(model, input_size)
    modules = dict(model.named_modules())
    blocks = [n for n, m in modules.items() if n and is_block(m)]
    attns = [n for n, m in modules.items() if n and is_attention(m)]

    def owner(fqn: str, owners: list[str]) -> str:
        hits = [o for o in owners if fqn.startswith(o + ".")]
        return max(hits, key=len) if hits else ""

    layers: list[Layer] = []
    weight_elems = 0
    for fqn, m in compute_layers(model).items():
        if fqn not in macs:  # never ran (unused head, ...): not searched
            continue
        w = getattr(m, "weight", None)
        n = int(w.numel()) if w is not None else 0
        weight_elems += n
        op = "linear" if type(m).__name__ == "Linear" else "conv"
        layers.append(Layer(fqn, op, n, int(macs[fqn]), owner(fqn, blocks), owner(fqn, attns)))
    matmul = {"qk": 0, "av": 0}
    for key, v in macs.items():
        _, kind = split_key(key)
        if kind:
            matmul[kind] += int(v)
    float_params = sum(int(p.numel()) for p in model.parameters()) - weight_elems
    return layers, float_params, matmul


def _stages(model: nn.Module, layers: Sequence[Layer]) -> tuple[list[Stage], list[int]]:
    """Split ``model`` into sequential stages and give the stage of each layer (ViT; else one stage)."""
    names = ("patch_embed", "_pos_embed", "patch_drop", "norm_pre", "blocks", "norm", "forward_head")
    if not all(hasattr(model, n) for n in names):
        return [model], [0] * len(layers)
    vit: Any = model
    blocks = list(vit.blocks)

    def stem(x: torch.Tensor) -> torch.Tensor:
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))  # type: ignore[no-any-return]

    def tail(x: torch.Tensor) -> torch.Tensor:
        return vit.forward_head(vit.norm(x))  # type: ignore[no-any-return]

    stages: list[Stage] = [stem, *blocks, tail]
    where: list[int] = []
    for ly in layers:
        parts = ly.fqn.split(".")
        if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit():
            where.append(1 + int(parts[1]))
        elif parts[0] == "patch_embed":
            where.append(0)
        else:
            where.append(len(stages) - 1)
    return stages, where


def _weight_fq(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization (the ``minmax`` weight quantizer)."""
    from vitq_plugins.ops.uniform import MinMaxObserver
    from vitq_plugins.ops.uniform import fake_quant
    from vitq_plugins.ops.uniform import qrange

    obs = MinMaxObserver(per_channel_axis=0)
    obs.update(w)
    scale, zp = obs.qparams(bits, symmetric=True, signed=True)
    qmin, qmax = qrange(bits, True)
    return fake_quant(w.detach(), scale, zp, qmin, qmax, axis=0)


def _apply(m: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The layer's operation with ``weight`` and no bias (Linear or Conv)."""
    from torch import nn
    import torch.nn.functional as F

    if isinstance(m, nn.Linear):
        return F.linear(x, weight)
    return m._conv_forward(x, weight, None)  # type: ignore[no-any-return]


def _fill_from_anchors(arr: np.ndarray[Any, Any], energy: np.ndarray[Any, Any], measured: list[int]) -> None:
    """Fill the non-anchor columns of ``arr`` ``(2, L, C)``: nearest anchor (in log energy) scaled by the
    energy ratio."""
    n_c = arr.shape[2]
    log_e = np.log(np.maximum(energy, 1e-300))
    for j in range(n_c):
        if j in measured:
            continue
        dist = np.stack([np.abs(log_e[:, :, j] - log_e[:, :, a]) for a in measured])  # (A, 2, L)
        nearest = np.asarray(measured)[np.argmin(dist, axis=0)]  # (2, L)
        src = np.take_along_axis(arr, nearest[:, :, None], axis=2)[:, :, 0]
        e_src = np.take_along_axis(energy, nearest[:, :, None], axis=2)[:, :, 0]
        ratio = np.where(e_src > 0, energy[:, :, j] / np.where(e_src > 0, e_src, 1.0), 1.0)
        arr[:, :, j] = src * ratio


class _ActStats:
    """Streaming per-tensor statistics of one layer's input, giving qparams per bit-width."""

    def __init__(self, kind: str, candidates: Sequence[int], options: Mapping[str, Any]) -> None:
        from vitq_plugins.ops.uniform import MinMaxObserver
        from vitq_plugins.ops.uniform import OMSEObserver
        from vitq_plugins.ops.uniform import PercentileObserver

        self.kind = kind
        self.obs: dict[int, Any]
        if kind == "omse":
            stats = str(options.get("omse_stats", "all"))
            self.obs = {b: OMSEObserver(b, stats=stats) for b in candidates}  # type: ignore[arg-type]
        elif kind == "percentile":
            one = PercentileObserver(float(options.get("percentile", 0.99999)))
            self.obs = dict.fromkeys(candidates, one)
        else:
            self.obs = dict.fromkeys(candidates, MinMaxObserver(None))

    def update(self, x: torch.Tensor) -> None:
        for o in {id(o): o for o in self.obs.values()}.values():
            o.update(x)

    def qparams(self, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        from vitq_plugins.ops.uniform import qparams_from_minmax

        o = self.obs[bits]
        if self.kind == "omse":
            r = o.compute()
            return r.scale, r.zero_point
        # the range holds zero, as in the wings' observers (a softmax map of near-uniform rows is all > 0)
        return qparams_from_minmax(
            o.min.clamp(max=0), o.max.clamp(min=0), bits, symmetric=False, signed=False
        )


@dataclass(frozen=True)
class _Shared:
    """What every sensitivity task reads (shipped once per sweep: ``ray.put`` under the Ray executor)."""

    model: Any
    data: list[Any]
    layers: tuple[Layer, ...]
    cands: tuple[int, ...]
    measured: tuple[int, ...]
    approx: bool
    act_quantizer: str
    opts: dict[str, Any]


def _slots(ly: Layer) -> tuple[int, ...]:
    """The knobs (0 = ``w``, 1 = ``a``) measured for unit ``ly``."""
    from vitq_plugins.search._units import TAPS

    return tuple(slot for slot, _ in TAPS[ly.op]) if ly.op in TAPS else (0, 1)


def _measure_chunk(shared: _Shared, task: tuple[tuple[int, ...], bool]) -> dict[str, Any]:
    """Streaming sums of the layers ``task[0]`` (indices into ``shared.layers``) over every batch.

    Each layer's sums depend on that layer only (its own activation statistics, weight candidates and
    perturbed forwards), so any split of the layers into tasks gives the same numbers as one task.

    Returns:
        ``kl``, ``agree``, ``sse``, ``energy`` of shape ``(2, len(ids), #candidates)``, ``n_img``, ``n_out``.
    """
    import torch

    from vitq_plugins.evaluation.metrics import agreement_count
    from vitq_plugins.evaluation.metrics import kl_sum
    from vitq_plugins.ops.uniform import fake_quant
    from vitq_plugins.ops.uniform import qrange

    ids, progress = task
    model, data, cands, measured, approx = (
        shared.model,
        shared.data,
        shared.cands,
        shared.measured,
        shared.approx,
    )
    layers = [shared.layers[i] for i in ids]
    modules = dict(model.named_modules())
    mods = [modules[ly.fqn] for ly in layers]
    stages, where = _stages(model, layers)
    n_l, n_c = len(layers), len(cands)

    from vitq_plugins.search._units import TAPS
    from vitq_plugins.search._units import install_tap

    tapped = [i for i, ly in enumerate(layers) if ly.op in TAPS]  # ln / attn units
    lin = [i for i, ly in enumerate(layers) if ly.op not in TAPS]

    def stats_tap(i: int) -> Any:
        def fn(slot: int, idx: int, x: torch.Tensor) -> torch.Tensor:
            unit_stats[i][(slot, idx)].update(x.detach())
            return x

        return fn

    with torch.no_grad():
        # pass 1: streaming activation statistics of every layer input and every tapped tensor
        stats = {i: _ActStats(shared.act_quantizer, cands, shared.opts) for i in lin}
        unit_stats = {
            i: {
                (slot, idx): _ActStats(shared.act_quantizer, cands, shared.opts)
                for slot, count in TAPS[layers[i].op]
                for idx in range(count)
            }
            for i in tapped
        }
        hooks = [
            mods[i].register_forward_pre_hook(lambda _m, inp, s=s: s.update(inp[0].detach()))
            for i, s in stats.items()
        ]
        removers = [install_tap(modules, layers[i], stats_tap(i)) for i in tapped]
        try:
            for x in data:
                model(x)
        finally:
            for h in hooks:
                h.remove()
            for r in removers:
                r()
        act_q: dict[int, dict[int, tuple[torch.Tensor, torch.Tensor, int, int]]] = {}
        for i, s in stats.items():
            act_q[i] = {b: (*s.qparams(b), *qrange(b, False)) for b in cands}
        unit_q = {
            i: {key: {b: (*st.qparams(b), *qrange(b, False)) for b in cands} for key, st in d.items()}
            for i, d in unit_stats.items()
        }
        w_q = {i: {b: _weight_fq(mods[i].weight, b) for b in cands} for i in lin}

        kl = np.zeros((2, n_l, n_c))
        agree = np.zeros((2, n_l, n_c))
        sse = np.zeros((2, n_l, n_c))
        energy = np.zeros((2, n_l, n_c))  # local output-error energy, for the anchored estimate
        n_img = 0
        n_out = 0
        bar: Any = None
        from vitq_plugins.core.progress import bar as progress_bar

        n_runs = sum(len(_slots(ly)) for ly in layers) * len(measured)
        bar = progress_bar(len(data) * n_runs, "sensitivity", "run", show=progress, leave=False)

        def energy_hook(i: int) -> Any:
            def hook(m: Any, inp: tuple[Any, ...]) -> None:
                x = inp[0]
                for j, c in enumerate(cands):
                    dw = _apply(m, x, w_q[i][c] - m.weight)
                    scale, zp, qmin, qmax = act_q[i][c]
                    da = _apply(m, fake_quant(x, scale, zp, qmin, qmax) - x, m.weight)
                    energy[0, i, j] += float(dw.double().pow(2).sum())
                    energy[1, i, j] += float(da.double().pow(2).sum())

            return hook

        def energy_tap(i: int) -> Any:
            def fn(slot: int, idx: int, x: torch.Tensor) -> torch.Tensor:
                for j, c in enumerate(cands):
                    scale, zp, qmin, qmax = unit_q[i][(slot, idx)][c]
                    energy[slot, i, j] += float(
                        (fake_quant(x, scale, zp, qmin, qmax) - x).double().pow(2).sum()
                    )
                return x

            return fn

        def quant_tap(i: int, slot: int, c: int) -> Any:
            def fn(s: int, idx: int, x: torch.Tensor) -> torch.Tensor:
                if s != slot:
                    return x
                scale, zp, qmin, qmax = unit_q[i][(s, idx)][c]
                return fake_quant(x, scale, zp, qmin, qmax)

            return fn

        try:
            for x in data:
                inputs: list[torch.Tensor] = []
                handles = [mods[i].register_forward_pre_hook(energy_hook(i)) for i in lin] if approx else []
                removers = [install_tap(modules, layers[i], energy_tap(i)) for i in tapped] if approx else []
                try:
                    h = x
                    for st in stages:
                        inputs.append(h)
                        h = st(h)
                finally:
                    for hd in handles:
                        hd.remove()
                    for r in removers:
                        r()
                fp = h.float()
                n_img += int(x.shape[0])
                n_out += int(fp.numel())

                def score(
                    kind: int,
                    i: int,
                    j: int,
                    k: int,
                    inputs: list[torch.Tensor] = inputs,
                    fp: torch.Tensor = fp,
                ) -> None:
                    y = inputs[k]
                    for st in stages[k:]:
                        y = st(y)
                    out = y.float()
                    kl[kind, i, j] += kl_sum(fp, out)
                    agree[kind, i, j] += agreement_count(fp, out)
                    sse[kind, i, j] += float(((out - fp).double() ** 2).sum())

                for i in tapped:
                    for slot in _slots(layers[i]):
                        for j in measured:
                            remove = install_tap(modules, layers[i], quant_tap(i, slot, cands[j]))
                            try:
                                score(slot, i, j, where[i])
                            finally:
                                remove()
                    if bar is not None:
                        bar.update(len(_slots(layers[i])) * len(measured))
                for i in lin:
                    m = mods[i]
                    orig = m.weight.data
                    try:
                        for j in measured:
                            m.weight.data = w_q[i][cands[j]]
                            score(0, i, j, where[i])
                    finally:
                        m.weight.data = orig
                    for j in measured:
                        scale, zp, qmin, qmax = act_q[i][cands[j]]

                        def pre(_m: Any, inp: tuple[Any, ...], q: Any = (scale, zp, qmin, qmax)) -> Any:
                            return (fake_quant(inp[0], q[0], q[1], q[2], q[3]), *inp[1:])

                        handle = m.register_forward_pre_hook(pre)
                        try:
                            score(1, i, j, where[i])
                        finally:
                            handle.remove()
                    if bar is not None:
                        bar.update(2 * len(measured))
        finally:
            if bar is not None:
                bar.close()
    return {"kl": kl, "agree": agree, "sse": sse, "energy": energy, "n_img": n_img, "n_out": n_out}


def measure_sensitivity(
    model: nn.Module,
    batches: Iterable[Any],
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    *,
    act_quantizer: str = "minmax",
    options: Mapping[str, Any] | None = None,
    input_size: Sequence[int] | None = None,
    anchors: Sequence[int] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    sites: str = "linear",
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> SensitivityTable:
    """Measure the sensitivity table of ``model`` on image ``batches`` (see the module docstring).

    Args:
        model: the float model (not modified: a copy is perturbed).
        batches: image batches ``(B, C, H, W)`` or ``(images, labels)`` pairs (a list is made of them).
        candidates: bit-widths to try.
        act_quantizer: activation observer: ``minmax``, ``percentile`` or ``omse``.
        options: observer options (``percentile``, ``omse_stats``).
        input_size: ``(C, H, W)``; default: that of the first batch.
        anchors: candidates whose loss is measured through the network; ``None``: all of them (exact).
            The others are estimated from the nearest anchor scaled by the ratio of the layer's local
            output-error energy ``E||ΔY||²`` (second-order regime: KL and MSE grow like ``||ΔY||²``). One
            anchor at the lowest candidate cuts the cost about ``len(candidates)``-fold.
        progress: a tqdm bar on stderr (per forward run in one task, else per finished task).
        executor: where the layer tasks run (:mod:`vitq_plugins.executors`); ``None``: serially in this
            process. With ``num_workers > 1`` the layers are dealt round robin into ``2 x num_workers``
            tasks; the model and the batches are shipped once. The numbers do not depend on the split.
        sites: ``"linear"`` (Linear/Conv weights and inputs) or ``"all"`` (also every LayerNorm input, q/k/v
            and attention map; the GELU output is ``fc2``'s input knob): see
            :mod:`vitq_plugins.search._units`. The tapped tensors are simulated with ``act_quantizer``.
        ranges: site -> valid ``(min, max)`` bits (``sites="all"``; default: every site of
            :data:`~vitq_plugins.core.specs.SITES` at 1..32).

    Returns:
        The :class:`SensitivityTable` (``meta`` holds the image count and the seconds taken).

    Raises:
        VitqError: no batch, a bad candidate, or an unknown activation quantizer.
        SweepError: a task failed for good (named by its layers; a :class:`VitqError`).

    Example:
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> t = measure_sensitivity(vit_test_tiny(), [torch.randn(8, 3, 32, 32)], (8, 4))  # doctest: +SKIP
    """

    start = time.perf_counter()
    cands = tuple(sorted({int(c) for c in candidates}, reverse=True))
    if not cands or any(not 2 <= c <= 16 for c in cands):
        raise VitqError(f"candidates {list(candidates)!r} are invalid: expected bit-widths in 2..16")
    anchor_set = set(cands) if anchors is None else {int(c) for c in anchors}
    if not anchor_set or not anchor_set <= set(cands):
        raise VitqError(
            f"anchors {sorted(anchor_set)!r} are invalid: expected a non-empty subset of the candidates {list(cands)}"
        )
    approx = anchor_set != set(cands)
    from vitq_plugins.search._units import SITE_MODES

    if sites not in SITE_MODES:
        raise VitqError(f"sites {sites!r} is invalid: valid values are {', '.join(SITE_MODES)}")
    if act_quantizer not in ACT_OBSERVERS:
        raise VitqError(
            f"activation quantizer {act_quantizer!r} cannot be simulated for sensitivity "
            f"(supported: {', '.join(ACT_OBSERVERS)})"
        )
    data = [b[0] if isinstance(b, tuple | list) else b for b in batches]
    if not data:
        raise VitqError("sensitivity needs at least one batch of images")
    model = copy.deepcopy(model).eval()
    size = tuple(input_size) if input_size is not None else tuple(int(v) for v in data[0].shape[1:])
    layers, float_params, matmul = find_layers(model, size)
    if sites == "all":
        from vitq_plugins.core.specs import SITES
        from vitq_plugins.evaluation.macs import count_macs
        from vitq_plugins.search._units import all_site_units

        if ranges is None:
            ranges = dict.fromkeys(SITES, (1, 32))
        layers = all_site_units(model, layers, count_macs(model, size), size, ranges)
    n_l, n_c = len(layers), len(cands)
    measured = [j for j, c in enumerate(cands) if c in anchor_set]
    shared = _Shared(
        model, data, tuple(layers), cands, tuple(measured), approx, act_quantizer, dict(options or {})
    )
    if executor is None or executor.num_workers <= 1:
        chunks = [tuple(range(n_l))]  # one task, as before the executor seam
    else:
        from vitq_plugins.executors import split_round_robin

        chunks = split_round_robin(n_l, 2 * executor.num_workers)
    if executor is None:
        from vitq_plugins.executors import get_executor

        executor = get_executor("serial")
    inner = progress and len(chunks) == 1
    outcome = executor.map(
        _measure_chunk,
        shared,
        [(ids, inner) for ids in chunks],
        labels=[f"layers {', '.join(layers[i].fqn for i in ids)}" for ids in chunks],
        desc="sensitivity",
        progress=progress and not inner,
    )
    parts = outcome.unwrap("sensitivity")
    kl = np.zeros((2, n_l, n_c))
    agree = np.zeros((2, n_l, n_c))
    sse = np.zeros((2, n_l, n_c))
    energy = np.zeros((2, n_l, n_c))
    for ids, part in zip(chunks, parts, strict=True):
        for name, arr in (("kl", kl), ("agree", agree), ("sse", sse), ("energy", energy)):
            arr[:, list(ids), :] = part[name]
    n_img = int(parts[0]["n_img"])
    n_out = int(parts[0]["n_out"])
    disagree = n_img - agree
    if approx:
        for arr in (kl, disagree, sse):
            _fill_from_anchors(arr, energy, measured)
    losses = {
        "kl": kl / n_img,
        "agreement": disagree / n_img,
        "mse": sse / max(n_out, 1),
    }
    meta = {
        "n_images": n_img,
        "seconds": time.perf_counter() - start,
        "act_quantizer": act_quantizer,
        "baseline": "float",
        "anchors": [cands[j] for j in measured],
        "input_size": list(size),
        "sites": sites,
    }
    return SensitivityTable(
        tuple(layers),
        cands,
        {m: {"w": losses[m][0], "a": losses[m][1]} for m in METRICS},
        float_params,
        matmul,
        meta,
    )
