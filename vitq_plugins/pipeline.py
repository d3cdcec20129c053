"""The quantize-and-evaluate pipeline behind ``vitq quantize``/``vitq eval``, the explorer and benchmarks.

:func:`run_quantize` validates everything it can before any work (names, bits, the config against the
model's module FQNs, data sizes, the output directory), then: evaluates the FP model (keeping its
logits), quantizes a copy through the backend registry with calibration batches, evaluates the
quantized model against the FP logits, computes size/MACs/BOPs, optionally exports, and returns a flat
JSON-able dict. With ``out_dir`` it writes ``results.json``, ``config.json`` and the export into a
hidden temporary directory beside ``out_dir`` and renames it into place at the end, so a failure
leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
import importlib.metadata as md
import inspect
import json
import math
import os
from pathlib import Path
import secrets
import shutil
import tempfile
import time
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.backend import EXPORT_FORMATS
from vitq_plugins.core.backend import Backend
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.progress import bar as progress_bar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.data.loader import BatchLoader
    from vitq_plugins.evaluation.evaluate import EvalResult
    from vitq_plugins.executors import Executor
    from vitq_plugins.executors import SweepOutcome
    from vitq_plugins.sites import Site

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BITS",
    "DEFAULT_DATA",
    "EXPORT_FILES",
    "build_config",
    "fp_evaluation",
    "load_backend",
    "quantize_sweep",
    "run_evaluate",
    "run_quantize",
    "split_loader",
    "versions",
]

DEFAULT_DATA = "cifar10_bundled"
DEFAULT_BITS = 8
DEFAULT_BATCH_SIZE = 100
#: export format -> file name inside ``out_dir``
EXPORT_FILES: dict[str, str] = {
    "qonnx": "model_qonnx.onnx",
    "qcdq": "model_qcdq.onnx",
    "int-onnx": "model_int.onnx",
}
RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"


def versions() -> dict[str, str | None]:
    """Versions of torch, timm, brevitas (``None`` if absent; read without importing it) and vitq."""
    import timm
    import torch

    import vitq_plugins

    try:
        brevitas: str | None = md.version("brevitas")
    except md.PackageNotFoundError:
        brevitas = None
    return {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "brevitas": brevitas,
        "vitq": vitq_plugins.__version__,
    }


def build_config(
    recipe: str | None,
    w_bits: int | None,
    a_bits: int | None,
    attn_bits: int | None,
    config: QuantConfig | str | Path | None,
) -> QuantConfig:
    """The config of a run: ``config`` (object or JSON file) or one built from recipe and bits.

    Bits left ``None`` default to 8. With ``config``, any recipe/bits also given must agree with it.

    Raises:
        ConfigError: no recipe and no config, an unreadable config, or a flag contradicting the config.
    """
    given = {"recipe": recipe, "w_bits": w_bits, "a_bits": a_bits, "attn_bits": attn_bits}
    if config is None:
        if recipe is None:
            raise ConfigError(
                "a recipe is required (--recipe NAME) unless a config file is given (--config FILE)"
            )
        return QuantConfig(
            recipe,
            DEFAULT_BITS if w_bits is None else w_bits,
            DEFAULT_BITS if a_bits is None else a_bits,
            DEFAULT_BITS if attn_bits is None else attn_bits,
        )
    cfg = config if isinstance(config, QuantConfig) else QuantConfig.load(config)
    for key, value in given.items():
        if value is not None and value != getattr(cfg, key):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} {value} contradicts the config's {key}={getattr(cfg, key)!r}; drop {flag} or edit the config"
            )
    return cfg


def load_backend(name: str, host: PluginHost) -> Backend:
    """The backend registered as ``name``, checked against the :class:`Backend` protocol.

    Raises:
        UnknownNameError: no such backend (close matches listed).
        VitqError: it cannot be imported or lacks the protocol's methods.
    """
    impl = host.backends.get(name).load()
    if not isinstance(impl, Backend):
        missing = [m for m in ("name", "quantize", "sites", "export", "info") if not hasattr(impl, m)]
        raise VitqError(
            f"backend {name!r} does not implement the Backend protocol (missing: {', '.join(missing)})"
        )
    return impl


def _plan_kwarg(impl: Any, plan: Mapping[str, Site]) -> dict[str, Any]:
    """``{"plan": plan}`` for a wing whose ``quantize`` takes the planned sites (every built-in one does);
    ``{}`` for a plugin wing written against the earlier contract."""
    try:
        params = inspect.signature(impl.quantize).parameters
    except (TypeError, ValueError):
        return {}
    return {"plan": plan} if "plan" in params else {}


def _check_out_dir(out_dir: Path | None, export: str) -> None:
    if export not in EXPORT_FORMATS:
        raise VitqError(f"export format {export!r} is invalid: valid formats are {', '.join(EXPORT_FORMATS)}")
    if export != "none" and out_dir is None:
        raise VitqError(f"--export {export} needs an output directory (--out DIR)")
    if out_dir is None:
        return
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise VitqError(
            f"output directory {str(out_dir)!r} already exists and is not empty; choose a new one"
        )
    _check_writable(out_dir)


def _check_writable(out_dir: Path) -> None:
    """Fail before any work when ``out_dir`` could not be created or written (read-only filesystem, rights).

    Probes the directory itself when it exists, else its nearest existing parent, with a real temporary file
    (``os.access`` is not enough: a read-only mount or a full disk only shows on writing).
    """
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise VitqError(f"output directory {str(out_dir)!r}: {str(probe)!r} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise VitqError(
            f"output directory {str(out_dir)!r} cannot be written ({exc.strerror or exc} in {str(probe)!r}); "
            "pass --out a writable directory"
        ) from None


@contextmanager
def _staged_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary directory beside ``out_dir`` that becomes ``out_dir`` on success and vanishes on error."""
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # unlike mkdtemp, honours the umask, so out_dir gets ordinary permissions
    except OSError as exc:
        raise VitqError(f"cannot create output directory {str(out_dir)!r}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked before the run; fails if something appeared meanwhile
        tmp.rename(out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise VitqError(f"cannot write output directory {str(out_dir)!r}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _first_batch(loader: BatchLoader) -> torch.Tensor:
    for x, _ in loader:
        return x[:1]
    raise VitqError("the evaluation data yielded no images")


def split_loader(
    model: nn.Module,
    data: str | Path,
    split: str,
    n: int | None,
    seed: int,
    host: PluginHost,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[BatchLoader, str]:
    """The seeded loader of ``n`` images of ``split`` (``"calib"``/``"eval"``) of ``data``, with ``model``'s
    preprocessing, and the dataset's name: the images :func:`run_quantize` calibrates and evaluates on.

    Raises:
        VitqError: unknown dataset or ``n`` outside the split's size.
    """
    from vitq_plugins.data.loader import make_loader
    from vitq_plugins.data.resolve import resolve_dataset
    from vitq_plugins.data.transforms import transform_for_model

    ds, name = resolve_dataset(data, split, transform=transform_for_model(model), host=host)
    return make_loader(ds, batch_size, n, seed, what=f"--{split}"), name


def run_quantize(
    model: str | Path | nn.Module,
    recipe: str | None = None,
    backend: str = "brevitas",
    w_bits: int | None = None,
    a_bits: int | None = None,
    attn_bits: int | None = None,
    config: QuantConfig | str | Path | None = None,
    data: str | Path = DEFAULT_DATA,
    n_calib: int = 512,
    n_eval: int | None = None,
    seed: int = 0,
    export: str = "none",
    out_dir: str | Path | None = None,
    host: PluginHost | None = None,
    progress: bool = True,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    arch: str | None = None,
    pretrained: bool = True,
    fp_eval: EvalResult | None = None,
) -> dict[str, Any]:
    """Quantize ``model`` with ``recipe`` on ``backend``, evaluate it against FP, optionally export.

    Args:
        model: registered/timm name, checkpoint path or ``nn.Module``.
        recipe: registered recipe (required unless ``config`` is given).
        backend: registered backend (``brevitas``, ``fx``).
        w_bits: default weight bits (8 when neither this nor ``config`` sets it).
        a_bits: default activation bits.
        attn_bits: default attention-map bits.
        config: a :class:`QuantConfig` or a JSON file; validated against the model's FQNs first.
        data: registered dataset name or a path (see :mod:`vitq_plugins.data.resolve`).
        n_calib: calibration images (stratified, seeded).
        n_eval: evaluation images; ``None``: all of the evaluation split (2,000 for the bundled data).
        seed: seed of the data subsets and of the backend's random state during quantization.
        export: ``qonnx``, ``qcdq``, ``int-onnx`` or ``none``.
        out_dir: directory to create with ``results.json``, ``config.json`` and the export.
        host: plugin host (default: the process-wide one).
        progress: tqdm bars on stderr.
        batch_size: images per batch for calibration and evaluation.
        arch: architecture to load a checkpoint into (default: the reference architecture).
        pretrained: load pretrained weights for registered/timm names.
        fp_eval: the FP model's evaluation (with logits) on the same ``data``, ``n_eval``, ``seed`` and
            ``batch_size``, from an earlier call or :func:`~vitq_plugins.evaluation.evaluate`; reused
            instead of evaluating the FP model again (benchmarks sweeping many configs).

    Returns:
        A flat JSON-able dict: ``model, recipe, backend, w_bits, a_bits, attn_bits, data, n_calib,
        n_eval, seed, fp_top1, q_top1, top1_drop, fp_top5, q_top5, agreement, kl, size_mb, fp_size_mb,
        macs, bops, fp_bops, calib_s, eval_s, fp_eval_s, export, export_path, config, backend_info,
        versions``; accuracies are fractions in [0, 1], ``top1_drop = fp_top1 - q_top1``.

    Raises:
        VitqError: any bad input (named with what is valid), before the work starts where possible.
    """
    import torch

    from vitq_plugins.evaluation.bops import bits_by_layer
    from vitq_plugins.evaluation.bops import bops
    from vitq_plugins.evaluation.evaluate import evaluate
    from vitq_plugins.evaluation.macs import count_macs
    from vitq_plugins.evaluation.size import weight_size_mb
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.sites import plan_sites

    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    out = Path(out_dir) if out_dir is not None else None
    _check_out_dir(out, export)
    cfg = build_config(recipe, w_bits, a_bits, attn_bits, config)
    impl = load_backend(backend, host)
    cfg.validate(host, backend=backend)  # once: registries, bit ranges on this wing, adapters
    fp_model, model_name = resolve_model(model, host=host, pretrained=pretrained, arch=arch)
    plan = plan_sites(fp_model, cfg, host, backend=backend, validated=True)  # layer keys checked here
    check_export = getattr(impl, "check_export", None)  # optional Backend method: fail before any work
    if export != "none" and callable(check_export):
        check_export(fp_model, cfg, export)
    calib_loader, calib_name = split_loader(
        fp_model, data, "calib", n_calib, seed, host, batch_size=batch_size
    )
    eval_loader, eval_name = split_loader(fp_model, data, "eval", n_eval, seed, host, batch_size=batch_size)

    example = _first_batch(eval_loader)
    macs = count_macs(fp_model, tuple(example.shape[1:]))
    fp_size = weight_size_mb(fp_model)
    fp_bops = bops(macs, bits_by_layer(macs))
    if fp_eval is None:
        fp = evaluate(fp_model, eval_loader, keep_logits=True, progress=progress, desc="eval fp")
    elif fp_eval.logits is None or fp_eval.logits.shape[0] != eval_loader.num_images:
        rows = None if fp_eval.logits is None else fp_eval.logits.shape[0]
        raise VitqError(
            f"fp_eval must carry the logits of the {eval_loader.num_images} evaluation images (it has {rows})"
        )
    else:
        fp = fp_eval

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        qmodel = impl.quantize(
            fp_model, cfg, calib_loader.image_batches(), progress=progress, **_plan_kwarg(impl, plan)
        )
    calib_s = time.perf_counter() - start
    q = evaluate(qmodel, eval_loader, fp.logits, progress=progress, desc="eval quantized")
    sites = impl.sites(qmodel, cfg)  # what the quantized model carries (a built-in wing reads it back)

    result: dict[str, Any] = {
        "model": model_name,
        "recipe": cfg.recipe,
        "backend": backend,
        "w_bits": cfg.w_bits,
        "a_bits": cfg.a_bits,
        "attn_bits": cfg.attn_bits,
        "data": {"calib": calib_name, "eval": eval_name},
        "n_calib": calib_loader.num_images,
        "n_eval": eval_loader.num_images,
        "batch_size": batch_size,
        "seed": seed,
        "fp_top1": fp.top1,
        "q_top1": q.top1,
        "top1_drop": fp.top1 - q.top1,
        "fp_top5": fp.top5,
        "q_top5": q.top5,
        "agreement": q.agreement,
        "kl": _finite(q.kl),
        "size_mb": weight_size_mb(fp_model, cfg, sites),
        "fp_size_mb": fp_size,
        "macs": sum(macs.values()),
        "bops": bops(macs, bits_by_layer(macs, cfg, sites)),
        "fp_bops": fp_bops,
        "calib_s": calib_s,
        "eval_s": q.seconds,
        "fp_eval_s": fp.seconds,
        "export": export,
        "export_path": None,
        "config": cfg.to_dict(),
        "backend_info": impl.info(),
        "versions": versions(),
    }
    if out is None:
        return result
    with _staged_dir(out) as tmp:
        if export != "none":
            with progress_bar(1, f"export {export}", "file", show=False) as step:
                written = Path(impl.export(qmodel, export, tmp / EXPORT_FILES[export], example))
                step.update(1)
            result["export_path"] = str(out / written.relative_to(tmp))
        _write_json(tmp / CONFIG_FILE, cfg.to_dict())
        _write_json(tmp / RESULTS_FILE, result)
    return result


def _quantize_job(shared: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """One task of :func:`quantize_sweep`: ``run_quantize`` of the shared model with the job's settings."""
    t0 = time.perf_counter()
    res = run_quantize(
        shared["model"], **shared["common"], **job, fp_eval=shared["fp_eval"], host=shared["host"]
    )
    if shared["name"] is not None:
        res["model"] = shared["name"]
    res["task_s"] = time.perf_counter() - t0
    return res


def quantize_sweep(
    model: nn.Module,
    jobs: Sequence[Mapping[str, Any]],
    *,
    executor: Executor | None = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
    fp_eval: EvalResult | None = None,
    host: PluginHost | None = None,
    progress: bool = False,
    on_done: Callable[[int, int], None] | None = None,
    **common: Any,
) -> SweepOutcome[dict[str, Any]]:
    """:func:`run_quantize` of ``model`` once per job, on ``executor`` (default: serially, here).

    The model and ``fp_eval`` are shipped once (``ray.put`` under the Ray executor). Each job holds the
    per-config arguments (``recipe``/``w_bits``/... or ``config``, ``backend``); ``common`` the rest
    (``data``, ``n_calib``, ``n_eval``, ``seed``, ``batch_size``). ``host`` is used in this process only:
    a Ray worker builds its own host from the installed plugins. ``on_done(finished, total)`` is called as
    jobs finish.

    Returns:
        The :class:`~vitq_plugins.executors.SweepOutcome`: ``run_quantize``'s dicts in job order, with
        ``model`` set to ``name`` (when given) and ``task_s`` the task's wall time; a failed job is
        named by its label and the others are kept.
    """
    if executor is None:
        from vitq_plugins.executors import get_executor

        executor = get_executor("serial")
    local = executor.name == "serial"
    shared = {
        "model": model,
        "fp_eval": fp_eval,
        "name": name,
        "host": host if local else None,
        "common": {"progress": False, **common},
    }
    return executor.map(
        _quantize_job,
        shared,
        [dict(j) for j in jobs],
        labels=labels,
        desc="configs",
        progress=progress,
        on_done=on_done,
    )


def fp_evaluation(
    model: nn.Module,
    data: str | Path = DEFAULT_DATA,
    n_eval: int | None = None,
    seed: int = 0,
    host: PluginHost | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> EvalResult:
    """The FP ``model``'s evaluation, with logits, on exactly the images :func:`run_quantize` evaluates.

    Pass it as ``run_quantize(..., fp_eval=...)`` with the same ``data``, ``n_eval``, ``seed`` and
    ``batch_size`` to evaluate many configs against one FP pass (the explorer caches it per model).

    Raises:
        VitqError: unknown dataset or ``n_eval`` outside the data's size.
    """
    from vitq_plugins.evaluation.evaluate import evaluate

    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    loader, _ = split_loader(model, data, "eval", n_eval, seed, host, batch_size=batch_size)
    return evaluate(model, loader, keep_logits=True, progress=progress, desc="eval fp")


def run_evaluate(
    model: str | Path | nn.Module,
    data: str | Path = DEFAULT_DATA,
    n_eval: int | None = None,
    seed: int = 0,
    host: PluginHost | None = None,
    progress: bool = True,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    arch: str | None = None,
    pretrained: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` (FP) on the evaluation split of ``data``.

    Returns:
        ``model, data, n_eval, seed, batch_size, top1, top5, eval_s, images_per_s, params, size_mb,
        macs, versions``; accuracies are fractions in [0, 1].

    Raises:
        VitqError: unknown model/dataset, a bad checkpoint, or ``n_eval`` outside the data's size.
    """
    from vitq_plugins.evaluation.evaluate import evaluate
    from vitq_plugins.evaluation.macs import count_macs
    from vitq_plugins.evaluation.size import weight_size_mb
    from vitq_plugins.models.resolve import resolve_model

    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    fp_model, model_name = resolve_model(model, host=host, pretrained=pretrained, arch=arch)
    loader, eval_name = split_loader(fp_model, data, "eval", n_eval, seed, host, batch_size=batch_size)
    example = _first_batch(loader)
    res = evaluate(fp_model, loader, progress=progress, desc="eval")
    return {
        "model": model_name,
        "data": eval_name,
        "n_eval": res.n,
        "seed": seed,
        "batch_size": batch_size,
        "top1": res.top1,
        "top5": res.top5,
        "eval_s": res.seconds,
        "images_per_s": res.images_per_s,
        "params": sum(p.numel() for p in fp_model.parameters()),
        "size_mb": weight_size_mb(fp_model),
        "macs": sum(count_macs(fp_model, tuple(example.shape[1:])).values()),
        "versions": versions(),
    }
