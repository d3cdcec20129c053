"""Warning hygiene for the legacy ``torch.ao.quantization`` FX API (deprecated, pytorch/ao#2259).

Only the calls made by :mod:`vitq_plugins.fx` are silenced, inside :func:`quiet`; user code keeps seeing
the warnings. (No algorithm here; the quantizers hosted by the FX backend are cited in
:mod:`vitq_plugins.fx`: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import warnings

__all__ = ["quiet"]


@contextmanager
def quiet() -> Iterator[None]:
    """Suppress the torch.ao deprecation and quantized-tensor deprecation warnings in this block."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor, torch\.quantize_per_channel.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*TypedStorage is deprecated.*")
        yield
