"""Optional body keypoints from YOLOv8-pose, the official aligner's body detector, for users who install
``ultralytics`` and bring its weights themselves.

ultralytics and the YOLOv8 weights are AGPL-3.0: this project never depends on them and never ships
them; nothing here runs unless you construct `YoloPoseDetector`. It follows the official aligner
(tasks/sapiensID/src/aligners/keypoint_predictor): the first (top-confidence) person's COCO-17 points,
a point whose coordinates are exactly 0 is missing (ultralytics zeroes points below its keypoint
confidence of 0.5), COCO-17 mapped onto the 19-point layout (no mouth corners from the body detector),
and with ``face_points="retinaface"`` the five face points from RetinaFace on the head crop
(face_points.py), as the official pipeline does. Plug it into the processor:

    from sapiensid_hf.processing.yolo_pose import YoloPoseDetector
    processor.detector = YoloPoseDetector("yolov8n-pose.pt")
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .detector_assets import DetectorNotAvailableError
from .face_points import RetinaFaceFivePoints
from .keypoint_detector import SOURCE_POSE, KeypointResult, official_face_points
from .keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_EAR,
    LEFT_SHOULDER,
    MISSING,
    NOSE,
    RIGHT_EAR,
    empty_keypoints,
    visible,
)
from .people_detection import FoundPerson, most_prominent_first

# COCO-17: nose, left eye, right eye, left ear, right ear, then shoulders, elbows, wrists, hips, knees,
# ankles (left before right), the same body order as the 19-point layout's last 12.
COCO17_TO_LAYOUT = (NOSE, EYE_1, EYE_2, LEFT_EAR, RIGHT_EAR, *range(LEFT_SHOULDER, LEFT_SHOULDER + 12))


def keypoints_from_coco17(points: np.ndarray) -> np.ndarray:
    """(19, 2) layout keypoints from one person's (17, 2) normalised COCO-17 points; (0, 0) = missing."""
    points = np.asarray(points, dtype=np.float32)
    if points.shape != (17, 2):
        raise ValueError(f"expected (17, 2) COCO-17 keypoints, got shape {points.shape}")
    keypoints = empty_keypoints()
    keypoints[list(COCO17_TO_LAYOUT)] = points
    # The official `keypoints[keypoints == 0] = -1` works per coordinate; a point with a -1 coordinate is
    # missing in this layout, so both coordinates become -1.
    zeroed = [COCO17_TO_LAYOUT[index] for index in np.flatnonzero((points == 0).any(axis=-1))]
    keypoints[zeroed] = MISSING
    return keypoints


def result_from_yolo(prediction: Any) -> KeypointResult | None:
    """A `KeypointResult` from one ultralytics pose prediction (``.keypoints.xyn`` (N, 17, 2) and
    ``.boxes.xyxyn`` / ``.boxes.conf``): its top-confidence person, or None when it found nobody."""
    points = np.asarray(_numpy(prediction.keypoints.xyn), dtype=np.float32).reshape(-1, 17, 2)
    if len(points) == 0:
        return None
    boxes = np.asarray(_numpy(prediction.boxes.xyxyn), dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(_numpy(prediction.boxes.conf), dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")  # ultralytics already sorts; the official takes the first
    return KeypointResult(keypoints_from_coco17(points[order[0]]), np.clip(boxes[order], 0, 1), 0, SOURCE_POSE)


class YoloPoseDetector:
    """`KeypointDetector` running a user-provided YOLOv8-pose model (see the module docstring).

    Args:
        weights: path of the YOLOv8-pose weights (e.g. ``yolov8n-pose.pt``), loaded with ultralytics.
        face_points: "retinaface" (default: the official rule, needs onnxruntime and
            `sapiensid download-detector --retinaface`) or None (body detector's nose, eyes and ears only).
        cache_dir: detector directory holding the RetinaFace file.
        model: an already-loaded ultralytics model (or any callable with the same result objects) to use
            instead of `weights`.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        face_points: str | None = "retinaface",
        cache_dir: str | os.PathLike | None = None,
        model: Any = None,
    ):
        if face_points not in ("retinaface", None):
            raise ValueError(f"face_points must be 'retinaface' or None, got {face_points!r}")
        if model is None:
            if weights is None:
                raise ValueError("give the YOLOv8-pose weights path (or an already-loaded `model`)")
            try:
                from ultralytics import YOLO
            except ImportError as error:
                raise DetectorNotAvailableError(
                    "YoloPoseDetector needs ultralytics (AGPL-3.0, not a dependency of this project): "
                    "pip install ultralytics, and bring the YOLOv8-pose weights"
                ) from error
            model = YOLO(os.fspath(weights))
        self._model = model
        self._five_points = RetinaFaceFivePoints(cache_dir) if face_points == "retinaface" else None

    def detect(self, image: np.ndarray) -> KeypointResult:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
            raise ValueError(f"expected a square RGB uint8 image (S, S, 3), got {image.dtype} {image.shape}")
        # ultralytics reads a numpy array as BGR (OpenCV's order).
        prediction = self._model(np.ascontiguousarray(image[..., ::-1]), verbose=False)[0]
        result = result_from_yolo(prediction)
        if self._five_points is not None:
            return official_face_points(self._five_points, image, result)
        return result if result is not None else KeypointResult()


    def detect_people(self, image: np.ndarray) -> list[FoundPerson]:
        """Every person YOLOv8-pose finds (it is a multi-person detector: no tiling needed), most prominent
        first, each with the official five face points when `face_points="retinaface"`."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
            raise ValueError(f"expected a square RGB uint8 image (S, S, 3), got {image.dtype} {image.shape}")
        prediction = self._model(np.ascontiguousarray(image[..., ::-1]), verbose=False)[0]
        if prediction.keypoints is None or len(prediction.boxes.conf) == 0:
            return []
        points = np.asarray(_numpy(prediction.keypoints.xyn), dtype=np.float32)
        boxes = np.clip(np.asarray(_numpy(prediction.boxes.xyxyn), dtype=np.float32).reshape(-1, 4), 0, 1)
        scores = np.asarray(_numpy(prediction.boxes.conf), dtype=np.float32).reshape(-1)
        people = []
        for person_points, box, score in zip(points, boxes, scores, strict=True):
            keypoints = keypoints_from_coco17(person_points)
            if self._five_points is not None:
                keypoints = official_face_points(self._five_points, image, KeypointResult(keypoints, box[None], 0, SOURCE_POSE)).keypoints
            if visible(keypoints).any():
                people.append(FoundPerson(keypoints, box, float(score), SOURCE_POSE))
        return most_prominent_first(people)


def _numpy(value: Any) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)


__all__ = ["COCO17_TO_LAYOUT", "YoloPoseDetector", "keypoints_from_coco17", "result_from_yolo"]
