"""Streamlit glue shared by the pages: error handling, the current model, table and config.

Every page body runs inside :func:`guarded`, and every widget callback is wrapped by :func:`callback`, so
an error becomes an ``st.error`` that says what to do, never a traceback (the traceback goes to the
server log).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
import functools
import logging
import time
from typing import Any

import pandas as pd
import streamlit as st

from explorer_app import evaluations
from explorer_app import ln_stats
from explorer_app import services
from explorer_app import state
from explorer_app.layer_table import TableDefaults
from explorer_app.layer_table import config_from_table
from explorer_app.layer_table import merge_edits
from explorer_app.layer_table import reject_bad_bits
from explorer_app.layer_table import table_from_config
from explorer_app.state import Settings
from vitq_plugins.config import QuantConfig
from vitq_plugins.core import progress as vitq_progress
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError

__all__ = [
    "callback",
    "in_place",
    "job_progress",
    "current_config",
    "current_fp",
    "flash",
    "guarded",
    "load_config",
    "settings",
    "show_flash",
    "table_state",
]

log = logging.getLogger("vitq.explorer")
DEFAULTS_KEY = "table_defaults"
FLASH_KEY = "flash"


def _hint(exc: BaseException) -> str:
    if isinstance(exc, UnknownNameError):
        return "Pick one of the names listed, or fix the spelling on the Model & data page."
    if isinstance(exc, ConfigError):
        return "Fix the value named above (Layers table, bulk edit or default bits) and try again."
    if isinstance(exc, VitqError):
        return "Change the setting named above on the Model & data page and try again."
    if isinstance(exc, MemoryError):
        return "Use fewer evaluation/calibration images or a smaller batch size on the Model & data page."
    return (
        "This looks like a bug: try again with fewer images, reload the page, and if it persists report it "
        "with the server log (it has the traceback)."
    )


def error_text(exc: BaseException, hint: str | None = None) -> str:
    """The message shown for ``exc``: what went wrong, then what to do (``hint`` for a bad input of
    the page itself, which knows where the value is; the generic hint otherwise)."""
    what = str(exc) if isinstance(exc, VitqError) else f"{type(exc).__name__}: {exc}"
    return f"{what}\n\n**What to do:** {hint if hint and isinstance(exc, VitqError) else _hint(exc)}"


def guarded(page: Callable[[], None]) -> None:
    """Run a page body; any exception becomes an ``st.error`` (Streamlit's rerun/stop still pass)."""
    try:
        show_flash()
        page()
    except Exception as exc:  # noqa: BLE001 - the explorer never shows a traceback
        log.exception("explorer page failed")
        st.error(error_text(exc))


def callback(fn: Callable[..., None]) -> Callable[..., None]:
    """Wrap a widget callback: errors are flashed on the next run instead of raising."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            log.exception("explorer callback failed")
            flash("error", error_text(exc))

    return wrapper


@contextmanager
def in_place(hint: str | None = None) -> Iterator[None]:
    """Render an error of the block where the block is; the rest of the page is still drawn after it.

    Args:
        hint: what to do about a :class:`VitqError` of this block (default: the generic hint).
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - shown as a message, never a traceback
        log.exception("explorer section failed")
        st.error(error_text(exc, hint))


def seconds_text(s: float) -> str:
    """``s`` seconds for a person: ``42 s``, ``3 min 5 s``."""
    s = max(float(s), 0.0)
    return f"{s:.0f} s" if s < 90 else f"{int(s // 60)} min {int(s % 60)} s"


@contextmanager
def job_progress(label: str, min_interval_s: float = 0.25) -> Iterator[None]:
    """An ``st.progress`` bar fed by every vitq loop inside the block, with the time left in the current step.

    The library's loops (calibration, evaluation, sensitivity) report through
    :mod:`vitq_plugins.core.progress`; the bar shows the step, its count and an estimate from the rate so far.
    """
    bar = st.progress(0.0, text=f"{label}: starting…")
    last = [0.0]

    def listener(t: vitq_progress.Tick) -> None:
        now = time.perf_counter()
        done = t.total is not None and t.n >= t.total
        if not done and now - last[0] < min_interval_s:
            return
        last[0] = now
        count = f"{t.n:,}/{t.total:,}" if t.total else f"{t.n:,}"
        left = t.remaining_s
        eta = f", about {seconds_text(left)} left in this step" if left is not None and not done else ""
        bar.progress(
            t.fraction or 0.0,
            text=f"{label} · {t.desc}: {count} {t.unit} ({seconds_text(t.elapsed_s)}{eta})",
        )

    with vitq_progress.listening(listener):
        yield
    bar.empty()


def flash(level: str, text: str) -> None:
    """Show ``text`` once at the top of the next run (``level``: success, info, warning, error)."""
    st.session_state.setdefault(FLASH_KEY, []).append((level, text))


def show_flash() -> None:
    """Show and clear the pending flash messages."""
    for level, text in st.session_state.pop(FLASH_KEY, []):
        getattr(st, level, st.info)(text)


def settings() -> Settings:
    """The current settings."""
    return state.get_settings(st.session_state)


def current_fp() -> services.FPModel:
    """The FP model of the current settings (cached; loaded with a spinner the first time)."""
    s = settings()
    with st.spinner(f"Loading model {s.model!r}…"):
        fp = services.load_fp_model(s.model, s.pretrained, s.arch)
    st.session_state[state.MODEL_LOADED] = s.model_key
    resumed_for = st.session_state.get("resumed_for")
    ident = (s.eval_part(), fp.weights_digest)
    if resumed_for != ident:
        evaluations.resume_results(s, fp, st.session_state[state.RESULTS])
        st.session_state["resumed_for"] = ident
    return fp


def _defaults_for(s: Settings, cfg_layers: dict[str, Any] | None = None) -> QuantConfig:
    return QuantConfig(s.recipe, s.w_bits, s.a_bits, s.attn_bits, cfg_layers or {})


def table_state(fp: services.FPModel) -> tuple[pd.DataFrame, TableDefaults]:
    """The current table (edits merged) and its defaults; built at the settings' defaults the first time."""
    ss = st.session_state
    if state.LAYERS not in ss or DEFAULTS_KEY not in ss:
        s = settings()
        df, defaults = table_from_config(_defaults_for(s), fp.layers, services.recipe_quantizers(s.recipe))
        ss[state.LAYERS] = df
        ss[DEFAULTS_KEY] = defaults
    return ss[state.LAYERS], ss[DEFAULTS_KEY]


def commit_edits() -> None:
    """Fold the editor's pending edits into the stored table and reset the editor (for callbacks)."""
    ss = st.session_state
    if state.LAYERS in ss:
        ss[state.LAYERS] = merge_edits(ss[state.LAYERS], ss.get(state.EDITOR))
    ss.pop(state.EDITOR, None)


def current_config(fp: services.FPModel) -> QuantConfig:
    """The config the (edited) table describes."""
    df, defaults = table_state(fp)
    merged, _ = reject_bad_bits(merge_edits(df, st.session_state.get(state.EDITOR)), df)  # Layers names them
    return config_from_table(merged, defaults)


def load_config(cfg: QuantConfig, fp: services.FPModel) -> None:
    """Make ``cfg`` the current config: validate it, fill the table, take over its recipe and default bits.

    Raises:
        ConfigError: the config does not fit the model or the registries.
    """
    host = services.get_host()
    cfg.validate(host, fp.module_names)
    df, defaults = table_from_config(cfg, fp.layers, services.recipe_quantizers(cfg.recipe))
    ss = st.session_state
    s = settings()
    ss[state.SETTINGS] = replace(
        s, recipe=cfg.recipe, w_bits=cfg.w_bits, a_bits=cfg.a_bits, attn_bits=cfg.attn_bits
    )
    ss[state.LAYERS] = df
    ss[DEFAULTS_KEY] = defaults
    ss.pop(state.EDITOR, None)


def rebase_defaults(fp: services.FPModel, new: Settings) -> None:
    """Keep the table's overrides but move its defaults to ``new``'s recipe and bits."""
    ss = st.session_state
    if state.LAYERS not in ss or DEFAULTS_KEY not in ss:
        return
    cfg = current_config(fp)
    moved = QuantConfig(
        new.recipe, new.w_bits, new.a_bits, new.attn_bits, dict(cfg.layers), dict(cfg.options)
    )
    df, defaults = table_from_config(moved, fp.layers, services.recipe_quantizers(new.recipe))
    ss[state.LAYERS] = df
    ss[DEFAULTS_KEY] = defaults
    ss.pop(state.EDITOR, None)


def sensitivity_key(s: Settings, fp: services.FPModel) -> str:
    """Session key of the sensitivity table of the current settings."""
    return state.digest(
        [fp.weights_digest, s.recipe, s.data, s.sens_calib, list(s.candidates), s.seed, s.batch_size]
    )


def current_sensitivity(fp: services.FPModel) -> Any:
    """The measured sensitivity table for the current settings, or ``None``."""
    return st.session_state[state.SENSITIVITY].get(sensitivity_key(settings(), fp))


def measure_sensitivity(fp: services.FPModel) -> Any:
    """Measure (or load from the library's disk cache) the sensitivity table, with a status box."""
    s = settings()
    n_layers = len(fp.layers)
    with st.status(
        f"Measuring sensitivity: {n_layers} layers x 2 knobs x {len(s.candidates)} candidates on "
        f"{s.sens_calib} images…",
        expanded=True,  # the progress bar is inside
    ) as box:
        with job_progress("Sensitivity"):
            table = services.sensitivity(s, fp)
        hit = table.meta.get("cache") == "hit"
        box.update(
            label=f"Sensitivity {'loaded from cache' if hit else 'measured'} ({n_layers} layers)",
            state="complete",
            expanded=False,
        )
    st.session_state[state.SENSITIVITY][sensitivity_key(s, fp)] = table
    return table


def evaluate_with_status(
    fp: services.FPModel, cfg: QuantConfig, *, label: str, source: str
) -> dict[str, Any]:
    """Evaluate one config through the pipeline inside an ``st.status`` box."""
    s = settings()
    n = s.n_eval or "all"
    with st.status(
        f"Evaluating {label}: calibrate on {s.n_calib} images, evaluate on {n}…", expanded=True
    ) as box:
        with job_progress(f"Evaluating {label}"):
            rec, cached = evaluations.evaluate(
                s, fp, cfg, st.session_state[state.RESULTS], label=label, source=source
            )
        res = rec["result"]
        box.update(
            label=(
                f"{label}: top-1 {res['q_top1']:.2%} (FP {res['fp_top1']:.2%}), {res['size_mb']:.3f} MB"
                + (" (cached)" if cached else f", {res['calib_s'] + res['eval_s'] + res['fp_eval_s']:.1f} s")
            ),
            state="complete",
            expanded=False,
        )
    return rec


def evaluate_many(fp: services.FPModel, configs: dict[str, QuantConfig], source: str) -> list[dict[str, Any]]:
    """Evaluate several configs with a progress bar; cached ones are skipped, so an interrupted run resumes."""
    bar = st.progress(0.0, text="Starting…")
    start = time.perf_counter()
    first: list[int] = []  # configs already cached when the sweep started (not part of the rate)

    def done(k: int, n: int) -> None:
        if not first:
            first.append(k)
        ran = k - first[0]
        eta = ""
        if ran and k < n:
            per = (time.perf_counter() - start) / ran
            eta = f", about {seconds_text(per * (n - k))} left"
        bar.progress(k / max(n, 1), text=f"Evaluated {k}/{n} configs{eta}…")

    results = st.session_state[state.RESULTS]
    with job_progress(f"{len(configs)} configs"):
        out = evaluations.evaluate_many(settings(), fp, configs, results, source=source, on_done=done)
    bar.progress(1.0, text=f"Evaluated {len(configs)} configs in {seconds_text(time.perf_counter() - start)}")
    return out


def ln_stats_key(s: Settings, fp: services.FPModel) -> str:
    """Session key of the LayerNorm statistics of the current settings."""
    return state.digest([fp.weights_digest, s.data, s.n_calib, s.seed, s.a_bits, s.batch_size])


def current_ln_stats(fp: services.FPModel) -> dict[str, ln_stats.LayerNormStats] | None:
    """The LayerNorm input statistics of the current settings, or ``None``."""
    stats: dict[str, ln_stats.LayerNormStats] | None = st.session_state[state.LN_STATS].get(
        ln_stats_key(settings(), fp)
    )
    return stats


def calibrate(fp: services.FPModel) -> dict[str, ln_stats.LayerNormStats]:
    """Record every LayerNorm input's per-channel range on up to 256 calibration images (a status box)."""
    from vitq_plugins.data.loader import make_loader

    s = settings()
    calib, _ = services.load_dataset(s.data, "calib", s.model, s.pretrained, s.arch)
    n = min(s.n_calib, len(calib), 256)
    loader = make_loader(calib, s.batch_size, n, s.seed, what="calibration images")
    with st.status(f"Calibrating: LayerNorm input statistics on {n} images…", expanded=True) as box:
        bar = st.progress(0.0)

        def progress(f: float) -> None:
            bar.progress(f, text=f"{f:.0%}")

        stats = ln_stats.layernorm_stats(fp, list(loader.images()), bits=s.a_bits, progress=progress)
        box.update(label=f"Calibrated {len(stats)} LayerNorms on {n} images", state="complete")
    st.session_state[state.LN_STATS][ln_stats_key(s, fp)] = stats
    return stats


def sidebar(fp: services.FPModel | None) -> None:
    """Settings and current-config summary in the sidebar."""
    s = settings()
    st.sidebar.caption(
        f"**Model** {s.model}{'' if s.pretrained else ' (random weights)'} · **data** {s.data} · "
        f"**backend** {s.backend} · **recipe** {s.recipe} W{s.w_bits}A{s.a_bits} attn{s.attn_bits}"
    )
    st.sidebar.caption(f"Evaluated configs: {len(st.session_state.get(state.RESULTS, {}))}")
    if fp is not None:
        st.sidebar.caption(f"{fp.n_params:,} parameters · FP size {fp.fp_size_mb:.3f} MB")
