"""The explorer's evaluations: one :func:`vitq_plugins.pipeline.run_quantize` per config against the FP
evaluation, cached by (settings, weights digest, config JSON) in the session and as JSON records on disk, so a
batch of evaluations that was interrupted resumes where it stopped. Heavy calls take
:data:`explorer_app.services.HEAVY_LOCK`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import MutableMapping
import datetime as _dt
import json
import os
from pathlib import Path
import tempfile
from typing import TYPE_CHECKING
from typing import Any

from explorer_app.services import EXECUTOR_ENV
from explorer_app.services import HEAVY_LOCK
from explorer_app.services import FPModel
from explorer_app.services import cache_dir
from explorer_app.services import get_host
from explorer_app.state import Settings
from explorer_app.state import digest
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from vitq_plugins.evaluation import EvalResult

__all__ = [
    "UNIFORM",
    "eval_key",
    "evaluate",
    "evaluate_many",
    "export_model",
    "fp_evaluation",
    "resume_results",
    "uniform_configs",
]


#: the uniform baselines of the Trade-offs chart: label -> (w_bits, a_bits)
UNIFORM: dict[str, tuple[int, int]] = {"W8A8": (8, 8), "W6A6": (6, 6), "W4A8": (4, 8), "W4A4": (4, 4)}


_RECORD_VERSION = 1


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
