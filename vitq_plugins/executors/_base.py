"""The executor seam: run independent sweep tasks (sensitivity chunks, configs) and collect the outcomes.

An executor maps a module-level function ``fn(shared, item)`` over ``items``. ``shared`` (the model, the
calibration batches, ...) is handed to every task but shipped once: the serial executor passes the same
object, the Ray executor puts it in the object store once (``ray.put``). Results come back in the order
of ``items``; a task that fails for good is recorded as a :class:`TaskFailure` naming its label, and the
other tasks' results are kept (:class:`SweepOutcome`).

Executors live in a registry in timm's style: :func:`register_executor` beside each factory,
:func:`list_executors`, :func:`get_executor`.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from typing import Generic
from typing import TypeVar
from typing import cast

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.registry import Registry

__all__ = [
    "EXECUTORS",
    "Executor",
    "SweepError",
    "SweepOutcome",
    "TaskFailure",
    "get_executor",
    "list_executors",
    "register_executor",
]

R = TypeVar("R")
#: the task function: ``fn(shared, item) -> result``; module-level so that it pickles by reference
TaskFn = Callable[[Any, Any], R]


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed for good (after the executor's retries).

    Args:
        index: position of the task in ``items``.
        label: what the task was (a config name, a layer chunk), for the report.
        error: one line: the exception type and message.
        exception: the exception itself.
    """

    index: int
    label: str
    error: str
    exception: BaseException

    def describe(self) -> str:
        """``label: error`` on one line."""
        return f"{self.label}: {self.error}"


@dataclass(frozen=True)
class SweepOutcome(Generic[R]):
    """The results of a sweep in task order (``None`` where a task failed) and its failures."""

    results: tuple[R | None, ...]
    failures: tuple[TaskFailure, ...]

    @property
    def ok(self) -> bool:
        """Every task succeeded."""
        return not self.failures

    def unwrap(self, what: str) -> list[R]:
        """Every result, or :class:`SweepError` naming each failed task of ``what``."""
        if self.failures:  # chained to the first failure, so its traceback is kept
            raise SweepError(what, self) from self.failures[0].exception
        return cast(list[R], list(self.results))


class SweepError(VitqError):
    """Some tasks of a sweep failed for good; ``outcome`` keeps the results of the others."""

    def __init__(self, what: str, outcome: SweepOutcome[Any]) -> None:
        self.outcome = outcome
        n, total = len(outcome.failures), len(outcome.results)
        lost = "; ".join(f.describe() for f in outcome.failures)
        super().__init__(f"{what}: {n} of {total} task(s) failed for good ({lost})")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Executor(ABC):
    """Runs independent tasks; see the module docstring.

    Args:
        num_workers: tasks that run at once (serial: 1).
        threads: torch intra-op threads per task (``None``: leave as is).
    """

    name: str = ""

    def __init__(self, num_workers: int = 1, threads: int | None = None) -> None:
        if int(num_workers) < 1:
            raise VitqError(f"--num-workers {num_workers!r} is invalid: expected 1 or more")
        if threads is not None and int(threads) < 1:
            raise VitqError(f"threads {threads!r} is invalid: expected 1 or more")
        self.num_workers = int(num_workers)
        self.threads = threads

    @abstractmethod
    def map(
        self,
        fn: TaskFn[R],
        shared: Any,
        items: Sequence[Any],
        *,
        labels: Sequence[str] | None = None,
        desc: str = "tasks",
        progress: bool = False,
        on_done: Callable[[int, int], None] | None = None,
    ) -> SweepOutcome[R]:
        """Run ``fn(shared, item)`` for every item; a tqdm bar on stderr ticks as tasks finish, and
        ``on_done(finished, total)`` is called after each (a UI's progress bar)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor started (the serial one started nothing)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_workers={self.num_workers}, threads={self.threads})"

    @staticmethod
    def labels_for(items: Sequence[Any], labels: Sequence[str] | None) -> list[str]:
        """``labels`` (checked against ``items``) or ``task <i>``."""
        if labels is None:
            return [f"task {i}" for i in range(len(items))]
        if len(labels) != len(items):
            raise ValueError(f"{len(labels)} labels for {len(items)} items")
        return [str(x) for x in labels]

    @staticmethod
    def failure(index: int, label: str, exc: BaseException) -> TaskFailure:
        """The :class:`TaskFailure` of ``exc``."""
        return TaskFailure(index, label, _one_line(exc), exc)


#: executor name -> factory ``(**options) -> Executor``
EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")


def register_executor(name: str) -> Callable[[Callable[..., Executor]], Callable[..., Executor]]:
    """Decorator registering an executor factory under ``name`` (a duplicate raises)."""
    return EXECUTORS.register(name, owner="vitq_plugins.executors")


def list_executors(filter: str | None = None) -> list[str]:  # noqa: A002 - timm's spelling
    """Registered executor names, optionally filtered by a glob."""
    return EXECUTORS.list(filter)


def get_executor(name: str = "serial", **options: Any) -> Executor:
    """A new executor ``name`` with ``options`` (``num_workers``, ``threads``; Ray: ``address``,
    ``max_retries``).

    Raises:
        UnknownNameError: no such executor (close matches are named).
        VitqError: bad options, or the executor's package is missing.
    """
    return EXECUTORS.get(name)(**options)
