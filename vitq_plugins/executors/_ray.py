"""The Ray executor: one Ray task per sweep task, on a local or an existing Ray cluster.

``ray`` is an optional extra (``pip install 'vitq[ray]'``) imported only when this executor is created.
Without an address (and without ``RAY_ADDRESS``) ``ray.init`` starts a local cluster with
``num_workers x threads`` CPUs; with one it joins that cluster. The shared object (model, calibration
batches) goes to the object store once with ``ray.put`` and every task receives the reference (Ray
resolves a top-level reference argument to the object, read zero-copy where it can; see the Ray docs on
"Passing object arguments"). A task is retried up to ``max_retries`` times, after its worker dies and
after an exception (``retry_exceptions=True``), except a :class:`VitqError` (bad input fails the same way
again: it is reported at once); ``ray.wait`` returns tasks as they finish, so the progress
bar ticks per task and a task that fails for good is recorded without losing the others.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import os
from typing import Any

from vitq_plugins.core.errors import VitqError
from vitq_plugins.executors._base import Executor
from vitq_plugins.executors._base import R
from vitq_plugins.executors._base import SweepOutcome
from vitq_plugins.executors._base import TaskFailure
from vitq_plugins.executors._base import TaskFn
from vitq_plugins.executors._base import register_executor

__all__ = ["ADDRESS_ENV", "RayExecutor", "import_ray", "ray"]

#: environment variable naming the cluster to join (Ray's own)
ADDRESS_ENV = "RAY_ADDRESS"
_INSTALL = "pip install 'vitq[ray]'"


def import_ray() -> Any:
    """``import ray``, or a :class:`VitqError` saying how to install it."""
    try:
        import ray as ray_mod
    except ImportError as exc:
        raise VitqError(
            f"executor 'ray' needs the 'ray' package, which is not installed ({exc}); install it with {_INSTALL}"
        ) from None
    return ray_mod


class _Refused:
    """A :class:`VitqError` raised by a task, returned as a value: bad input is not worth a retry."""

    def __init__(self, exc: VitqError) -> None:
        self.exc = exc


def _run_task(fn: TaskFn[Any], shared: Any, item: Any, threads: int | None) -> Any:
    """The body of every Ray task: set the torch threads, then ``fn(shared, item)``."""
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    try:
        return fn(shared, item)
    except VitqError as exc:
        return _Refused(exc)


def _cause(exc: BaseException) -> BaseException:
    """The user's exception inside a ``RayTaskError`` (else ``exc``)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RayExecutor(Executor):
    """Ray tasks; see the module docstring.

    Args:
        num_workers: tasks at once; ``None``: the cluster's CPUs / ``threads`` (local: this machine's).
        threads: CPUs (and torch threads) per task (default 1).
        address: cluster to join (``host:port`` or ``auto``); ``None``: ``$RAY_ADDRESS`` or a new local one.
        max_retries: retries of a failed task (worker death or exception).

    Raises:
        VitqError: ray is missing, bad sizes, or the cluster cannot be reached.
    """

    name = "ray"

    def __init__(
        self,
        num_workers: int | None = None,
        threads: int | None = 1,
        address: str | None = None,
        max_retries: int = 2,
    ) -> None:
        if int(max_retries) < 0:
            raise VitqError(f"max_retries {max_retries!r} is invalid: expected 0 or more")
        threads = 1 if threads is None else int(threads)
        super().__init__(1 if num_workers is None else num_workers, threads)
        self.max_retries = int(max_retries)
        self._ray = import_ray()
        addr = address or os.environ.get(ADDRESS_ENV) or None
        self.address = addr
        self._owns = False
        if not self._ray.is_initialized():
            try:
                if addr:
                    self._ray.init(address=addr, include_dashboard=False, log_to_driver=False)
                else:
                    cpus = (num_workers if num_workers is not None else max(os.cpu_count() or 1, 1)) * threads
                    self._ray.init(num_cpus=int(cpus), include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"at {addr!r}" if addr else "locally"
                raise VitqError(f"could not start or join a Ray cluster {where}: {exc}") from None
            self._owns = True
        if num_workers is None:
            total = float(self._ray.cluster_resources().get("CPU", 1.0))
            self.num_workers = max(int(total // threads), 1)
        self._remote = self._ray.remote(_run_task)

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
        ray = self._ray
        names = self.labels_for(items, labels)
        if not items:
            return SweepOutcome((), ())
        shared_ref = ray.put(shared)  # once, whatever the number of tasks
        task = self._remote.options(
            num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=True
        )
        refs = [task.remote(fn, shared_ref, item, self.threads) for item in items]
        where = {ref: i for i, ref in enumerate(refs)}
        results: list[R | None] = [None] * len(items)
        failures: list[TaskFailure] = []
        bar: Any = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=f"{desc} (ray)", unit="task", leave=False)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = where[ref]
                    try:
                        value = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - failed for good: reported with its label
                        failures.append(self.failure(i, names[i], _cause(exc)))
                    else:
                        if isinstance(value, _Refused):
                            failures.append(self.failure(i, names[i], value.exc))
                        else:
                            results[i] = value
                    if bar is not None:
                        bar.update(1)
                    if on_done is not None:
                        on_done(len(items) - len(pending), len(items))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        return SweepOutcome(tuple(results), tuple(sorted(failures, key=lambda f: f.index)))

    def close(self) -> None:
        """Shut down the cluster connection if this executor started it."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    def __repr__(self) -> str:
        return (
            f"RayExecutor(num_workers={self.num_workers}, threads={self.threads}, "
            f"address={self.address!r}, max_retries={self.max_retries})"
        )


@register_executor("ray")
def ray(
    num_workers: int | None = None,
    threads: int | None = 1,
    address: str | None = None,
    max_retries: int = 2,
) -> RayExecutor:
    """Ray tasks on a local cluster or the one at ``address`` / ``$RAY_ADDRESS`` (needs ``vitq[ray]``)."""
    return RayExecutor(num_workers, threads, address, max_retries)
