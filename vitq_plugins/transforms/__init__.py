"""Framework-free model transforms shared by the Brevitas and torch.ao FX backends.

Transforms are looked up by the names a recipe lists in ``RecipeSpec.transforms`` (see :data:`TRANSFORMS`).
"""

from __future__ import annotations

from vitq_plugins.transforms.sqb import apply_sqb
from vitq_plugins.transforms.sqb import ln_linear_pairs

__all__ = ["TRANSFORMS", "apply_sqb", "ln_linear_pairs"]

#: transform name -> ``f(model, calib_batches, **options) -> model``
TRANSFORMS = {"sqb": apply_sqb}
