"""Seeded stratified/random subsets and the count checks behind --calib/--eval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.sampling import check_count
from vitq_plugins.data.sampling import class_quotas
from vitq_plugins.data.sampling import random_indices
from vitq_plugins.data.sampling import stratified_indices


def test_quotas_split_512_over_ten_equal_classes() -> None:
    assert class_quotas(np.full(10, 5000), 512).tolist() == [52, 52] + [51] * 8


def test_quotas_follow_class_proportions() -> None:
    assert class_quotas(np.array([300, 100]), 4).tolist() == [3, 1]


def test_stratified_counts_and_uniqueness() -> None:
    labels = np.repeat(np.arange(10), 1000)
    idx = stratified_indices(labels, 2000, seed=0)
    assert len(set(idx.tolist())) == 2000
    assert np.bincount(labels[idx]).tolist() == [200] * 10


def test_stratified_is_seeded_and_shuffled() -> None:
    labels = np.repeat(np.arange(10), 100)
    a, b, c = (stratified_indices(labels, 50, s) for s in (0, 0, 1))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert not np.all(np.diff(labels[a]) >= 0), "batches must mix classes, not follow the sorted order"


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    frac=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_stratified_property(counts: list[int], frac: float, seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    n = max(1, int(frac * labels.size))
    idx = stratified_indices(labels, n, seed)
    assert idx.size == n and len(set(idx.tolist())) == n
    got = np.bincount(labels[idx], minlength=len(counts))
    expected = np.array(counts) * n / labels.size
    assert np.all(np.abs(got - expected) < 1.0 + 1e-9)


def test_random_indices() -> None:
    idx = random_indices(10, 4, seed=3)
    assert idx.size == 4 and len(set(idx.tolist())) == 4 and idx.max() < 10
    assert random_indices(10, 4, seed=3).tolist() == idx.tolist()


@pytest.mark.parametrize(
    ("n", "fragment"),
    [
        (0, "--calib 0 is invalid"),
        (-3, "--calib -3 is invalid"),
        (5001, "--calib 5001 is larger than the data"),
    ],
)
def test_check_count_errors_name_the_numbers(n: int, fragment: str) -> None:
    with pytest.raises(VitqError, match=fragment) as info:
        check_count(n, 5000, "--calib")
    assert "5000" in str(info.value)


def test_check_count_rejects_non_integers() -> None:
    with pytest.raises(VitqError, match="whole number"):
        check_count(2.5, 10, "--eval")  # type: ignore[arg-type]
    assert check_count(10, 10) == 10
