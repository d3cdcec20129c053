"""One check for every image batch that enters vitq: NaN or +-Inf pixels are a clear error, not an observer
failure deep inside a wing (``MinMaxObserver.min read before any update()``).

Called by the data loader (the CLI, the pipeline, the explorer) and by both wings' calibration loops (the
Python API, where batches come from the caller).
"""

from __future__ import annotations

import torch

from vitq_plugins.core.errors import VitqError

__all__ = ["require_finite"]


def require_finite(x: torch.Tensor, what: str) -> None:
    """Raise unless every element of the floating-point tensor ``x`` is finite.

    One reduction in the common (finite) case: NaN and +-Inf make the sum non-finite; only then are the
    bad values counted for the message.

    Raises:
        VitqError: ``x`` holds NaN or +-Inf (how many, and the first one, named).
    """
    if not (x.is_floating_point() and x.numel()):
        return
    if bool(torch.isfinite(x.sum(dtype=torch.float64))):
        return
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):  # a finite tensor whose float64 sum overflowed
        return
    raise VitqError(
        f"{what} must be finite: {int(bad.sum())} of {x.numel()} values are NaN/Inf (first: "
        f"{x[bad].flatten()[0].item()}); clean or re-normalize the images"
    )
