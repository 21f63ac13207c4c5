"""The person-crop fallback: treat a tall image as a crop of one person when the person detector finds nobody.

Re-identification data are small pedestrian crops (64 x 128, often with uniform black borders).
BlazePose's person detector, made for scenes, misses most of them, yet the crop *is* the person's
region. The fallback:

1. `content_bounds`: trims uniform near-black / near-white rows and columns from the outside of the
   padded square (the white square padding and the black bars of datasets like Con-ReID).
2. Applies only when what is left is a standing-person shape (height >= `min_aspect` x width).
3. `clean_square`: paints everything outside the content white, so the landmark model sees the person
   on a plain background (black bars inside its crop made it miss the person).
4. `crop_roi_of`: an upright square ROI centred on the content, side `scale` x its long side (the same
   1.25 margin MediaPipe puts around a detected body).

The caller (keypoint_detector.py) then requires evidence that a person is there before using the
landmarks: the person detector's best score on the cleaned square at a relaxed threshold, the landmark
model's pose-presence flag, and several confident body points (a textured tall image without a person
fails at least one of them; see docs/processor.md for the measured rates).
"""

from dataclasses import dataclass

import numpy as np

from .blaze_ops import Roi

BORDER_TOLERANCE = 12  # a channel value within this of 0 or 255 counts as border
BORDER_SHARE = 0.98  # a row / column is border when this share of its pixels are


@dataclass(frozen=True)
class ContentBounds:
    """Pixel bounds [top, bottom) x [left, right) of the non-border content of a square image."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def normalized_box(self, side: int) -> np.ndarray:
        return np.array([self.left, self.top, self.right, self.bottom], dtype=np.float32) / side


def content_bounds(
    square: np.ndarray, tolerance: int = BORDER_TOLERANCE, border_share: float = BORDER_SHARE
) -> ContentBounds | None:
    """Bounds of `square` (S, S, 3) uint8 without its uniform black / white outer rows and columns; None if
    nothing is left (a blank image)."""
    border = (square.max(axis=-1) <= tolerance) | (square.min(axis=-1) >= 255 - tolerance)
    rows = np.flatnonzero(border.mean(axis=1) < border_share)
    cols = np.flatnonzero(border.mean(axis=0) < border_share)
    if rows.size == 0 or cols.size == 0:
        return None
    return ContentBounds(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def is_person_shaped(bounds: ContentBounds, min_aspect: float) -> bool:
    return bounds.height >= min_aspect * bounds.width


def clean_square(square: np.ndarray, bounds: ContentBounds) -> np.ndarray:
    """A copy of `square` with everything outside `bounds` white."""
    cleaned = np.full_like(square, 255)
    rows, cols = slice(bounds.top, bounds.bottom), slice(bounds.left, bounds.right)
    cleaned[rows, cols] = square[rows, cols]
    return cleaned


def crop_roi_of(bounds: ContentBounds, side: int, scale: float) -> Roi:
    """Upright square ROI (normalised to the square of `side` pixels) around the content."""
    center_x = (bounds.left + bounds.right) / 2 / side
    center_y = (bounds.top + bounds.bottom) / 2 / side
    return Roi(center_x, center_y, max(bounds.height, bounds.width) / side * scale, 0.0)
