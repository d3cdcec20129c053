"""Metrics on hand-made logits: top-k, agreement, KL(FP ‖ Q)."""

from __future__ import annotations

import math

import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.evaluation.metrics import agreement_count
from vitq_plugins.evaluation.metrics import kl_divergence
from vitq_plugins.evaluation.metrics import top1_agreement
from vitq_plugins.evaluation.metrics import topk_accuracy
from vitq_plugins.evaluation.metrics import topk_correct

LOGITS = torch.tensor(
    [
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # ranks: 0 > 1 > 2 > 3 > 4 > 5
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # ranks: 5 > 4 > 3 > 2 > 1 > 0
        [1.0, 9.0, 0.5, 0.4, 0.3, 0.2],  # ranks: 1 > 0 > 2 > 3 > 4 > 5
    ]
)
LABELS = torch.tensor([0, 1, 2])


def test_topk_by_hand() -> None:
    assert topk_correct(LOGITS, LABELS, 1) == 1  # row 0 only
    assert topk_correct(LOGITS, LABELS, 2) == 1
    assert topk_correct(LOGITS, LABELS, 3) == 2  # row 2: label 2 is 3rd
    assert topk_correct(LOGITS, LABELS, 5) == 3  # row 1: label 1 is 5th
    assert topk_accuracy(LOGITS, LABELS, 1) == pytest.approx(1 / 3)


def test_topk_rejects_bad_k_and_shapes() -> None:
    with pytest.raises(VitqError, match="top-7 is undefined for 6 classes"):
        topk_correct(LOGITS, LABELS, 7)
    with pytest.raises(VitqError, match="expected"):
        topk_correct(LOGITS, LABELS[:2], 1)


def test_agreement_by_hand() -> None:
    q = LOGITS.clone()
    q[1] = torch.tensor([9.0, 0, 0, 0, 0, 0])  # arg-max moves from 5 to 0
    assert agreement_count(LOGITS, q) == 2
    assert top1_agreement(LOGITS, q) == pytest.approx(2 / 3)
    assert top1_agreement(LOGITS, LOGITS) == 1.0


def test_kl_by_hand() -> None:
    fp = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64))
    q = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]], dtype=torch.float64))
    row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(fp, q) == pytest.approx(row0 / 2, rel=1e-9)
    assert kl_divergence(fp, fp) == pytest.approx(0.0, abs=1e-12)


def test_kl_is_invariant_to_logit_shifts_and_asymmetric() -> None:
    fp = torch.tensor([[2.0, 0.0, -1.0]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    assert kl_divergence(fp + 100.0, q - 3.0) == pytest.approx(kl_divergence(fp, q), rel=1e-9)
    assert kl_divergence(fp, q) != pytest.approx(kl_divergence(q, fp))
    assert kl_divergence(fp, q) > 0


def test_pair_shape_mismatch() -> None:
    with pytest.raises(VitqError, match=r"\(3, 6\) and \(2, 6\)"):
        agreement_count(LOGITS, LOGITS[:2])
