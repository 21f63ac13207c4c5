"""A model folder's embedding rule of centre cuts: a photo embedded as the mean of itself and cuts about its
centre.

The shipped model is sensitive to framing (docs/benchmarks.md, "Framing"); the mean of the photo and its
cuts to 95 % and 90 % of its width and height scores better on every development figure than the photo
alone (benchmarks/bench_cut_averaging.py). A model folder states the rule in its config.json:

    "embedding_cuts": {"scales": [1.0, 0.95, 0.9], "source": "<the run that chose it>"}

and every embedding of the project follows it (`embedding_views.embed_images`: the tools, `evaluate`, the
development checks, the Space), so the figures a folder reports are those its users get. A folder without
the record (the converted official model, anything trained) embeds the photo as it is. The detector runs
on each cut, as on any photo; where it finds nobody there, or somebody else (a crowd), the photo's own
keypoints mapped into the cut are used (processing/photo_cuts.py), so a cut is always of the photo's
person. A cut in which none of the person's points remain adds nothing to the mean. Measured (the same
benchmark): with the photo's keypoints mapped into every cut instead, bodies gain as much but faces lose
(LFW TAR@FAR 1e-2 -1.7 points), so the cost of a detection per cut buys the face figures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .input_names import renamed_error
from .processing.image_decoding import describe_input
from .processing.keypoint_detector import SOURCE_NONE
from .processing.people_detection import same_person_keypoints
from .processing.photo_cuts import centre_cut_box, keypoints_in_cut
from .processing.standing_person_prior import SOURCE_PRIOR

CONFIG_KEY = "embedding_cuts"
PHOTO_AS_IT_IS = (1.0,)
# Keypoint sources of a cut's own detection that are not a person seen in it (the standing-person prior's guess).
GUESSED_OR_NONE = (SOURCE_NONE, SOURCE_PRIOR)
# The processor features of the extra cuts, beside the photo's own: (B, cuts, ...) once batched.
CUT_FEATURES = {"pixel_values": "cut_pixel_values", "pixel_mask": "cut_pixel_mask", "keypoints": "cut_keypoints"}


def embedding_cuts(config: Any) -> tuple[float, ...]:
    """The scales a model config's embeddings average, the photo itself (1.0) first; (1.0,) without a record.
    Raises ValueError for a record that is not `{"scales": [1.0, s, ...]}` with every s in (0, 1)."""
    record = getattr(config, CONFIG_KEY, None)
    if record is None:
        return PHOTO_AS_IT_IS
    scales = record.get("scales") if isinstance(record, dict) else None
    if (
        not isinstance(scales, list)
        or not scales
        or not all(isinstance(scale, int | float) and not isinstance(scale, bool) for scale in scales)
        or scales[0] != 1.0
        or not all(0 < scale < 1 for scale in scales[1:])
    ):
        raise ValueError(
            f'{CONFIG_KEY} must be {{"scales": [1.0, s, ...], "source": "..."}} with the photo itself (1.0) first '
            f"and every further scale in (0, 1), got {record!r}"
        )
    return tuple(float(scale) for scale in scales)


def without_embedding_cuts(config: Any) -> Any:
    """A copy of a model config that embeds the photo as it is."""
    plain = copy.deepcopy(config)
    if hasattr(plain, CONFIG_KEY):
        delattr(plain, CONFIG_KEY)
    return plain


def rule_description(scales: Sequence[float]) -> str:
    """How a photo is embedded under `scales`, for what the tools print and the cards say."""
    if tuple(scales) == PHOTO_AS_IT_IS:
        return "the photo as it is"
    shares = ", ".join(f"{scale:g}" for scale in scales)
    return f"the mean of the photo's centre cuts at {shares} of its width and height"


def cut_features(
    processor: Any, rgb: np.ndarray, keypoints: np.ndarray, scales: Sequence[float], cut_keypoints: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Processor features of the photo `rgb` cut about its centre to each of `scales`: `CUT_FEATURES`' names,
    (1, cuts, ...). The detector runs on each cut; where it finds nobody, or somebody other than the person
    of the photo's `keypoints` (normalised to its padded square), those keypoints mapped into the cut are used.
    `cut_keypoints` (cuts, 19, 2): the cuts' keypoints of an earlier call on the same photo (its features'
    `cut_keypoints`), used as they are: nothing is detected, and the features are the same."""
    height, width = rgb.shape[:2]
    if cut_keypoints is not None and len(cut_keypoints) != len(scales):
        raise ValueError(f"{len(cut_keypoints)} cuts' keypoints given for {len(scales)} cut scales")
    cuts = []
    for index, scale in enumerate(scales):
        left, top, right, bottom = centre_cut_box(height, width, scale)
        cut = np.ascontiguousarray(rgb[top:bottom, left:right])
        try:
            cuts.append(_cut_processed(processor, cut, keypoints_in_cut(keypoints, height, width, (left, top, right, bottom)),
                                       None if cut_keypoints is None else cut_keypoints[index]))  # fmt: skip
        except Exception as error:  # said of the photo: "image 0 (<the photo>), its centre cut to 0.9: ..."
            raise renamed_error(error, describe_input(cut, 0), f"{describe_input(rgb, 0)}, its centre cut to {scale:g}") from error.__cause__
    return {name: np.stack([cut[key][0] for cut in cuts])[None] for key, name in CUT_FEATURES.items()}


def _cut_processed(processor: Any, cut: np.ndarray, mapped: np.ndarray, known: np.ndarray | None) -> Any:
    """The processor's features of one cut: at `known` keypoints, else at the detector's person when it is
    the photo's (`mapped`: the photo's keypoints in the cut), else at `mapped`."""
    if known is not None:
        return processor([cut], keypoints=known[None], return_tensors="np")
    detected = processor([cut], return_tensors="np")
    if detected["keypoint_source"][0] in GUESSED_OR_NONE or not same_person_keypoints(mapped, detected["keypoints"][0]):
        detected = processor([cut], keypoints=mapped[None], return_tensors="np")
    return detected


def has_cuts(features: Any) -> bool:
    return CUT_FEATURES["pixel_values"] in features


def fold_in_cuts(photo: torch.Tensor, cuts: torch.Tensor, cut_keypoints: torch.Tensor) -> torch.Tensor:
    """(B, D) L2-normalised: the mean of the photo's (B, D) and its cuts' (B, cuts, D) unit embeddings,
    leaving out each cut in which no keypoint remains (`cut_keypoints` (B, cuts, 19, 2), -1 = missing)."""
    someone = (cut_keypoints != -1).all(dim=-1).any(dim=-1).to(cuts.dtype)
    summed = photo + (cuts * someone[..., None]).sum(dim=1)
    return torch.nn.functional.normalize(summed, dim=-1)


__all__ = ["CONFIG_KEY", "CUT_FEATURES", "PHOTO_AS_IT_IS", "cut_features", "embedding_cuts", "fold_in_cuts", "has_cuts", "rule_description", "without_embedding_cuts"]
