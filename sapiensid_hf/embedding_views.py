"""The one rule that turns a processor batch into embeddings, with or without flip test-time augmentation,
and with the model folder's centre cuts when it records them (cut_views.py).

Shared by `SapiensIDPipeline.embed` (CLI, Space, quickstart) and the evaluation runner, so the tools and
the published protocols give the same numbers. With `flip`, as the official evaluators: the raw
embedding of the image plus the raw embedding of its mirror (pixels and padding mask mirrored,
keypoints mirrored with left / right points swapped), then L2-normalised. It costs a second forward
pass: about twice the model time (the detector runs once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .cut_views import CUT_FEATURES, embedding_cuts, has_cuts
from .parallel_processing import model_threads_beside, process_images
from .processing.keypoint_layout import flip_keypoints


@torch.no_grad()
def embed_batch(model: torch.nn.Module, features: Any, device: torch.device, flip: bool) -> torch.Tensor:
    """(B, D) L2-normalised float32 embeddings (on the CPU) of a processor batch. The model does the views'
    arithmetic, as it does for a Hugging Face user of the folder: with `flip` it is given the mirrored
    keypoints and adds each mirror's embedding; a batch that carries cuts of each photo
    (processing/centre_cuts.py) gives the mean of the photo and its cuts (modeling/cut_averaging.py)."""
    keypoints = features["keypoints"]
    inputs = {"pixel_values": features["pixel_values"], "keypoints": keypoints, "pixel_mask": features["pixel_mask"]}
    if has_cuts(features):
        inputs.update({name: features[name] for name in CUT_FEATURES.values()})
    if flip:  # this call's choice, whatever the processor's own embedding_flip setting
        inputs["mirrored_keypoints"] = _mirrored(keypoints)
        if has_cuts(features):
            inputs["cut_mirrored_keypoints"] = _mirrored(features[CUT_FEATURES["keypoints"]])
    embeddings = model(**{name: value.to(device) for name, value in inputs.items()}).embeddings
    return F.normalize(embeddings.float(), dim=-1).cpu()


def _mirrored(keypoints: torch.Tensor) -> torch.Tensor:
    """The keypoints (..., 19, 2) of the horizontally mirrored pictures (processing/keypoint_layout.py)."""
    return torch.from_numpy(flip_keypoints(keypoints.cpu().numpy()))


@dataclass
class EmbeddedBatch:
    """One batch of `embed_images`: the caller's indices that were embedded, their embeddings and
    processor features (None when every image of the batch failed), and the failures by index."""

    indices: list[int]
    embeddings: torch.Tensor | None  # (len(indices), D) L2-normalised float32, on the CPU
    features: Any
    failures: list[tuple[int, BaseException]]


def embed_images(
    model: torch.nn.Module,
    processor: Any,
    images: Sequence[Any] | Callable[[int], Any],
    batch_size: int,
    device: torch.device,
    flip: bool = False,
    num_workers: int = 0,
    count: int | None = None,
    keypoints: np.ndarray | None = None,
    cut_scales: Sequence[float] | None = None,
    cut_keypoints: np.ndarray | None = None,
    frame_small_people: bool = False,
) -> Iterator[EmbeddedBatch]:
    """Embeddings of many images, batch by batch in order: `num_workers` processes decode and detect
    (`parallel_processing.process_images`: given `keypoints` skip the detector) while the model runs here
    on the cores they leave. A failing image is reported with its index, not raised: the caller decides.

    The one embedding loop of the project: `SapiensIDPipeline` (embed, search, the Space), the evaluation
    runner and the development checks all call it, so they give the same numbers with any worker count.
    `cut_scales`: the centre cuts each photo's embedding averages (cut_views.py); by default the model
    config's rule (`embedding_cuts`), the photo as it is for a folder without one. `cut_keypoints`: the
    cuts' keypoints of an earlier run over the same images and `keypoints` (its batches' `cut_keypoints`
    features), so nothing is detected on the cuts (the development checks cache them). `frame_small_people`:
    a person who fills little of a photo is embedded from their cut (processing/small_person_frame.py; the
    pipeline's choice, off for datasets of crops).
    """
    scales = embedding_cuts(model.config) if cut_scales is None else tuple(cut_scales)
    batches = process_images(
        processor, images, batch_size, num_workers, count=count, keypoints=keypoints, cut_scales=scales,
        cut_keypoints=cut_keypoints, frame_small_people=frame_small_people,
    )  # fmt: skip
    for batch in batches:
        embeddings = None
        if batch.features is not None:
            with model_threads_beside(num_workers, device):
                embeddings = embed_batch(model, batch.features, device, flip)
        yield EmbeddedBatch(batch.indices, embeddings, batch.features, batch.failures)


__all__ = ["EmbeddedBatch", "embed_batch", "embed_images"]
