"""Evaluation: streaming accuracy/fidelity metrics, model size, MACs and BOPs.

Example:
    >>> from vitq_plugins.evaluation import evaluate, weight_size_mb  # doctest: +SKIP
"""

from __future__ import annotations

from vitq_plugins.evaluation.bops import bits_by_layer
from vitq_plugins.evaluation.bops import bops
from vitq_plugins.evaluation.capture import capture_block_activations
from vitq_plugins.evaluation.evaluate import EvalResult
from vitq_plugins.evaluation.evaluate import collect_logits
from vitq_plugins.evaluation.evaluate import evaluate
from vitq_plugins.evaluation.layer_table import layer_table
from vitq_plugins.evaluation.macs import count_macs
from vitq_plugins.evaluation.metrics import kl_divergence
from vitq_plugins.evaluation.metrics import top1_agreement
from vitq_plugins.evaluation.metrics import topk_accuracy
from vitq_plugins.evaluation.size import weight_size_mb

__all__ = [
    "EvalResult",
    "bits_by_layer",
    "bops",
    "capture_block_activations",
    "collect_logits",
    "count_macs",
    "evaluate",
    "kl_divergence",
    "layer_table",
    "top1_agreement",
    "topk_accuracy",
    "weight_size_mb",
]
