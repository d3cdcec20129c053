"""Every Python snippet of the README runs as written.

The snippets run in file order in one namespace, as a reader pasting them into one session would (the
integer-only snippet uses the model and images of the Brevitas one), inside a temporary working directory
(they write ONNX files). Fenced ``python`` blocks only; shell and TOML blocks are not Python.
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_snippets(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced ``python`` block of ``text``."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_the_readme_has_python_snippets() -> None:
    assert len(python_snippets(README.read_text())) >= 3


def test_every_readme_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: object) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for line, code in python_snippets(README.read_text()):
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - our own README
        except Exception as exc:  # noqa: BLE001 - name the snippet that failed
            pytest.fail(f"README.md snippet at line {line} failed: {type(exc).__name__}: {exc}")
    assert Path("model.onnx").is_file() and Path("model_int.onnx").is_file()
