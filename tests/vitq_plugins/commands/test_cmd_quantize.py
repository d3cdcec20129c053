"""``vitq quantize`` through the lead's CLI entry point, with the fake backend from conftest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import save_file

from vitq_plugins.cli import main
from vitq_plugins.commands import quantize as cmd
from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.models.reference import vit_test_tiny

BASE = [
    "quantize", "--model", "vit_test_tiny", "--recipe", "minmax", "--backend", "fake", "--calib", "16",
    "--eval", "20", "--batch-size", "10", "--no-progress",
]  # fmt: skip


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vitq quantize: error:"), lines
    return lines[0]


def test_json_result(fake_backend: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--w-bits", "4", "--attn-bits", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert (out["w_bits"], out["a_bits"], out["attn_bits"]) == (4, 8, 6)
    assert (out["n_calib"], out["n_eval"], out["agreement"], out["top1_drop"]) == (16, 20, 1.0, 0.0)
    assert out["size_mb"] < out["fp_size_mb"] and fake_backend.calls == ["quantize"]


def test_table_result(fake_backend: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(BASE) == 0
    out = capsys.readouterr().out
    assert "q_top1" in out and "fp_size_mb" in out


def test_out_and_export(fake_backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*BASE, "--export", "qcdq", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["export_path"] == str(out / "model_qcdq.onnx")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model_qcdq.onnx", "results.json"]


def test_failed_export_writes_nothing(
    fake_backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_backend.fail_export = True
    assert main([*BASE, "--export", "qonnx", "--out", str(tmp_path / "run")]) == 2
    assert "exporter crashed" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_config_file(fake_backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = QuantConfig("minmax", 4, 8, 8, {"head": LayerOverride(keep_float=True)}).save(tmp_path / "c.json")
    args = [a for a in BASE if a not in ("--recipe", "minmax")]
    assert main([*args, "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["layers"] == {"head": {"keep_float": True}}


def _bad_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.safetensors"
    save_file({k: v.contiguous() for k, v in vit_test_tiny().state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("replace", "fragment"),
    [
        ({"--calib": "0"}, "--calib 0 is invalid"),
        ({"--eval": "5000"}, "--eval 5000 is larger than the data: it has only 2000 images"),
        ({"--recipe": "fqvitt"}, "did you mean 'fqvit'"),
        ({"--model": "vit_tiny_cifar"}, "did you mean 'vit_tiny_cifar10'"),
        ({"--backend": "brevitass"}, "did you mean 'brevitas'"),
        ({"--model": "<ckpt>"}, "does not fit the model"),
        ({"--model": "<corrupt>"}, "is not a valid safetensors file"),
        ({"--model": "missing.pt"}, "checkpoint 'missing.pt' does not exist"),
        ({"--recipe": None}, "a recipe is required"),
    ],
)
def test_bad_input(
    fake_backend: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    replace: dict[str, str | None],
    fragment: str,
) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    subst = {"<ckpt>": str(_bad_checkpoint(tmp_path)), "<corrupt>": str(corrupt)}
    args = list(BASE)
    for flag, value in replace.items():
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
        if value is not None:
            args += [flag, subst.get(value, value)]
    assert main(args) == 2
    assert fragment in _one_error_line(capsys)
    assert fake_backend.calls == []


def test_bad_config_layer_key(fake_backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"recipe": "minmax", "layers": {"blocks.9.mlp.fc1": {"w_bits": 4}}}))
    args = [a for a in BASE if a not in ("--recipe", "minmax")]
    assert main([*args, "--config", str(path)]) == 2
    assert "'blocks.9.mlp.fc1' matches no module" in _one_error_line(capsys)


def test_nonempty_out_dir(fake_backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main([*BASE, "--out", str(tmp_path)]) == 2
    assert "not empty" in _one_error_line(capsys) and fake_backend.calls == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--export", "tflite"], "invalid choice: 'tflite'"),
        (["--w-bits", "0"], "--w-bits: bits must be a whole number in 2..16, got '0'"),
        (["--a-bits", "abc"], "--a-bits: bits must be a whole number in 2..16, got 'abc'"),
    ],
)
def test_usage_errors_exit_2_on_one_line(
    fake_backend: Any, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*BASE, *extra])
    err = capsys.readouterr().err
    assert info.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert fake_backend.calls == []


def test_run_directly_with_a_namespace(fake_backend: Any) -> None:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(["--model", "vit_test_tiny", "--backend", "fake", "--no-progress"])
    with pytest.raises(ConfigError, match="a recipe is required"):
        cmd.run(args)
