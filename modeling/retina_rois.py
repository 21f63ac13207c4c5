"""Retina ROIs: the face and upper-body boxes that SapiensID samples finer patches from.

Boxes are computed from the 19 keypoints exactly as the official kp19 preprocessor does
(square boxes, padding 0.3, minimum visible point counts), in normalised xyxy coordinates of the
square input image. A row of -1 means "no box". The full image is always the coarsest level.

This file is shared by the model and the processor (the processor folder links to it), so it
depends on torch only.
"""

import torch

MISSING = -1.0

# Indices into the 19-point layout (see KEYPOINT_NAMES in configuration_sapiensid.py).
FACE_POINTS = (0, 1, 2, 3, 4)  # nose, both eyes, both mouth corners
UPPER_BODY_POINTS = (0, 1, 2, 3, 4, 5, 6, 7, 8)  # face points, ears, shoulders
SHOULDER_POINTS = (7, 8)  # an upper-body box needs at least one shoulder
NUM_BODY_POINTS_FOR_FULL_BODY = 13  # "has body" threshold of the official face-first keep rule

# Official 22-point layout: 17 COCO/YOLO body points, then 5 face points (eye, eye, nose, mouth, mouth).
OFFICIAL22_TO_KP19 = (19, 17, 18, 20, 21, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def official22_to_kp19(keypoints22: torch.Tensor) -> torch.Tensor:
    """Reorder the official aligner's 22 points (YOLO 17 + face 5) into the 19-point layout."""
    if keypoints22.ndim != 3 or keypoints22.shape[1:] != (22, 2):
        raise ValueError(f"expected official keypoints of shape (B, 22, 2), got {tuple(keypoints22.shape)}")
    return keypoints22[:, list(OFFICIAL22_TO_KP19)]


def visible_points(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, K) bool: a point counts as visible when neither coordinate is -1 (the official rule)."""
    return (keypoints != MISSING).all(dim=-1)


def _box_from_center(centers: torch.Tensor, half_sizes: torch.Tensor) -> torch.Tensor:
    top_left = torch.clamp(centers - half_sizes, min=0)
    bottom_right = torch.clamp(centers + half_sizes, max=1)
    return torch.cat([top_left, bottom_right], dim=-1).float()


def _masked_extent(points: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inf = torch.tensor(float("inf"), dtype=points.dtype, device=points.device)
    lowest = torch.where(valid[..., None], points, inf).amin(dim=1)
    highest = torch.where(valid[..., None], points, -inf).amax(dim=1)
    return lowest, highest


def _invalidate(boxes: torch.Tensor, valid: torch.Tensor, min_points: int, required: tuple[int, ...] | None) -> torch.Tensor:
    usable = valid.sum(dim=1) >= min_points
    if required is not None:
        usable = usable & valid[:, list(required)].any(dim=1)  # out of place: exportable to ONNX
    return torch.where(usable[:, None], boxes, torch.full_like(boxes, MISSING))


def face_box(face_points: torch.Tensor, padding: float, min_points: int) -> torch.Tensor:
    """Square face box: centred between the points' extent and the nose, sized by the farthest point."""
    valid = visible_points(face_points)
    lowest, highest = _masked_extent(face_points, valid)
    centers = (lowest + highest) / 2
    nose = face_points[:, 0]
    nose_valid = valid[:, 0]
    centers = torch.where(nose_valid[:, None], (centers + nose) / 2, centers)
    distances = torch.linalg.vector_norm(face_points - centers[:, None], dim=-1)
    distances = torch.where(valid, distances, torch.full_like(distances, -1.0))
    sizes = 2 * distances.amax(dim=1, keepdim=True)
    boxes = _box_from_center(centers, sizes * (1 + padding) / 2)
    return _invalidate(boxes, valid, min_points, None)


def upper_body_box(body_points: torch.Tensor, padding: float, min_points: int) -> torch.Tensor:
    """Square box around the upper-body points, sized by the longer side of their extent."""
    valid = visible_points(body_points)
    lowest, highest = _masked_extent(body_points, valid)
    centers = (lowest + highest) / 2
    sizes = (highest - lowest).amax(dim=-1, keepdim=True)
    boxes = _box_from_center(centers, sizes * (1 + padding) / 2)
    return _invalidate(boxes, valid, min_points, SHOULDER_POINTS)


def compute_roi_boxes(
    keypoints: torch.Tensor, padding: float = 0.3, face_min_points: int = 2, body_min_points: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Face and upper-body boxes (B, 4) from 19-point keypoints (B, 19, 2); -1 rows where there is none."""
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[1] != 19:
        raise ValueError(f"expected keypoints of shape (B, 19, 2), got {tuple(keypoints.shape)}")
    keypoints = keypoints.float()
    faces = face_box(keypoints[:, list(FACE_POINTS)], padding, face_min_points)
    bodies = upper_body_box(keypoints[:, list(UPPER_BODY_POINTS)], padding, body_min_points)
    return faces, bodies


def snap_box_to_grid(boxes: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Grow boxes outward to the patch grid (floor the top-left, ceil the bottom-right)."""
    scaled = boxes * grid_size
    snapped = torch.cat([scaled[:, :2].floor(), scaled[:, 2:].ceil()], dim=1) / grid_size
    return snapped.clamp(0, 1)


def to_box_frame(boxes: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """Express image-space boxes in the normalised frame of `frame` boxes (clipped to it)."""
    origin, size = _frame_origin_size(frame)
    return ((boxes - origin.repeat(1, 2)) / size.repeat(1, 2)).clamp(0, 1)


def from_box_frame(boxes: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_box_frame`."""
    origin, size = _frame_origin_size(frame)
    return (boxes * size.repeat(1, 2) + origin.repeat(1, 2)).clamp(0, 1)


def _frame_origin_size(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    size = frame[:, 2:] - frame[:, :2]
    # A zero-size frame (no upper body) acts as the identity frame, as in the official code.
    size = torch.where(size == 0, torch.ones_like(size), size)
    return frame[:, :2], size


def snap_roi_boxes(face_boxes: torch.Tensor, body_boxes: torch.Tensor, grid_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Snap the upper-body box to the full-image patch grid and the face box to the upper-body patch grid.

    After this, every full-image patch lies wholly inside or outside the upper-body box and every
    upper-body patch wholly inside or outside the face box, so the three levels tile the image exactly.
    Missing boxes (-1) become zero-area boxes that cover nothing.
    """
    body = snap_box_to_grid(body_boxes, grid_size)
    face_in_body = snap_box_to_grid(to_box_frame(face_boxes, body), grid_size)
    return from_box_frame(face_in_body, body), body


def augment_keypoints(keypoints: torch.Tensor, point_drop_prob: float, part_drop_prob: float) -> torch.Tensor:
    """Training-time keypoint drops of the official kp19 preprocessor.

    Each point is dropped with `point_drop_prob`; with `part_drop_prob` the whole batch loses either
    its face points or its upper-body points (the official rule draws once per batch). One deviation:
    a row that the drops would leave without any point keeps its points. The semantic head pools only
    at keypoints, so such a row (a face close-up has face points only) would get the same embedding as
    every other emptied row of the batch: nothing to learn from, and a collapsed batch of faces.
    """
    original = keypoints
    keypoints = keypoints.clone()
    batch = keypoints.shape[0]
    if point_drop_prob > 0:
        drop = torch.rand(batch, keypoints.shape[1], device=keypoints.device) < point_drop_prob
        keypoints[drop] = MISSING
    if part_drop_prob > 0 and torch.rand(()) < part_drop_prob:
        part = FACE_POINTS if torch.rand(()) < 0.5 else UPPER_BODY_POINTS
        keypoints[:, list(part)] = MISSING
    emptied = _has_a_point(original) & ~_has_a_point(keypoints)
    return torch.where(emptied[:, None, None], original, keypoints)


def _has_a_point(keypoints: torch.Tensor) -> torch.Tensor:
    return (keypoints != MISSING).any(dim=-1).any(dim=-1)


def augment_boxes(boxes: torch.Tensor, shift_range: float, scale_range: float) -> torch.Tensor:
    """Random centre shift and per-axis scale, as fractions of the box size (official augment_bboxes)."""
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = boxes[:, 2:] - boxes[:, :2]
    shifts = (torch.rand_like(centers) * 2 - 1) * shift_range * sizes
    scales = 1 + (torch.rand_like(centers) * 2 - 1) * scale_range
    centers, sizes = centers + shifts, sizes * scales
    augmented = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1).clamp(0, 1)
    # A missing box stays missing (the official code clamps it to a zero box, which covers nothing either).
    return torch.where((boxes == MISSING).all(dim=1, keepdim=True), boxes, augmented)


def drop_boxes(face_boxes: torch.Tensor, body_boxes: torch.Tensor, drop_prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the face box, the body box or both for a `drop_prob` fraction of the batch (official rule)."""
    batch = face_boxes.shape[0]
    count = int(batch * drop_prob)
    if count == 0:
        return face_boxes, body_boxes
    face_boxes, body_boxes = face_boxes.clone(), body_boxes.clone()
    rows = torch.randperm(batch, device=face_boxes.device)[:count]
    which = torch.rand(())
    if which < 0.4 or which >= 0.8:
        face_boxes[rows] = MISSING
    if which >= 0.4:
        body_boxes[rows] = MISSING
    return face_boxes, body_boxes
