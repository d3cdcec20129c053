"""``vitq sensitivity`` and ``vitq search`` through the CLI on ``vit_test_tiny``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vitq_plugins.cli import main
from vitq_plugins.config import QuantConfig

BASE = ["--model", "vit_test_tiny", "--calib", "32", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("vitq-cache"))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_sensitivity_json(cache: str, capsys: pytest.CaptureFixture[str], host: object) -> None:
    code, out, _ = _run(["sensitivity", *BASE, "--cache-dir", cache, "--metric", "mse", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["metric"] == "mse" and data["candidates"] == [8, 6, 5, 4]
    assert len(data["layers"]) == 10 and len(data["layers"][0]["w"]) == 4
    code, out, _ = _run(["sensitivity", *BASE, "--cache-dir", cache, "--json"], capsys)
    assert json.loads(out)["meta"]["cache"] == "hit"


def test_search_writes_loadable_config(
    cache: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], host: object
) -> None:
    out_dir = tmp_path / "mp"
    args = ["search", *BASE, "--cache-dir", cache, "--avg-bits", "6", "--pin", "head", "--reeval", "1"]
    code, out, err = _run(
        [*args, "--eval", "50", "--quant-calib", "32", "--out", str(out_dir), "--json"], capsys
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["costs"]["avg_bits"] <= 6.0
    assert summary["pins"] == {"head": 8}
    cfg = QuantConfig.load(out_dir / "config.json")
    from vitq_plugins.models.reference import vit_test_tiny

    cfg.validate(host, [n for n, _ in vit_test_tiny().named_modules()])  # type: ignore[arg-type]
    assert cfg.resolve("head").w_bits == 8 and cfg.resolve("head").a_bits == 8
    assert set(summary["layers"]) <= {k for k in cfg.layers}
    (point,) = summary["points"]
    assert point["measured_size_mb"] == pytest.approx(point["mb"])  # the estimate is the pipeline's size
    assert point["measured_bops"] == pytest.approx(point["bops"])
    with (out_dir / "pareto.csv").open() as f:
        rows = list(csv.DictReader(f))
    mbs = [float(r["mb"]) for r in rows]
    assert all(b <= a for a, b in zip(mbs, mbs[1:], strict=False))
    assert sum(r["chosen"] == "True" for r in rows) == 1
    # the saved config is what `vitq quantize --config` reads
    code, _, err = _run(
        [
            "quantize",
            "--model",
            "vit_test_tiny",
            "--config",
            str(out_dir / "config.json"),
            "--calib",
            "16",
            "--eval",
            "20",
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err


def test_search_ilp_reports_differences(
    cache: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], host: object
) -> None:
    args = ["search", *BASE, "--cache-dir", cache, "--bops", "6e7", "--method", "ilp", "--tie", "attn"]
    code, out, err = _run([*args, "--reeval", "0", "--out", str(tmp_path / "ilp"), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "ilp" and summary["costs"]["bops"] <= 6e7
    cmp = summary["greedy_vs_ilp"]
    assert cmp["ilp"]["est_loss"] <= cmp["greedy"]["est_loss"] + 1e-12
    assert cmp["same"] == (not cmp["differences"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--budget-mb", "0.01"],
            r"size budget 0\.0100 MB is below the smallest achievable 0\.0677 MB \(every searchable layer at 4 bits\)",
        ),
        (["--avg-bits", "3"], r"below the smallest achievable 4\.000 average bits"),
        (
            ["--avg-bits", "5", "--pin", "head", "--pin", "blocks.9.*", "--pin", "nope"],
            r"'blocks\.9\.\*', 'nope'",
        ),
        ([], "no budget given"),
        (["--avg-bits", "5", "--candidates", "8,x"], "--candidates '8,x' is invalid"),
    ],
)
def test_search_bad_input(
    extra: list[str],
    message: str,
    cache: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    host: object,
) -> None:
    code, out, err = _run(
        ["search", *BASE, "--cache-dir", cache, *extra, "--out", str(tmp_path / "x")], capsys
    )
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--executor", "rya"], r"unknown executor 'rya'; did you mean 'ray'\?"),
        (["--ray-address", "10.0.0.1:6379"], r"--ray-address '10\.0\.0\.1:6379' needs --executor ray"),
        (["--num-workers", "0"], r"--num-workers 0 is invalid: expected 1 or more"),
        (["--num-workers", "3"], r"--num-workers 3 needs a parallel executor"),
    ],
)
@pytest.mark.parametrize("cmd", ["sensitivity", "search"])
def test_bad_executor_flags(
    cmd: str,
    flags: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    host: object,
) -> None:
    import re

    extra = ["--avg-bits", "6", "--out", str(tmp_path / "x")] if cmd == "search" else []
    code, out, err = _run([cmd, *BASE, "--no-cache", *flags, *extra], capsys)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "x").exists()


def test_search_on_ray_equals_serial(
    ray_executor: object, cache: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], host: object
) -> None:
    args = [
        "search",
        *BASE,
        "--avg-bits",
        "6",
        "--reeval",
        "2",
        "--eval",
        "40",
        "--quant-calib",
        "16",
        "--json",
    ]
    code, out, err = _run([*args, "--cache-dir", cache, "--out", str(tmp_path / "serial")], capsys)
    assert code == 0, err
    serial = json.loads(out)
    ray_args = ["--executor", "ray", "--num-workers", "2", "--cache-dir", str(tmp_path / "fresh-cache")]
    code, out, err = _run([*args, *ray_args, "--out", str(tmp_path / "ray")], capsys)
    assert code == 0, err
    remote = json.loads(out)
    assert remote["sensitivity"]["cache"] == "miss"  # measured on Ray, not read from the serial cache
    assert remote["layers"] == serial["layers"] and remote["est_loss"] == serial["est_loss"]
    assert len(remote["points"]) == 2 and remote["points"] == serial["points"]
    assert (tmp_path / "ray" / "config.json").read_text() == (tmp_path / "serial" / "config.json").read_text()
