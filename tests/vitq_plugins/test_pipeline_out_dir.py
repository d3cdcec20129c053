"""``--out`` is checked writable before any work (a read-only filesystem used to fail after the full run)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from vitq_plugins import pipeline
from vitq_plugins.cli import main


def _read_only(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.EROFS, "Read-only file system")


def test_unwritable_out_fails_before_the_model_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pipeline.tempfile, "TemporaryFile", _read_only)
    loaded: list[str] = []
    import vitq_plugins.models.resolve as resolve

    monkeypatch.setattr(resolve, "resolve_model", lambda *a, **k: loaded.append("model") or (None, ""))
    out = tmp_path / "ro" / "run1"
    code = main(
        ["quantize", "--model", "vit_test_tiny", "--recipe", "fqvit", "--export", "qonnx", "--out", str(out)]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and not loaded
    assert len(err) == 1 and "cannot be written (Read-only file system" in err[0] and str(tmp_path) in err[0]
    assert not out.exists()


def test_out_below_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(pipeline.VitqError, match="is a file, not a directory"):
        pipeline._check_out_dir(tmp_path / "file" / "run", "none")
