"""The views of a photo that an embedding rule of centre cuts averages: the photo cut about its centre to
shares of its width and height, each prepared like any photo.

A model folder may embed a photo as the mean of the unit embeddings of the photo and of such cuts (the
shipped model's rule: `embedding_cuts` [1.0, 0.95, 0.9] in its config.json and preprocessor_config.json;
docs/evaluation.md, "The embedding rule of a model folder"). The processor makes the cuts' features
(`cut_pixel_values`, `cut_pixel_mask`, `cut_keypoints`) and the model folds them into its pooled output,
so `AutoModel` / the `image-feature-extraction` pipeline give the rule's embedding without this package.

The detector runs on each cut, as on any photo; where it finds nobody there, or somebody other than the
photo's person (a crowd), the photo's keypoints mapped into the cut are used (photo_cuts.py), so a cut is
always of the photo's person.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from .image_decoding import describe_input, renamed_error
from .keypoint_detector import SOURCE_NONE
from .people_detection import same_person_keypoints
from .photo_cuts import centre_cut_box, keypoints_in_cut
from .standing_person_prior import SOURCE_PRIOR

PHOTO_AS_IT_IS = (1.0,)
# The processor features of the extra cuts, beside the photo's own. `cut_pixel_values` holds each cut's
# three channels in turn, (B, 3 * cuts, S, S): the Hugging Face pipelines batch 4-D inputs, not 5-D ones.
CUT_FEATURES = {"pixel_values": "cut_pixel_values", "pixel_mask": "cut_pixel_mask", "keypoints": "cut_keypoints"}
# Keypoint sources of a cut's own detection that are not a person seen in it (the standing-person prior's guess).
GUESSED_OR_NONE = (SOURCE_NONE, SOURCE_PRIOR)


def cut_scales(value: Any, where: str = "embedding_cuts") -> tuple[float, ...]:
    """The scales of an embedding rule, the photo itself (1.0) first; (1.0,) for None. Raises ValueError,
    naming `where`, for anything but a list [1.0, s, ...] with every further s in (0, 1)."""
    if value is None:
        return PHOTO_AS_IT_IS
    scales = list(value) if isinstance(value, list | tuple) else None
    if (
        not scales
        or not all(isinstance(scale, int | float) and not isinstance(scale, bool) for scale in scales)
        or scales[0] != 1.0
        or not all(0 < scale < 1 for scale in scales[1:])
    ):
        raise ValueError(
            f"{where} must list the photo itself (1.0) first and every further scale in (0, 1), e.g. "
            f"[1.0, 0.95, 0.9]; got {value!r}"
        )
    return tuple(float(scale) for scale in scales)


def cut_features(
    prepare: Any,
    rgb: np.ndarray,
    keypoints: np.ndarray,
    scales: Sequence[float],
    name: str,
    cut_keypoints: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Features of the photo `rgb` (named `name` in errors) cut about its centre to each of `scales` (the
    cuts only, not 1.0): `CUT_FEATURES`' names, batch of one. `prepare(images, keypoints)` is the processor
    (numpy features) for one cut; `keypoints` (19, 2) are the photo's, normalised to its padded square.
    `cut_keypoints` (cuts, 19, 2) float32, as the processor checked them: the cuts' keypoints of an earlier
    call on the same photo, used as they are: nothing is detected, and the features are the same."""
    height, width = rgb.shape[:2]
    cuts = []
    for index, scale in enumerate(scales):
        box = centre_cut_box(height, width, scale)
        left, top, right, bottom = box
        cut = np.ascontiguousarray(rgb[top:bottom, left:right])
        known = None if cut_keypoints is None else cut_keypoints[index]
        try:
            cuts.append(_cut_processed(prepare, cut, keypoints_in_cut(keypoints, height, width, box), known))
        except Exception as error:  # said of the photo: "image 0 (<the photo>), its centre cut to 0.9: ..."
            raise renamed_error(error, describe_input(cut, 0), f"{name}, its centre cut to {scale:g}") from error.__cause__
    features = {name: np.stack([cut[key][0] for cut in cuts])[None] for key, name in CUT_FEATURES.items()}
    pixels = features[CUT_FEATURES["pixel_values"]]
    features[CUT_FEATURES["pixel_values"]] = pixels.reshape(1, -1, *pixels.shape[-2:])  # (1, 3 * cuts, S, S)
    return features


def _cut_processed(prepare: Any, cut: np.ndarray, mapped: np.ndarray, known: np.ndarray | None) -> Any:
    """The features of one cut: at `known` keypoints, else at the detector's person when it is the photo's
    (`mapped`: the photo's keypoints in the cut), else at `mapped`."""
    if known is not None:
        return prepare([cut], known[None])
    detected = prepare([cut], None)
    if detected["keypoint_source"][0] in GUESSED_OR_NONE or not same_person_keypoints(mapped, detected["keypoints"][0]):
        detected = prepare([cut], mapped[None])
    return detected


__all__ = ["CUT_FEATURES", "GUESSED_OR_NONE", "PHOTO_AS_IT_IS", "cut_features", "cut_scales"]
