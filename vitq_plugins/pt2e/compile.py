"""``torch.compile`` of a converted PT2E model on x86: Inductor with ``freezing`` (torchao's X86InductorQuantizer
flow), so that ``dequantize -> linear/conv -> quantize`` patterns become oneDNN int8 kernels.

torchao registers those Inductor patterns when ``torchao.quantization.pt2e.quantizer.x86_inductor_quantizer`` is
imported; :func:`compile_x86` imports it, so a caller needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
import time

import torch
from torch import nn

__all__ = ["compile_x86"]


def compile_x86(
    model: nn.Module, example: torch.Tensor
) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:
    """Compile ``model`` for inputs shaped like ``example`` (Inductor, ``freezing=True``) and run it once.

    Returns:
        ``(compiled, seconds)``: the compiled callable (call it under ``torch.no_grad()``) and the wall time of
        the first call, which is the compile time.
    """
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401  (registers the int8 lowering)

    inductor_config.freezing = True  # read again whenever a new input shape recompiles
    model.eval()  # a converted model's eval() is allowed by the wing and returns None
    compiled = torch.compile(model, dynamic=False)
    t0 = time.perf_counter()
    with torch.no_grad():
        compiled(example)
    return compiled, time.perf_counter() - t0
