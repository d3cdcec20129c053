"""The explorer's calls into ``vitq_plugins``: the same functions the ``vitq`` CLI uses.

* model: :func:`vitq_plugins.models.resolve.resolve_model` (cached with ``st.cache_resource``; never
  modified: the backends quantize a copy, and the LayerNorm statistics run on a copy);
* data: :func:`vitq_plugins.data.resolve.resolve_dataset` with :func:`make_loader` (cached);
* evaluation: :func:`vitq_plugins.pipeline.run_quantize` (``vitq quantize``), cached by
  (settings, weights digest, config JSON) in the session and as JSON files on disk, so a batch of
  evaluations that was interrupted resumes where it stopped;
* sensitivity: :func:`vitq_plugins.search.sensitivity_table` (``vitq sensitivity``; its own
  disk cache), search: :func:`vitq_plugins.search.run_search` and ``to_quant_config`` (``vitq search``);
* LayerNorm input ranges: :class:`vitq_plugins.papers.fqvit.PTSObserver` on forward pre-hooks (the only helper
  here that is not a library function: the library has no "collect LayerNorm inputs" call);
* export: :func:`run_quantize` with ``export="qonnx"|"qcdq"|"int-onnx"`` (``vitq quantize --export``).

Heavy calls take :data:`HEAVY_LOCK`, so two sessions never run two quantizations at once on 2 cores.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import MutableMapping
import copy
from dataclasses import dataclass
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
import platform
import tempfile
import threading
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import streamlit as st

from explorer_app.state import Settings
from explorer_app.state import digest
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.provenance import git_commit
from vitq_plugins.provenance import weights_digest

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.evaluation import EvalResult
    from vitq_plugins.search import Budget
    from vitq_plugins.search import Layer
    from vitq_plugins.search import SearchResult
    from vitq_plugins.search import SensitivityTable

__all__ = [
    "HEAVY_LOCK",
    "FPModel",
    "LayerNormStats",
    "act_quantizers",
    "fp_evaluation",
    "cache_dir",
    "evaluate",
    "evaluate_many",
    "export_model",
    "get_host",
    "layernorm_stats",
    "load_dataset",
    "load_fp_model",
    "provenance",
    "recipe_quantizers",
    "resume_results",
    "save_upload",
    "search",
    "sensitivity",
    "uniform_configs",
]

HEAVY_LOCK = threading.Lock()
REPO = Path(__file__).resolve().parents[1]
#: the uniform baselines of the Trade-offs chart: label -> (w_bits, a_bits)
UNIFORM: dict[str, tuple[int, int]] = {"W8A8": (8, 8), "W6A6": (6, 6), "W4A8": (4, 8), "W4A4": (4, 4)}
_RECORD_VERSION = 1
#: executor of :func:`evaluate_many` (``serial`` or ``ray``; see :mod:`vitq_plugins.executors`)
EXECUTOR_ENV = "VITQ_EXECUTOR"


@st.cache_resource(show_spinner=False)
def get_host() -> PluginHost:
    """The process-wide plugin host (built-ins, then entry points)."""
    from vitq_plugins.core.manager import get_host as _get_host

    return _get_host()


def cache_dir() -> Path:
    """``$VITQ_CACHE_DIR/explorer`` (default ``~/.cache/vitq/explorer``)."""
    from vitq_plugins.search import default_cache_dir

    return default_cache_dir() / "explorer"


# --- model and data -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FPModel:
    """The FP model and what the pages need to know about it (computed once per model).

    Args:
        module: the float model (shared: never modify it).
        name: the name it was resolved from.
        input_size: ``(C, H, W)`` of one image.
        layers: the quantizable layers (FQN, params, MACs) as the search sees them.
        float_params: parameters that stay float.
        matmul_macs: MACs of the attention matmuls ``{"qk": .., "av": ..}``.
        macs: MACs per layer key (:func:`vitq_plugins.evaluation.count_macs`).
        weights_digest: sha256 (16 hex) of the weights.
        n_params: parameter count.
        fp_size_mb: FP weight size.
        layernorms: FQNs of the LayerNorm modules.
    """

    module: nn.Module
    name: str
    input_size: tuple[int, int, int]
    layers: tuple[Layer, ...]
    float_params: int
    matmul_macs: Mapping[str, int]
    macs: Mapping[str, int]
    weights_digest: str
    n_params: int
    fp_size_mb: float
    layernorms: tuple[str, ...]

    @property
    def module_names(self) -> list[str]:
        """Every module FQN (for config validation)."""
        return [n for n, _ in self.module.named_modules()]


@st.cache_resource(show_spinner=False, max_entries=4)
def load_fp_model(model: str, pretrained: bool = True, arch: str | None = None) -> FPModel:
    """Resolve ``model`` like ``vitq quantize --model`` does and describe it.

    Raises:
        VitqError: unknown name, bad checkpoint, weights that cannot be loaded.
    """
    import torch

    from vitq_plugins.data.transforms import transform_for_model
    from vitq_plugins.evaluation.macs import count_macs
    from vitq_plugins.evaluation.size import weight_size_mb
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.search import find_layers

    module, name = resolve_model(model, host=get_host(), pretrained=pretrained, arch=arch)
    module.eval()
    size = transform_for_model(module).input_size
    if size is None:
        raise VitqError(
            f"model {name!r} has no input size in its data config; pass a timm model or a ViT checkpoint"
        )
    layers, float_params, matmul = find_layers(module, size)
    if not layers:
        raise VitqError(f"model {name!r} has no Linear/Conv layer to quantize")
    return FPModel(
        module=module,
        name=name,
        input_size=(int(size[0]), int(size[1]), int(size[2])),
        layers=tuple(layers),
        float_params=int(float_params),
        matmul_macs=dict(matmul),
        macs=count_macs(module, size),
        weights_digest=weights_digest(module, 16),
        n_params=int(sum(p.numel() for p in module.parameters())),
        fp_size_mb=float(weight_size_mb(module)),
        layernorms=tuple(n for n, m in module.named_modules() if isinstance(m, torch.nn.LayerNorm)),
    )


@st.cache_resource(show_spinner=False, max_entries=8)
def load_dataset(data: str, role: str, model: str, pretrained: bool = True, arch: str | None = None) -> Any:
    """The ``role`` (``calib``/``eval``) split of ``data`` with the model's transform, and its name."""
    from vitq_plugins.data.resolve import resolve_dataset
    from vitq_plugins.data.transforms import transform_for_model

    fp = load_fp_model(model, pretrained, arch)
    return resolve_dataset(data, role, transform=transform_for_model(fp.module), host=get_host())


def save_upload(name: str, data: bytes) -> Path:
    """Store an uploaded checkpoint under the cache as ``<sha256>.<suffix>`` (loaded with weights_only)."""
    from vitq_plugins.models.resolve import CHECKPOINT_SUFFIXES

    suffix = Path(name).suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise VitqError(
            f"uploaded file {name!r} is not a checkpoint: expected one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    folder = cache_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def recipe_quantizers(recipe: str) -> dict[str, str]:
    """Site -> quantizer of a registered recipe."""
    return dict(get_host().recipes.get(recipe).quantizers)


def act_quantizers(backend: str) -> list[str]:
    """Quantizers that can quantize a layer's input activation (``act`` site) on ``backend``."""
    return [n for n, q in get_host().quantizers.items() if "act" in q.sites and backend in q.backends]


# --- evaluation -----------------------------------------------------------------------------------
def eval_key(settings: Settings, fp: FPModel, cfg: QuantConfig) -> str:
    """The cache key of one evaluation: settings that matter, the weights and the config JSON."""
    return digest({"settings": settings.eval_part(), "weights": fp.weights_digest, "config": cfg.to_dict()})


def _record_path(key: str) -> Path:
    return cache_dir() / "results" / f"{key}.json"


def _write_record(record: Mapping[str, Any]) -> None:
    path = _record_path(str(record["key"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, default=str) + "\n")
    tmp.replace(path)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        rec: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if rec.get("version") == _RECORD_VERSION else None


def resume_results(settings: Settings, fp: FPModel, results: MutableMapping[str, Any]) -> int:
    """Add the on-disk evaluations made with these settings and weights to ``results``; how many were added."""
    folder = cache_dir() / "results"
    if not folder.is_dir():
        return 0
    want = {"settings": settings.eval_part(), "weights": fp.weights_digest}
    added = 0
    for path in sorted(folder.glob("*.json")):
        if path.stem in results:
            continue
        rec = _read_record(path)
        if rec is not None and rec.get("context") == want:
            results[path.stem] = rec
            added += 1
    return added


def evaluate(
    settings: Settings,
    fp: FPModel,
    cfg: QuantConfig,
    results: MutableMapping[str, Any],
    *,
    label: str,
    source: str,
) -> tuple[dict[str, Any], bool]:
    """Quantize and evaluate ``cfg`` with :func:`vitq_plugins.pipeline.run_quantize` unless cached.

    Returns:
        The record (``key, label, source, config, result, ...``) and whether it came from a cache.

    Raises:
        VitqError: a config that does not fit the model, bad data sizes, a failing backend.
    """

    key, cached = _cached(settings, fp, cfg, results)
    if cached is not None:
        return cached, True
    with HEAVY_LOCK:
        result = _run_quantize(settings, fp, cfg)
    return _store(settings, fp, cfg, result, results, key=key, label=label, source=source), False


def _cached(
    settings: Settings, fp: FPModel, cfg: QuantConfig, results: MutableMapping[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """``cfg``'s evaluation key and a copy of its record from the session or the disk cache (``None``: not
    evaluated yet); a record read from disk is kept in ``results``."""
    key = eval_key(settings, fp, cfg)
    record = results.get(key)
    if record is None:
        record = _read_record(_record_path(key))
        if record is not None:
            results[key] = record
    return key, None if record is None else dict(record)


def _store(
    settings: Settings,
    fp: FPModel,
    cfg: QuantConfig,
    result: dict[str, Any],
    results: MutableMapping[str, Any],
    *,
    key: str,
    label: str,
    source: str,
) -> dict[str, Any]:
    """Write the record of one evaluation to disk and to ``results``; return a copy."""
    result["model"] = settings.model
    record = {
        "version": _RECORD_VERSION,
        "key": key,
        "label": label,
        "source": source,
        "config": cfg.to_dict(),
        "context": {"settings": settings.eval_part(), "weights": fp.weights_digest},
        "result": result,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    _write_record(record)
    results[key] = record
    return dict(record)


def evaluate_many(
    settings: Settings,
    fp: FPModel,
    configs: Mapping[str, QuantConfig],
    results: MutableMapping[str, Any],
    *,
    source: str,
    on_done: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate several configs as one sweep on the executor named by ``$VITQ_EXECUTOR`` (``serial``, the
    default, or ``ray``: ``$RAY_ADDRESS`` or a local cluster); cached ones are skipped, so an interrupted
    run resumes. The model and the FP logits are shipped once; records are the same as :func:`evaluate`'s.

    Returns:
        The records in ``configs`` order.

    Raises:
        VitqError: an unknown executor; :class:`~vitq_plugins.executors.SweepError` naming the configs that
            failed (the others are recorded first).
    """
    from vitq_plugins.executors import get_executor
    from vitq_plugins.pipeline import quantize_sweep

    records: dict[str, dict[str, Any]] = {}
    todo: dict[str, tuple[str, QuantConfig]] = {}
    for label, cfg in configs.items():
        key, cached = _cached(settings, fp, cfg, results)
        if cached is not None:
            records[label] = cached
        else:
            todo[label] = (key, cfg)
    if on_done is not None:
        on_done(len(records), len(configs))
    if todo:
        base = len(records)
        with HEAVY_LOCK, get_executor(os.environ.get(EXECUTOR_ENV, "serial")) as executor:
            outcome = quantize_sweep(
                fp.module,
                [{"backend": settings.backend, "config": cfg} for _, cfg in todo.values()],
                executor=executor,
                labels=list(todo),
                fp_eval=fp_evaluation(settings, fp),
                host=get_host(),
                on_done=None if on_done is None else lambda k, _n: on_done(base + k, len(configs)),
                data=settings.data,
                n_calib=settings.n_calib,
                n_eval=settings.n_eval_or_none,
                seed=settings.seed,
                batch_size=settings.batch_size,
            )
        for (label, (key, cfg)), res in zip(todo.items(), outcome.results, strict=True):
            if res is not None:
                res.pop("task_s", None)
                records[label] = _store(settings, fp, cfg, res, results, key=key, label=label, source=source)
        outcome.unwrap("evaluate " + ", ".join(todo))
    return [records[label] for label in configs]


def uniform_configs(settings: Settings) -> dict[str, QuantConfig]:
    """The uniform baselines (W8A8, W6A6, W4A8, W4A4) with the settings' recipe and attention bits."""
    return {
        label: QuantConfig(settings.recipe, w, a, settings.attn_bits) for label, (w, a) in UNIFORM.items()
    }


# --- sensitivity and search -----------------------------------------------------------------------
def sensitivity(
    settings: Settings, fp: FPModel, options: Mapping[str, Any] | None = None
) -> SensitivityTable:
    """The per-layer sensitivity table of ``vitq sensitivity`` (cached on disk by the library)."""
    from vitq_plugins.search import sensitivity_table

    with HEAVY_LOCK:
        return sensitivity_table(
            fp.module,
            settings.recipe,
            data=settings.data,
            n_calib=settings.sens_calib,
            candidates=settings.candidates,
            seed=settings.seed,
            batch_size=settings.batch_size,
            options=dict(options or {}),
            host=get_host(),
            progress=False,
        )


def search(
    table: SensitivityTable,
    budget: Budget,
    *,
    method: str,
    metric: str,
    tie: str,
    pins: list[str],
    base_a_bits: int,
    attn_bits: int,
) -> SearchResult:
    """``vitq search``'s greedy sweep and ILP under one budget."""
    from vitq_plugins.search import run_search

    return run_search(
        table,
        [budget],
        method=method,
        metric=metric,
        tie=tie,
        pins=pins,
        base_a_bits=base_a_bits,
        attn_bits=attn_bits,
    )


# --- LayerNorm input ranges (why PTS exists) ------------------------------------------------------
@dataclass(frozen=True)
class LayerNormStats:
    """Per-channel statistics of one LayerNorm's input over the calibration images.

    Args:
        fqn: the LayerNorm.
        min: per-channel minimum.
        max: per-channel maximum.
        alpha: the PTS exponent each channel gets (scale ``s * 2^alpha``).
        mse_tensor: per-channel quantization MSE with one layer-wide scale (``alpha = K`` everywhere).
        mse_pts: per-channel quantization MSE with the PTS scales.
        bits: code bits.
        k: largest exponent ``K``.
    """

    fqn: str
    min: np.ndarray
    max: np.ndarray
    alpha: np.ndarray
    mse_tensor: np.ndarray
    mse_pts: np.ndarray
    bits: int
    k: int

    @property
    def range_ratio(self) -> float:
        """Largest over smallest channel range (how much the channels differ)."""
        r = self.max - self.min
        return float(r.max() / max(float(r.min()), 1e-12))


def layernorm_stats(
    fp: FPModel,
    batches: list[Any],
    *,
    bits: int = 8,
    k: int = 3,
    progress: Callable[[float], None] | None = None,
) -> dict[str, LayerNormStats]:
    """:class:`PTSObserver` statistics of every LayerNorm input (on a copy of the model)."""
    import torch

    from vitq_plugins.papers.fqvit.pts import PTSObserver

    with HEAVY_LOCK:
        model = copy.deepcopy(fp.module).eval()
        mods = dict(model.named_modules())
        observers: dict[str, PTSObserver] = {}
        handles = []
        for name in fp.layernorms:
            ln = mods[name]
            shape = getattr(ln, "normalized_shape", (0,))
            obs = PTSObserver(int(shape[-1]), bits=bits, k=k, stats="last")
            observers[name] = obs
            handles.append(ln.register_forward_pre_hook(lambda _m, inp, o=obs: o.update(inp[0])))
        try:
            with torch.no_grad():
                for i, x in enumerate(batches):
                    model(x)
                    if progress is not None:
                        progress((i + 1) / len(batches))
        finally:
            for h in handles:
                h.remove()
        out: dict[str, LayerNormStats] = {}
        for name, obs in observers.items():
            err = obs.candidate_errors().numpy()
            params = obs.compute()
            out[name] = LayerNormStats(
                fqn=name,
                min=obs.min.numpy(),
                max=obs.max.numpy(),
                alpha=params.alpha.numpy(),
                mse_tensor=err[:, -1],
                mse_pts=err.min(axis=1),
                bits=bits,
                k=k,
            )
        return out


#: FP evaluations (with logits) per (weights, data, n_eval, seed, batch size); a few kB each
_FP_EVALS: dict[tuple[Any, ...], EvalResult] = {}


def fp_evaluation(settings: Settings, fp: FPModel) -> EvalResult:
    """The FP model's evaluation on the app's evaluation images, computed once and reused by every config."""
    from vitq_plugins.pipeline import fp_evaluation as _fp_evaluation

    key = (fp.weights_digest, settings.data, settings.n_eval_or_none, settings.seed, settings.batch_size)
    if key not in _FP_EVALS:
        _FP_EVALS[key] = _fp_evaluation(
            fp.module,
            settings.data,
            settings.n_eval_or_none,
            settings.seed,
            get_host(),
            batch_size=settings.batch_size,
        )
    return _FP_EVALS[key]


def _run_quantize(settings: Settings, fp: FPModel, cfg: QuantConfig, **extra: Any) -> dict[str, Any]:
    """One :func:`vitq_plugins.pipeline.run_quantize` call with the app's settings (the CLI's code path),
    against the cached FP evaluation."""
    from vitq_plugins.pipeline import run_quantize

    return run_quantize(
        fp.module,
        backend=settings.backend,
        config=cfg,
        data=settings.data,
        n_calib=settings.n_calib,
        n_eval=settings.n_eval_or_none,
        seed=settings.seed,
        host=get_host(),
        progress=False,
        batch_size=settings.batch_size,
        fp_eval=fp_evaluation(settings, fp),
        **extra,
    )


# --- export and provenance ------------------------------------------------------------------------
def export_model(settings: Settings, fp: FPModel, cfg: QuantConfig, fmt: str) -> tuple[bytes, dict[str, Any]]:
    """Quantize ``cfg`` and export it as ``fmt`` (``qonnx``/``qcdq``/``int-onnx``) with ``run_quantize``; the
    file's bytes.

    Raises:
        VitqError: the backend cannot export ``fmt``, or the export failed.
    """

    with HEAVY_LOCK, tempfile.TemporaryDirectory(prefix="vitq-export-") as tmp:
        result = _run_quantize(settings, fp, cfg, export=fmt, out_dir=Path(tmp) / "out")
        path = result.get("export_path")
        if not path or not Path(path).is_file():
            raise VitqError(f"backend {settings.backend!r} wrote no {fmt} file")
        data = Path(path).read_bytes()
    result["model"] = settings.model
    return data, result


@st.cache_resource(show_spinner=False)
def provenance() -> dict[str, Any]:
    """Versions, platform and the git commit (for the results CSV)."""
    import plotly

    from vitq_plugins.models.reference import reference_metadata
    from vitq_plugins.pipeline import versions

    meta = reference_metadata()
    return {
        **{f"{k}_version": v for k, v in versions().items()},
        "streamlit_version": st.__version__,
        "plotly_version": plotly.__version__,
        "python_version": platform.python_version(),
        "commit": git_commit(REPO),
        "reference_weights_commit": meta.get("commit"),
    }
