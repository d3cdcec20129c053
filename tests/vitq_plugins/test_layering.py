"""Imports flow one way (every ``import``, also the lazy ones inside functions).

numerics (``ops``) and the framework-free integer IR (``intexec``) <- framework wings (``brevitas``, ``fx``, ``pt2e``;
never each other; each converts into the IR in its own ``integer`` module) <- papers (``papers``, which
register themselves and use only the wings' and the IR's public APIs) <- consumers (``search``, ``pipeline``,
``commands``, the CLI); the plugin core (``core``, ``config``, ``sites``, ``builtin``) knows no framework, nor
does the executor seam (``executors``), which the consumers use. A wing never reaches up into a paper or a
consumer, and the IR into neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "vitq_plugins"

#: subpackage -> subpackages (of vitq_plugins) it must never import
FORBIDDEN: dict[str, set[str]] = {
    "ops": {
        "core",
        "config",
        "brevitas",
        "fx",
        "pt2e",
        "intexec",
        "pipeline",
        "search",
        "commands",
        "cli",
        "builtin",
    },
    "core": {"brevitas", "fx", "pt2e", "intexec", "pipeline", "search", "commands", "cli", "ops"},
    "config": {"brevitas", "fx", "pt2e", "intexec", "pipeline", "search", "commands", "cli"},
    "sites": {"brevitas", "fx", "pt2e", "intexec", "pipeline", "search", "commands", "cli"},
    "builtin": {"brevitas", "fx", "pt2e", "intexec", "pipeline", "search", "commands", "cli"},
    "transforms": {"brevitas", "fx", "pt2e", "intexec", "pipeline", "search", "commands", "cli"},
    # model-family adapters rewrite float models before any wing sees them
    "adapters": {"brevitas", "fx", "pt2e", "intexec", "papers", "pipeline", "search", "commands", "cli"},
    "brevitas": {"fx", "pt2e", "papers", "pipeline", "search", "commands", "cli", "evaluation"},
    "fx": {"brevitas", "pt2e", "papers", "pipeline", "search", "commands", "cli", "evaluation"},
    "pt2e": {"brevitas", "fx", "intexec", "papers", "pipeline", "search", "commands", "cli", "evaluation"},
    # the integer IR (kernels, forms, executor, ONNX emitter) reaches a wing only through the backend registry
    "intexec": {"brevitas", "fx", "pt2e", "papers", "pipeline", "search", "commands", "cli"},
    "papers": {"pipeline", "search", "commands", "cli"},
    "pipeline": {"brevitas", "fx", "pt2e", "commands", "cli"},  # it reaches a wing through the registry
    # the executor seam runs any function it is given: it knows no numerics, wing or consumer
    "executors": {
        "ops",
        "brevitas",
        "fx",
        "pt2e",
        "intexec",
        "pipeline",
        "search",
        "commands",
        "cli",
        "builtin",
        "transforms",
    },
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "vitq_plugins" and len(parts) > 1:
                out.add(parts[1])
    return out


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_imports_flow_one_way(unit: str) -> None:
    files = [p for p in PKG.rglob("*.py") if _unit(p) == unit]
    assert files, f"no module for {unit!r}"
    bad = {
        f"{p.relative_to(PKG)} imports vitq_plugins.{dep}"
        for p in files
        for dep in _imports(p) & FORBIDDEN[unit]
    }
    assert not bad, sorted(bad)


def _third_party(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_integer_ir_is_framework_free() -> None:
    """``intexec`` imports no quantization framework (Brevitas, torch.ao): the wings convert into it."""
    bad = {
        f"{p.relative_to(PKG)} imports {mod}"
        for p in (PKG / "intexec").rglob("*.py")
        for mod in _third_party(p)
        if mod.split(".")[0] in {"brevitas", "qonnx"} or mod.startswith(("torch.ao", "torch.fx"))
    }
    assert not bad, sorted(bad)
