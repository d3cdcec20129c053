"""Seeded, streaming batch loaders over any map-style dataset of ``(image, label)`` items.

:func:`make_loader` picks ``n`` images (stratified by class when the dataset's labels are known,
random otherwise; always in a seeded random order) and yields ``(x, y)`` batches. The loader is
re-iterable and yields the same batches in the same order every time, so the logits of two passes
(FP and quantized) line up row for row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.dataset import dataset_labels
from vitq_plugins.data.finite import require_finite
from vitq_plugins.data.sampling import check_count
from vitq_plugins.data.sampling import random_indices
from vitq_plugins.data.sampling import stratified_indices

__all__ = ["BatchLoader", "describe", "make_loader"]


def describe(dataset: Any) -> str:
    """A one-line name for ``dataset`` (its ``name``, its ``root``, or its type)."""
    name = getattr(dataset, "name", None) or getattr(dataset, "root", None)
    return repr(str(name)) if name else type(dataset).__name__


def _file_of(dataset: Any, i: int) -> str:
    """The file behind item ``i`` of an ImageFolder-like dataset (``samples``/``imgs``), else ``item i``."""
    for attr in ("samples", "imgs"):
        items = getattr(dataset, attr, None)
        if items is not None:
            try:
                return repr(str(items[i][0]))
            except (IndexError, TypeError, KeyError):
                break
    return f"item {i}"


class BatchLoader:
    """Batches of ``dataset[indices]`` in order.

    Args:
        dataset: a map-style dataset; one with ``get_batch(indices)`` is asked for whole batches.
        indices: the rows to visit, in visiting order.
        batch_size: images per batch (the last batch may be smaller).
    """

    def __init__(self, dataset: Any, indices: npt.NDArray[np.int64], batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise VitqError(f"batch size {batch_size!r} is invalid: expected a whole number >= 1")
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size

    @property
    def num_images(self) -> int:
        """Images per pass."""
        return int(self.indices.size)

    def __len__(self) -> int:
        return -(-self.num_images // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        get_batch = getattr(self.dataset, "get_batch", None)
        for start in range(0, self.num_images, self.batch_size):
            chunk = self.indices[start : start + self.batch_size]
            if get_batch is not None:
                x, y = get_batch(chunk)
                y = torch.as_tensor(y, dtype=torch.int64)
            else:
                x, y = self._collate(chunk)
            require_finite(x, f"images {start}..{start + len(chunk) - 1} of {describe(self.dataset)}")
            yield x, y

    def _collate(self, chunk: npt.NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        xs: list[torch.Tensor] = []
        ys: list[int] = []
        for i in chunk.tolist():
            try:
                x, y = self.dataset[i]
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                raise VitqError(
                    f"cannot load image {i} ({_file_of(self.dataset, i)}) of {describe(self.dataset)}: {exc}; "
                    "remove or convert that file"
                ) from None
            xs.append(torch.as_tensor(x))
            ys.append(int(y))
        shapes = {tuple(x.shape) for x in xs}
        if len(shapes) > 1:
            raise VitqError(
                f"images of {describe(self.dataset)} have different sizes {sorted(shapes)} after the transform; "
                "give a transform that resizes to one size"
            )
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def images(self) -> Iterator[torch.Tensor]:
        """The image batches alone, one pass (a generator)."""
        for x, _ in self:
            yield x

    def image_batches(self) -> ImageBatches:
        """The image batches alone as a re-iterable: every ``iter()`` is a new pass that loads the images
        again, so a recipe needing two passes (SQ-b statistics, then calibration) holds one batch at a
        time instead of the whole calibration set."""
        return ImageBatches(self)

    def __repr__(self) -> str:
        return f"BatchLoader({self.num_images} images, batch_size={self.batch_size})"


class ImageBatches:
    """Re-iterable image batches of a :class:`BatchLoader` (see :meth:`BatchLoader.image_batches`)."""

    def __init__(self, loader: BatchLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.loader.images()

    def __len__(self) -> int:
        return len(self.loader)

    def __repr__(self) -> str:
        return f"ImageBatches({self.loader!r})"


def make_loader(
    dataset: Any,
    batch_size: int,
    n: int | None = None,
    seed: int = 0,
    *,
    what: str = "n",
) -> BatchLoader:
    """A seeded loader over ``n`` images of ``dataset`` (all when ``None``).

    Args:
        dataset: a map-style dataset of ``(image, label)``.
        batch_size: images per batch.
        n: how many images; stratified by class when the labels are known.
        seed: seed of the subset and its order.
        what: how the user spelled ``n`` (``"--calib"``, ``"--eval"``), for error messages.

    Raises:
        VitqError: ``n <= 0``, ``n`` larger than the dataset (both numbers named), a bad batch size,
            or an empty dataset.

    Example:
        >>> loader = make_loader(dataset, batch_size=100, n=512, seed=0, what="--calib")  # doctest: +SKIP
    """
    size = len(dataset)
    if size == 0:
        raise VitqError(f"dataset {describe(dataset)} has no images")
    count = size if n is None else check_count(n, size, what)
    labels = dataset_labels(dataset)
    idx = stratified_indices(labels, count, seed) if labels is not None else random_indices(size, count, seed)
    return BatchLoader(dataset, idx, batch_size)
