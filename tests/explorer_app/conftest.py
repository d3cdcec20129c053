"""Fixtures of the explorer tests: a small model, few images and a private cache directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import sys

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "explorer_app" / "app.py"
if (
    str(REPO) not in sys.path
):  # `explorer_app` is not installed; `pytest` alone may not put the root on sys.path
    sys.path.insert(0, str(REPO))

#: the environment every explorer test runs the app with (vit_test_tiny, few images)
SMALL_ENV = {
    "VITQ_EXPLORER_MODEL": "vit_test_tiny",
    "VITQ_EXPLORER_N_EVAL": "50",
    "VITQ_EXPLORER_N_CALIB": "16",
    "VITQ_EXPLORER_SENS_CALIB": "16",
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The small-model environment with ``VITQ_CACHE_DIR`` in ``tmp_path``."""
    env = {**SMALL_ENV, "VITQ_CACHE_DIR": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
