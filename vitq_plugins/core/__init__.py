"""The framework-free plugin core: hookspecs, registries, specs and the plugin host."""

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import DuplicateNameError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.core.manager import reset_host
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import BackendSpec
from vitq_plugins.core.specs import DatasetSpec
from vitq_plugins.core.specs import ModelSpec
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import RecipeSpec
from vitq_plugins.core.specs import TransformSpec

__all__ = [
    "SITES",
    "BackendSpec",
    "ConfigError",
    "DatasetSpec",
    "DuplicateNameError",
    "ModelSpec",
    "PluginHost",
    "QuantizerSpec",
    "RecipeSpec",
    "TransformSpec",
    "Registry",
    "UnknownNameError",
    "VitqError",
    "get_host",
    "hookimpl",
    "reset_host",
]
