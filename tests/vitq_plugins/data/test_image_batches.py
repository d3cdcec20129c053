"""BatchLoader.image_batches: a re-iterable view, so two-pass recipes need not hold the calibration set."""

from __future__ import annotations

import torch

from vitq_plugins.data.cifar import bundled_cifar10
from vitq_plugins.data.loader import ImageBatches
from vitq_plugins.data.loader import make_loader


def test_image_batches_reiterate_the_same_images() -> None:
    loader = make_loader(bundled_cifar10("calib"), 16, 40, 0, what="--calib")
    view = loader.image_batches()
    assert isinstance(view, ImageBatches) and len(view) == 3
    first = [b.clone() for b in view]
    second = list(view)
    assert [b.shape[0] for b in first] == [16, 16, 8]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
