"""The one slower explorer test: the bundled reference model ``vit_tiny_cifar10`` on few images."""

from __future__ import annotations

from pathlib import Path
import time

import pytest

from vitq_plugins.models.reference import REFERENCE_WEIGHTS
from vitq_plugins.models.reference import reference_metadata

pytestmark = pytest.mark.app
APP = Path(__file__).resolve().parents[2] / "explorer_app" / "app.py"


def test_reference_model_evaluates_and_charts(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer_app.state import Settings

    monkeypatch.setenv("VITQ_EXPLORER_MODEL", "vit_tiny_cifar10")
    monkeypatch.setenv("VITQ_EXPLORER_N_EVAL", "50")
    monkeypatch.setenv("VITQ_EXPLORER_N_CALIB", "16")
    trained = REFERENCE_WEIGHTS.is_file()
    at = AppTest.from_file(str(APP), default_timeout=600).run()
    if (
        not trained
    ):  # the weights are trained by integration/train_reference.py; the architecture is what matters
        at.session_state["settings"] = Settings(
            model="vit_tiny_cifar10", pretrained=False, n_eval=50, n_calib=16
        )
    at.switch_page("app_pages/layers.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.session_state["layers"]) == 50  # patch embed, 12 x (qkv, proj, fc1, fc2), head
    start = time.perf_counter()
    at.button(key="evaluate_current").click().run()
    elapsed = time.perf_counter() - start
    assert not at.exception and not at.error, [e.value for e in at.error]
    (rec,) = at.session_state["results"].values()
    res = rec["result"]
    print(
        f"\nvit_tiny_cifar10 ({'trained' if trained else 'random weights'}), fqvit W8A8 on 50 images: "
        f"{elapsed:.1f} s (calib {res['calib_s']:.1f}, eval {res['eval_s']:.1f}, FP eval {res['fp_eval_s']:.1f}); "
        f"top-1 {res['q_top1']:.3f} vs FP {res['fp_top1']:.3f}"
    )
    final = reference_metadata().get("full_test_top1") if trained else None
    if final is not None:  # fully trained weights: the app reproduces their accuracy (50 images: +-0.2)
        assert res["fp_top1"] > float(final) - 0.2
        assert res["agreement"] > 0.7
    at.switch_page("app_pages/tradeoffs.py").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1
