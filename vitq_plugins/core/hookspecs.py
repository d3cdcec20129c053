"""Hook specifications of the ``vitq`` plugin system (pluggy).

Plugins implement any of these with ``@vitq_plugins.hookimpl`` and are discovered through the
``vitq`` entry-point group. Registration hooks receive a registry object (tox style) and return
nothing; they run once per :class:`~vitq_plugins.core.manager.PluginHost`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar
from typing import cast

import pluggy

if TYPE_CHECKING:
    from vitq_plugins.core.registry import Registry
    from vitq_plugins.core.specs import BackendSpec
    from vitq_plugins.core.specs import DatasetSpec
    from vitq_plugins.core.specs import ModelAdapterSpec
    from vitq_plugins.core.specs import ModelSpec
    from vitq_plugins.core.specs import QuantizerSpec
    from vitq_plugins.core.specs import RecipeSpec
    from vitq_plugins.core.specs import TransformSpec

__all__ = ["PROJECT", "hookspec", "hookimpl"]

PROJECT = "vitq"
_F = TypeVar("_F", bound=Callable[..., Any])

hookspec: Callable[[_F], _F] = cast(Callable[[_F], _F], pluggy.HookspecMarker(PROJECT))
#: Decorator marking a plugin's hook implementation: ``@hookimpl def vitq_register_quantizers(registry): ...``
hookimpl: Callable[[_F], _F] = cast(Callable[[_F], _F], pluggy.HookimplMarker(PROJECT))


@hookspec
def vitq_register_quantizers(registry: Registry[QuantizerSpec]) -> None:
    """Register quantizers: ``registry.register(name, QuantizerSpec(...))``."""


@hookspec
def vitq_register_recipes(registry: Registry[RecipeSpec]) -> None:
    """Register recipes (named bundles of quantizers per site)."""


@hookspec
def vitq_register_transforms(registry: Registry[TransformSpec]) -> None:
    """Register model transforms that recipes list by name (e.g. MPTQ-ViT's SQ-b as ``"sqb"``)."""


@hookspec
def vitq_register_models(registry: Registry[ModelSpec]) -> None:
    """Register model names and their factories."""


@hookspec
def vitq_register_datasets(registry: Registry[DatasetSpec]) -> None:
    """Register dataset names and their loaders."""


@hookspec
def vitq_register_backends(registry: Registry[BackendSpec]) -> None:
    """Register framework backends (Brevitas, torch.ao FX, ...)."""


@hookspec
def vitq_register_model_adapters(registry: Registry[ModelAdapterSpec]) -> None:
    """Register model-family adapters: rewrite a foreign attention/block into vitq's canonical timm form."""
