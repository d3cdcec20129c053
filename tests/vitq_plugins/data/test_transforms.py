"""The model-derived transform: vectorized uint8 fast path == timm's per-image PIL pipeline."""

from __future__ import annotations

import numpy as np
from PIL import Image
import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.cifar import bundled_cifar10
from vitq_plugins.data.transforms import ImageTransform
from vitq_plugins.data.transforms import transform_for_model
from vitq_plugins.models.reference import CIFAR10_MEAN
from vitq_plugins.models.reference import vit_test_tiny


def test_transform_comes_from_the_model_config() -> None:
    t = transform_for_model(vit_test_tiny())
    assert t.input_size == (3, 32, 32) and t.crop_pct == 1.0
    assert t.mean == pytest.approx(CIFAR10_MEAN)


def test_fast_path_equals_timm_pil_path() -> None:
    t = transform_for_model(vit_test_tiny())
    images = bundled_cifar10("test").packed.decode(np.arange(16))
    assert t.batchable(32, 32)
    fast = t.batch(images)
    slow = torch.stack(
        [t(Image.fromarray(a)) for a in images]
    )  # PIL path: resize, crop, to-tensor, normalize
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)


def test_dataset_uses_the_fast_path_and_matches_per_item() -> None:
    t = transform_for_model(vit_test_tiny())
    ds = bundled_cifar10("test", transform=t)
    x, y = ds.get_batch(np.array([3, 4]))
    x3, y3 = ds[3]
    torch.testing.assert_close(x[0], x3)
    assert int(y[0]) == y3


def test_other_input_size_falls_back_to_resizing() -> None:
    t = ImageTransform((3, 64, 64), CIFAR10_MEAN, (0.25, 0.25, 0.25))
    assert not t.batchable(32, 32)
    ds = bundled_cifar10("test", transform=t)
    x, _ = ds.get_batch(np.array([0, 1]))
    assert tuple(x.shape) == (2, 3, 64, 64)
    with pytest.raises(VitqError, match="need resizing"):
        t.batch(np.zeros((1, 32, 32, 3), dtype=np.uint8))


def test_crop_pct_below_one_is_not_batchable() -> None:
    assert not ImageTransform((3, 32, 32), crop_pct=0.875).batchable(32, 32)


def test_bad_parameters() -> None:
    with pytest.raises(VitqError, match="std"):
        ImageTransform((3, 32, 32), std=(0.0, 1.0, 1.0))
    with pytest.raises(VitqError, match=r"uint8 images of shape \(N, H, W, 3\)"):
        ImageTransform().batch(np.zeros((2, 32, 32), dtype=np.uint8))
