"""Progress of long loops: a tqdm bar on stderr for the CLI, and a listener for other front ends.

Every long loop of vitq (calibration, evaluation, sensitivity) counts its work through :func:`bar` or
:func:`track`. The CLI sees the usual tqdm bar on stderr. A front end that cannot read stderr (the Streamlit
explorer) installs a listener with :func:`listening`; it is called with a :class:`Tick` on every update,
whether or not the tqdm bar is shown::

    with listening(lambda t: print(t.desc, t.fraction, t.remaining_s)):
        run_pipeline(..., progress=False)

The listener lives in a :class:`contextvars.ContextVar`, so concurrent sessions (threads) do not see each
other's progress.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
import contextvars
from dataclasses import dataclass
import sys
import time
from typing import Any
from typing import TypeVar

__all__ = ["Bar", "Tick", "bar", "listening", "track"]

T = TypeVar("T")


@dataclass(frozen=True)
class Tick:
    """One progress update.

    Args:
        desc: the step (``calibrate``, ``eval quantized``, ``sensitivity``…).
        n: units done.
        total: units in the step (``None``: unknown).
        unit: what is counted (``img``, ``batch``, ``run``).
        elapsed_s: seconds since the step started.
    """

    desc: str
    n: int
    total: int | None
    unit: str
    elapsed_s: float

    @property
    def fraction(self) -> float | None:
        """Done fraction in [0, 1] (``None`` when the total is unknown)."""
        if not self.total:
            return None
        return min(max(self.n / self.total, 0.0), 1.0)

    @property
    def remaining_s(self) -> float | None:
        """Seconds left in this step at the rate so far (``None`` before the first unit)."""
        f = self.fraction
        if f is None or f <= 0.0:
            return None
        return self.elapsed_s * (1.0 - f) / f


Listener = Callable[[Tick], None]
_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar("vitq_progress", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every progress update made inside the block to ``listener``."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


class Bar:
    """A counter that drives a tqdm bar (when ``show``) and the current listener (always)."""

    def __init__(self, total: int | None, desc: str, unit: str, show: bool, **tqdm_kwargs: Any) -> None:
        from tqdm import tqdm

        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self._start = time.perf_counter()
        self._listener = _LISTENER.get()
        self._tqdm = tqdm(total=total, desc=desc, unit=unit, disable=not show, file=sys.stderr, **tqdm_kwargs)
        self._notify()

    def _notify(self) -> None:
        if self._listener is not None:
            self._listener(Tick(self.desc, self.n, self.total, self.unit, time.perf_counter() - self._start))

    def update(self, k: int = 1) -> None:
        """``k`` more units done."""
        self.n += k
        self._tqdm.update(k)
        self._notify()

    def close(self) -> None:
        """Close the tqdm bar."""
        self._tqdm.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(total: int | None, desc: str, unit: str = "it", *, show: bool = True, **tqdm_kwargs: Any) -> Bar:
    """A :class:`Bar` (use as a context manager)."""
    return Bar(total, desc, unit, show, **tqdm_kwargs)


def track(items: Iterable[T], desc: str, unit: str = "it", *, show: bool = True) -> Iterator[T]:
    """Yield ``items``, counting one unit per item (the total from ``len`` when the iterable has one)."""
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with bar(total, desc, unit, show=show) as b:
        for item in items:
            yield item
            b.update(1)
