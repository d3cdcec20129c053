from __future__ import annotations

import csv
import io

import pytest

from explorer_app.charts import log_axis
from explorer_app.charts import pareto_front
from explorer_app.charts import percent_axis
from explorer_app.charts import selected_key
from explorer_app.charts import tradeoff_figure
from explorer_app.results import CSV_COLUMNS
from explorer_app.results import points_frame
from explorer_app.results import results_csv
from vitq_plugins.config import QuantConfig

pytestmark = pytest.mark.app


def _record(key: str, label: str, source: str, size: float, top1: float, w: int = 8) -> dict[str, object]:
    return {
        "key": key,
        "label": label,
        "source": source,
        "config": QuantConfig("minmax", w, 8, 8).to_dict(),
        "created": "2026-01-01T00:00:00+00:00",
        "result": {
            "model": "vit_test_tiny",
            "recipe": "minmax",
            "backend": "brevitas",
            "q_top1": top1,
            "fp_top1": 0.9,
            "agreement": 0.95,
            "kl": 0.01,
            "size_mb": size,
            "bops": size * 1e9,
            "seed": 0,
            "data": {"calib": "cifar10_bundled[calib]", "eval": "cifar10_bundled[test]"},
        },
    }


RECORDS = [
    _record("k8", "W8A8", "uniform", 4.0, 0.89),
    _record("k4", "W4A8", "uniform", 2.0, 0.80, w=4),
    _record("m1", "manual 1", "manual", 3.0, 0.70, w=6),
    _record("s1", "greedy", "search", 2.5, 0.86, w=5),
]


def test_pareto_front_keeps_only_undominated_points() -> None:
    assert pareto_front([4.0, 2.0, 3.0, 2.5], [0.89, 0.80, 0.70, 0.86]) == [1, 3, 0]


def test_tradeoff_figure_has_points_frontier_baselines_fp_line_and_current() -> None:
    points = points_frame(RECORDS)
    fig = tradeoff_figure(points, "size_mb", fp_top1=0.9, current_key="m1")
    names = [t.name for t in fig.data]
    assert names == ["evaluated", "suggestions", "uniform baselines", "Pareto frontier", "current config"]
    uniform = fig.data[2]
    assert list(uniform.text) == ["W8A8", "W4A8"]
    assert [c[0] for c in uniform.customdata] == ["k8", "k4"]
    assert list(fig.data[3].y) == [0.80, 0.86, 0.89]
    assert any(getattr(s, "y0", None) == 0.9 for s in fig.layout.shapes)  # FP line


def test_not_evaluated_current_config_is_a_vertical_line() -> None:
    fig = tradeoff_figure(points_frame(RECORDS), "bops", fp_top1=0.9, current_key="nope", current_x=1.5e9)
    assert any(getattr(s, "x0", None) == 1.5e9 for s in fig.layout.shapes)


def test_selected_key_reads_the_clicked_points_customdata() -> None:
    event = {"selection": {"points": [{"x": 1, "y": 2, "customdata": ["k4", "W4A8", "...", 0.9]}]}}
    assert selected_key(event) == "k4"
    assert selected_key({"selection": {"points": [{"x": 1}]}}) is None
    assert selected_key(None) is None


def test_results_csv_has_provenance_columns() -> None:
    prov = {"torch_version": "2.14.1", "vitq_version": "0.1.0", "commit": "abc123"}
    rows = list(csv.DictReader(io.StringIO(results_csv(RECORDS, prov))))
    assert len(rows) == 4
    assert list(rows[0]) == [*CSV_COLUMNS, *prov]
    assert rows[0]["commit"] == "abc123"
    assert rows[0]["seed"] == "0"
    assert rows[0]["data_eval"] == "cifar10_bundled[test]"
    assert QuantConfig.from_json(rows[1]["config_json"]).w_bits == 4


def test_percent_axis_from_the_data() -> None:
    assert percent_axis([]) == {"range": [0.0, 1.0], "tickformat": ".0%"}  # not -100..400 %
    ax = percent_axis([0.545, 0.552, 0.571])  # a 2.6-point span: half-point ticks need one decimal
    assert ax["tickformat"] == ".1%"
    assert ax["range"][0] < 0.545 and ax["range"][1] > 0.571 and ax["range"][1] - ax["range"][0] < 0.05
    assert percent_axis([0.2, 0.84])["tickformat"] == ".0%"
    assert percent_axis([0.8426, 0.8431])["tickformat"] == ".2%"
    assert 0.0 <= percent_axis([0.0, 1.0])["range"][0] and percent_axis([0.0, 1.0])["range"][1] <= 1.0


def test_log_axis_labels_at_most_a_few_decades() -> None:
    ax = log_axis([3e-12, 1e-9, 4e-3])
    assert ax["type"] == "log" and ax["range"] == [-12.0, -2.0]
    assert (ax["range"][1] - ax["range"][0]) / ax["dtick"] <= 8
    assert log_axis([0.0, -1.0]) == {"type": "log"}
    assert log_axis([5.0])["range"] == [0.0, 1.0]


def test_empty_tradeoff_chart_has_sane_axes() -> None:
    import pandas as pd

    fig = tradeoff_figure(pd.DataFrame(), "size_mb", current_x=0.45)
    assert tuple(fig.layout.yaxis.range) == (0.0, 1.0)
    lo, hi = fig.layout.xaxis.range
    assert 0.3 < lo < 0.45 < hi < 0.6
