"""Validation during training: embeddings of held-out images and their rank-1 / mAP.

Metrics come from `sapiensid_hf.evaluation.ranking.evaluate_ranking` on cosine distances (1 - cos),
so the numbers follow the same rules as the evaluation scripts. Leave-one-out over a set of images
(each image queries all the others) gives every image its own camera id, which makes the image itself
the only "same camera" match: the Market-1501 rule then removes exactly the query from its gallery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.ranking import evaluate_ranking
from .dataset import DatasetView, EvaluationSamples, SampleReader, ValidationRows, collate_samples

logger = logging.getLogger(__name__)


@dataclass
class Embeddings:
    vectors: np.ndarray  # (N, D) L2-normalised float32, rows of unreadable images removed
    rows: np.ndarray  # view row of each vector
    skipped: int  # unreadable images


@torch.no_grad()
def compute_embeddings(
    model: torch.nn.Module,
    reader: SampleReader,
    rows: np.ndarray,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> Embeddings:
    """Embed `rows` with the model in evaluation mode (no masking, no augmentation)."""
    samples = EvaluationSamples(reader, rows)
    loader = torch.utils.data.DataLoader(samples, batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    was_training = model.training
    model.eval()
    vectors, kept, skipped = [], [], 0
    try:
        for batch in loader:
            skipped += len(batch["skipped"])
            for item in batch["skipped"]:
                logger.warning("validation: skipping unreadable image %s: %s", item.path, item.reason)
            if batch["size"] == 0:
                continue
            with autocast() if autocast is not None else nullcontext():
                output = model(
                    pixel_values=batch["pixel_values"].to(device),
                    keypoints=batch["keypoints"].to(device),
                    pixel_mask=batch["pixel_mask"].to(device),
                )
            vectors.append(F.normalize(output.embeddings.float(), dim=-1).cpu())
            kept.append(batch["row"])
    finally:
        model.train(was_training)
    if not vectors:
        raise ValueError("validation: none of the images could be read")
    return Embeddings(torch.cat(vectors).numpy(), torch.cat(kept).numpy(), skipped)


def ranking_metrics(
    view: DatasetView,
    query: Embeddings,
    gallery: Embeddings | None,
    protocol: str = "ignore_camera",
) -> dict[str, float]:
    """rank-1 / rank-5 / mAP / mINP of query against gallery; `gallery=None` means leave-one-out."""
    if gallery is None:
        distances = 1.0 - query.vectors @ query.vectors.T
        cameras = np.arange(len(query.rows))
        result = evaluate_ranking(
            distances, view.pids[query.rows], view.pids[query.rows], cameras, cameras, protocol="market1501"
        )
    else:
        distances = 1.0 - query.vectors @ gallery.vectors.T
        result = evaluate_ranking(
            distances,
            view.pids[query.rows],
            view.pids[gallery.rows],
            view.camids[query.rows],
            view.camids[gallery.rows],
            query_clothes_ids=view.clothes[query.rows],
            gallery_clothes_ids=view.clothes[gallery.rows],
            protocol=protocol,
        )
    summary = result.to_dict(ranks=(1, 5))
    return {key: float(value) for key, value in summary.items()}


def validate(
    model: torch.nn.Module,
    reader: SampleReader,
    rows: ValidationRows,
    batch_size: int,
    device: torch.device,
    protocol: str,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> dict[str, float]:
    query = compute_embeddings(model, reader, rows.query, batch_size, device, autocast)
    gallery = None if rows.leave_one_out else compute_embeddings(model, reader, rows.gallery, batch_size, device, autocast)
    metrics = ranking_metrics(reader.view, query, gallery, protocol)
    metrics["skipped_images"] = float(query.skipped + (gallery.skipped if gallery is not None else 0))
    return metrics


__all__ = ["Embeddings", "compute_embeddings", "ranking_metrics", "validate"]
