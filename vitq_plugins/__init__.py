"""vitq: ViT quantizers (FQ-ViT, I-ViT, MPTQ-style) as plugins for Brevitas and torch.ao FX.

``import vitq_plugins`` stays lean: it imports neither Brevitas, ONNX nor Streamlit. The registries are
filled on first use by the plugin host (built-ins, then the ``vitq`` entry points).

Example:
    >>> import vitq_plugins as vq
    >>> "fqvit" in vq.list_recipes()
    True
"""

from __future__ import annotations

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core import SITES
from vitq_plugins.core import BackendSpec
from vitq_plugins.core import ConfigError
from vitq_plugins.core import DatasetSpec
from vitq_plugins.core import DuplicateNameError
from vitq_plugins.core import ModelSpec
from vitq_plugins.core import PluginHost
from vitq_plugins.core import QuantizerSpec
from vitq_plugins.core import RecipeSpec
from vitq_plugins.core import Registry
from vitq_plugins.core import TransformSpec
from vitq_plugins.core import UnknownNameError
from vitq_plugins.core import VitqError
from vitq_plugins.core import get_host
from vitq_plugins.core import hookimpl
from vitq_plugins.executors import get_executor
from vitq_plugins.executors import list_executors

__version__ = "0.1.0"

__all__ = [
    "SITES",
    "BackendSpec",
    "ConfigError",
    "DatasetSpec",
    "DuplicateNameError",
    "LayerOverride",
    "ModelSpec",
    "PluginHost",
    "QuantConfig",
    "QuantizerSpec",
    "RecipeSpec",
    "TransformSpec",
    "Registry",
    "UnknownNameError",
    "VitqError",
    "__version__",
    "get_backend",
    "get_executor",
    "get_quantizer",
    "get_recipe",
    "hookimpl",
    "list_datasets",
    "list_executors",
    "list_models",
    "list_quantizers",
    "list_recipes",
]


def list_quantizers(filter: str | None = None) -> list[str]:  # noqa: A002 - timm's spelling
    """Registered quantizer names, optionally filtered by a glob."""
    return get_host().quantizers.list(filter)


def list_recipes(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered recipe names, optionally filtered by a glob."""
    return get_host().recipes.list(filter)


def list_models(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered model names, optionally filtered by a glob."""
    return get_host().models.list(filter)


def list_datasets(filter: str | None = None) -> list[str]:  # noqa: A002
    """Registered dataset names, optionally filtered by a glob."""
    return get_host().datasets.list(filter)


def get_quantizer(name: str) -> QuantizerSpec:
    """The registered quantizer ``name`` (unknown names raise with close matches)."""
    return get_host().quantizers.get(name)


def get_recipe(name: str) -> RecipeSpec:
    """The registered recipe ``name``."""
    return get_host().recipes.get(name)


def get_backend(name: str) -> object:
    """The backend implementation registered as ``name`` (imports that wing)."""
    return get_host().backends.get(name).load()
