"""Fixtures shared by the integer-program tests of the IR (``intexec/``) and of the wings' converters
(``brevitas/test_integer*.py``, ``fx/test_integer*.py``): the bundled reference model (64 calibration, 96 test
images) quantized by a backend, and its integer program (``ivit`` and ``fqvit``, Brevitas and torch.ao FX)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch

N_CALIB = 64
N_EVAL = 96


@pytest.fixture(scope="session")
def ref_data() -> SimpleNamespace:
    """``fp`` (the reference model), ``calib_batches`` (images) and ``eval_batches`` (list of (x, y))."""
    torch.set_num_threads(1)
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import split_loader

    host = get_host()
    fp, _ = resolve_model("vit_tiny_cifar10", host=host)
    fp.eval()
    calib, _ = split_loader(fp, "cifar10_bundled", "calib", N_CALIB, 0, host, batch_size=32)
    ev, _ = split_loader(fp, "cifar10_bundled", "eval", N_EVAL, 0, host, batch_size=48)
    return SimpleNamespace(fp=fp, calib_batches=list(calib.images()), eval_batches=list(ev))


def build_program(data: SimpleNamespace, backend: str, recipe: str, **cfg: Any) -> SimpleNamespace:
    """``data`` plus ``qmodel`` (calibrated by ``backend``) and ``executor`` (its integer program)."""
    pytest.importorskip("brevitas")
    torch.set_num_threads(1)
    from vitq_plugins.brevitas.integer import convert_brevitas
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.fx.integer import convert_fx

    impl = get_host().backends.get(backend).load()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        qmodel = impl.quantize(data.fp, QuantConfig(recipe, **cfg), data.calib_batches, progress=False)
    convert = convert_fx if backend == "fx" else convert_brevitas
    return SimpleNamespace(**vars(data), qmodel=qmodel, executor=convert(qmodel, recipe))


@pytest.fixture(scope="session")
def ref(ref_data: SimpleNamespace) -> SimpleNamespace:
    """The ``ivit`` recipe on the reference model (Brevitas)."""
    return build_program(ref_data, "brevitas", "ivit")


@pytest.fixture(scope="session")
def ref_fqvit(ref_data: SimpleNamespace) -> SimpleNamespace:
    """The ``fqvit`` recipe (PTS LayerNorm inputs, LIS, float GELU with a uint8 output) on the reference model."""
    return build_program(ref_data, "brevitas", "fqvit")


@pytest.fixture(scope="session")
def fxref(ref_data: SimpleNamespace) -> SimpleNamespace:
    """The torch.ao FX ``ivit`` recipe (``convert_fx`` graph on the x86 engine) and its program."""
    return build_program(ref_data, "fx", "ivit")


@pytest.fixture(scope="session")
def fxfq(ref_data: SimpleNamespace) -> SimpleNamespace:
    """The FX ``fqvit`` recipe (``attn_bits=4``: PTS LayerNorm, LIS, float GELU + uint8) and its program."""
    return build_program(ref_data, "fx", "fqvit", attn_bits=4)


@pytest.fixture(scope="session")
def make_program(ref_data: SimpleNamespace) -> Callable[..., SimpleNamespace]:
    """:func:`build_program` on the session's data, for a configuration that one test needs."""
    return lambda backend, recipe, **cfg: build_program(ref_data, backend, recipe, **cfg)
