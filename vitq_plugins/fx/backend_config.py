"""The x86 ``BackendConfig`` extended for ViTs: LayerNorm, GELU, softmax and matmul patterns.

Every added pattern has quint8-in/quint8-out ``DTypeConfig``s, matching vitq's activation observers
(:class:`~vitq_plugins.fx.observers.UniformActObserver` and friends all report ``torch.quint8``). A
mismatch makes torch.ao reject a qconfig *silently* (frameworks.md §2.3), which is why
:func:`vitq_plugins.fx.quantize.check_sites` re-counts observers after ``prepare_fx``.

Sites follow FQ-ViT (arXiv 2111.13824, Fig. 2): LayerNorm inputs, the attention matmuls and the softmax.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.quantization.backend_config import BackendConfig
from torch.ao.quantization.backend_config import BackendPatternConfig
from torch.ao.quantization.backend_config import DTypeConfig
from torch.ao.quantization.backend_config import ObservationType
from torch.ao.quantization.backend_config.x86 import get_x86_backend_config
import torch.nn.functional as F

__all__ = ["QUINT8", "LAYERNORM_DTYPE", "vitq_backend_config"]

#: Activation dtype config of every added pattern (must equal the observers' dtype).
QUINT8 = DTypeConfig(input_dtype=torch.quint8, output_dtype=torch.quint8)
#: LayerNorm: quint8 activations, float affine parameters.
LAYERNORM_DTYPE = DTypeConfig(
    input_dtype=torch.quint8, output_dtype=torch.quint8, weight_dtype=torch.float, bias_dtype=torch.float
)


def vitq_backend_config() -> BackendConfig:
    """``get_x86_backend_config()`` plus LayerNorm, GELU, softmax (no fixed qparams) and matmul patterns."""
    bc = get_x86_backend_config()
    bc.name = "vitq_x86"
    diff = ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT
    bc.set_backend_pattern_config(
        BackendPatternConfig(nn.LayerNorm).set_observation_type(diff).set_dtype_configs([LAYERNORM_DTYPE])
    )
    bc.set_backend_pattern_config(
        BackendPatternConfig(F.layer_norm)
        .set_observation_type(diff)
        .set_dtype_configs([LAYERNORM_DTYPE])
        ._set_input_type_to_index({"weight": 2, "bias": 3})
    )
    for pattern in (nn.GELU, F.gelu, nn.Softmax, torch.softmax, F.softmax, torch.matmul):
        bc.set_backend_pattern_config(
            BackendPatternConfig(pattern).set_observation_type(diff).set_dtype_configs([QUINT8])
        )
    return bc
