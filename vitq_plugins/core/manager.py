"""The plugin host: a pluggy ``PluginManager("vitq")`` plus the registries it fills.

Order (as tox and datasette do it): built-in plugins first, then the ``vitq`` entry points (unless
``VITQ_DISABLE_PLUGIN_AUTOLOAD`` is set), then ``check_pending()``, then the registration hooks.
A plugin that fails to import or to register is recorded in :attr:`PluginHost.failures` with its name
and error, and the others still load.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
import importlib.metadata as md
import os
from typing import Any
import warnings

import pluggy

from vitq_plugins.core import hookspecs
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import BackendSpec
from vitq_plugins.core.specs import DatasetSpec
from vitq_plugins.core.specs import ModelAdapterSpec
from vitq_plugins.core.specs import ModelSpec
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec
from vitq_plugins.core.specs import TransformSpec

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "DISABLE_AUTOLOAD_ENV",
    "PluginFailure",
    "PluginHost",
    "get_host",
    "reset_host",
]

ENTRY_POINT_GROUP = "vitq"
DISABLE_AUTOLOAD_ENV = "VITQ_DISABLE_PLUGIN_AUTOLOAD"

#: Built-in plugins: the uniform baselines, one package per paper, the bundled assets and the wings.
#: A new built-in paper adds one line here.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "vitq_plugins.papers.uniform.plugin",
    "vitq_plugins.papers.fqvit.plugin",
    "vitq_plugins.papers.ivit.plugin",
    "vitq_plugins.papers.mptq.plugin",
    "vitq_plugins.papers.repq.plugin",
    "vitq_plugins.adapters.plugin",
    "vitq_plugins.builtin.assets",
    "vitq_plugins.builtin.backends",
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose registration hook raised."""

    name: str
    origin: str
    error: str


class PluginHost:
    """A plugin manager with its registries, populated once.

    Args:
        autoload: load ``vitq`` entry points; default: unless ``VITQ_DISABLE_PLUGIN_AUTOLOAD`` is set.
        builtins: module paths of built-in plugins to register first.
        extra_plugins: plugin objects (modules or instances) registered after the built-ins.

    Example:
        >>> host = PluginHost(autoload=False)
        >>> "lis" in host.quantizers
        True
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        builtins: tuple[str, ...] = BUILTIN_PLUGINS,
        extra_plugins: tuple[object, ...] = (),
    ) -> None:
        if autoload is None:
            autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._origins: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self.quantizers: Registry[QuantizerSpec] = Registry("quantizer")
        self.recipes: Registry[RecipeSpec] = Registry("recipe")
        self.transforms: Registry[TransformSpec] = Registry("transform")
        self.models: Registry[ModelSpec] = Registry("model")
        self.datasets: Registry[DatasetSpec] = Registry("dataset")
        self.backends: Registry[BackendSpec] = Registry("backend")
        self.model_adapters: Registry[ModelAdapterSpec] = Registry("model adapter")

        for path in builtins:
            try:
                mod = importlib.import_module(path)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
                self.failures.append(PluginFailure(path, "builtin", f"{type(exc).__name__}: {exc}"))
                continue
            self._add(mod, path, "builtin", _vitq_version())
        for plugin in extra_plugins:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            self._add(plugin, name, "python", "")
        if autoload:
            self._load_entry_points()
        self.pm.check_pending()
        self._populate()

    def _add(self, plugin: object, name: str, origin: str, version: str) -> None:
        self.pm.register(plugin, name=name)
        self._origins[name] = origin
        self._versions[name] = version

    def _load_entry_points(self) -> None:
        seen: set[str] = set()
        for dist in md.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                    continue
                seen.add(ep.name)
                if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                    continue
                dist_name = dist.metadata["Name"] or ep.name
                try:
                    plugin = ep.load()
                except Exception as exc:  # noqa: BLE001
                    self.failures.append(
                        PluginFailure(ep.name, f"entrypoint:{dist_name}", f"{type(exc).__name__}: {exc}")
                    )
                    continue
                self._add(plugin, ep.name, f"entrypoint:{dist_name}", dist.version or "")

    def _populate(self) -> None:
        calls: tuple[tuple[str, Registry[Any]], ...] = (
            ("vitq_register_backends", self.backends),
            ("vitq_register_quantizers", self.quantizers),
            ("vitq_register_transforms", self.transforms),
            ("vitq_register_recipes", self.recipes),
            ("vitq_register_models", self.models),
            ("vitq_register_datasets", self.datasets),
            ("vitq_register_model_adapters", self.model_adapters),
        )
        # Call implementations one plugin at a time, built-ins first, so that a failing plugin is
        # reported by name and a duplicate name names both owners.
        for hook_name, registry in calls:
            for name, plugin in self._ordered_plugins():
                fn = getattr(plugin, hook_name, None)
                if fn is None or not hasattr(fn, "vitq_impl"):
                    continue
                registry.current_owner = name
                try:
                    fn(registry=registry)
                except Exception as exc:  # noqa: BLE001
                    self.failures.append(
                        PluginFailure(name, self._origins[name], f"{hook_name}: {type(exc).__name__}: {exc}")
                    )
                finally:
                    registry.current_owner = "<python>"

    def _ordered_plugins(self) -> list[tuple[str, object]]:
        return [(n, self.pm.get_plugin(n)) for n in self._origins if self.pm.get_plugin(n) is not None]

    def plugins(self) -> list[dict[str, Any]]:
        """Name, version, origin and implemented hooks of every registered plugin."""
        out: list[dict[str, Any]] = []
        for name, plugin in self._ordered_plugins():
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append(
                {
                    "name": name,
                    "version": self._versions.get(name, ""),
                    "origin": self._origins[name],
                    "hooks": hooks,
                }
            )
        return out

    def registry(self, kind: str) -> Registry[Any]:
        """The registry for ``kind`` in {quantizers, recipes, transforms, models, datasets, backends,
        model_adapters}."""
        regs: dict[str, Registry[Any]] = {
            "quantizers": self.quantizers,
            "recipes": self.recipes,
            "transforms": self.transforms,
            "models": self.models,
            "datasets": self.datasets,
            "backends": self.backends,
            "model_adapters": self.model_adapters,
        }
        if kind not in regs:
            raise KeyError(f"unknown registry {kind!r}; valid: {sorted(regs)}")
        return regs[kind]


def _vitq_version() -> str:
    try:
        return md.version("vitq")
    except md.PackageNotFoundError:
        return "0+unknown"


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use; failures are also emitted as warnings."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
        for f in _HOST.failures:
            warnings.warn(f"vitq plugin {f.name!r} ({f.origin}) failed to load: {f.error}", stacklevel=2)
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace (or drop, with ``None``) the process-wide host; used by tests."""
    global _HOST
    _HOST = host
