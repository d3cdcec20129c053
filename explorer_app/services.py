"""The explorer's calls into ``vitq_plugins``: the same functions the ``vitq`` CLI uses.

* model: :func:`vitq_plugins.models.resolve.resolve_model` (cached with ``st.cache_resource``; never
  modified: the backends quantize a copy, and the LayerNorm statistics run on a copy);
* data: :func:`vitq_plugins.data.resolve.resolve_dataset` with :func:`make_loader` (cached);
* evaluation and export: :mod:`explorer_app.evaluations` (:func:`vitq_plugins.pipeline.run_quantize`, cached);
* sensitivity: :func:`vitq_plugins.search.sensitivity_table` (``vitq sensitivity``; its own
  disk cache), search: :func:`vitq_plugins.search.run_search` and ``to_quant_config`` (``vitq search``);
* LayerNorm input ranges: :mod:`explorer_app.ln_stats`.

Heavy calls take :data:`HEAVY_LOCK`, so two sessions never run two quantizations at once on 2 cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import hashlib
from pathlib import Path
import platform
import threading
from typing import TYPE_CHECKING
from typing import Any

import streamlit as st

from explorer_app.state import Settings
from vitq_plugins.core.errors import VitqError
from vitq_plugins.provenance import git_commit
from vitq_plugins.provenance import weights_digest

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.search import Budget
    from vitq_plugins.search import Layer
    from vitq_plugins.search import SearchResult
    from vitq_plugins.search import SensitivityTable

__all__ = [
    "HEAVY_LOCK",
    "FPModel",
    "act_quantizers",
    "cache_dir",
    "get_host",
    "load_dataset",
    "load_fp_model",
    "provenance",
    "recipe_quantizers",
    "save_upload",
    "search",
    "sensitivity",
]

HEAVY_LOCK = threading.Lock()
REPO = Path(__file__).resolve().parents[1]
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


# --- export and provenance ------------------------------------------------------------------------


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
