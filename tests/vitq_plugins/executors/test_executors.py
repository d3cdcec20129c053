"""The executor registry and the serial executor (no Ray needed)."""

from __future__ import annotations

import builtins
import subprocess
import sys
from typing import Any

import pytest

from vitq_plugins.core.errors import DuplicateNameError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.executors import EXECUTORS
from vitq_plugins.executors import SerialExecutor
from vitq_plugins.executors import SweepError
from vitq_plugins.executors import get_executor
from vitq_plugins.executors import list_executors
from vitq_plugins.executors import register_executor
from vitq_plugins.executors import split_round_robin


def _scale(shared: int, x: int) -> int:
    if x < 0:
        raise ValueError(f"negative item {x}")
    return shared * x


def test_registry_lists_gets_and_rejects() -> None:
    assert list_executors() == ["ray", "serial"]
    assert list_executors(filter="r*") == ["ray"]
    assert isinstance(get_executor("serial"), SerialExecutor)
    with pytest.raises(UnknownNameError, match=r"did you mean 'serial'"):
        get_executor("serail")
    with pytest.raises(DuplicateNameError, match="already registered"):
        register_executor("serial")(lambda **_: SerialExecutor())
    assert len(EXECUTORS) == 2


@pytest.mark.parametrize("n", [0, 2])
def test_serial_refuses_parallel_workers(n: int) -> None:
    with pytest.raises(VitqError, match=f"--num-workers {n}"):
        get_executor("serial", num_workers=n)


def test_serial_keeps_results_and_names_failures() -> None:
    out = get_executor("serial").map(_scale, 3, [1, -2, 4], labels=["one", "minus two", "four"])
    assert out.results == (3, None, 12)
    assert [(f.index, f.label) for f in out.failures] == [(1, "minus two")]
    assert out.failures[0].error == "ValueError: negative item -2"
    with pytest.raises(
        SweepError, match=r"squares: 1 of 3 task\(s\) failed for good \(minus two: ValueError"
    ):
        out.unwrap("squares")
    assert get_executor("serial").map(_scale, 2, [1, 2]).unwrap("x") == [2, 4]


@pytest.mark.parametrize(
    ("n", "parts", "want"), [(5, 2, [(0, 2, 4), (1, 3)]), (2, 4, [(0,), (1,)]), (0, 3, [])]
)
def test_split_round_robin(n: int, parts: int, want: list[tuple[int, ...]]) -> None:
    assert split_round_robin(n, parts) == want


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(VitqError, match=r"needs the 'ray' package.*pip install 'vitq\[ray\]'"):
        get_executor("ray", num_workers=2)


def test_executors_do_not_import_ray_eagerly() -> None:
    code = "import sys, vitq_plugins.executors as e; e.get_executor('serial'); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
