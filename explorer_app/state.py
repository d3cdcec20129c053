"""Explorer settings and the session-state keys every page shares.

Settings live in ``st.session_state[SETTINGS]`` as a frozen :class:`Settings`; pages never keep them in
widget keys (Streamlit drops a widget's state when a page that does not render it runs). Defaults come
from the environment so tests and users can point the app at another model::

    VITQ_EXPLORER_MODEL=vit_test_tiny VITQ_EXPLORER_N_EVAL=200 make run
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import MutableMapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import hashlib
import json
import os
from typing import Any

__all__ = [
    "BIT_CHOICES",
    "EDITOR",
    "ENV_PREFIX",
    "EXPORTS",
    "LAYERS",
    "LN_STATS",
    "MODEL_LOADED",
    "RESULTS",
    "SEARCH",
    "SELECTED",
    "SENSITIVITY",
    "SETTINGS",
    "Settings",
    "digest",
    "get_settings",
    "init_state",
    "set_settings",
]

ENV_PREFIX = "VITQ_EXPLORER_"
#: bit-widths offered in the layer table and the default-bits selectors
BIT_CHOICES: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 16)

# session-state keys
SETTINGS = "settings"  # Settings
LAYERS = "layers"  # pandas DataFrame: the per-layer table (source of truth of the current config)
EDITOR = "layer_editor"  # the st.data_editor widget key (its edit state)
RESULTS = "results"  # dict[config key, record]: every evaluated config (Trade-offs points)
SENSITIVITY = "sensitivity"  # dict[sensitivity key, SensitivityTable]
SEARCH = "search"  # the last search: dict with the SearchResult and what it was run with
SELECTED = "selected_point"  # the config key last loaded from the chart
LN_STATS = "ln_stats"  # dict[model key, LayerNorm statistics]
EXPORTS = "exports"  # dict[(config key, format), bytes]
MODEL_LOADED = "model_loaded_for"  # the Settings.model_key whose FP model this session has loaded


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    """What the user picked on the *Model & data* page.

    Args:
        model: registered/timm name or checkpoint path.
        pretrained: load pretrained weights for names.
        arch: architecture a checkpoint is loaded into (``None``: the reference architecture).
        data: registered dataset name or path.
        n_calib: calibration images for quantization.
        n_eval: evaluation images (0: the whole evaluation split).
        seed: seed of the data subsets and of the backend.
        backend: registered backend.
        recipe: registered recipe (the defaults of the current config).
        w_bits: default weight bits of the current config.
        a_bits: default activation bits.
        attn_bits: default attention-map bits (4: FQ-ViT's 4-bit Log-Int-Softmax, the default recipe's).
        batch_size: images per batch.
        sens_calib: images for the sensitivity measurement.
        candidates: bit-widths the sensitivity and the search consider, highest first.
    """

    model: str = "vit_tiny_cifar10"
    pretrained: bool = True
    arch: str | None = None
    data: str = "cifar10_bundled"
    n_calib: int = 512
    n_eval: int = 0
    seed: int = 0
    backend: str = "brevitas"
    recipe: str = "fqvit"
    w_bits: int = 8
    a_bits: int = 8
    attn_bits: int = 4
    batch_size: int = 100
    sens_calib: int = 128
    candidates: tuple[int, ...] = field(default=(8, 6, 5, 4))

    @classmethod
    def from_env(cls) -> Settings:
        """Defaults, overridden by ``VITQ_EXPLORER_{MODEL,DATA,RECIPE,BACKEND,N_CALIB,N_EVAL,SENS_CALIB}``."""
        d = cls()
        return replace(
            d,
            model=_env("MODEL", d.model),
            data=_env("DATA", d.data),
            recipe=_env("RECIPE", d.recipe),
            backend=_env("BACKEND", d.backend),
            n_calib=_env_int("N_CALIB", d.n_calib),
            n_eval=_env_int("N_EVAL", d.n_eval),
            sens_calib=_env_int("SENS_CALIB", d.sens_calib),
        )

    @property
    def model_key(self) -> tuple[str, bool, str | None]:
        """Identifies the FP model (the ``st.cache_resource`` key)."""
        return (self.model, self.pretrained, self.arch)

    @property
    def n_eval_or_none(self) -> int | None:
        """``n_eval`` as the pipeline takes it (``None``: all)."""
        return self.n_eval or None

    def eval_part(self) -> dict[str, Any]:
        """The fields an evaluation result depends on (besides the config and the weights)."""
        return {
            "model": self.model,
            "pretrained": self.pretrained,
            "arch": self.arch,
            "data": self.data,
            "n_calib": self.n_calib,
            "n_eval": self.n_eval,
            "seed": self.seed,
            "backend": self.backend,
            "batch_size": self.batch_size,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["candidates"] = list(self.candidates)
        return d


def digest(obj: Any, n: int = 16) -> str:
    """Short sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def init_state(ss: MutableMapping[Any, Any]) -> None:
    """Create the shared keys that are missing (called at the top of every run)."""
    if SETTINGS not in ss:
        ss[SETTINGS] = Settings.from_env()
    for key in (RESULTS, SENSITIVITY, LN_STATS, EXPORTS):
        if key not in ss:
            ss[key] = {}


def get_settings(ss: Mapping[Any, Any]) -> Settings:
    """The current settings."""
    s = ss.get(SETTINGS)
    return s if isinstance(s, Settings) else Settings.from_env()


def set_settings(ss: MutableMapping[Any, Any], new: Settings) -> None:
    """Replace the settings; a different model drops the layer table built for the old one."""
    old = get_settings(ss)
    ss[SETTINGS] = new
    if old.model_key != new.model_key:
        for key in (LAYERS, EDITOR, SEARCH, SELECTED):
            ss.pop(key, None)
