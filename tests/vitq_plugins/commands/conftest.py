"""A fake backend and a process-wide plugin host holding it, for the command tests."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import reset_host
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import BackendSpec


class CmdFakeBackend:
    """Copies the model (identity quantization); export writes a small file or fails on demand."""

    name = "fake"

    def __init__(self) -> None:
        self.fail_export = False
        self.calls: list[str] = []

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
    ) -> nn.Module:
        self.calls.append("quantize")
        for _ in calib_batches:
            pass
        return copy.deepcopy(model)

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]:
        return {f"{n}:weight": "minmax" for n, m in model.named_modules() if isinstance(m, nn.Linear)}

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        self.calls.append(f"export:{fmt}")
        if self.fail_export:
            raise VitqError("exporter crashed")
        path.write_bytes(b"fake onnx")
        return path

    def info(self) -> dict[str, Any]:
        return {"name": "fake"}


@dataclass(frozen=True)
class _InlineSpec(BackendSpec):
    impl: Any = None

    def load(self) -> Any:
        return self.impl


@pytest.fixture
def fake_backend() -> Iterator[CmdFakeBackend]:
    """Install a host with the fake backend as the process-wide host for the test."""
    backend = CmdFakeBackend()

    class Plugin:
        @hookimpl
        def vitq_register_backends(self, registry: Registry[BackendSpec]) -> None:
            registry.register("fake", _InlineSpec("fake", "tests:fake", "fake", impl=backend))

    reset_host(PluginHost(autoload=False, extra_plugins=(Plugin(),)))
    try:
        yield backend
    finally:
        reset_host(None)
