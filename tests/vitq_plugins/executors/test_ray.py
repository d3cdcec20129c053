"""The Ray executor on a local 2-worker cluster: order, shared object, retries after a worker dies."""

from __future__ import annotations

import os
from pathlib import Path
import sys

import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.executors import RayExecutor

pytest.importorskip("ray")
import ray.cloudpickle  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _add(shared: dict[str, int], x: int) -> tuple[int, int]:
    return shared["base"] + x, os.getpid()


def _die_once(marker_dir: str, x: int) -> int:
    """Kills its own worker process the first time item 1 runs (a marker file remembers it)."""
    marker = Path(marker_dir) / f"killed-{x}"
    if x == 1 and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    return x * 10


def _die_always(_shared: None, x: int) -> int:
    if x == 2:
        os._exit(1)
    return x * 10


def _refuse(log_dir: str, x: int) -> int:
    """Raises a VitqError (bad input) for item 1, after noting the attempt."""
    if x == 1:
        with (Path(log_dir) / "attempts").open("a") as f:
            f.write("x")
        raise VitqError(f"config {x} is invalid")
    return x


def _flaky(log_dir: str, x: int) -> int:
    """Raises a RuntimeError on its first attempt only (a transient failure)."""
    marker = Path(log_dir) / f"flaky-{x}"
    if not marker.exists():
        marker.write_text("x")
        raise RuntimeError("transient")
    return x


def test_bad_input_is_not_retried_but_a_transient_error_is(ray_executor: RayExecutor, tmp_path: Path) -> None:
    out = ray_executor.map(_refuse, str(tmp_path), [0, 1, 2], labels=["a", "b", "c"])
    assert out.results == (0, None, 2) and (tmp_path / "attempts").read_text() == "x"
    assert isinstance(out.failures[0].exception, VitqError)
    assert out.failures[0].describe() == "b: VitqError: config 1 is invalid"
    assert ray_executor.map(_flaky, str(tmp_path), [0, 1]).unwrap("flaky") == [0, 1]


def test_results_in_task_order_from_both_workers(ray_executor: RayExecutor) -> None:
    out = ray_executor.map(_add, {"base": 100}, list(range(8)), progress=True)
    assert out.ok
    assert [r[0] for r in out.unwrap("add")] == [100 + i for i in range(8)]
    assert ray_executor.num_workers == 2


def test_killed_worker_is_retried_and_nothing_is_lost(ray_executor: RayExecutor, tmp_path: Path) -> None:
    out = ray_executor.map(_die_once, str(tmp_path), [0, 1, 2, 3])
    assert (tmp_path / "killed-1").exists()  # the worker really died once
    assert out.unwrap("die once") == [0, 10, 20, 30]


def test_task_lost_for_good_is_named_and_the_others_kept(ray_executor: RayExecutor) -> None:
    no_retry = RayExecutor(num_workers=2, threads=1, max_retries=0)  # joins the session's cluster
    out = no_retry.map(_die_always, None, [0, 1, 2, 3], labels=["W8A8", "W6A6", "W4A8", "W4A4"])
    assert out.results == (0, 10, None, 30)
    assert [f.label for f in out.failures] == ["W4A8"]
    assert "Worker" in out.failures[0].error or "died" in out.failures[0].error.lower()
    no_retry.close()  # does not shut down a cluster it did not start
    assert ray.is_initialized()
