"""A face framed as the model's labelled face photos were: OpenCV's Viola-Jones face box, widened.

The LFW photos the model learnt faces from were cut from news photos around the box of OpenCV's
Viola-Jones frontal-face detector, widened 2.2 times each way and scaled to 250 x 250 (Huang et al., 2007,
"Labeled Faces in the Wild", section on image processing). The same kind of detector, run on a face in any
other photo, therefore gives the frame an LFW photo of that face would have had, more closely than a rule
on the keypoints can: on 1,000 LFW training photos (`python benchmarks/bench_face_frame.py`,
docs/benchmarks.md "Framing a face like the training photos") the box is found for 96 % of the faces, and
its frame's side is within 10 % of the photo's for 85 % of them against 61 % for the keypoint rule of
people_in_image.py, its centre off by 0.7 % of the side against 1.8 %.

The cascade looks only around a face the keypoint detector already found (a square about the eyes,
resampled so the expected box is WORKING_BOX_SIDE pixels), at box sizes near the one the keypoints
predict: it frames the face, it does not decide who is there. Where it finds no box holding the eyes
(a profile, a face turned away, a face at the photo's edge), the keypoint rule frames the face.
"""

from __future__ import annotations

import threading

import numpy as np

from .detector_assets import DetectorNotAvailableError, import_opencv

# Said when OpenCV is missing: only framing a face in detect_people needs it.
OPENCV_NEEDED = (
    "Framing a face in a photo of several people (detect_people) needs OpenCV's face detector "
    "(pip install opencv-python-headless), or call detect_people(..., face_boxes=False)."
)

# OpenCV's "alt2" frontal-face cascade: its box size is steadier than the default cascade's on LFW
# training photos (robust log-std 0.056 against 0.065 on 400 whole photos, measured once).
FACE_CASCADE_FILE = "haarcascade_frontalface_alt2.xml"
# The LFW photo's side over the face box's side: LFW's own widening. The alt2 box reads the LFW training
# photos at 2.24 box sides at the median (benchmarks/bench_face_frame.py), and a frame 5 % wider searched
# no better on scenes of training people (people_in_image.py).
PHOTO_SIDE_PER_BOX_SIDE = 2.2
# The search: a square of this many expected box sides about the eyes' midpoint, resampled so the
# expected box is WORKING_BOX_SIDE pixels, for boxes from MIN_BOX_SHARE to MAX_BOX_SHARE of it.
SEARCH_SIDE_IN_BOXES = 3.0
WORKING_BOX_SIDE = 96
MIN_BOX_SHARE, MAX_BOX_SHARE = 0.6, 1.6
PYRAMID_SCALE = 1.05
MIN_NEIGHBOURS = 3

_cascade_lock = threading.Lock()
_cascade = None


def cascade_face_box(
    rgb: np.ndarray, eyes_midpoint: tuple[float, float], expected_box_side: float
) -> tuple[float, float, float, float] | None:
    """The Viola-Jones face box (x0, y0, x1, y1, photo pixels) of the face whose eyes' midpoint is given, or
    None when no box of about `expected_box_side` pixels holds that point.

    `rgb`: the (H, W, 3) uint8 photo. Of the boxes found, the one whose centre is nearest the eyes wins.
    """
    if expected_box_side <= 0:
        return None
    cv2 = import_opencv(OPENCV_NEEDED)
    height, width = rgb.shape[:2]
    eye_x, eye_y = eyes_midpoint
    half = SEARCH_SIDE_IN_BOXES * expected_box_side / 2
    left, top = max(0, int(np.floor(eye_x - half))), max(0, int(np.floor(eye_y - half)))
    right, bottom = min(width, int(np.ceil(eye_x + half))), min(height, int(np.ceil(eye_y + half)))
    if right - left < 2 or bottom - top < 2:
        return None
    zoom = WORKING_BOX_SIDE / expected_box_side
    region = cv2.cvtColor(np.ascontiguousarray(rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    size = (max(1, round((right - left) * zoom)), max(1, round((bottom - top) * zoom)))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    region = cv2.resize(region, size, interpolation=interpolation)
    smallest, largest = round(MIN_BOX_SHARE * WORKING_BOX_SIDE), round(MAX_BOX_SHARE * WORKING_BOX_SIDE)
    with _cascade_lock:
        boxes = _face_cascade(cv2).detectMultiScale(
            region, scaleFactor=PYRAMID_SCALE, minNeighbors=MIN_NEIGHBOURS,
            minSize=(smallest, smallest), maxSize=(largest, largest),
        )  # fmt: skip
    eyes_in_region = ((eye_x - left) * zoom, (eye_y - top) * zoom)
    holding = [
        (float(x), float(y), float(x + w), float(y + h))
        for x, y, w, h in np.asarray(boxes).reshape(-1, 4)
        if x <= eyes_in_region[0] <= x + w and y <= eyes_in_region[1] <= y + h
    ]
    if not holding:
        return None
    x0, y0, x1, y1 = min(
        holding, key=lambda box: np.hypot((box[0] + box[2]) / 2 - eyes_in_region[0], (box[1] + box[3]) / 2 - eyes_in_region[1])
    )
    return (left + x0 / zoom, top + y0 / zoom, left + x1 / zoom, top + y1 / zoom)


def photo_frame_of_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The square an LFW photo cut around the face box `box` would be (PHOTO_SIDE_PER_BOX_SIDE, same centre)."""
    x0, y0, x1, y1 = box
    center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
    half = PHOTO_SIDE_PER_BOX_SIDE * max(x1 - x0, y1 - y0) / 2
    return center_x - half, center_y - half, center_x + half, center_y + half


def _face_cascade(cv2):
    """OpenCV's frontal-face cascade, loaded once from the file OpenCV installs with itself."""
    global _cascade
    if _cascade is None:
        path = f"{cv2.data.haarcascades}{FACE_CASCADE_FILE}"
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise DetectorNotAvailableError(f"OpenCV's face detector file {path} is missing or unreadable")
        _cascade = cascade
    return _cascade


__all__ = ["FACE_CASCADE_FILE", "PHOTO_SIDE_PER_BOX_SIDE", "cascade_face_box", "photo_frame_of_box"]
