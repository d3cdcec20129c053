"""input_size: declared sizes (timm, torchvision) and the position embedding's patch grid (a plain user ViT)."""

from __future__ import annotations

import pytest
from torch import nn

from vitq_plugins.adapters.inputs import input_size
from vitq_plugins.core.errors import VitqError
from vitq_plugins.models.reference import vit_test_tiny


def test_every_family_declares_or_implies_its_size(family: tuple[str, nn.Module]) -> None:
    assert input_size(family[1]) == (3, 32, 32)


def test_timm_size_is_read_as_before() -> None:
    assert input_size(vit_test_tiny()) == (3, 32, 32)


def test_no_size_names_what_to_set() -> None:
    with pytest.raises(
        VitqError, match=r"cannot infer the input size of Linear: quantize it with calibration"
    ):
        input_size(nn.Linear(3, 3))


def test_evaluation_transform_keeps_the_declared_size(family: tuple[str, nn.Module]) -> None:
    """A model without a timm data config is fed at its own size, not timm's default 224 px."""
    from vitq_plugins.data.transforms import transform_for_model

    assert transform_for_model(family[1]).input_size == (3, 32, 32)
