"""``integration/bench_ray.py``: the projection arithmetic and bad input (the measurement itself is a script run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import sys
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "integration" / "bench_ray.py"


@pytest.fixture(scope="module")
def bench_ray() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vitq_integration_bench_ray", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("tasks", "slots", "want"),
    # LPT, not the optimum: 5+3 | 4+3+3 = 10 where 9 (5+4 | 3+3+3) exists
    [([5.0, 4.0, 3.0, 3.0, 3.0], 1, 18.0), ([5.0, 4.0, 3.0, 3.0, 3.0], 2, 10.0), ([7.0, 1.0], 8, 7.0)],
)
def test_lpt_makespan(bench_ray: ModuleType, tasks: list[float], slots: int, want: float) -> None:
    assert bench_ray.lpt_makespan(tasks, slots) == pytest.approx(want)


def test_projection_from_per_task_times(bench_ray: ModuleType, tmp_path: Path) -> None:
    head = "section,name,search_s,eval_s,wall_s\n"
    rows = [
        "accuracy,FP,,9,12",
        "accuracy,a,,4,10",
        "accuracy,b,,4,10",
        "accuracy,c,,4,10",
        "mixed,mp,6,4,10",
        "speed,x,,,99",
    ]
    (tmp_path / "r.csv").write_text(head + "\n".join(rows) + "\n")
    meta = {"timings_s": {"fp": 2.0, "onnx+speed": 8.0}, "n_eval": 2000, "wall_s": 56.0}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    out = bench_ray.project(tmp_path / "r.csv", tmp_path / "m.json", 0.5, 1.0, (1, 2, 4))
    measured = {p["machines"]: p["projected_s"] for p in out if p["split"] == "as measured"}
    # serial: fp 2 + speed 8 + sensitivity 6 + 4 tasks x 10 s, no Ray costs
    assert measured[1] == pytest.approx(56.0)
    # 2 machines: 10 + 6/2 + LPT of 4 x 10.5 s on 2 slots (21) + one put (1)
    assert measured[2] == pytest.approx(35.0)
    assert measured[4] == pytest.approx(10 + 1.5 + 10.5 + 1)
    full = {p["machines"]: p["projected_s"] for p in out if p["split"] == "full split"}
    # 10,000 images: each task's 4 s evaluation x 5, the FP part x 5
    assert full[1] == pytest.approx(2 * 5 + 8 + 6 + 4 * (10 + 4 * 4))


def test_bad_sizes_exit_2(bench_ray: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert bench_ray.main(["--reps", "0", "--out-dir", str(tmp_path)]) == 2
    assert "--reps 0 is invalid: expected 1 or more" in capsys.readouterr().err
    assert bench_ray.main(["--results", str(tmp_path), "--out-dir", str(tmp_path)]) == 2
    assert "has no results.csv" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
