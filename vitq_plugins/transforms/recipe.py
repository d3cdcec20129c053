"""The recipe's model transforms, applied in one place for every wing and for the sensitivity search.

A recipe lists transforms by name (``RecipeSpec.transforms``); each name is looked up in the ``transforms``
registry (:class:`~vitq_plugins.core.specs.TransformSpec`, filled by plugins through
``vitq_register_transforms``) and called as ``f(model, batches, *, w_bits, a_bits, **options)`` with the
config options that carry the transform's name as a prefix (``<name>_<option>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import UnknownNameError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.core.specs import RecipeSpec

__all__ = ["apply_recipe_transforms", "check_recipe_transforms", "transform_options"]


def transform_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of transform ``name``: config options ``<name>_<key>``, with the prefix removed."""
    prefix = f"{name}_"
    return {k[len(prefix) :]: v for k, v in options.items() if k.startswith(prefix)}


def check_recipe_transforms(recipe: RecipeSpec, host: PluginHost) -> None:
    """Fail before any work if a transform the recipe lists is not registered (close names suggested)."""
    for t in recipe.transforms:
        try:
            host.transforms.get(t)
        except UnknownNameError as exc:
            raise ConfigError(f"recipe {recipe.name!r} needs transform {t!r}: {exc}") from None


def apply_recipe_transforms(
    model: nn.Module,
    recipe: RecipeSpec,
    options: Mapping[str, Any],
    batches: Iterable[torch.Tensor],
    host: PluginHost,
    *,
    w_bits: int = 8,
    a_bits: int = 8,
) -> nn.Module:
    """Apply ``recipe``'s transforms in order to ``model`` (in place where the transform is) and return it.

    Args:
        model: the float model (a working copy: transforms may modify it).
        recipe: the recipe whose ``transforms`` are applied.
        options: the config options (``QuantConfig.options``).
        batches: calibration batches; a transform may read them, so pass a re-iterable.
        host: the plugin host whose ``transforms`` registry is used.
        w_bits: the config's weight bits (for transforms that model the quantizer, e.g. a search).
        a_bits: the config's activation bits.

    Raises:
        ConfigError: a transform the recipe names is not registered.
    """
    check_recipe_transforms(recipe, host)
    for t in recipe.transforms:
        fn = host.transforms.get(t).load()
        model = fn(model, batches, w_bits=w_bits, a_bits=a_bits, **transform_options(t, options))
    return model
