from __future__ import annotations

from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "explorer_app" / "app.py"


@pytest.mark.app
def test_registry_page_renders_without_exception() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert not at.error
    text = " ".join(s.value for s in at.subheader)
    for kind in ("Plugins", "Recipes", "Quantizers", "Models", "Datasets", "Backends"):
        assert kind in text
