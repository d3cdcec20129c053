"""Framework-free model transforms shared by every wing.

* :mod:`~vitq_plugins.transforms.recipe` - the recipe's transforms (registered by plugins, e.g. MPTQ-ViT's
  SQ-b), applied in one place for the wings and the sensitivity search.
* :mod:`~vitq_plugins.transforms.gptq` - GPTQ weight rounding: not a recipe transform but a config option
  (``options={"weight_rounding": "gptq"}``) that every wing applies after the recipe's transforms.
"""

from __future__ import annotations

from vitq_plugins.transforms.gptq import GPTQOptions
from vitq_plugins.transforms.gptq import apply_gptq
from vitq_plugins.transforms.gptq import gptq_layers
from vitq_plugins.transforms.gptq import rounding_options
from vitq_plugins.transforms.recipe import apply_recipe_transforms
from vitq_plugins.transforms.recipe import check_recipe_transforms
from vitq_plugins.transforms.recipe import transform_options

__all__ = [
    "GPTQOptions",
    "apply_gptq",
    "apply_recipe_transforms",
    "check_recipe_transforms",
    "gptq_layers",
    "rounding_options",
    "transform_options",
]
