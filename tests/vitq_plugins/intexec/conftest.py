"""Fixtures: the bundled reference model quantized with ``ivit`` (64 calibration images) and its integer program."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("brevitas")

N_CALIB = 64
N_EVAL = 96


def _build(recipe: str) -> SimpleNamespace:
    """``fp``, ``qmodel`` (Brevitas), ``executor``, ``eval_batches`` (list of (x, y)) and ``calib_batches``."""
    torch.set_num_threads(1)
    from vitq_plugins.brevitas.backend import BACKEND
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.data.loader import make_loader
    from vitq_plugins.data.resolve import resolve_dataset
    from vitq_plugins.data.transforms import transform_for_model
    from vitq_plugins.intexec import convert_brevitas
    from vitq_plugins.models.resolve import resolve_model

    host = get_host()
    fp, _ = resolve_model("vit_tiny_cifar10", host=host)
    fp.eval()
    tf = transform_for_model(fp)
    calib, _ = resolve_dataset("cifar10_bundled", "calib", transform=tf, host=host)
    ev, _ = resolve_dataset("cifar10_bundled", "eval", transform=tf, host=host)
    calib_batches = list(make_loader(calib, 32, N_CALIB, 0, what="--calib").images())
    eval_batches = list(make_loader(ev, 48, N_EVAL, 0, what="--eval"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        qmodel = BACKEND.quantize(fp, QuantConfig(recipe), calib_batches, progress=False)
    executor = convert_brevitas(qmodel, recipe)
    return SimpleNamespace(
        fp=fp, qmodel=qmodel, executor=executor, eval_batches=eval_batches, calib_batches=calib_batches
    )


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """The ``ivit`` recipe on the reference model."""
    return _build("ivit")


@pytest.fixture(scope="session")
def ref_fqvit() -> SimpleNamespace:
    """The ``fqvit`` recipe (PTS LayerNorm inputs, LIS, float GELU with a uint8 output) on the reference model."""
    return _build("fqvit")
