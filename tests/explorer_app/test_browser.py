"""A real browser (headless Chromium over the DevTools protocol) against the served explorer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.explorer_app import browser

#: CI sets VITQ_REQUIRE_BROWSER=1 after installing Chromium, so a missing browser fails there instead of skipping
_REQUIRED = os.environ.get("VITQ_REQUIRE_BROWSER") == "1"

pytestmark = [
    pytest.mark.app,
    pytest.mark.skipif(
        browser.find_chromium() is None and not _REQUIRED,
        reason="chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]


def test_browser_reaches_the_tradeoff_chart(app_env: dict[str, str], tmp_path: Path) -> None:
    from explorer_app import evaluations
    from explorer_app import services
    from explorer_app.state import Settings

    # evaluate the baselines here (warm, in-process) into the shared disk cache: the served app resumes
    # them, so the browser's "Evaluate uniform baselines" click finds them cached and the test stays fast
    settings = Settings.from_env()
    fp = services.load_fp_model(settings.model)
    for label, cfg in evaluations.uniform_configs(settings).items():
        evaluations.evaluate(settings, fp, cfg, {}, label=label, source="uniform")
    out = Path(os.environ.get("VITQ_SCREENSHOT_DIR", tmp_path))
    with browser.served_app(app_env) as (url, http_200_s):
        info = browser.walk_and_capture(url, out, full=False)
    png = info["tradeoffs_png"]
    assert (out / "tradeoffs.png").read_bytes() == png
    variance, ink = browser.pixel_stats(png)
    print(
        f"\nserver start -> first HTTP 200: {http_200_s:.2f} s; first page interactive in the browser "
        f"{info['first_page_interactive_s']:.2f} s later; screenshot variance {variance:.0f}, ink {ink:.1%}"
    )
    assert variance > 200, "the screenshot is blank"
    assert ink > 0.01, "the screenshot is almost all white"
    assert http_200_s < 60
    assert "Loaded W4A4 into the Layers table" in info["clicked"]
