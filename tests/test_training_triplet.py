"""Batch-hard triplet term: exact values on a hand-made batch, anchors without a positive, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from sapiensid_hf.training.config import ConfigError, TrainingConfig
from sapiensid_hf.training.triplet import batch_hard_triplet_loss


def _unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def _chord(degrees: float) -> float:
    return 2 * math.sin(math.radians(degrees) / 2)  # distance between unit vectors this far apart


def test_hardest_positive_and_negative_give_the_published_loss():
    # person 0 at 0 and 40 degrees, person 1 at 60 and 170 degrees; norms must not matter.
    embeddings = torch.tensor([_unit(0), _unit(40), _unit(60), _unit(170)]) * torch.tensor(
        [[1.0], [3.0], [0.5], [2.0]]
    )
    labels = torch.tensor([0, 0, 1, 1])
    loss, valid = batch_hard_triplet_loss(embeddings, labels, margin=0.3)
    expected = [
        max(0.0, _chord(40) - _chord(60) + 0.3),  # anchor 0: positive at 40, nearest negative at 60
        max(0.0, _chord(40) - _chord(20) + 0.3),  # anchor 1: negative at 60 is 20 away
        max(0.0, _chord(110) - _chord(20) + 0.3),  # anchor 2: positive at 170, negative at 40
        max(0.0, _chord(110) - _chord(130) + 0.3),  # anchor 3: nearest negative at 40
    ]
    assert valid.all()
    torch.testing.assert_close(loss, torch.tensor(expected), atol=1e-5, rtol=0)


def test_anchor_without_a_positive_counts_zero_and_is_marked():
    embeddings = torch.randn(5, 8)
    labels = torch.tensor([0, 0, 1, 2, 2])
    loss, valid = batch_hard_triplet_loss(embeddings, labels)
    assert valid.tolist() == [True, True, False, True, True]
    assert loss[2] == 0
    # A batch of one person has no negatives at all.
    loss, valid = batch_hard_triplet_loss(embeddings[:2], labels[:2])
    assert not valid.any() and (loss == 0).all()


def test_gradients_are_finite_with_duplicate_images_and_pull_positives_together():
    base = torch.randn(4, 16)
    embeddings = torch.cat([base, base[:1]]).requires_grad_(True)  # image 4 repeats image 0 exactly
    labels = torch.tensor([0, 1, 2, 3, 0])
    loss, _ = batch_hard_triplet_loss(embeddings, labels, margin=2.0)
    loss.sum().backward()
    assert torch.isfinite(embeddings.grad).all()
    # A step against the gradient lowers the loss.
    with torch.no_grad():
        stepped = embeddings - 0.05 * embeddings.grad
    assert batch_hard_triplet_loss(stepped, labels, margin=2.0)[0].sum() < loss.sum()


def test_triplet_config_is_checked():
    config = TrainingConfig()
    config.data.loader, config.data.root = "market1501", "somewhere"
    config.head.triplet_weight = -1.0
    with pytest.raises(ConfigError, match="triplet_weight"):
        config.validate()


def test_the_loss_is_float32_under_bfloat16_autocast():
    """A bfloat16 run (mixed_precision: bf16) must not rank its hardest pairs in bfloat16: distances near
    the margin differ by less than a bfloat16 step (~0.004 near 1)."""
    torch.manual_seed(0)
    embeddings, labels = torch.randn(32, 64), torch.arange(8).repeat_interleave(4)
    expected, _ = batch_hard_triplet_loss(embeddings, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = batch_hard_triplet_loss(embeddings, labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=0)
