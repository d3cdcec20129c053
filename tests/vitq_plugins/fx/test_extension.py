"""The public FX extension API: an out-of-tree custom-module quantizer runs through the FX wing unchanged.

The wing must recognise a custom-module quantizer by what its factory returns (a ``CustomModuleSpec``), not
by its name: a third-party one gets its marker placed, its own input observer, its fixed output container,
its per-module state, the weight of the following Linear and its deferred calibration work.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
import sys
import types
from typing import Any
from typing import ClassVar

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import vitq_plugins as vq
from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import reset_host
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import QuantizedCustom
from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.report import report

MODULE = "vitq_test_thirdparty_fx"
NAME = "tp_gelu"
OUT_SCALE = 2.0**-4


class _Counter(nn.Module):
    """Per-module calibration state: counts the reference outputs it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.next_weight: torch.Tensor | None = None
        self.finalized = False

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        self.seen += 1
        return y


class ThirdPartyGELU(nn.GELU, CustomFloat):
    """A GELU marker from outside vitq: float GELU on its (6-bit) quantized input."""

    needs_next_linear: ClassVar[bool] = True

    def __init__(self, bits: int = 8) -> None:
        nn.GELU.__init__(self)
        self.bits = bits

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        return F.gelu(x)

    def make_state(self) -> nn.Module | None:
        return _Counter()

    def link_next_linear(self, observed: ObservedCustom, weight: torch.Tensor) -> None:
        assert isinstance(observed.state, _Counter)
        observed.state.next_weight = weight

    def finalize(self, observed: ObservedCustom) -> None:
        assert isinstance(observed.state, _Counter)
        observed.state.finalized = True


def _out_scale(bits: int) -> float:
    return OUT_SCALE


def tp_gelu(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    return CustomModuleSpec(
        ThirdPartyGELU,
        {"bits": bits},
        input_observer=UniformActObserver.with_args(bits=6),
        fixed_out_scale=_out_scale,
    )


class _Plugin:
    @hookimpl
    def vitq_register_quantizers(self, registry: Registry[QuantizerSpec]) -> None:
        registry.register(
            NAME,
            QuantizerSpec(
                name=NAME,
                sites=frozenset({"gelu_output"}),
                min_bits=2,
                max_bits=8,
                default_bits=8,
                description="third-party GELU custom module (test)",
                backends={"fx": f"{MODULE}:tp_gelu"},
            ),
        )


@pytest.fixture
def thirdparty(monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginHost]:
    mod = types.ModuleType(MODULE)
    mod.tp_gelu = tp_gelu  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MODULE, mod)
    host = PluginHost(autoload=False, extra_plugins=(_Plugin(),))
    assert not host.failures
    reset_host(host)
    try:
        yield host
    finally:
        reset_host(None)


def test_thirdparty_custom_module_quantizer(
    thirdparty: PluginHost, tiny: nn.Module, calib: list[torch.Tensor]
) -> None:
    cfg = QuantConfig("minmax", layers={"re:.*": LayerOverride(quantizers={"gelu_output": NAME})})
    qm = vq.get_backend("fx").quantize(tiny, cfg, iter(calib), progress=False)
    with torch.no_grad():
        out = qm(calib[1][:2])
    assert out.shape == (2, 10) and torch.isfinite(out).all()

    blocks = len(tiny.blocks)  # type: ignore[arg-type]
    assert report(qm).custom == {NAME: blocks}
    sites = qm.vitq_sites  # type: ignore[union-attr]
    assert all(sites[f"blocks.{i}.mlp.act:gelu_output"] == NAME for i in range(blocks))
    quantized = [m for m in qm.modules() if isinstance(m, QuantizedCustom)]
    assert len(quantized) == blocks
    for i, q in enumerate(quantized):
        assert q.quantizer == NAME
        assert q.out_scale == OUT_SCALE and q.out_zero_point == 0  # its fixed output container
        obs = q.observed.input_observer()
        assert isinstance(obs, UniformActObserver) and obs.bits == 6  # its own input observer
        state = q.observed.state
        assert isinstance(state, _Counter)
        assert state.seen == len(calib) and state.finalized
        fc2 = tiny.blocks[i].mlp.fc2  # type: ignore[index]
        assert state.next_weight is not None and state.next_weight.shape == fc2.weight.shape


def _imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_wing_never_imports_papers_and_papers_use_only_the_extension_api() -> None:
    pkg = Path(vq.__file__).resolve().parent
    for path in sorted((pkg / "fx").rglob("*.py")):
        bad = {m for m in _imported(path) if m.startswith("vitq_plugins.papers")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
    for path in sorted((pkg / "papers").rglob("*.py")):
        bad = {
            m
            for m in _imported(path)
            if m.startswith("vitq_plugins.fx") and m not in ("vitq_plugins.fx", "vitq_plugins.fx.extension")
        }
        assert not bad, f"papers/{path.relative_to(pkg / 'papers')} imports private FX modules {sorted(bad)}"
