"""The per-layer error view: each quantized layer's output against float, for the table's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from explorer_app import charts
from explorer_app import layer_error
from explorer_app import services
from explorer_app.state import Settings
from vitq_plugins.config import QuantConfig

APP = Path(__file__).resolve().parents[2] / "explorer_app" / "app.py"

pytestmark = pytest.mark.app


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_fewer_bits_mean_more_error_on_every_layer(app_env: dict[str, str], backend: str) -> None:
    s = Settings(model="vit_test_tiny", n_calib=16, backend=backend)
    fp = services.load_fp_model(s.model)
    w8 = layer_error.layer_errors(s, fp, QuantConfig("minmax", 8, 8, 8), n_images=16)
    w4 = layer_error.layer_errors(s, fp, QuantConfig("minmax", 4, 4, 8), n_images=16)
    assert list(w8["fqn"]) == [ly.fqn for ly in fp.layers]
    assert w8["sqnr_db"].median() > 10  # (attention outputs of this random-weight model are the noisy ones)
    assert (w4["rel_error"].to_numpy() > w8["rel_error"].to_numpy()).all()


def test_float_layers_have_no_error() -> None:
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    xs = [torch.randn(3, 4)]
    outs = layer_error.collect_outputs(model, ["0", "2", "missing"], xs)
    assert set(outs) == {"0", "2"}
    errs = layer_error.relative_errors(outs, outs)
    assert list(errs["rel_error"]) == [0.0, 0.0]


def test_chart_click_names_the_layer() -> None:
    assert charts.selected_label({"selection": {"points": [{"x": "blocks.0.mlp.fc2", "y": 20.0}]}}) == (
        "blocks.0.mlp.fc2"
    )
    assert charts.selected_label(None) is None
    assert charts.selected_label({"selection": {"points": []}}) is None


def test_layers_page_shows_the_error_column(app_env: dict[str, str]) -> None:
    from streamlit.testing.v1 import AppTest

    at: Any = AppTest.from_file(str(APP), default_timeout=300).run()
    at.switch_page("app_pages/layers.py").run()
    at.button(key="measure_layer_error").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (errors,) = at.session_state["layer_errors"].values()
    assert len(errors) == 10
    (table,) = at.dataframe  # the layer editor
    assert "sqnr_db" in table.value.columns
    assert table.value["sqnr_db"].notna().all()
    assert len(at.get("plotly_chart")) == 1
