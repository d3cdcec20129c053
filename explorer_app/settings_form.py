"""The *Model & data* form as one model: widget keys seeded from :class:`Settings`, read back atomically.

Why keys: a Streamlit widget without a key is identified by its parameters, its default value included.
The form used to pass ``value=settings.n_eval``; after an *Apply* that changed ``n_eval`` the next run built
a widget with a new default, hence a new identity, and the value the user typed into the old one was thrown
away (issue 21, item 1). Here every field has one fixed key; the keys are seeded from the settings only when
the settings changed elsewhere (or Streamlit dropped the keys on another page), and *Apply* turns all of them
into a new :class:`Settings` at once, or into one error that names the bad field and keeps the typed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import MutableMapping
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from explorer_app.state import BIT_CHOICES
from explorer_app.state import Settings
from vitq_plugins.core.errors import VitqError

__all__ = ["FIELDS", "OTHER", "PREFIX", "SEEDED", "key", "read", "seed"]

OTHER = "other: timm name or checkpoint path…"
PREFIX = "form_"
#: session key: the Settings the widget keys were last seeded from
SEEDED = "form_seeded_from"
#: form fields (the widget key is ``PREFIX + name``); ``upload`` is a file uploader and is never seeded
FIELDS: tuple[str, ...] = (
    "pick",
    "other",
    "arch",
    "pretrained",
    "data",
    "data_path",
    "n_calib",
    "n_eval",
    "sens_calib",
    "seed",
    "batch_size",
    "candidates",
    "backend",
    "recipe",
    "w_bits",
    "a_bits",
    "attn_bits",
)


def key(name: str) -> str:
    """The widget key of form field ``name``."""
    return PREFIX + name


def _values(s: Settings, models: Sequence[str], datasets: Sequence[str]) -> dict[str, Any]:
    return {
        "pick": s.model if s.model in models else OTHER,
        "other": "" if s.model in models else s.model,
        "arch": s.arch or "",
        "pretrained": s.pretrained,
        "data": s.data if s.data in datasets else (datasets[0] if datasets else s.data),
        "data_path": "" if s.data in datasets else s.data,
        "n_calib": s.n_calib,
        "n_eval": s.n_eval,
        "sens_calib": s.sens_calib,
        "seed": s.seed,
        "batch_size": s.batch_size,
        "candidates": [b for b in s.candidates if b in BIT_CHOICES],
        "backend": s.backend,
        "recipe": s.recipe,
        "w_bits": s.w_bits,
        "a_bits": s.a_bits,
        "attn_bits": s.attn_bits,
    }


def seed(ss: MutableMapping[Any, Any], s: Settings, models: Sequence[str], datasets: Sequence[str]) -> bool:
    """Put ``s`` into the widget keys unless they already hold what the user typed since ``s``.

    Called before the form's widgets are created. Seeds when the settings changed since the last seeding
    (another page loaded a config) or when Streamlit dropped a key (a page without the form ran); otherwise
    the keys keep the user's pending input. Returns whether it seeded.
    """
    if ss.get(SEEDED) == s and all(key(f) in ss for f in FIELDS):
        return False
    for name, value in _values(s, models, datasets).items():
        ss[key(name)] = value
    ss[SEEDED] = s
    return True


def read(ss: Mapping[Any, Any], s: Settings, model: str | None = None) -> Settings:
    """The settings the form's keys describe (``model``: an uploaded checkpoint's path, which wins).

    Raises:
        VitqError: a field that cannot become a setting (named, with what is valid).
    """

    def get(name: str) -> Any:
        return ss.get(key(name))

    if model is None:
        pick = str(get("pick"))
        model = str(get("other") or "").strip() if pick == OTHER else pick
        if not model:
            raise VitqError(
                "model: 'other' is picked but no timm name or checkpoint path is typed; type one "
                "(e.g. vit_tiny_patch16_224 or /path/to/weights.safetensors) or pick a registered model"
            )
    candidates = get("candidates") or []
    if not candidates:
        raise VitqError(f"candidate bits: pick at least one of {', '.join(map(str, BIT_CHOICES))}")
    return replace(
        s,
        model=model,
        pretrained=bool(get("pretrained")),
        arch=str(get("arch") or "").strip() or None,
        data=str(get("data_path") or "").strip() or str(get("data")),
        n_calib=int(get("n_calib")),
        n_eval=int(get("n_eval")),
        sens_calib=int(get("sens_calib")),
        seed=int(get("seed")),
        batch_size=int(get("batch_size")),
        candidates=tuple(sorted({int(c) for c in candidates}, reverse=True)),
        backend=str(get("backend")),
        recipe=str(get("recipe")),
        w_bits=int(get("w_bits")),
        a_bits=int(get("a_bits")),
        attn_bits=int(get("attn_bits")),
    )
