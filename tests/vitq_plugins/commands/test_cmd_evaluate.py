"""``vitq eval`` through the lead's CLI entry point and through the module's run()."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vitq_plugins.cli import main
from vitq_plugins.commands import evaluate as cmd
from vitq_plugins.core.errors import UnknownNameError

BASE = ["eval", "--model", "vit_test_tiny", "--eval", "20", "--batch-size", "10", "--no-progress"]


def test_json_stdout_is_one_object(fake_backend: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "vit_test_tiny" and out["n_eval"] == 20 and 0.0 <= out["top1"] <= 1.0
    assert out["data"] == "cifar10_bundled[test]" and out["macs"] == 1_942_400


def test_table_output(fake_backend: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(BASE) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "vit_test_tiny"] and any(line.startswith("top1") for line in lines)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--model", "vit_test_tin"], "did you mean 'vit_test_tiny'"),
        (["--eval", "2001"], "--eval 2001 is larger than the data: it has only 2000 images"),
        (["--eval", "0"], "--eval 0 is invalid"),
        (["--data", "cifar10_bundle"], "did you mean 'cifar10_bundled'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    fake_backend: object, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    assert main([*BASE, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vitq eval: error:") and fragment in err[0]


def test_empty_image_folder(fake_backend: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cls").mkdir()
    assert main([*BASE, "--data", str(tmp_path)]) == 2
    assert "has no images" in capsys.readouterr().err


def test_run_directly_with_a_namespace(fake_backend: object) -> None:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(["--model", "nope_model"])
    with pytest.raises(UnknownNameError, match="unknown model 'nope_model'"):
        cmd.run(args)
