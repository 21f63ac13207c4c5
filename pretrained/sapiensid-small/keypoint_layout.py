"""The 19-point SapiensID keypoint layout, the detectors' points mapped onto it, and the official fix-ups.

Layout (``KEYPOINT_NAMES`` in configuration_sapiensid.py): 7 face points (nose, eye_1, eye_2,
mouth_1, mouth_2, left_ear, right_ear) then 12 body points (shoulders, elbows, wrists, hips, knees,
ankles, left before right). Coordinates are normalised to the padded square, -1 marks a missing point.

Conventions of the official pipeline (YOLOv8-pose body points + a 5-point face detector), kept here:

- eye_1 / mouth_1 are the eye / mouth corner with the smaller image x (face detectors list them in
  image order); `order_face_pairs` enforces it.
- For ears and body pairs, "left" is the point with the larger image x: the official
  ``adjust_left_right_keypoints`` swaps a pair when left.x < right.x, and when only one point of a
  pair is visible it swaps it to "left" if it lies right of the image centre (x > 0.5), to "right"
  otherwise. `canonicalize_left_right` replicates it.
- The official ``remove_outliers``: when both ears and both shoulders are visible, a nose or eye
  whose x lies outside their joint x range is dropped. `remove_face_outliers` applies it to this
  layout's nose and eyes (the official applies it to YOLO's nose / eyes before its face detector
  refines them).
"""

import numpy as np

MISSING = -1.0
NUM_KEYPOINTS = 19
NOSE, EYE_1, EYE_2, MOUTH_1, MOUTH_2, LEFT_EAR, RIGHT_EAR = range(7)
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = range(7, 13)
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = range(13, 19)

KEYPOINT_NAMES = (
    "nose", "eye_1", "eye_2", "mouth_1", "mouth_2", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
FACE_POINTS = (NOSE, EYE_1, EYE_2, MOUTH_1, MOUTH_2)
BODY_POINTS = tuple(range(LEFT_SHOULDER, NUM_KEYPOINTS))
IMAGE_ORDERED_PAIRS = ((EYE_1, EYE_2), (MOUTH_1, MOUTH_2))
LEFT_RIGHT_PAIRS = tuple((left, left + 1) for left in range(LEFT_EAR, NUM_KEYPOINTS, 2))

# BlazePose's 33 landmarks (0 nose, 2 left eye, 5 right eye, 7/8 ears, 9/10 mouth corners, 11-16 arms,
# 23-28 legs; person-centric left / right) for each of the 19 points.
BLAZEPOSE_INDEX = (0, 2, 5, 9, 10, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# BlazeFace's 6 keypoints (0 right eye, 1 left eye, 2 nose tip, 3 mouth centre, 4 right ear tragion,
# 5 left ear tragion) for the face points it has; it has no mouth corners.
BLAZEFACE_INDEX = {NOSE: 2, EYE_1: 0, EYE_2: 1, LEFT_EAR: 5, RIGHT_EAR: 4}


def empty_keypoints() -> np.ndarray:
    return np.full((NUM_KEYPOINTS, 2), MISSING, dtype=np.float32)


def visible(keypoints: np.ndarray) -> np.ndarray:
    """(..., K) bool: neither coordinate is -1."""
    return (keypoints != MISSING).all(axis=-1)


def eye_distance(keypoints: np.ndarray) -> float | None:
    """The distance between the two eyes (the face's size, in the keypoints' units); None without both eyes."""
    if not visible(keypoints)[[EYE_1, EYE_2]].all():
        return None
    return float(np.linalg.norm(keypoints[EYE_1] - keypoints[EYE_2]))


def from_blazepose(points: np.ndarray, confident: np.ndarray) -> np.ndarray:
    """19 points from BlazePose's 33 landmarks (33, 2); `confident` (33,) marks usable landmarks."""
    keypoints = np.asarray(points, dtype=np.float32)[list(BLAZEPOSE_INDEX)].copy()
    keypoints[~np.asarray(confident)[list(BLAZEPOSE_INDEX)]] = MISSING
    return keypoints


def from_blazeface(points: np.ndarray) -> np.ndarray:
    """19 points (face only, no mouth corners) from BlazeFace's 6 keypoints (6, 2)."""
    keypoints = empty_keypoints()
    for target, source in BLAZEFACE_INDEX.items():
        keypoints[target] = points[source]
    return keypoints


def drop_outside(keypoints: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Mark points outside the xyxy `box` (the real image inside the square) as missing."""
    keypoints = keypoints.copy()
    x, y = keypoints[..., 0], keypoints[..., 1]
    outside = (x < box[0]) | (x > box[2]) | (y < box[1]) | (y > box[3])
    keypoints[outside & visible(keypoints)] = MISSING
    return keypoints


def _pair_columns(pairs: tuple[tuple[int, int], ...]) -> tuple[list[int], list[int]]:
    first, second = zip(*pairs, strict=True)
    return list(first), list(second)


def _swap_pairs(keypoints: np.ndarray, pairs: tuple[tuple[int, int], ...], swap: np.ndarray) -> None:
    """Swap the two points of each pair (disjoint pairs, columns of `swap` (B, P)) in the rows marked, in place."""
    first, second = _pair_columns(pairs)
    a, b = keypoints[:, first], keypoints[:, second]  # copies (fancy indexing)
    keypoints[:, first] = np.where(swap[..., None], b, a)
    keypoints[:, second] = np.where(swap[..., None], a, b)


def order_face_pairs(keypoints: np.ndarray) -> np.ndarray:
    """(B, 19, 2): eye_1 / mouth_1 become the point with the smaller x when both are visible."""
    keypoints = keypoints.copy()
    first, second = _pair_columns(IMAGE_ORDERED_PAIRS)
    shown = visible(keypoints)
    swap = shown[:, first] & shown[:, second] & (keypoints[:, first, 0] > keypoints[:, second, 0])
    _swap_pairs(keypoints, IMAGE_ORDERED_PAIRS, swap)
    return keypoints


def canonicalize_left_right(keypoints: np.ndarray) -> np.ndarray:
    """(B, 19, 2): the official left / right rule for ears and body pairs (left = larger x).

    All pairs at once (they share no point; the official loops over them: same result, one pass for
    a batch, which the training data path calls for every flipped photo).
    """
    keypoints = keypoints.copy()
    left, right = _pair_columns(LEFT_RIGHT_PAIRS)
    shown = visible(keypoints)
    shown_left, shown_right = shown[:, left], shown[:, right]
    x_left, x_right = keypoints[:, left, 0], keypoints[:, right, 0]
    both_reversed = shown_left & shown_right & (x_left < x_right)
    only_left_on_the_left = shown_left & ~shown_right & (x_left < 0.5)
    only_right_on_the_right = shown_right & ~shown_left & (x_right > 0.5)
    _swap_pairs(keypoints, LEFT_RIGHT_PAIRS, both_reversed | only_left_on_the_left | only_right_on_the_right)
    return keypoints


def remove_face_outliers(keypoints: np.ndarray) -> np.ndarray:
    """(B, 19, 2): drop nose / eyes outside the x range of ears and shoulders when all four are visible."""
    keypoints = keypoints.copy()
    shown = visible(keypoints)
    anchors = [LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER]
    has_torso = shown[:, anchors].all(axis=1)
    low = keypoints[:, anchors, 0].min(axis=1)
    high = keypoints[:, anchors, 0].max(axis=1)
    for index in (NOSE, EYE_1, EYE_2):
        x = keypoints[:, index, 0]
        outlier = has_torso & shown[:, index] & ((x < low) | (x > high))
        keypoints[outlier, index] = MISSING
    return keypoints


def apply_official_rules(keypoints: np.ndarray) -> np.ndarray:
    """(19, 2) or (B, 19, 2): face-pair order, left / right canonicalisation, then outlier removal."""
    batch = np.asarray(keypoints, dtype=np.float32)
    single = batch.ndim == 2
    batch = batch[None] if single else batch
    batch = remove_face_outliers(canonicalize_left_right(order_face_pairs(batch)))
    return batch[0] if single else batch


def flip_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """(..., 19, 2) keypoints (one image, a batch, a batch of cuts) of the horizontally mirrored square image.

    A mirror maps x to 1 - x and turns every pair around, so each left / right and image-ordered pair is
    swapped. That alone keeps "left = larger x" and "eye_1 / mouth_1 = smaller x" whenever both points
    of a pair are visible; for a pair with one visible point the official rules decide its slot, so the
    flipped points go through them again: they are what the detector pipeline reports for the mirror.
    """
    points = np.asarray(keypoints, dtype=np.float32)
    batch = points.reshape(-1, *points.shape[-2:])
    shown = visible(batch)
    flipped = batch.copy()
    flipped[..., 0] = np.where(shown, 1.0 - batch[..., 0], MISSING)
    first, second = (list(side) for side in zip(*IMAGE_ORDERED_PAIRS, *LEFT_RIGHT_PAIRS, strict=True))
    flipped[:, first + second] = flipped[:, second + first]
    return canonicalize_left_right(order_face_pairs(flipped)).reshape(points.shape)
