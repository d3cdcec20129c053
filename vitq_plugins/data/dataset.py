"""A torch ``Dataset`` over packed JPEGs that decodes on demand and transforms whole batches at once.

Items are ``(float tensor (3, H, W), int label)``. :meth:`PackedDataset.get_batch` decodes only the
requested rows and, when the transform allows it, normalizes them in one vectorized step; the loader
(:mod:`vitq_plugins.data.loader`) uses it so that memory holds at most one decoded batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.packed import PackedJpegs
from vitq_plugins.data.transforms import ImageTransform

__all__ = ["PackedDataset", "dataset_labels"]


class PackedDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images of a packed-JPEG file with a transform.

    Args:
        packed: the compressed images (:func:`vitq_plugins.data.packed.open_packed`).
        transform: an :class:`ImageTransform` (fast batch path) or any callable on a PIL image;
            ``None``: scale to [0, 1] without normalization.
        name: how to call this dataset in messages and results.
    """

    def __init__(
        self,
        packed: PackedJpegs,
        transform: Callable[[Any], torch.Tensor] | None = None,
        name: str = "",
    ) -> None:
        self.packed = packed
        self.transform: Callable[[Any], torch.Tensor] = (
            transform if transform is not None else ImageTransform()
        )
        self.name = name or str(packed.path)

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """Class index of every image."""
        return self.packed.labels

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names."""
        return self.packed.classes

    @property
    def names(self) -> tuple[str, ...]:
        """File name of every image."""
        return self.packed.names

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.get_batch(np.array([index], dtype=np.int64))
        return x[0], int(y[0])

    def get_batch(self, indices: npt.NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode and transform the rows ``indices``: float ``(B, 3, H, W)`` and int64 ``(B,)`` labels."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise VitqError(f"{self.name}: an empty batch was requested")
        images = self.packed.decode(idx)
        t = self.transform
        if isinstance(t, ImageTransform) and t.batchable(int(images.shape[1]), int(images.shape[2])):
            x = t.batch(images)
        else:
            from PIL import Image

            x = torch.stack([t(Image.fromarray(img)) for img in images])
        return x, torch.from_numpy(self.packed.labels[idx].copy())

    def __repr__(self) -> str:
        return f"PackedDataset({self.name!r}, {len(self)} images, {len(self.classes)} classes)"


def dataset_labels(dataset: Any) -> npt.NDArray[np.int64] | None:
    """The label of every item without loading images (``labels`` or torchvision's ``targets``), if known."""
    for attr in ("labels", "targets"):
        value = getattr(dataset, attr, None)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.ndim == 1 and arr.shape[0] == len(dataset) and np.issubdtype(arr.dtype, np.integer):
            return arr.astype(np.int64)
    return None
