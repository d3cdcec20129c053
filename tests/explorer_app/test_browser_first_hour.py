"""Issue 21, items 1-5, in a real browser (headless Chromium, as ``test_browser.py``): a person's first hour.

One served app and one browser for the module (starting them is most of the cost); each test walks one item
and leaves the session where the next one expects it (the tests run in file order).
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import re
import tempfile
import time

import pytest

from tests.explorer_app import browser
from tests.explorer_app.conftest import SMALL_ENV

_REQUIRED = os.environ.get("VITQ_REQUIRE_BROWSER") == "1"

pytestmark = [
    pytest.mark.app,
    pytest.mark.skipif(
        browser.find_chromium() is None and not _REQUIRED,
        reason="chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]

N_EVAL = "Evaluation images (0: all)"
SEED = "Seed"


@pytest.fixture(scope="module")
def page() -> Iterator[browser.Browser]:
    """A served explorer on the small model (private cache) and a browser on its first page."""
    with tempfile.TemporaryDirectory(prefix="vitq-first-hour-") as tmp:
        env = {**SMALL_ENV, "VITQ_CACHE_DIR": str(Path(tmp) / "cache")}
        with browser.served_app(env) as (url, _), browser.chromium() as b:
            b.call("Page.navigate", url=url + "/")
            b.wait_for("document.body.innerText.includes('Apply')", 120, "the settings form")
            yield b


def _apply(b: browser.Browser) -> None:
    b.click_button("Apply")
    b.idle()


def test_item1_typed_settings_survive_a_second_apply(page: browser.Browser) -> None:
    b = page
    for n_eval, seed in (("40", "3"), ("30", "4"), ("20", "5")):  # the 2nd change of a field was dropped
        b.type_into(N_EVAL, n_eval)
        b.type_into(SEED, seed)
        _apply(b)
        assert any("Settings applied" in t for t in b.alerts("success")), b.text()
        assert b.input_value(N_EVAL) == n_eval
        assert b.input_value(SEED) == seed
    b.goto_page("Layers")  # the settings outlive a page that has no form
    b.idle()
    b.goto_page("Model & data")
    b.idle()
    assert b.input_value(N_EVAL) == "20" and b.input_value(SEED) == "5"


def test_item4_corrupt_upload_is_refused_and_named(page: browser.Browser, tmp_path: Path) -> None:
    b = page
    bad = tmp_path / "my_weights.safetensors"
    bad.write_bytes(b"\x00not a safetensors file" * 50)
    b.upload_file(bad, 0)
    _apply(b)
    errors = b.alerts("error")
    assert errors and "my_weights.safetensors" in errors[0], errors
    assert "uploads" not in errors[0] and "/" not in errors[0].split("What to do")[0], errors[0]
    assert not any("Settings applied" in t for t in b.alerts("success"))
    assert b.js("!!document.querySelector('[data-testid=\"stForm\"]')")  # the form is still there
    b.goto_page("Layers")  # other pages still work on the previous model
    b.idle()
    assert not b.alerts("error"), b.alerts("error")
    assert b.js("!!document.querySelector('[data-testid=\"stDataFrame\"]')")


def test_item4_bad_config_json_keeps_the_table(page: browser.Browser, tmp_path: Path) -> None:
    b = page
    bad = tmp_path / "broken.json"
    bad.write_text('{"recipe": "fqvit", "w_bits": ')
    b.js(
        "[...document.querySelectorAll('summary')].find(e => e.innerText.includes('Load a config JSON')).click()"
    )
    b.upload_file(bad, 0)
    b.click_button("Load into the table")
    b.idle()
    errors = b.alerts("error")
    assert errors and "broken.json" in errors[0], errors
    assert "Model & data" not in errors[0]  # the hint names this page
    assert b.js("!!document.querySelector('[data-testid=\"stDataFrame\"]')"), "the table went away"
    assert "Evaluate current config" in b.text() and "Measure sensitivity" in b.text()


def test_item5_sensitivity_shows_progress_and_readable_columns(page: browser.Browser) -> None:
    b = page
    b.record_progress()
    b.click_button("Measure sensitivity")
    b.idle()
    seen = b.progress_seen()
    assert any(re.search(r"Sensitivity · sensitivity: \d+/\d+ run", t) for t in seen), seen
    # the grid is a canvas; its accessible twin lists only the columns in view: every KL column must be one
    cols = b.js(
        "[...document.querySelectorAll('[data-testid=\"stDataFrame\"] [role=columnheader]')].map(e => e.innerText)"
    )
    kl = [c for c in cols or [] if str(c).startswith("KL ")]
    assert kl == ["KL W6", "KL W5", "KL W4", "KL A6", "KL A5", "KL A4"], cols
    assert cols[0] == "FQN"


def test_item5_bit_width_one_is_refused(page: browser.Browser) -> None:
    b = page
    # the table is a canvas grid: click the w_bits cell of row 0 (FQN is 150 px, w_bits 60 px, the header
    # row 36 px), type 1 as a person does, press Enter
    left, top = b.js(
        "(() => { const g = document.querySelector('[data-testid=\"stDataFrame\"]').getBoundingClientRect();"
        " return [g.x, g.y]; })()"
    )
    x, y = float(left) + 150 + 30, float(top) + 36 + 17
    for kind in ("mousePressed", "mouseReleased"):
        b.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    time.sleep(0.5)
    b.call(
        "Input.dispatchKeyEvent", type="keyDown", key="1", code="Digit1", text="1", windowsVirtualKeyCode=49
    )
    b.call("Input.dispatchKeyEvent", type="keyUp", key="1", code="Digit1", windowsVirtualKeyCode=49)
    time.sleep(0.5)
    for kind in ("keyDown", "keyUp"):
        b.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
    b.idle()
    errors = b.alerts("error")
    assert errors == ["patch_embed.proj: w_bits=1 is invalid: a bit-width is a whole number in 2..16; kept 8"]


def test_item3_budget_typed_is_budget_searched(page: browser.Browser) -> None:
    b = page
    b.goto_page("Suggestions")
    b.idle()
    label = b.js(
        "[...document.querySelectorAll('input[aria-label]')].map(e => e.getAttribute('aria-label'))"
        ".find(l => l.startsWith('Budget ('))"
    )
    assert label, "no budget box"
    lo = float(re.search(r"reachable ([0-9.e+-]+)", str(label)).group(1))  # type: ignore[union-attr]
    b.type_into(str(label), f"{lo * 0.5:.6g}")
    b.idle()
    errors = b.alerts("error")
    assert errors and "below the smallest reachable" in errors[0] and "pinned" in errors[0], errors
    assert "Model & data" not in errors[0]
    assert b.js(
        "[...document.querySelectorAll('button')].find(e => e.innerText.includes('Run search')).disabled"
    ), "Run search must not run another budget than the one shown"
    target = f"{lo * 1.01:.6g}"
    b.type_into(str(label), target)
    b.idle()
    assert not b.alerts("error")
    b.click_button("Run search")
    b.idle()
    assert f"≤ {float(target):.6g}" in b.text(), "the search ran another budget than the one typed"


def test_item2_tradeoff_axes_before_and_after_evaluation(page: browser.Browser) -> None:
    b = page
    b.goto_page("Trade-offs")
    b.idle()
    b.wait_for("document.querySelectorAll('.js-plotly-plot').length > 0", 60, "the chart")
    ticks = b.js(
        "[...document.querySelector('.js-plotly-plot').querySelectorAll('.ytick text')].map(e => e.textContent)"
    )
    assert ticks and not any(t.startswith("−") or t.startswith("-") for t in ticks), ticks
    assert max(float(t.rstrip("%")) for t in ticks) <= 100, ticks
    b.click_button("Evaluate uniform baselines")
    b.idle(600)
    b.wait_for(browser.PLOT_READY, 120, "the points")
    ticks = b.js(
        "[...document.querySelector('.js-plotly-plot').querySelectorAll('.ytick text')].map(e => e.textContent)"
    )
    assert len(ticks) == len(set(ticks)), f"repeated tick labels: {ticks}"
