"""AdaFace margin softmax (Kim et al., CVPR 2022) with optional partial-FC class sampling.

The margin follows the published head (mk-minchul/AdaFace, head.py), written afresh. For an embedding
z with norm ||z|| and cosine cos(theta) to its own class centre:

    g      = clip(h * (||z|| - mu) / (sigma + eps), -1, 1)       mu, sigma: EMA of the batch norm mean / std
    target = s * (cos(clip(theta - m * g, eps, pi - eps)) - (m + m * g))
    other  = s * cos(theta_j)

with m = 0.4, h = 0.333, s = 64, EMA weight t_alpha = 0.01 (mu starts at 20, sigma at 100, and the
statistics are updated before the margin is computed, as in the reference). Cosines are clamped to
[-1 + eps, 1 - eps], eps = 1e-3. High-norm (high-quality) samples get an angular margin, low-norm ones an
additive margin that eases the loss on unrecognisable images.

Class centres: one (num_classes, dim) float32 matrix, row per identity, so gathering the classes of a
step is a contiguous row copy. Memory, for C classes and D = embedding size:

    weights 4·C·D bytes, gradient 4·C·D, AdamW moments 8·C·D: 16·C·D bytes in training.
    C = 100k: D = 512 -> 0.82 GB, D = 4096 (the default output) -> 6.6 GB.
    C = 1M, D = 512 -> 8.2 GB.

The softmax over all classes costs B·C·D multiply-adds and a (B, C) logit matrix (B = 256, C = 1M: 1 GB
of float32 logits plus their gradient). With `sample_rate` r < 1 (partial FC, An et al. 2021) each step
scores only the batch's own classes plus random other classes, max(positives, round(r·C)) in all, which
cuts the logit matrix and the matmul by 1/r. The unsampled rows get a zero gradient that step; the
gradient and optimizer state stay dense (above). Beyond a few million identities the next step would be
to shard the centres across processes (model parallel), which this head does not do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

INITIAL_NORM_MEAN = 20.0
INITIAL_NORM_STD = 100.0
NORM_CLIP = (0.001, 100.0)


@dataclass
class AdaFaceOutput:
    loss: torch.Tensor  # (B,) per-sample cross-entropy, in float32
    logits: torch.Tensor  # (B, n) scaled margin logits over the scored classes
    targets: torch.Tensor  # (B,) column of each sample's own class in `logits`
    classes: torch.Tensor  # (n,) class index of each logit column
    norms: torch.Tensor  # (B,) embedding norms


class AdaFaceHead(nn.Module):
    """Class centres + AdaFace margin softmax.

    Args:
        embedding_size: width of the embeddings (the model's `output_dim`).
        num_classes: number of identities.
        margin, h, scale, t_alpha: AdaFace m, h, s and the EMA weight of the norm statistics.
        sample_rate: fraction of classes scored per training step (partial FC); 1.0 scores all.
        eps: clamp for cosines and angles.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        margin: float = 0.4,
        h: float = 0.333,
        scale: float = 64.0,
        t_alpha: float = 0.01,
        sample_rate: float = 1.0,
        eps: float = 1e-3,
    ):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"AdaFace needs at least 2 classes, got {num_classes}")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.num_classes = num_classes
        self.margin = margin
        # Fraction of `margin` in use: the trainer ramps it from 0 to 1 (`head.margin_warmup_steps`), since
        # a full margin from random weights can leave a small model at chance (docs/training.md).
        self.margin_fraction = 1.0
        self.h = h
        self.scale = scale
        self.t_alpha = t_alpha
        self.sample_rate = sample_rate
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        self.register_buffer("norm_mean", torch.tensor(INITIAL_NORM_MEAN))
        self.register_buffer("norm_std", torch.tensor(INITIAL_NORM_STD))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Reference init: uniform(-1, 1) directions scaled to unit norm (only the direction matters).
        self.weight.uniform_(-1, 1)
        self.weight.div_(self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
        self.norm_mean.fill_(INITIAL_NORM_MEAN)
        self.norm_std.fill_(INITIAL_NORM_STD)

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.weight.shape[1]}, num_classes={self.num_classes}, m={self.margin}, h={self.h}, "
            f"s={self.scale}, t_alpha={self.t_alpha}, sample_rate={self.sample_rate}"
        )

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> AdaFaceOutput:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.weight.shape[1]:
            raise ValueError(f"embeddings must have shape (B, {self.weight.shape[1]}), got {tuple(embeddings.shape)}")
        if labels.shape != embeddings.shape[:1]:
            raise ValueError(f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
        # Margins near cos = +-1 need float32: acos is steep there.
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            embeddings = embeddings.float()
            norms = embeddings.norm(dim=1).clamp_min(1e-12)
            directions = embeddings / norms[:, None]
            classes, targets = self.scored_classes(labels)
            scored = self.weight if len(classes) == self.num_classes else self.weight[classes]
            centres = F.normalize(scored.float(), dim=1)
            cosine = (directions @ centres.T).clamp(-1 + self.eps, 1 - self.eps)
            scaler = self.margin_scaler(norms.detach())
            rows = torch.arange(len(labels), device=labels.device)
            theta = cosine[rows, targets].acos()
            margin = self.margin * self.margin_fraction
            target_angle = (theta - margin * scaler).clamp(self.eps, math.pi - self.eps)
            target_logit = target_angle.cos() - (margin + margin * scaler)
            logits = cosine.index_put((rows, targets), target_logit) * self.scale
            loss = F.cross_entropy(logits, targets, reduction="none")
        return AdaFaceOutput(loss=loss, logits=logits, targets=targets, classes=classes, norms=norms.detach())

    def scored_classes(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classes of this step's softmax (sorted) and each label's column among them."""
        if self.sample_rate >= 1 or not self.training:
            return torch.arange(self.num_classes, device=labels.device), labels
        positives = torch.unique(labels)
        wanted = max(len(positives), round(self.sample_rate * self.num_classes))
        # Random scores, positives forced to the front: the top `wanted` are all positives + random others.
        scores = torch.rand(self.num_classes, device=labels.device)
        scores[positives] = 2.0
        classes = torch.topk(scores, wanted, sorted=False).indices.sort().values
        return classes, torch.searchsorted(classes, labels)

    @torch.no_grad()
    def margin_scaler(self, norms: torch.Tensor) -> torch.Tensor:
        """g = clip(h * (||z|| - mu) / (sigma + eps), -1, 1), updating mu / sigma first when training."""
        norms = norms.clamp(*NORM_CLIP)
        if self.training:
            mean, std = _global_mean_std(norms)
            self.norm_mean.mul_(1 - self.t_alpha).add_(self.t_alpha * mean)
            self.norm_std.mul_(1 - self.t_alpha).add_(self.t_alpha * std)
        scaler = (norms - self.norm_mean) / (self.norm_std + self.eps)
        return (scaler * self.h).clamp(-1, 1)


def _global_mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased std over every process's batch, so all processes keep the same statistics."""
    moments = torch.stack([values.new_tensor(float(values.numel())), values.sum(), values.square().sum()])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(moments)
    count, total, squares = moments.unbind()
    mean = total / count
    variance = (squares - count * mean.square()) / (count - 1).clamp_min(1)
    return mean, variance.clamp_min(0).sqrt()


__all__ = ["AdaFaceHead", "AdaFaceOutput"]
