"""The one rule that turns a processor batch into embeddings, with or without flip test-time augmentation.

Shared by `SapiensIDPipeline.embed` (CLI, Space, quickstart) and the evaluation runner, so the tools and
the published protocols give the same numbers. With `flip`, as the official evaluators: the raw
embedding of the image plus the raw embedding of its mirror (pixels and padding mask mirrored,
keypoints mirrored with left / right points swapped), then L2-normalised. It costs a second forward
pass: about twice the model time (the detector runs once).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .training.augmentation import flip_keypoints


@torch.no_grad()
def embed_batch(model: torch.nn.Module, features: Any, device: torch.device, flip: bool) -> torch.Tensor:
    """(B, D) L2-normalised float32 embeddings (on the CPU) of a processor batch."""
    pixel_values = features["pixel_values"].to(device)
    keypoints = features["keypoints"]
    pixel_mask = features["pixel_mask"].to(device)
    embeddings = model(pixel_values=pixel_values, keypoints=keypoints.to(device), pixel_mask=pixel_mask).embeddings
    embeddings = embeddings.float()
    if flip:
        mirrored = torch.from_numpy(flip_keypoints(keypoints.cpu().numpy())).to(device)
        flipped = model(pixel_values=pixel_values.flip(-1), keypoints=mirrored, pixel_mask=pixel_mask.flip(-1))
        embeddings = embeddings + flipped.embeddings.float()
    return F.normalize(embeddings, dim=-1).cpu()


__all__ = ["embed_batch"]
