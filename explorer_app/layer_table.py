"""The per-layer table of the *Layers* page and its round trip to :class:`vitq_plugins.QuantConfig`.

One row per quantizable layer (``nn.Linear``/``nn.Conv2d``, the layers the mixed-precision search knows:
:func:`vitq_plugins.search.find_layers`). Editable columns: ``w_bits``, ``a_bits``,
``quantizer`` (the quantizer of the layer's input activation, the ``act`` site) and ``keep_float``.

The table becomes a config with the table's defaults (recipe and default bits) and one exact-FQN override
per row that differs from them (``{fqn: {w_bits, a_bits, quantizers: {act: ...}}}``), plus the overrides of
a loaded config that the table cannot show (LayerNorm, attention or regex keys), which are kept as they
were. Loading a config resolves every row through :meth:`QuantConfig.resolve`, so the table shows what
the config means whatever its keys (exact, ``re:`` or defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import re
from typing import TYPE_CHECKING
from typing import Any

import pandas as pd

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError

if TYPE_CHECKING:
    from vitq_plugins.search import Layer
    from vitq_plugins.search import SensitivityTable

__all__ = [
    "EDITABLE",
    "MAX_BITS",
    "MIN_BITS",
    "TableDefaults",
    "apply_bulk",
    "build_table",
    "config_from_table",
    "config_summary",
    "merge_edits",
    "reject_bad_bits",
    "role_of",
    "sensitivity_columns",
    "table_from_config",
]

#: the columns a user may edit
EDITABLE: tuple[str, ...] = ("w_bits", "a_bits", "quantizer", "keep_float")
#: bit-widths a table cell may hold (every built-in quantizer's range; a quantizer may narrow it)
MIN_BITS, MAX_BITS = 2, 16
_FLOAT_BITS = 32


@dataclass(frozen=True)
class TableDefaults:
    """The non-per-layer part of the current config.

    Args:
        recipe: recipe name.
        w_bits: default weight bits.
        a_bits: default activation bits.
        attn_bits: default attention-map bits.
        act_quantizer: the recipe's quantizer for the ``act`` site (what a row without override uses).
        options: recipe options.
        extra: overrides the table cannot show (non-Linear FQNs and ``re:`` keys), kept verbatim.
    """

    recipe: str
    w_bits: int
    a_bits: int
    attn_bits: int
    act_quantizer: str
    options: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, LayerOverride] = field(default_factory=dict)


def role_of(fqn: str) -> str:
    """A short role name: ``qkv``, ``proj``, ``fc1``, ``fc2``, ``head``, ``patch_embed`` or the leaf name."""
    if fqn.startswith("patch_embed"):
        return "patch_embed"
    return fqn.rsplit(".", 1)[-1]


def sensitivity_columns(candidates: Sequence[int]) -> list[str]:
    """Names of the sensitivity columns: ``sens_w<b>`` then ``sens_a<b>`` for every candidate below the top."""
    low = list(candidates)[1:] or list(candidates)
    return [f"sens_w{b}" for b in low] + [f"sens_a{b}" for b in low]


def build_table(
    layers: Sequence[Layer],
    defaults: TableDefaults,
    sensitivity: SensitivityTable | None = None,
    metric: str = "kl",
) -> pd.DataFrame:
    """The table at the defaults (no per-layer overrides), with sensitivity columns when measured."""
    rows: list[dict[str, Any]] = []
    for ly in layers:
        rows.append(
            {
                "fqn": ly.fqn,
                "type": role_of(ly.fqn),
                "params": int(ly.params),
                "macs": int(ly.macs),
                "w_bits": int(defaults.w_bits),
                "a_bits": int(defaults.a_bits),
                "quantizer": defaults.act_quantizer,
                "keep_float": False,
            }
        )
    df = pd.DataFrame(rows)
    return add_sensitivity(df, sensitivity, metric)


def add_sensitivity(
    df: pd.DataFrame, sensitivity: SensitivityTable | None, metric: str = "kl"
) -> pd.DataFrame:
    """``df`` with (replaced) sensitivity columns from ``sensitivity`` (rows matched by FQN)."""
    out = df[[c for c in df.columns if not str(c).startswith("sens_")]].copy()
    if sensitivity is None:
        return out
    index = {ly.fqn: i for i, ly in enumerate(sensitivity.layers)}
    cands = list(sensitivity.candidates)
    for col in sensitivity_columns(cands):
        kind, bits = col[5], int(col[6:])
        losses = sensitivity.loss(metric, kind)
        j = cands.index(bits)
        out[col] = [float(losses[index[f], j]) if f in index else float("nan") for f in out["fqn"]]
    return out


def merge_edits(df: pd.DataFrame, edit_state: Mapping[str, Any] | None) -> pd.DataFrame:
    """Apply a ``st.data_editor`` edit state (``{"edited_rows": {row: {col: value}}}``) to ``df``.

    Only the editable columns are taken; rows are positional as the editor reports them.

    Raises:
        ConfigError: a row index outside the table.
    """
    out = df.copy()
    if not edit_state:
        return out
    for row, changes in dict(edit_state.get("edited_rows", {})).items():
        i = int(row)
        if not 0 <= i < len(out):
            raise ConfigError(f"edited row {i} is outside the table (0..{len(out) - 1})")
        for col, value in dict(changes).items():
            if col in EDITABLE and value is not None:
                out.iloc[i, out.columns.get_loc(col)] = value
    return normalize(out)


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Editable columns with their proper dtypes (the editor may hand back floats or strings)."""
    out = df.copy()
    for col in ("w_bits", "a_bits"):
        out[col] = pd.to_numeric(out[col], errors="raise").astype(int)
    out["keep_float"] = out["keep_float"].astype(bool)
    out["quantizer"] = out["quantizer"].astype(str)
    return out


def reject_bad_bits(edited: pd.DataFrame, previous: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``edited`` with every ``w_bits``/``a_bits`` cell outside ``MIN_BITS..MAX_BITS`` put back to ``previous``.

    A typed 1 must not become another width silently: it is refused and named.

    Returns:
        The table to use and one message per refused cell (``fqn: w_bits=1 is invalid: …``).
    """
    out = edited.copy()
    messages: list[str] = []
    for col in ("w_bits", "a_bits"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | (values % 1 != 0) | (values < MIN_BITS) | (values > MAX_BITS)
        for i in [int(j) for j in bad.to_numpy().nonzero()[0]]:
            typed = edited.iloc[i][col]
            shown = typed.item() if hasattr(typed, "item") else typed  # numpy scalar -> plain number
            messages.append(
                f"{edited.iloc[i]['fqn']}: {col}={shown!r} is invalid: a bit-width is a whole number in "
                f"{MIN_BITS}..{MAX_BITS}; kept {int(previous.iloc[i][col])}"
            )
            out.iloc[i, out.columns.get_loc(col)] = previous.iloc[i][col]
    return normalize(out), messages


def apply_bulk(
    df: pd.DataFrame,
    pattern: str,
    *,
    w_bits: int | None = None,
    a_bits: int | None = None,
    quantizer: str | None = None,
    keep_float: bool | None = None,
) -> tuple[pd.DataFrame, int]:
    """Set the given columns on every row whose FQN fully matches ``pattern`` (the grammar of ``re:`` keys).

    Returns:
        The new table and the number of rows matched.

    Raises:
        ConfigError: an invalid regex, or one that matches no row.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{pattern!r} is not a valid regex: {exc}") from None
    mask = df["fqn"].map(lambda f: rx.fullmatch(str(f)) is not None)
    n = int(mask.sum())
    if n == 0:
        raise ConfigError(
            f"regex {pattern!r} matches no layer; it must match the whole FQN, e.g. "
            r"'blocks\.\d+\.mlp\.fc2' or '.*qkv'"
        )
    out = df.copy()
    for col, value in (
        ("w_bits", w_bits),
        ("a_bits", a_bits),
        ("quantizer", quantizer),
        ("keep_float", keep_float),
    ):
        if value is not None:
            out.loc[mask, col] = value
    return normalize(out), n


def config_from_table(df: pd.DataFrame, defaults: TableDefaults) -> QuantConfig:
    """The :class:`QuantConfig` the table describes (layers keyed by FQN).

    Rows equal to the defaults get no override. When a kept ``re:`` key could also match a row, that row's
    override is written in full so the regex cannot change what the table shows.
    """
    df = normalize(df)
    regexes = [k[3:] for k in defaults.extra if k.startswith("re:")]
    layers: dict[str, LayerOverride] = dict(defaults.extra)
    for row in df.itertuples(index=False):
        fqn = str(row.fqn)
        full = any(re.fullmatch(rx, fqn) for rx in regexes)
        if bool(row.keep_float):
            layers[fqn] = LayerOverride(keep_float=True)
            continue
        w = int(row.w_bits)
        a = int(row.a_bits)
        q = str(row.quantizer)
        ov = LayerOverride(
            w_bits=w if full or w != defaults.w_bits else None,
            a_bits=a if full or a != defaults.a_bits else None,
            quantizers={"act": q} if full or q != defaults.act_quantizer else {},
        )
        if ov.to_dict():
            layers[fqn] = ov
    return QuantConfig(
        defaults.recipe, defaults.w_bits, defaults.a_bits, defaults.attn_bits, layers, dict(defaults.options)
    )


def table_from_config(
    cfg: QuantConfig,
    layers: Sequence[Layer],
    recipe_quantizers: Mapping[str, str],
    sensitivity: SensitivityTable | None = None,
    metric: str = "kl",
) -> tuple[pd.DataFrame, TableDefaults]:
    """The table and defaults of ``cfg``: every row resolved through :meth:`QuantConfig.resolve`."""
    names = {ly.fqn for ly in layers}
    extra = {k: v for k, v in cfg.layers.items() if k not in names}
    act_q = str(recipe_quantizers.get("act", "minmax"))
    defaults = TableDefaults(
        cfg.recipe, cfg.w_bits, cfg.a_bits, cfg.attn_bits, act_q, dict(cfg.options), extra
    )
    df = build_table(layers, defaults, sensitivity, metric)
    for i, ly in enumerate(layers):
        res = cfg.resolve(ly.fqn, recipe_quantizers)
        df.loc[i, "w_bits"] = res.w_bits
        df.loc[i, "a_bits"] = res.a_bits
        df.loc[i, "quantizer"] = str(res.quantizers.get("act", act_q))
        df.loc[i, "keep_float"] = res.keep_float
    return normalize(df), defaults


def effective_bits(df: pd.DataFrame) -> tuple[list[int], list[int]]:
    """Per-row (weight, activation) bits, 32 for float rows (for the cost model)."""
    w = [_FLOAT_BITS if f else int(b) for b, f in zip(df["w_bits"], df["keep_float"], strict=True)]
    a = [_FLOAT_BITS if f else int(b) for b, f in zip(df["a_bits"], df["keep_float"], strict=True)]
    return w, a


def config_summary(cfg: QuantConfig, max_items: int = 6) -> str:
    """One line: recipe, defaults and the per-layer overrides (for hover text and labels)."""
    head = f"{cfg.recipe} W{cfg.w_bits}A{cfg.a_bits} attn{cfg.attn_bits}"
    if not cfg.layers:
        return head
    by_value: dict[str, list[str]] = {}
    for key, ov in cfg.layers.items():
        by_value.setdefault(_describe(ov), []).append(key)
    parts = [f"{len(keys)}x {desc}" for desc, keys in sorted(by_value.items(), key=lambda kv: -len(kv[1]))]
    more = f" (+{len(parts) - max_items} more)" if len(parts) > max_items else ""
    return f"{head}; {len(cfg.layers)} overrides: " + ", ".join(parts[:max_items]) + more


def _describe(ov: LayerOverride) -> str:
    if ov.keep_float:
        return "float"
    bits = []
    if ov.w_bits is not None:
        bits.append(f"W{ov.w_bits}")
    if ov.a_bits is not None:
        bits.append(f"A{ov.a_bits}")
    if ov.attn_bits is not None:
        bits.append(f"attn{ov.attn_bits}")
    q = ",".join(f"{s}={n}" for s, n in ov.quantizers.items())
    return "".join(bits) + (f"[{q}]" if q else "")
