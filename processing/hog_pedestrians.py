"""Upright pedestrians found by their silhouette: OpenCV's HOG people detector (Dalal and Triggs, 2005),
whose boxes become body ROIs for the pose landmark model.

BlazePose's person detector anchors a person on the face, so a pedestrian seen from behind, or too
blurred for a face, gives it nothing to find, and a street scene loses a third of its people. The HOG
detector looks at the outline of a standing person instead. Its boxes are only candidates: each one gets
the landmark model, and only a plausible body (enough confident body points) becomes a person. Measured
on scenes composed from CUHK03 *training* pedestrians (2-6 per canvas, the method of
benchmarks/bench_people.py): the tile search alone finds 68 of 106 people, with these candidates 98,
with the same 3 false boxes, and nothing changes on the photos of ../shared/data/people.

All coordinates are normalised to the detector's square (0-1), as in people_detection.py.
"""

from __future__ import annotations

import threading

import numpy as np

from .blaze_ops import Roi
from .detector_assets import import_opencv

# Said when OpenCV is missing: only the pedestrian search of detect_people needs it.
OPENCV_NEEDED = (
    "Finding every person in a photo (detect_people) needs OpenCV for its pedestrian search "
    "(pip install opencv-python-headless), or set `processor.detector.pedestrian_search = False`."
)

# HOG looks at the square at this side at most: its window is 64 x 128 pixels, so people from about a
# fifth of the picture's height up are seen (the cost is in benchmarks/bench_people.py).
HOG_SIDE = 640
HOG_WINDOW_STRIDE = (8, 8)
HOG_PADDING = (8, 8)
HOG_PYRAMID_SCALE = 1.05
# OpenCV's default people detector's window (width, height). On a square under its height nobody of the
# window's size can be found, and OpenCV 4.14's detectMultiScale corrupts its heap on squares under about
# 97 pixels (the process aborts: "free(): invalid next size"), so such a square is not searched.
HOG_WINDOW = (64, 128)
# A HOG box holds the person with a margin (the person is about 3/4 of its height): a square ROI of the
# box's height, centred on it, frames the person as BlazePose's own ROIs do (chosen on the training
# scenes above: 0.85 and 1.2 of the height found fewer people or more false ones).
ROI_SIZE_OF_BOX_HEIGHT = 1.0

_detector_lock = threading.Lock()
_detector = None


def pedestrian_rois(square: np.ndarray) -> list[Roi]:
    """Body ROIs (normalised to the square) around the upright people HOG finds in an (S, S, 3) uint8 image,
    best first."""
    cv2 = import_opencv(OPENCV_NEEDED)
    side = square.shape[0]
    if side < HOG_WINDOW[1]:
        return []
    shrink = min(1.0, HOG_SIDE / side)
    view = square if shrink == 1.0 else cv2.resize(square, (HOG_SIDE, HOG_SIDE), interpolation=cv2.INTER_AREA)
    with _detector_lock:
        boxes, weights = _hog(cv2).detectMultiScale(
            np.ascontiguousarray(view), winStride=HOG_WINDOW_STRIDE, padding=HOG_PADDING, scale=HOG_PYRAMID_SCALE
        )
    order = np.argsort(-np.asarray(weights, dtype=np.float64).ravel(), kind="stable") if len(boxes) else []
    scale = 1.0 / (shrink * side)
    rois = []
    for index in order:
        left, top, width, height = (float(value) for value in boxes[index])
        rois.append(
            Roi(
                center_x=(left + width / 2) * scale,
                center_y=(top + height / 2) * scale,
                size=ROI_SIZE_OF_BOX_HEIGHT * height * scale,
                rotation=0.0,
            )
        )
    return rois


def _hog(cv2):
    """One HOG descriptor with OpenCV's default people detector (made once)."""
    global _detector
    if _detector is None:
        _detector = cv2.HOGDescriptor()
        _detector.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return _detector


__all__ = ["HOG_SIDE", "HOG_WINDOW", "ROI_SIZE_OF_BOX_HEIGHT", "pedestrian_rois"]
