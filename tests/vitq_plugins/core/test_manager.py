"""Plugin host: built-ins first, real entry points (a *.dist-info on sys.path), failures isolated."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import QuantizerSpec

GOOD_PLUGIN = """
from vitq_plugins import hookimpl, QuantizerSpec

@hookimpl
def vitq_register_quantizers(registry):
    registry.register("thirdparty_q", QuantizerSpec(
        name="thirdparty_q", sites=frozenset({"act"}), min_bits=2, max_bits=8, default_bits=8,
        description="a third-party quantizer", paper="none",
        backends={"brevitas": "vitq_plugins.papers.uniform.brevitas:minmax",
                  "fx": "vitq_plugins.papers.uniform.fx:minmax"}))
"""


def _make_dist(root: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[vitq]\n{ep_name} = {module}\n")


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _make_dist(tmp_path, "vitq-good-plugin", "goodplug", "vitq_good_plugin_mod", GOOD_PLUGIN)
    _make_dist(
        tmp_path, "vitq-broken-plugin", "brokenplug", "vitq_broken_plugin_mod", "raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in ("vitq_good_plugin_mod", "vitq_broken_plugin_mod"):
        sys.modules.pop(m, None)


def test_entry_point_plugin_loads_and_broken_one_is_reported(plugin_dir: Path) -> None:
    host = PluginHost(autoload=True)
    assert "thirdparty_q" in host.quantizers
    assert host.quantizers.owner("thirdparty_q") == "goodplug"
    info = {p["name"]: p for p in host.plugins()}
    assert info["goodplug"]["origin"] == "entrypoint:vitq-good-plugin"
    assert info["goodplug"]["version"] == "1.2.3"
    assert info["goodplug"]["hooks"] == ["vitq_register_quantizers"]
    (failure,) = [f for f in host.failures if f.name == "brokenplug"]
    assert "RuntimeError: boom" in failure.error
    assert "pts" in host.quantizers  # built-ins unaffected


def test_autoload_disabled_skips_entry_points(plugin_dir: Path) -> None:
    assert "thirdparty_q" not in PluginHost(autoload=False).quantizers


def test_env_var_disables_autoload(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "thirdparty_q" not in PluginHost().quantizers
    monkeypatch.delenv("VITQ_DISABLE_PLUGIN_AUTOLOAD")
    assert "thirdparty_q" in PluginHost().quantizers


def test_cli_lists_entry_point_quantizer(plugin_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(plugin_dir))
    env.pop("VITQ_DISABLE_PLUGIN_AUTOLOAD", None)
    out = subprocess.run(
        [sys.executable, "-m", "vitq_plugins.cli", "quantizers", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    names = [q["name"] for q in json.loads(out.stdout)]
    assert "thirdparty_q" in names and "lis" in names
    assert "brokenplug" in out.stderr  # reported, not fatal
    plugins = json.loads(
        subprocess.run(
            [sys.executable, "-m", "vitq_plugins.cli", "plugins", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    )
    assert any(p["name"] == "goodplug" and p["origin"].startswith("entrypoint:") for p in plugins["plugins"])
    assert any(f["name"] == "brokenplug" for f in plugins["failures"])


class _DuplicatePlugin:
    @hookimpl
    def vitq_register_quantizers(self, registry: Registry[QuantizerSpec]) -> None:
        registry.register(
            "pts",
            QuantizerSpec(
                name="pts",
                sites=frozenset({"ln_input"}),
                min_bits=2,
                max_bits=8,
                default_bits=8,
                description="dup",
            ),
        )


class _RaisingPlugin:
    @hookimpl
    def vitq_register_recipes(self, registry: Registry[object]) -> None:
        raise ValueError("bad recipe table")


def test_duplicate_registration_is_a_reported_failure_naming_both_owners() -> None:
    host = PluginHost(autoload=False, extra_plugins=(_DuplicatePlugin(),))
    (f,) = host.failures
    assert f.name == "_DuplicatePlugin"
    assert "vitq_plugins.papers.fqvit.plugin" in f.error and "_DuplicatePlugin" in f.error
    assert host.quantizers.get("pts").description != "dup"


def test_raising_hook_does_not_stop_others() -> None:
    host = PluginHost(autoload=False, extra_plugins=(_RaisingPlugin(),))
    assert any("bad recipe table" in f.error for f in host.failures)
    assert "fqvit" in host.recipes


def test_unknown_hook_fails_check_pending() -> None:
    import pluggy

    class Typo:
        @hookimpl
        def vitq_register_quantiser(self, registry: object) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError):
        PluginHost(autoload=False, extra_plugins=(Typo(),))


def test_fresh_hosts_are_independent() -> None:
    a, b = PluginHost(autoload=False), PluginHost(autoload=False)
    a.quantizers.unregister("lis")
    assert "lis" in b.quantizers
