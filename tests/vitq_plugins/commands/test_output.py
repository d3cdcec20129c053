"""The CLI's error lines and where third-party warnings go."""

from __future__ import annotations

import logging
from pathlib import Path
import subprocess
import sys
import warnings

import pytest

from vitq_plugins.commands import _output
from vitq_plugins.commands._output import configure
from vitq_plugins.commands._output import one_line

REPO = Path(__file__).resolve().parents[3]


class Payload:
    """A class that weights_only=True refuses to unpickle."""


def test_one_line_strips_escapes_and_breaks() -> None:
    assert one_line("bad \x1b[1mthing\x1b[0m.\n\tsecond  line") == "bad thing. second line"


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # an earlier CLI test in this process left warnings captured; capturing again would keep pytest's recorder
    logging.captureWarnings(False)
    with warnings.catch_warnings():
        yield None
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def test_known_noise_is_dropped_the_rest_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: object
) -> None:
    monkeypatch.setenv("VITQ_CACHE_DIR", str(tmp_path))
    path = configure(verbose=False)
    assert path == tmp_path / _output.LOG_NAME
    warnings.warn("fast_hadamard_transform package not found, using standard pytorch kernels", stacklevel=1)
    logging.getLogger("torch.utils.cpp_extension").warning(
        "No CUDA runtime is found, using CUDA_HOME='%s'", "x"
    )
    warnings.warn("something a developer may want", UserWarning, stacklevel=1)
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert "something a developer may want" in text
    assert "fast_hadamard" not in text and "No CUDA runtime" not in text


def _vitq(*args: str, env_cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitq_plugins.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "VITQ_CACHE_DIR": str(env_cache),
            "HOME": str(env_cache),
        },
    )


def test_cli_error_is_exactly_one_line(tmp_path: Path) -> None:
    import torch

    ckpt = tmp_path / "model.pt"
    torch.save({"x": Payload()}, ckpt)
    proc = _vitq("quantize", "--model", str(ckpt), "--recipe", "fqvit", "--eval", "10", env_cache=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vitq quantize: error: checkpoint")
    assert "\x1b" not in lines[0] and "will likely succeed" not in lines[0] and ".safetensors" in lines[0]


def test_bits_name_the_valid_range(tmp_path: Path) -> None:
    for bad in ("abc", "1", "17"):
        proc = _vitq(
            "quantize", "--model", "vit_test_tiny", "--recipe", "fqvit", "--w-bits", bad, env_cache=tmp_path
        )
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"vitq quantize: error: argument --w-bits: bits must be a whole number in 2..16, got {bad!r}"
        ]
