"""Sensitivity and Greedy MP through the Ray executor (2 workers, 1 thread) equal serial mode exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitq_plugins.executors import RayExecutor
from vitq_plugins.search import Budget
from vitq_plugins.search import measure_sensitivity
from vitq_plugins.search import run_search
from vitq_plugins.search._table import METRICS


@pytest.mark.parametrize("anchors", [None, (4,)], ids=["exact", "anchored"])
def test_ray_table_and_greedy_equal_serial(
    ray_executor: RayExecutor, anchors: tuple[int, ...] | None
) -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    torch.set_num_threads(1)  # the workers run 1 thread too
    torch.manual_seed(0)
    model = vit_test_tiny()
    batches = [torch.randn(6, 3, 32, 32) for _ in range(2)]
    serial = measure_sensitivity(model, batches, (8, 6, 4), anchors=anchors)
    remote = measure_sensitivity(model, batches, (8, 6, 4), anchors=anchors, executor=ray_executor)
    assert [ly.fqn for ly in remote.layers] == [ly.fqn for ly in serial.layers]
    for metric in METRICS:
        for kind in ("w", "a"):
            np.testing.assert_array_equal(remote.loss(metric, kind), serial.loss(metric, kind))
    assert remote.meta["n_images"] == serial.meta["n_images"] == 12
    budgets = [Budget("avg_bits", 6.0)]
    a, b = run_search(serial, budgets), run_search(remote, budgets)
    assert a.chosen == b.chosen
    assert [s.to_row() for s in a.sweep.steps] == [s.to_row() for s in b.sweep.steps]
    assert a.summary() == b.summary()
