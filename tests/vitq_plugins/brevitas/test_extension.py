"""The Brevitas wing's extension API: generic (never imports a paper), registries refuse duplicates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WING = Path(__file__).resolve().parents[3] / "vitq_plugins" / "brevitas"


def test_the_wing_never_imports_a_paper() -> None:
    bad = []
    for path in sorted(WING.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            bad += [f"{path.name}: {n}" for n in names if n.startswith("vitq_plugins.papers")]
    assert not bad


def test_extension_api_is_exported_by_the_wing() -> None:
    import vitq_plugins.brevitas as wing
    from vitq_plugins.brevitas import extension

    missing = [n for n in extension.__all__ if not hasattr(extension, n)]
    assert not missing
    for name in ("register_kernel", "register_export_form", "register_custom_op", "IntegerKernel"):
        assert getattr(wing, name) is getattr(extension, name)


def test_registries_refuse_duplicates() -> None:
    import torch

    from vitq_plugins.brevitas import ExportForm
    from vitq_plugins.brevitas import IntegerKernel
    from vitq_plugins.brevitas import VitqCustomOp
    from vitq_plugins.brevitas import register_custom_op
    from vitq_plugins.brevitas import register_export_form
    from vitq_plugins.brevitas import register_kernel
    from vitq_plugins.core.errors import DuplicateNameError
    import vitq_plugins.papers.fqvit.brevitas as fqvit
    import vitq_plugins.papers.ivit.brevitas as ivit

    assert ivit.ShiftmaxKernel is not None  # imported: the kernels are registered
    with pytest.raises(DuplicateNameError, match="shiftmax"):

        @register_kernel("shiftmax")
        class _K(IntegerKernel):
            def run(self, module: torch.nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
                return x_int * scale

            def export(self, module: torch.nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
                return x

    with pytest.raises(DuplicateNameError, match="Log2ActQuantProxy"):

        @register_export_form(fqvit.Log2ActQuantProxy)
        class _F(ExportForm):
            def qonnx(self, x: torch.Tensor, nodes: object) -> torch.Tensor:  # type: ignore[override]
                return x

            def qcdq(self, x: torch.Tensor, nodes: object) -> torch.Tensor:  # type: ignore[override]
                return x

    with pytest.raises(DuplicateNameError, match="Log2Quant"):

        @register_custom_op("Log2Quant")
        class _Op(VitqCustomOp):
            pass
