"""Trade-offs beyond size and BOPs: measured QCDQ latency as an axis, and two configs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from explorer_app import compare

APP = Path(__file__).resolve().parents[2] / "explorer_app" / "app.py"

pytestmark = pytest.mark.app


def _ok(at: Any, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def test_latency_axis_and_comparison(app_env: dict[str, str]) -> None:
    pytest.importorskip("onnxruntime")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300).run()
    at.switch_page("app_pages/tradeoffs.py").run()
    at.button(key="evaluate_uniform").click().run()
    _ok(at, "uniform")
    results = at.session_state["results"]
    w8a8 = next(k for k, r in results.items() if r["label"] == "W8A8")
    w4a4 = next(k for k, r in results.items() if r["label"] == "W4A4")

    at.radio(key="tradeoff_x").set_value("latency_ms").run()
    _ok(at, "latency axis, nothing measured")
    assert any("No latency measured yet" in i.value for i in at.info)

    for key in (w8a8, w4a4):
        at.selectbox(key="tradeoff_pick").select(key).run()
        at.button(key="measure_latency").click().run()
        _ok(at, f"latency of {results[key]['label']}")
        lat = at.session_state["results"][key]["latency"]
        assert lat["ms"] > 0 and lat["format"] == "qcdq" and lat["runtime"].startswith("onnxruntime")
    chart = at.get("plotly_chart")[0]
    assert "measured latency" in chart.proto.spec  # the x axis title
    assert not any("No latency measured yet" in i.value for i in at.info)

    at.selectbox(key="compare_a").select(w8a8).run()
    at.selectbox(key="compare_b").select(w4a4).run()
    _ok(at, "compare")
    frames = [d.value for d in at.dataframe]
    metrics = next(f for f in frames if "metric" in f.columns)
    assert "latency (ms/image, ORT QCDQ)" in set(metrics["metric"])
    layers = next(f for f in frames if list(f.columns) == ["layer", "A", "B"])
    assert len(layers) == 10 and set(layers["A"]) == {"W8A8"} and set(layers["B"]) == {"W4A4"}


def test_metric_table_differences() -> None:
    def rec(label: str, top1: float, size: float, ms: float | None) -> dict[str, Any]:
        r: dict[str, Any] = {
            "label": label,
            "config": {"recipe": "minmax", "w_bits": 8, "a_bits": 8, "attn_bits": 8, "layers": {}},
            "result": {"q_top1": top1, "agreement": 0.9, "kl": 0.01, "size_mb": size, "bops": 1e9},
        }
        if ms is not None:
            r["latency"] = {"ms": ms}
        return r

    t = compare.metric_table(rec("a", 0.80, 0.5, 2.0), rec("b", 0.78, 0.25, 1.5))
    row = t[t["metric"] == "top-1"].iloc[0]
    assert (row["A: a"], row["B: b"], row["B − A"]) == ("80.00%", "78.00%", "-2.00%")
    assert t[t["metric"] == "latency (ms/image, ORT QCDQ)"].iloc[0]["B − A"] == "-0.50"
    assert "latency (ms/image, ORT QCDQ)" not in set(
        compare.metric_table(rec("a", 0.8, 0.5, None), rec("b", 0.8, 0.5, 1.0))["metric"]
    )
