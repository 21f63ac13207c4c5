"""The module that trains: a SapiensID backbone plus the AdaFace head, and how to build it from a config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..modeling import SapiensIDConfig, SapiensIDModel
from .adaface import AdaFaceHead
from .config import ConfigError, HeadConfig, ModelConfig
from .triplet import batch_hard_triplet_loss


def build_backbone(config: ModelConfig) -> SapiensIDModel:
    """A fresh model of the preset (+ overrides), or the `pretrained` folder (+ overrides)."""
    if config.pretrained is not None:
        model = SapiensIDModel.from_pretrained(config.pretrained, **config.overrides)
    else:
        preset = SapiensIDConfig.tiny if config.preset == "tiny" else SapiensIDConfig
        try:
            model = SapiensIDModel(preset(**config.overrides))
        except TypeError as error:
            raise ConfigError(f"model.overrides: {error}") from error
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


class SapiensIDForRecognitionTraining(nn.Module):
    """Backbone + margin head in one module, so data parallelism wraps (and syncs) both."""

    def __init__(self, backbone: SapiensIDModel, head: AdaFaceHead, triplet_weight: float = 0.0, triplet_margin: float = 0.3):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.triplet_weight = triplet_weight
        self.triplet_margin = triplet_margin

    @classmethod
    def with_adaface(cls, backbone: SapiensIDModel, head: HeadConfig, num_classes: int) -> SapiensIDForRecognitionTraining:
        adaface = AdaFaceHead(
            backbone.config.output_dim,
            num_classes,
            margin=head.margin,
            h=head.h,
            scale=head.scale,
            t_alpha=head.t_alpha,
            sample_rate=head.sample_rate,
        )
        return cls(backbone, adaface, triplet_weight=head.triplet_weight, triplet_margin=head.triplet_margin)

    def forward(
        self,
        pixel_values: torch.Tensor,
        keypoints: torch.Tensor,
        labels: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> dict[str, Any]:
        output = self.backbone(pixel_values=pixel_values, keypoints=keypoints, pixel_mask=pixel_mask, mask_ratio=mask_ratio)
        scored = self.head(output.embeddings, labels)
        correct = (scored.logits.argmax(dim=1) == scored.targets).float()
        loss = scored.loss
        if self.triplet_weight > 0:
            triplet, _ = batch_hard_triplet_loss(output.embeddings, labels, self.triplet_margin)
            loss = loss + self.triplet_weight * triplet
        return {"loss": loss, "correct": correct, "norms": scored.norms}


__all__ = ["SapiensIDForRecognitionTraining", "build_backbone"]
