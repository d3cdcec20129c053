"""Evaluated configs as tables: the Trade-offs points and the results CSV with provenance columns.

The CSV follows Brevitas' ``RESULTS_*.csv``: one row per config, the bits and accuracies, and the
versions, seed, data and commit that produced them, plus the config JSON itself so any row can be re-run
with ``vitq quantize --config``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
import json
from typing import Any

import pandas as pd

from explorer_app.layer_table import config_summary
from vitq_plugins.config import QuantConfig

__all__ = ["CSV_COLUMNS", "points_frame", "results_csv", "results_frame"]

#: result keys copied into the CSV, in order
_RESULT_KEYS = (
    "model",
    "recipe",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "fp_top1",
    "q_top1",
    "top1_drop",
    "fp_top5",
    "q_top5",
    "agreement",
    "kl",
    "size_mb",
    "fp_size_mb",
    "macs",
    "bops",
    "fp_bops",
    "n_calib",
    "n_eval",
    "batch_size",
    "seed",
    "calib_s",
    "eval_s",
    "fp_eval_s",
)
CSV_COLUMNS: tuple[str, ...] = (
    "label",
    "source",
    "config_key",
    *_RESULT_KEYS,
    "data_calib",
    "data_eval",
    "n_overrides",
    "created",
    "config_json",
)


def _avg_bits(cfg: QuantConfig, result: Mapping[str, Any]) -> float:
    return float(result.get("avg_bits", (cfg.w_bits + cfg.a_bits) / 2))


def points_frame(
    records: Iterable[Mapping[str, Any]], avg_bits: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """One row per evaluated config for :func:`explorer_app.charts.tradeoff_figure`.

    Args:
        records: evaluation records (see :func:`explorer_app.evaluations.evaluate`).
        avg_bits: config key -> average bits (from the cost model), when known.
    """
    rows = []
    for rec in records:
        res = rec["result"]
        cfg = QuantConfig.from_dict(rec["config"])
        kind = (
            "uniform"
            if rec.get("source") == "uniform"
            else "search"
            if rec.get("source") == "search"
            else "manual"
        )
        rows.append(
            {
                "key": rec["key"],
                "label": rec.get("label", rec["key"]),
                "kind": kind,
                "summary": config_summary(cfg),
                "q_top1": float(res["q_top1"]),
                "fp_top1": float(res["fp_top1"]),
                "agreement": float(res.get("agreement") or 0.0),
                "kl": res.get("kl"),
                "size_mb": float(res["size_mb"]),
                "bops": float(res["bops"]),
                "avg_bits": (avg_bits or {}).get(rec["key"], _avg_bits(cfg, res)),
                "latency_ms": float((rec.get("latency") or {}).get("ms", float("nan"))),
            }
        )
    cols = [
        "key",
        "label",
        "kind",
        "summary",
        "q_top1",
        "fp_top1",
        "agreement",
        "kl",
        "size_mb",
        "bops",
        "avg_bits",
        "latency_ms",
    ]
    return pd.DataFrame(rows, columns=cols)


def results_frame(records: Iterable[Mapping[str, Any]], provenance: Mapping[str, Any]) -> pd.DataFrame:
    """The results table: :data:`CSV_COLUMNS` then the provenance columns (versions, commit...)."""
    rows = []
    for rec in records:
        res = rec["result"]
        data = res.get("data") or {}
        row: dict[str, Any] = {
            "label": rec.get("label", ""),
            "source": rec.get("source", ""),
            "config_key": rec["key"],
            **{k: res.get(k) for k in _RESULT_KEYS},
            "data_calib": data.get("calib") if isinstance(data, Mapping) else data,
            "data_eval": data.get("eval") if isinstance(data, Mapping) else data,
            "n_overrides": len(rec["config"].get("layers", {})),
            "created": rec.get("created"),
            "config_json": json.dumps(rec["config"], separators=(",", ":")),
        }
        row.update(provenance)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*CSV_COLUMNS, *provenance])


def results_csv(records: Iterable[Mapping[str, Any]], provenance: Mapping[str, Any]) -> str:
    """:func:`results_frame` as CSV text."""
    return str(results_frame(records, provenance).to_csv(index=False))
