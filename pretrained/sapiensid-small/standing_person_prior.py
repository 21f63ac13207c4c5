"""Keypoints of a standing person placed on a person crop, for crops in which the detector finds nobody.

Re-identification benchmarks are, by their protocol, crops of exactly one person cut by a pedestrian
detector. BlazePose misses about a fifth of some sets' crops (1,202 of Con-ReID's 5,549 development
photos: small, blurred, seen from behind). Without keypoints the model's semantic head has nothing to
pool at, so every such crop gets one and the same embedding, and ranking among them is by ties.

When the caller asserts that every image is a crop of one standing person (`standing_person_prior=True`
on the processor; `sapiensid evaluate` does it for the re-identification benchmarks), such a crop gets
the body points of an upright person filling it instead: the average pose of a pedestrian crop, as
fractions of the crop's width and height. No face points are placed (a face box from a guess would
steer the face path to a random patch of the crop), so there are no retina ROIs either (an upper-body box
needs three face / ear / shoulder points): the model reads the full crop and pools at the body points. It is off by default: on an arbitrary photo a
guessed person would be a silently wrong answer.
"""

from collections.abc import Callable

import numpy as np

from .keypoint_layout import (
    LEFT_ANKLE,
    LEFT_ELBOW,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NUM_KEYPOINTS,
    RIGHT_ANKLE,
    RIGHT_ELBOW,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
    empty_keypoints,
    visible,
)

SOURCE_PRIOR = "prior"

# (x, y) as fractions of the crop's width and height. "Left" is the point with the larger image x, the
# official left / right convention (keypoint_layout.py), i.e. a person facing the camera.
STANDING_PERSON_POINTS = {
    LEFT_SHOULDER: (0.70, 0.22),
    RIGHT_SHOULDER: (0.30, 0.22),
    LEFT_ELBOW: (0.75, 0.37),
    RIGHT_ELBOW: (0.25, 0.37),
    LEFT_WRIST: (0.75, 0.50),
    RIGHT_WRIST: (0.25, 0.50),
    LEFT_HIP: (0.62, 0.52),
    RIGHT_HIP: (0.38, 0.52),
    LEFT_KNEE: (0.62, 0.72),
    RIGHT_KNEE: (0.38, 0.72),
    LEFT_ANKLE: (0.60, 0.92),
    RIGHT_ANKLE: (0.40, 0.92),
}


def standing_person_keypoints(crop_box: tuple[float, float, float, float]) -> np.ndarray:
    """(19, 2) keypoints of a standing person filling `crop_box` (normalised xyxy in the padded square)."""
    left, top, right, bottom = (float(value) for value in crop_box)
    if not (right > left and bottom > top):
        raise ValueError(f"a crop box needs right > left and bottom > top, got {crop_box}")
    keypoints = empty_keypoints()
    for index, (fraction_x, fraction_y) in STANDING_PERSON_POINTS.items():
        keypoints[index] = (left + fraction_x * (right - left), top + fraction_y * (bottom - top))
    return keypoints


def with_standing_person_prior(
    keypoints: np.ndarray, crop_box_of: Callable[[int], tuple[float, float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, 19, 2) in which every row without a visible point gets `standing_person_keypoints` of
    `crop_box_of(row)` (asked for those rows only), and the (N,) bool mask of the rows that got them."""
    keypoints = np.array(keypoints, dtype=np.float32, copy=True)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints of shape (N, {NUM_KEYPOINTS}, 2) are needed, got {keypoints.shape}")
    empty = ~visible(keypoints).any(axis=1)
    for row in np.flatnonzero(empty):
        keypoints[row] = standing_person_keypoints(crop_box_of(int(row)))
    return keypoints, empty
