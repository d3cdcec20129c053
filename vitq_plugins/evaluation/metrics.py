"""Classification metrics on logits, as batch-summable counts (so that evaluation can stream).

- top-k accuracy: the label is among the k largest logits.
- agreement: the quantized model's top-1 class equals the FP model's (label-free fidelity).
- KL(FP ‖ Q): ``sum_c p_fp(c) (log p_fp(c) - log p_q(c))`` of the softmax distributions, in nats,
  computed from log-softmax in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vitq_plugins.core.errors import VitqError

__all__ = ["agreement_count", "kl_divergence", "kl_sum", "top1_agreement", "topk_accuracy", "topk_correct"]


def _check_pair(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.ndim != 2 or tuple(a.shape) != tuple(b.shape):
        raise VitqError(
            f"{what}: expected two (N, classes) logit tensors of one shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> int:
    """How many rows have their label among the ``k`` largest logits.

    Raises:
        VitqError: ``k`` outside ``1..classes`` or mismatched shapes.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise VitqError(
            f"expected (N, classes) logits and (N,) labels, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if not 1 <= k <= logits.shape[1]:
        raise VitqError(
            f"top-{k} is undefined for {logits.shape[1]} classes: k must be in 1..{logits.shape[1]}"
        )
    top = logits.topk(k, dim=1).indices
    return int((top == labels.view(-1, 1).to(top.device)).any(dim=1).sum())


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` largest logits."""
    return topk_correct(logits, labels, k) / max(int(labels.shape[0]), 1)


def agreement_count(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> int:
    """How many rows have the same arg-max in both logit tensors."""
    _check_pair(fp_logits, q_logits, "agreement")
    return int((fp_logits.argmax(dim=1) == q_logits.argmax(dim=1)).sum())


def top1_agreement(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Fraction of rows with the same arg-max."""
    return agreement_count(fp_logits, q_logits) / max(int(fp_logits.shape[0]), 1)


def kl_sum(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Sum over rows of KL(softmax(fp) ‖ softmax(q)) in nats."""
    _check_pair(fp_logits, q_logits, "KL divergence")
    log_p = F.log_softmax(fp_logits.double(), dim=1)
    log_q = F.log_softmax(q_logits.double(), dim=1)
    return float(F.kl_div(log_q, log_p, reduction="sum", log_target=True))


def kl_divergence(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Mean over rows of KL(softmax(fp) ‖ softmax(q)) in nats."""
    return kl_sum(fp_logits, q_logits) / max(int(fp_logits.shape[0]), 1)
