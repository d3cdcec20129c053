"""Progress of long loops reaches a listener (the explorer) whether or not the tqdm bar is shown."""

from __future__ import annotations

import threading

import pytest

from vitq_plugins.core import progress
from vitq_plugins.core.progress import Tick


def test_listener_sees_every_update_and_an_estimate() -> None:
    ticks: list[Tick] = []
    with progress.listening(ticks.append):
        with progress.bar(4, "eval", "img", show=False) as b:
            b.update(1)
            b.update(3)
    assert [(t.n, t.total) for t in ticks] == [(0, 4), (1, 4), (4, 4)]
    assert ticks[0].fraction == 0.0 and ticks[0].remaining_s is None
    assert ticks[1].fraction == pytest.approx(0.25)
    assert ticks[1].remaining_s == pytest.approx(3 * ticks[1].elapsed_s)
    assert ticks[-1].remaining_s == 0.0


def test_track_counts_items_and_knows_sized_totals() -> None:
    ticks: list[Tick] = []
    with progress.listening(ticks.append):
        assert list(progress.track([10, 20, 30], "calibrate", "batch", show=False)) == [10, 20, 30]
        assert list(progress.track(iter([1]), "gen", show=False)) == [1]
    assert [(t.desc, t.n, t.total) for t in ticks] == [
        ("calibrate", 0, 3),
        ("calibrate", 1, 3),
        ("calibrate", 2, 3),
        ("calibrate", 3, 3),
        ("gen", 0, None),
        ("gen", 1, None),
    ]
    assert ticks[-1].fraction is None and ticks[-1].remaining_s is None


def test_no_listener_outside_the_block_nor_in_another_thread() -> None:
    ticks: list[Tick] = []
    other: list[int] = []

    def work() -> None:
        for _ in progress.track(range(2), "other thread", show=False):
            other.append(1)

    with progress.listening(ticks.append):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    list(progress.track(range(2), "after", show=False))
    assert other == [1, 1] and ticks == []
