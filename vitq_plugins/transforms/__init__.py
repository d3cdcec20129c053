"""Framework-free model transforms shared by the Brevitas and torch.ao FX backends.

Transforms are looked up by the names a recipe lists in ``RecipeSpec.transforms`` (see :data:`TRANSFORMS`).
GPTQ weight rounding (:mod:`~vitq_plugins.transforms.gptq`) is not a recipe transform but a config option
(``options={"weight_rounding": "gptq"}``) that both wings apply after the recipe's transforms, for any recipe.
"""

from __future__ import annotations

from vitq_plugins.papers.mptq.smoothing import apply_sqb
from vitq_plugins.papers.mptq.smoothing import ln_linear_pairs
from vitq_plugins.transforms.gptq import GPTQOptions
from vitq_plugins.transforms.gptq import apply_gptq
from vitq_plugins.transforms.gptq import gptq_layers
from vitq_plugins.transforms.gptq import rounding_options

__all__ = [
    "TRANSFORMS",
    "GPTQOptions",
    "apply_gptq",
    "apply_sqb",
    "gptq_layers",
    "ln_linear_pairs",
    "rounding_options",
]

#: transform name -> ``f(model, calib_batches, **options) -> model``
TRANSFORMS = {"sqb": apply_sqb}
