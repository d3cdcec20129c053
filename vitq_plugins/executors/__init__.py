"""Executors: where the independent tasks of a sweep run (one seam for sensitivity, search re-evaluation,
the benchmark and the explorer's batch evaluations).

* ``serial`` (the default) - every task in this process, in order: vitq's behaviour without a cluster.
* ``ray`` - Ray tasks on a local cluster or an existing one (``address`` / ``$RAY_ADDRESS``); needs the
  optional extra ``pip install 'vitq[ray]'``, imported only when the executor is created.

Example:
    >>> from vitq_plugins.executors import get_executor, list_executors
    >>> list_executors()
    ['ray', 'serial']
    >>> def square(shared, x):
    ...     return shared * x * x
    >>> get_executor("serial").map(square, 2, [1, 2, 3]).unwrap("squares")
    [2, 8, 18]
"""

from __future__ import annotations

from vitq_plugins.executors._base import EXECUTORS
from vitq_plugins.executors._base import Executor
from vitq_plugins.executors._base import SweepError
from vitq_plugins.executors._base import SweepOutcome
from vitq_plugins.executors._base import TaskFailure
from vitq_plugins.executors._base import get_executor
from vitq_plugins.executors._base import list_executors
from vitq_plugins.executors._base import register_executor
from vitq_plugins.executors._ray import ADDRESS_ENV
from vitq_plugins.executors._ray import RayExecutor
from vitq_plugins.executors._ray import import_ray
from vitq_plugins.executors._serial import SerialExecutor
from vitq_plugins.executors._split import split_round_robin

__all__ = [
    "ADDRESS_ENV",
    "EXECUTORS",
    "Executor",
    "RayExecutor",
    "SerialExecutor",
    "SweepError",
    "SweepOutcome",
    "TaskFailure",
    "get_executor",
    "import_ray",
    "list_executors",
    "register_executor",
    "split_round_robin",
]
