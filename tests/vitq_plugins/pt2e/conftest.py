"""Shared fixtures of the PT2E backend tests (tiny model, 1 CPU thread); skipped without the ``pt2e`` extra."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.models.reference import vit_test_tiny

pytest.importorskip("torchao")


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny() -> torch.nn.Module:
    return vit_test_tiny()


@pytest.fixture(scope="session")
def calib() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]
