"""The post-processing steps of MediaPipe's BlazePose / BlazeFace graphs, written with numpy and torch.

Each function replicates one MediaPipe calculator, with the numbers of the public graph configs
(google-ai-edge/mediapipe):

- ``SsdAnchorsCalculator`` (fixed-size anchors, one interpolated scale per layer): `ssd_anchor_centers`.
- ``TensorsToDetectionsCalculator`` (reverse output order, sigmoid score clipped at 100): `decode_detections`.
- ``NonMaxSuppressionCalculator`` (IoU, WEIGHTED): `weighted_nms`.
- ``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator`` (square_long): `alignment_roi`.
- ``ImageToTensorCalculator`` on a rotated rect (bilinear, replicated border): `crop_roi`.
- ``TensorsToLandmarksCalculator`` (sigmoid visibility / presence) and
  ``RefineLandmarksFromHeatmapCalculator`` (kernel 7, min confidence 0.5): `decode_landmarks`.
- ``LandmarkProjectionCalculator``: `project_from_roi`.

All coordinates are normalised to a square image, x right, y down, so no aspect-ratio terms appear.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SCORE_CLIP = 100.0


@dataclass
class Detections:
    """SSD detections: scores (D,), boxes (D, 4) normalised xyxy, keypoints (D, K, 2) normalised xy."""

    scores: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> "Detections":
        return Detections(self.scores[index], self.boxes[index], self.keypoints[index])


@dataclass(frozen=True)
class Roi:
    """A rotated square region: centre (normalised), side (normalised), rotation (radians, clockwise on screen)."""

    center_x: float
    center_y: float
    size: float
    rotation: float


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def ssd_anchor_centers(input_size: int, strides: Sequence[int], anchors_per_layer: int = 2) -> np.ndarray:
    """(N, 2) anchor centres, in the model's output order.

    Consecutive layers with the same stride share one feature map; each layer adds `anchors_per_layer`
    anchors per cell (aspect ratio 1 plus the interpolated scale). With fixed-size anchors only the
    centres matter.
    """
    centers = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        cells = math.ceil(input_size / stride)
        grid = (np.arange(cells, dtype=np.float64) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centers = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(cell_centers, same * anchors_per_layer, axis=0))
        layer += same
    return np.concatenate(centers).astype(np.float32)


def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    num_keypoints: int,
    min_score: float,
) -> Detections:
    """Decode SSD regressors (N, 4 + 2K) and logits (N,) against anchors (N, 2) into detections above `min_score`."""
    scores = sigmoid(np.clip(raw_scores.astype(np.float64), -SCORE_CLIP, SCORE_CLIP))
    keep = np.flatnonzero(scores >= min_score)
    regress = raw_boxes[keep].astype(np.float64) / input_size
    centers = anchors[keep].astype(np.float64)
    box_centers = regress[:, 0:2] + centers
    half = regress[:, 2:4] / 2
    boxes = np.concatenate([box_centers - half, box_centers + half], axis=1)
    keypoints = regress[:, 4 : 4 + 2 * num_keypoints].reshape(len(keep), num_keypoints, 2) + centers[:, None]
    return Detections(scores[keep], boxes, keypoints)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def weighted_nms(detections: Detections, iou_threshold: float) -> Detections:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best member) becomes the
    score-weighted mean of its boxes and keypoints, keeping the best member's score. Output by score."""
    remaining = np.argsort(-detections.scores, kind="stable")
    scores, boxes, keypoints = [], [], []
    while remaining.size:
        best = remaining[0]
        overlaps = box_iou(detections.boxes[best], detections.boxes[remaining])
        cluster = remaining[overlaps > iou_threshold]
        cluster = cluster if cluster.size else remaining[:1]
        weights = detections.scores[cluster]
        weights = weights / weights.sum()
        scores.append(detections.scores[best])
        boxes.append((detections.boxes[cluster] * weights[:, None]).sum(axis=0))
        keypoints.append((detections.keypoints[cluster] * weights[:, None, None]).sum(axis=0))
        remaining = remaining[overlaps <= iou_threshold]
    if not scores:
        return detections
    return Detections(np.array(scores), np.stack(boxes), np.stack(keypoints))


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def alignment_roi(center: np.ndarray, scale_point: np.ndarray, scale: float, target_angle: float) -> Roi:
    """Rotated square ROI centred on `center`, side 2 * |scale_point - center| * `scale`, rotated so the
    centre -> scale-point vector points at `target_angle` (radians, y axis flipped up)."""
    delta = scale_point - center
    size = 2.0 * float(np.hypot(delta[0], delta[1])) * scale
    rotation = normalize_radians(target_angle - math.atan2(-float(delta[1]), float(delta[0])))
    return Roi(float(center[0]), float(center[1]), size, rotation)


def roi_corners(roi: Roi) -> np.ndarray:
    """(4, 2) corners of the rotated square, normalised."""
    return project_from_roi(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), roi)


def roi_bounds(roi: Roi) -> np.ndarray:
    """Axis-aligned xyxy bounds of the rotated square, clipped to the image."""
    corners = roi_corners(roi)
    return np.clip(np.concatenate([corners.min(axis=0), corners.max(axis=0)]), 0.0, 1.0)


def crop_roi(image: torch.Tensor, roi: Roi, output_size: int, padding_mode: str = "border") -> torch.Tensor:
    """Sample the rotated ROI of a square float image (C, H, H) into (output_size, output_size, C).

    Bilinear; outside the image the border is replicated ("border", ImageToTensorCalculator's default)
    or the image continues as its mirror ("reflection", the training augmentation's wider cuts).
    """
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    # Output coordinates in [-1, 1] map to center + size * R(rotation) * u / 2, written for grid_sample.
    theta = torch.tensor(
        [
            [roi.size * cos, -roi.size * sin, 2 * roi.center_x - 1],
            [roi.size * sin, roi.size * cos, 2 * roi.center_y - 1],
        ],
        dtype=image.dtype,
    )
    grid = F.affine_grid(theta[None], [1, image.shape[0], output_size, output_size], align_corners=False)
    crop = F.grid_sample(image[None], grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return crop[0].permute(1, 2, 0)


def project_from_roi(points: np.ndarray, roi: Roi) -> np.ndarray:
    """Map (..., 2) points normalised to the ROI back to the square image."""
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    x, y = points[..., 0] - 0.5, points[..., 1] - 0.5
    image_x = (cos * x - sin * y) * roi.size + roi.center_x
    image_y = (sin * x + cos * y) * roi.size + roi.center_y
    return np.stack([image_x, image_y], axis=-1)


def cells_around(x: float, y: float, height: int, width: int, radius: int) -> tuple[slice, slice] | None:
    """(rows, columns) of the cells within `radius` of the cell holding the normalised point (x, y) of an
    `height` x `width` map, clipped to it; None when the point lies off the map."""
    # int() truncates toward zero, as the C++ cast does.
    col, row = int(x * width), int(y * height)
    if not (0 <= col < width and 0 <= row < height):
        return None
    return (
        slice(max(0, row - radius), min(height, row + radius + 1)),
        slice(max(0, col - radius), min(width, col + radius + 1)),
    )


def refine_with_heatmap(
    points: np.ndarray, heatmap: np.ndarray, kernel_size: int, min_confidence: float
) -> np.ndarray:
    """Replace each point by the sigmoid-weighted mean cell of a `kernel_size` window of its heatmap channel,
    when the window's peak confidence reaches `min_confidence`. `heatmap` is (H, W, K); points (K, 2) normalised."""
    height, width, _ = heatmap.shape
    offset = (kernel_size - 1) // 2
    refined = points.copy()
    for index, (x, y) in enumerate(points):
        window = cells_around(x, y, height, width, offset)
        if window is None:
            continue
        rows, cols = window
        confidence = sigmoid(heatmap[rows, cols, index].astype(np.float64))
        total = confidence.sum()
        if confidence.max() < min_confidence or total <= 0:
            continue
        row_ids, col_ids = np.mgrid[rows, cols]
        refined[index] = [
            (col_ids * confidence).sum() / width / total,
            (row_ids * confidence).sum() / height / total,
        ]
    return refined


def on_silhouette(points: np.ndarray, segmentation: np.ndarray, radius: int) -> np.ndarray:
    """(L,) bool: the landmark model's person segmentation (H, W logits over the ROI crop) says "person"
    (logit >= 0) somewhere within `radius` cells of each ROI-normalised point; False off the crop."""
    height, width = segmentation.shape
    inside = np.zeros(len(points), dtype=bool)
    for index, (x, y) in enumerate(points):
        window = cells_around(x, y, height, width, radius)
        if window is not None:
            inside[index] = bool(segmentation[window].max() >= 0.0)
    return inside


def decode_landmarks(
    raw: np.ndarray, heatmap: np.ndarray, input_size: int, num_landmarks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmark regressor (num_landmarks * 5,) -> ROI-normalised xy (L, 2), visibility (L,), presence (L,)."""
    values = raw.reshape(num_landmarks, 5).astype(np.float64)
    points = values[:, :2] / input_size
    points = refine_with_heatmap(points, heatmap, kernel_size=7, min_confidence=0.5)
    return points, sigmoid(values[:, 3]), sigmoid(values[:, 4])
