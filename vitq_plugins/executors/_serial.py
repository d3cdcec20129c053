"""The serial executor: every task in this process, one after the other (vitq's default)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from vitq_plugins.executors._base import Executor
from vitq_plugins.executors._base import R
from vitq_plugins.executors._base import SweepOutcome
from vitq_plugins.executors._base import TaskFailure
from vitq_plugins.executors._base import TaskFn
from vitq_plugins.executors._base import register_executor

__all__ = ["SerialExecutor", "serial"]


class SerialExecutor(Executor):
    """Runs the tasks in order in this process; a failing task is recorded and the next one runs."""

    name = "serial"

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
        names = self.labels_for(items, labels)
        results: list[R | None] = []
        failures: list[TaskFailure] = []
        bar: Any = None
        if progress and len(items) > 1:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=desc, unit="task", leave=False)
        try:
            for i, item in enumerate(items):
                try:
                    results.append(fn(shared, item))
                except Exception as exc:  # noqa: BLE001 - reported with the task's label
                    results.append(None)
                    failures.append(self.failure(i, names[i], exc))
                if bar is not None:
                    bar.update(1)
                if on_done is not None:
                    on_done(i + 1, len(items))
        finally:
            if bar is not None:
                bar.close()
        return SweepOutcome(tuple(results), tuple(failures))


@register_executor("serial")
def serial(num_workers: int = 1, threads: int | None = None) -> SerialExecutor:
    """Today's behaviour: one task at a time in this process (``num_workers`` must be 1)."""
    from vitq_plugins.core.errors import VitqError

    if int(num_workers) != 1:
        raise VitqError(
            f"--num-workers {num_workers} needs a parallel executor: the serial executor runs one task at a "
            "time (use --executor ray)"
        )
    return SerialExecutor(1, threads)
