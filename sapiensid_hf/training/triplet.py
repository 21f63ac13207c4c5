"""Batch-hard triplet loss (Hermans et al., 2017) on the embedding directions.

Optional beside AdaFace (`head.triplet_weight`). With identity-balanced batches (P people x K images)
every anchor has K - 1 positives in its own micro-batch, and the term ranks them above the batch's
other people directly, instead of only through the class centres, which each see a person's few
photos a handful of times per run. That is what a short, small-data run lacks (docs/training.md).

For anchor a: loss_a = max(0, max_p d(a, p) - min_n d(a, n) + margin), d = Euclidean distance between
L2-normalised embeddings (sqrt(2 - 2 cos), in [0, 2]). An anchor with no positive or no negative in the
micro-batch gets 0 and `valid` False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor loss (B,) in float32 and the (B,) mask of anchors that have a positive and a negative."""
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"need (B, D) embeddings and (B,) labels, got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    # In float32 under autocast too: near the margin, distances differ by less than a bfloat16 step.
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        directions = F.normalize(embeddings.float(), dim=1)
        # Clamped before the square root: its gradient at 0 (an image against itself) is infinite.
        distance = (2 - 2 * directions @ directions.T).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~itself
    negative = ~same
    hardest_positive = distance.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = distance.masked_fill(~negative, float("inf")).amin(dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    loss = F.relu(hardest_positive - hardest_negative + margin)
    return torch.where(valid, loss, torch.zeros_like(loss)), valid


__all__ = ["batch_hard_triplet_loss"]
