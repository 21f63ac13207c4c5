"""The module that trains: a SapiensID backbone plus the AdaFace head, and how to build it from a config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..modeling import SapiensIDConfig, SapiensIDModel
from .adaface import AdaFaceHead
from .config import ConfigError, DistillConfig, HeadConfig, ModelConfig
from .distillation import TeacherProjection, cosine_distillation, relation_distillation
from .triplet import batch_hard_triplet_loss

UNLABELLED = -1  # the label of a photo without an identity (distillation only)


def build_backbone(config: ModelConfig) -> SapiensIDModel:
    """A fresh model of the preset (+ overrides), or the `pretrained` folder (+ overrides)."""
    if config.pretrained is not None:
        model = SapiensIDModel.from_pretrained(config.pretrained, **config.overrides)
        # Thresholds calibrated, and an embedding rule chosen, for the starting weights are not measured for
        # the weights this run trains (and the run's exported processor records no rule).
        for record in ("calibration", "embedding_cuts"):
            model.config.__dict__.pop(record, None)
    else:
        preset = SapiensIDConfig.tiny if config.preset == "tiny" else SapiensIDConfig
        try:
            model = SapiensIDModel(preset(**config.overrides))
        except TypeError as error:
            raise ConfigError(f"model.overrides: {error}") from error
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
    return model


def enable_activation_checkpointing(model: nn.Module, **kwargs: Any) -> None:
    """Recompute each encoder layer's activations in the backward pass instead of keeping them. transformers
    5.x names this `activation_checkpointing_enable` and deprecates `gradient_checkpointing_enable` (gone in
    v6); the project supports transformers >= 5.0, so the older name serves where the new one is missing."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs or None)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or None)


class SapiensIDForRecognitionTraining(nn.Module):
    """Backbone + margin head (+ the teacher projection when distilling) in one module, so data
    parallelism wraps (and syncs) all of them.

    A batch may mix labelled photos with unlabelled ones (label -1): AdaFace and the triplet term score
    the labelled rows, the distillation terms every row that has a teacher target.
    """

    def __init__(
        self,
        backbone: SapiensIDModel,
        head: AdaFaceHead,
        triplet_weight: float = 0.0,
        triplet_margin: float = 0.3,
        distill: DistillConfig | None = None,
        teacher_dim: int = 0,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.triplet_weight = triplet_weight
        self.triplet_margin = triplet_margin
        distilling = distill is not None and distill.teacher is not None
        self.cosine_weight = distill.cosine_weight if distilling else 0.0
        self.relation_weight = distill.relation_weight if distilling else 0.0
        self.teacher_projection = TeacherProjection(backbone.config.output_dim, teacher_dim) if distilling else None

    @classmethod
    def with_adaface(
        cls,
        backbone: SapiensIDModel,
        head: HeadConfig,
        num_classes: int,
        distill: DistillConfig | None = None,
        teacher_dim: int = 0,
    ) -> SapiensIDForRecognitionTraining:
        adaface = AdaFaceHead(
            backbone.config.output_dim,
            num_classes,
            margin=head.margin,
            h=head.h,
            scale=head.scale,
            t_alpha=head.t_alpha,
            sample_rate=head.sample_rate,
        )
        return cls(
            backbone, adaface, triplet_weight=head.triplet_weight, triplet_margin=head.triplet_margin,
            distill=distill, teacher_dim=teacher_dim,
        )  # fmt: skip

    def forward(
        self,
        pixel_values: torch.Tensor,
        keypoints: torch.Tensor,
        labels: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        teacher_embeddings: torch.Tensor | None = None,
        teacher_found: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        output = self.backbone(pixel_values=pixel_values, keypoints=keypoints, pixel_mask=pixel_mask, mask_ratio=mask_ratio)
        embeddings = output.embeddings
        labelled = labels != UNLABELLED
        every_row_labelled = bool(labelled.all())
        scored_embeddings = embeddings if every_row_labelled else embeddings[labelled]
        scored_labels = labels if every_row_labelled else labels[labelled]
        scored = self.head(scored_embeddings, scored_labels)
        correct = (scored.logits.argmax(dim=1) == scored.targets).float()
        loss = scored.loss
        result: dict[str, Any] = {"correct": correct, "norms": scored.norms}
        if self.triplet_weight > 0:
            triplet, _ = batch_hard_triplet_loss(scored_embeddings, scored_labels, self.triplet_margin)
            loss = loss + self.triplet_weight * triplet
        if self.teacher_projection is not None:
            if teacher_embeddings is None or teacher_found is None:
                raise ValueError("a distilling model needs teacher_embeddings and teacher_found for every batch")
            with_target = teacher_found.bool()
            students, targets = embeddings[with_target], teacher_embeddings[with_target]
            result["distill_cosine"] = cosine_distillation(self.teacher_projection(students), targets)
            result["distill_relation"] = relation_distillation(students, targets)
            result["distill_rows"] = with_target.sum()
            loss = loss + self.cosine_weight * result["distill_cosine"] + self.relation_weight * result["distill_relation"]
        result["loss"] = loss
        return result


__all__ = ["UNLABELLED", "SapiensIDForRecognitionTraining", "build_backbone"]
