"""Distillation terms: what the model's embedding learns from a face-recognition teacher's.

Two terms, each over the photos of a batch that have a teacher target (the teacher found a face):

- cosine: a linear projection of the model's embedding into the teacher's space should point where the
  teacher's embedding points: mean of 1 - cos(P s_i, t_i). The projection is a training-only module
  (dropped with the AdaFace head when the model is saved), so the embedding itself keeps its size.
- relation: the pairwise cosine similarities of the model's own unit embeddings should rise and fall
  with the teacher's: 1 - the Pearson correlation of the two sets of pair similarities (the relational
  idea of Park et al., CVPR 2019, in a form free of scale and offset). The teacher's space (dlib's
  128-d, where everyone is fairly similar) and the model's cosine space need no calibration, and the
  term shapes the space `compare` and `search` score in directly, without a projection. It is 0 when
  the pairs are ordered and spaced alike up to an affine map, about 1 for unrelated geometries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_PAIR_VARIANCE = 1e-10


class TeacherProjection(nn.Module):
    """Model embedding -> teacher space (training only)."""

    def __init__(self, embedding_dim: int, teacher_dim: int):
        super().__init__()
        self.linear = nn.Linear(embedding_dim, teacher_dim)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear(embeddings)


def cosine_distillation(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(projected_i, teacher_i) over the rows; 0 for no rows."""
    if len(projected) == 0:
        return projected.sum() * 0.0
    with torch.autocast(device_type=projected.device.type, enabled=False):
        return (1.0 - F.cosine_similarity(projected.float(), teacher.float(), dim=-1)).mean()


def relation_distillation(embeddings: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 - Pearson correlation between the pairwise cosine similarities of `embeddings` and of `teacher`
    (each pair once); 0 for fewer than 3 rows or for pair similarities that do not vary (no correlation)."""
    if len(embeddings) < 3:
        return embeddings.sum() * 0.0
    # In float32 under autocast too: a batch's pair similarities differ by less than a bfloat16 step.
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        similarities = _pair_similarities(embeddings.float())
        # Pairs that are all alike (identical rows) have no correlation: no term, rather than a NaN gradient.
        if float(similarities.detach().var(unbiased=False)) < MIN_PAIR_VARIANCE:
            return embeddings.sum() * 0.0
        student = _standardised(similarities)
        with torch.no_grad():
            target = _standardised(_pair_similarities(teacher.float()))
        return 1.0 - (student * target).mean()


def _pair_similarities(points: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(points, dim=-1)
    rows, columns = torch.triu_indices(len(points), len(points), offset=1, device=points.device)
    return (unit @ unit.T)[rows, columns]


def _standardised(values: torch.Tensor) -> torch.Tensor:
    centred = values - values.mean()
    return centred / (centred.pow(2).mean() + 1e-12).sqrt()


__all__ = ["TeacherProjection", "cosine_distillation", "relation_distillation"]
