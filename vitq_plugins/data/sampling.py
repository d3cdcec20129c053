"""Seeded subsets: stratified by class when labels are known, uniformly random otherwise.

Both return indices in a seeded random order, so that consecutive batches mix classes (packed CIFAR-10
is sorted by class; a calibration batch of one class would skew activation ranges).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vitq_plugins.core.errors import VitqError

__all__ = ["check_count", "class_quotas", "random_indices", "stratified_indices"]


def check_count(n: int, available: int, what: str = "n") -> int:
    """Return ``n`` if ``1 <= n <= available``.

    Args:
        n: requested number of images.
        available: images in the dataset.
        what: how the user spelled the request (``"--calib"``), used in the message.

    Raises:
        VitqError: ``n`` is not a positive integer or exceeds ``available`` (both numbers named).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise VitqError(f"{what} {n!r} is invalid: expected a whole number of images in 1..{available}")
    if n <= 0:
        raise VitqError(f"{what} {n} is invalid: need at least 1 image (the data has {available})")
    if n > available:
        raise VitqError(f"{what} {n} is larger than the data: it has only {available} images")
    return int(n)


def class_quotas(counts: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """Split ``n`` over classes in proportion to ``counts`` (largest remainder, ties to the lower class).

    Example:
        >>> class_quotas(np.array([5000] * 10), 512).tolist()
        [52, 52, 51, 51, 51, 51, 51, 51, 51, 51]
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    exact = counts * n / total
    quotas = np.floor(exact).astype(np.int64)
    short = n - int(quotas.sum())
    if short:
        order = np.lexsort((np.arange(counts.size), -(exact - quotas)))
        quotas[order[:short]] += 1
    return np.minimum(quotas, counts)


def stratified_indices(labels: npt.NDArray[np.integer], n: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """``n`` indices into ``labels``, each class represented in proportion, in seeded random order.

    Raises:
        VitqError: ``n`` outside ``1..len(labels)``.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    check_count(n, labels.size)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(labels.size)
    classes, inverse, counts = np.unique(labels[perm], return_inverse=True, return_counts=True)
    # rank of each permuted element within its class: position after a stable sort by class
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size) - np.repeat(starts, counts)
    quotas = class_quotas(counts, n)
    keep = rank < quotas[inverse]
    return perm[keep].astype(np.int64)


def random_indices(size: int, n: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """``n`` distinct indices in ``0..size-1`` in seeded random order.

    Raises:
        VitqError: ``n`` outside ``1..size``.
    """
    check_count(n, size)
    return np.random.default_rng(seed).permutation(size)[:n].astype(np.int64)
