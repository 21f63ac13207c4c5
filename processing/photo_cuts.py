"""Cuts of a photo, and a photo's keypoints carried into a cut.

Two users: the embedding rule that averages a photo's centre cuts (`centre_cut_box`; the model folder's
`embedding_cuts`, sapiensid_hf/cut_views.py) and the people in a photo, each embedded from cuts around
them (people_in_image.py). Either way the detector runs on the cut, and where it misses the person the
keypoints found on the whole photo are mapped into the cut; a point that falls outside the cut is missing
there.
"""

from __future__ import annotations

import numpy as np

from .keypoint_layout import MISSING, apply_official_rules, visible
from .square_resampling import SquarePadding


def to_photo_pixels(points: np.ndarray, padding: SquarePadding) -> np.ndarray:
    """(..., 2) points normalised to the padded square -> the photo's pixels (missing points stay -1)."""
    points = np.asarray(points, dtype=np.float32)
    pixels = points * padding.side - np.array([padding.left, padding.top], dtype=np.float32)
    return np.where(visible(points)[..., None], pixels, MISSING).astype(np.float32)


def to_padded_square(points: np.ndarray, padding: SquarePadding) -> np.ndarray:
    """(..., 2) points in the photo's pixels -> normalised to its padded square (`to_photo_pixels` undone;
    missing points stay -1)."""
    points = np.asarray(points, dtype=np.float32)
    square = (points + np.array([padding.left, padding.top], dtype=np.float32)) / padding.side
    return np.where(visible(points)[..., None], square, MISSING).astype(np.float32)


def pixel_keypoints_in_crop(points: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    """(19, 2) keypoints in the photo's pixels -> normalised to the padded square of the `crop` (xyxy pixels),
    what the processor takes as `keypoints=`; points outside the crop are missing."""
    left, top, right, bottom = crop
    points = np.asarray(points, dtype=np.float32)
    padding = SquarePadding.of(bottom - top, right - left)
    inside = (
        visible(points)
        & (points[:, 0] >= left)
        & (points[:, 0] <= right)
        & (points[:, 1] >= top)
        & (points[:, 1] <= bottom)
    )
    offset = np.array([left - padding.left, top - padding.top], dtype=np.float32)
    return np.where(inside[:, None], (points - offset) / padding.side, MISSING).astype(np.float32)


def centre_cut_box(height: int, width: int, scale: float) -> tuple[int, int, int, int]:
    """The xyxy pixel box of a `height` x `width` photo cut about its centre to `scale` of its width and
    height (at least one pixel each way)."""
    if not 0 < scale <= 1:
        raise ValueError(f"a centre cut's scale must be in (0, 1], got {scale}")
    cut_height, cut_width = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (height - cut_height) // 2, (width - cut_width) // 2
    return left, top, left + cut_width, top + cut_height


def keypoints_in_cut(keypoints: np.ndarray, height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """(19, 2) keypoints normalised to the padded square of a `height` x `width` photo -> normalised to the
    padded square of its cut `box`, points outside the cut missing, and the official keypoint rules applied
    again (a pair that lost a point is re-slotted as the detector path would)."""
    pixels = to_photo_pixels(keypoints, SquarePadding.of(height, width))
    return apply_official_rules(pixel_keypoints_in_crop(pixels, box))


__all__ = ["centre_cut_box", "keypoints_in_cut", "pixel_keypoints_in_crop", "to_padded_square", "to_photo_pixels"]
