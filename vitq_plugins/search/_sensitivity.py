"""Per-layer sensitivity tables, cached on disk: :func:`sensitivity_table` resolves the model and data, applies
the recipe's transforms, measures (:mod:`._measure`) and stores the table as JSON under a key of everything
that changes it (weights digest, data, candidates, options, engine version).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.core.errors import VitqError
from vitq_plugins.provenance import weights_digest
from vitq_plugins.search._table import SensitivityTable

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.executors import Executor

from vitq_plugins.search._measure import ACT_OBSERVERS
from vitq_plugins.search._measure import DEFAULT_CANDIDATES
from vitq_plugins.search._measure import measure_sensitivity

__all__ = ["CACHE_ENV", "cache_path", "default_cache_dir", "sensitivity_table", "site_ranges"]

#: environment variable overriding the cache directory (default ``~/.cache/vitq``)
CACHE_ENV = "VITQ_CACHE_DIR"
_ENGINE_VERSION = 2


def default_cache_dir() -> Path:
    """``$VITQ_CACHE_DIR`` or ``~/.cache/vitq``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "vitq"


def site_ranges(quantizers: Mapping[str, str], host: PluginHost) -> dict[str, tuple[int, int]]:
    """Site -> the bits the recipe's quantizer there supports in *every* wing (its range narrowed by each
    ``QuantizerSpec.wing_bits``), so that a searched config runs on Brevitas and FX alike."""
    out: dict[str, tuple[int, int]] = {}
    for site, name in quantizers.items():
        spec = host.quantizers.get(name)
        lo, hi = spec.min_bits, spec.max_bits
        for wlo, whi in spec.wing_bits.values():
            lo, hi = max(lo, wlo), min(hi, whi)
        out[site] = (lo, hi)
    return out


def cache_path(cache_dir: str | Path, key: Mapping[str, Any]) -> Path:
    """``<cache_dir>/sensitivity-<model>-<sha256 of the key, 16 hex>.json``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key.get("model", "model")))[:60]
    return Path(cache_dir) / f"sensitivity-{safe}-{digest}.json"


def sensitivity_table(
    model: str | Path | nn.Module,
    recipe: str = "minmax",
    *,
    data: str | Path = "cifar10_bundled",
    n_calib: int = 256,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    seed: int = 0,
    batch_size: int = 128,
    options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    host: PluginHost | None = None,
    progress: bool = False,
    arch: str | None = None,
    pretrained: bool = True,
    anchors: Sequence[int] | None = None,
    executor: Executor | None = None,
    sites: str = "linear",
) -> SensitivityTable:
    """Resolve model, recipe and data, then measure (or load from the on-disk cache) the sensitivity table.

    The data is the *calibration* split of ``data`` (held out from the evaluation split). The cache file
    is keyed by the model name and a digest of its weights, the data, ``n_calib``, ``seed``, the recipe (its
    weight/act quantizers, transforms and ``options``) and the candidates; it is JSON, never a pickle.

    Args:
        model: registered/timm name, checkpoint path or ``nn.Module``.
        recipe: registered recipe; its transforms are applied and its ``act`` quantizer simulated.
        data: dataset name or path (see :mod:`vitq_plugins.data.resolve`).
        n_calib: images to measure on.
        candidates: bit-widths.
        seed: seed of the image subset.
        batch_size: images per batch.
        options: recipe options (as in ``QuantConfig.options``).
        cache_dir: cache directory (default :func:`default_cache_dir`).
        use_cache: read and write the cache.
        host: plugin host.
        progress: tqdm bar on stderr.
        arch: architecture to load a checkpoint into (see :func:`vitq_plugins.models.resolve.resolve_model`).
        pretrained: load pretrained weights for registered/timm names.
        anchors: candidates measured through the network (``None``: all); see :func:`measure_sensitivity`.
        executor: where the measurement runs (``None``: serially); not part of the cache key, since the
            numbers do not depend on it.
        sites: ``"linear"`` (Linear/Conv weights and inputs; the other activation sites stay at the
            config's defaults) or ``"all"`` (fully quantized: every activation site the recipe quantizes is
            a knob, each with the bit range its quantizer supports in every wing); see
            :mod:`vitq_plugins.search._space`.

    Returns:
        The table; ``meta["cache"]`` is ``"hit"`` or ``"miss"`` and ``meta["cache_path"]`` the file.

    Raises:
        VitqError: unknown model/recipe/dataset, a recipe whose weight/act quantizers cannot be simulated,
            or bad sizes.
    """
    from vitq_plugins.data.loader import make_loader
    from vitq_plugins.data.resolve import resolve_dataset
    from vitq_plugins.data.transforms import transform_for_model
    from vitq_plugins.models.resolve import resolve_model

    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    from vitq_plugins.search._units import SITE_MODES

    if sites not in SITE_MODES:
        raise VitqError(f"sites {sites!r} is invalid: valid values are {', '.join(SITE_MODES)}")
    spec = host.recipes.get(recipe)
    wq = spec.quantizers.get("weight", "")
    aq = spec.quantizers.get("act", "")
    if wq != "minmax" or aq not in ACT_OBSERVERS:
        raise VitqError(
            f"recipe {recipe!r} quantizes Linear weights with {wq or 'nothing'!r} and inputs with "
            f"{aq or 'nothing'!r}; sensitivity simulates weight 'minmax' and act {', '.join(ACT_OBSERVERS)}"
        )
    fp_model, model_name = resolve_model(model, host=host, pretrained=pretrained, arch=arch)
    transform = transform_for_model(fp_model)
    calib_ds, data_name = resolve_dataset(data, "calib", transform=transform, host=host)
    loader = make_loader(calib_ds, batch_size, n_calib, seed, what="--calib")
    cands = tuple(sorted({int(c) for c in candidates}, reverse=True))
    opts = dict(options or {})
    key = {
        "engine": _ENGINE_VERSION,
        "model": model_name,
        "weights": weights_digest(fp_model),
        "data": data_name,
        "n_calib": loader.num_images,
        "seed": seed,
        "recipe": recipe,
        "quantizers": {"weight": wq, "act": aq},
        "transforms": list(spec.transforms),
        "options": opts,
        "candidates": list(cands),
        "anchors": sorted(set(cands) if anchors is None else {int(c) for c in anchors}, reverse=True),
    }
    if sites != "linear":  # linear tables keep their earlier cache key
        key["sites"] = sites
    path = cache_path(cache_dir if cache_dir is not None else default_cache_dir(), key)
    if use_cache and path.is_file():
        try:
            table = SensitivityTable.load(path)
        except VitqError:
            table = None
        if table is not None and table.meta.get("key") == key:
            return SensitivityTable(
                table.layers,
                table.candidates,
                table.losses,
                table.float_params,
                table.matmul_macs,
                {**table.meta, "cache": "hit", "cache_path": str(path)},
            )
    batches = list(loader.images())
    work = fp_model
    if spec.transforms:
        from vitq_plugins.transforms import apply_recipe_transforms

        work = apply_recipe_transforms(copy.deepcopy(fp_model), spec, opts, batches, host)
    table = measure_sensitivity(
        work,
        batches,
        cands,
        act_quantizer=aq,
        options=opts,
        anchors=anchors,
        progress=progress,
        executor=executor,
        sites=sites,
        ranges=site_ranges(spec.quantizers, host),
    )
    meta = {**table.meta, "key": key, "model": model_name, "data": data_name, "recipe": recipe, "seed": seed}
    table = SensitivityTable(
        table.layers, table.candidates, table.losses, table.float_params, table.matmul_macs, meta
    )
    if use_cache:
        table.save(path)
    return SensitivityTable(
        table.layers,
        table.candidates,
        table.losses,
        table.float_params,
        table.matmul_macs,
        {**meta, "cache": "miss", "cache_path": str(path) if use_cache else ""},
    )
