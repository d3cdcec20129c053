"""Two evaluated configs side by side: their measured metrics, and the layers where they differ."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import pandas as pd

from explorer_app.layer_table import config_summary
from vitq_plugins.config import QuantConfig

__all__ = ["METRICS", "layer_differences", "metric_table"]

#: result key -> (row label, format) of the metric table
METRICS: dict[str, tuple[str, str]] = {
    "q_top1": ("top-1", "{:.2%}"),
    "agreement": ("agreement with FP", "{:.2%}"),
    "kl": ("KL to FP", "{:.4g}"),
    "size_mb": ("weight size (MB)", "{:.4f}"),
    "bops": ("BOPs per image", "{:.4g}"),
}


def _value(rec: Mapping[str, Any], key: str) -> float | None:
    if key == "latency_ms":
        v = (rec.get("latency") or {}).get("ms")
    else:
        v = rec["result"].get(key)
    return None if v is None else float(v)


def metric_table(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """One row per metric: A, B and B - A, formatted (latency only when both were measured)."""
    rows = []
    metrics = dict(METRICS)
    if _value(a, "latency_ms") is not None and _value(b, "latency_ms") is not None:
        metrics["latency_ms"] = ("latency (ms/image, ORT QCDQ)", "{:.2f}")
    rows.append(
        {
            "metric": "config",
            f"A: {a.get('label', 'A')}": config_summary(QuantConfig.from_dict(a["config"])),
            f"B: {b.get('label', 'B')}": config_summary(QuantConfig.from_dict(b["config"])),
            "B − A": "",
        }
    )
    for key, (label, fmt) in metrics.items():
        va, vb = _value(a, key), _value(b, key)
        diff = None if va is None or vb is None else vb - va
        rows.append(
            {
                "metric": label,
                f"A: {a.get('label', 'A')}": "–" if va is None else fmt.format(va),
                f"B: {b.get('label', 'B')}": "–" if vb is None else fmt.format(vb),
                "B − A": "–" if diff is None else ("+" if diff >= 0 else "") + fmt.format(diff),
            }
        )
    return pd.DataFrame(rows)


def _describe(cfg: QuantConfig, fqn: str) -> str:
    r = cfg.resolve(fqn)
    if r.keep_float:
        return "float"
    act = r.quantizers.get("act")
    return f"W{r.w_bits}A{r.a_bits}" + (f" {act}" if act else "")


def layer_differences(a: Mapping[str, Any], b: Mapping[str, Any], fqns: Sequence[str]) -> pd.DataFrame:
    """The layers (of ``fqns``) that the two configs quantize differently, and how."""
    ca, cb = QuantConfig.from_dict(a["config"]), QuantConfig.from_dict(b["config"])
    rows = [
        {"layer": f, "A": _describe(ca, f), "B": _describe(cb, f)}
        for f in fqns
        if _describe(ca, f) != _describe(cb, f)
    ]
    return pd.DataFrame(rows, columns=["layer", "A", "B"])
