"""The integer IR reaches a wing only through the backend registry and the contract's integer entry points."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.backend import IntegerBackend
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import reset_host
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import BackendSpec
from vitq_plugins.intexec import backends as ib


@dataclass(frozen=True)
class _InlineSpec(BackendSpec):
    impl: Any = None

    def load(self) -> Any:
        return self.impl


class _PlainBackend:
    """A wing without integer entry points."""

    name = "plain"


@pytest.fixture
def plain_host() -> Iterator[PluginHost]:
    class Plugin:
        @hookimpl
        def vitq_register_backends(self, registry: Registry[BackendSpec]) -> None:
            registry.register(
                "plain", _InlineSpec("plain", "tests:plain", "no integer form", impl=_PlainBackend())
            )

    h = PluginHost(autoload=False, extra_plugins=(Plugin(),))
    reset_host(h)
    try:
        yield h
    finally:
        reset_host(None)
        ib._CONVERTERS.pop("plain", None)


def test_both_wings_offer_the_integer_entry_points(host: object) -> None:
    for name in ("brevitas", "fx"):
        impl = host.backends.get(name).load()  # type: ignore[attr-defined]
        assert isinstance(impl, IntegerBackend), name
        assert "int-onnx" in impl.info()["export_formats"]
    assert ib.integer_backends() == ["brevitas", "fx"]


def test_a_wing_without_them_is_reported_and_may_be_given_a_converter(plain_host: PluginHost) -> None:
    assert "plain" not in ib.integer_backends()
    with pytest.raises(
        VitqError, match=r"'plain' has no integer converter \(int-onnx\); backends with one: brevitas, fx"
    ):
        ib.check_integer_form("plain", nn.Identity(), QuantConfig("ivit"))
    sentinel = object()
    ib.register_integer_converter(
        "plain",
        ib.IntegerConverter(lambda m, c: ["x: stays float"], lambda m, r: sentinel),  # type: ignore[arg-type,return-value]
    )
    assert "plain" in ib.integer_backends()
    assert ib.convert("plain", nn.Identity()) is sentinel
    with pytest.raises(
        VitqError, match=r"--export int-onnx: recipe 'ivit' has no integer form: x: stays float"
    ):
        ib.check_integer_form("plain", nn.Identity(), QuantConfig("ivit"))
    with pytest.raises(VitqError, match="already has an integer converter"):
        ib.register_integer_converter("fx", ib.IntegerConverter(lambda m, c: [], lambda m, r: sentinel))  # type: ignore[arg-type,return-value]


def test_the_pipeline_has_no_integer_special_case() -> None:
    import vitq_plugins.pipeline as pipeline

    assert "intexec" not in Path(pipeline.__file__).read_text()
