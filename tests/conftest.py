"""Shared fixtures: a fresh plugin host per test, no entry-point autoload unless a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
import os

import pytest

os.environ.setdefault("VITQ_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")


@pytest.fixture
def host() -> Iterator[object]:
    """A fresh :class:`PluginHost` with the built-ins only, installed as the process-wide host."""
    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.core.manager import reset_host

    h = PluginHost(autoload=False)
    reset_host(h)
    try:
        yield h
    finally:
        reset_host(None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are skipped without CUDA; they never fail for lack of it."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_executor() -> Iterator[object]:
    """One local Ray cluster for the whole session: 2 workers of 1 thread (shut down at the end).

    The tests' task functions travel by value (``cloudpickle.register_pickle_by_value``), since the
    workers cannot import test modules loaded with ``--import-mode=importlib``.
    """
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'vitq[ray]')")
    import ray

    from vitq_plugins.executors import get_executor

    ex = get_executor("ray", num_workers=2, threads=1, max_retries=2)
    try:
        yield ex
    finally:
        ex.close()
        if ray.is_initialized():
            ray.shutdown()
