"""Image-level training augmentation: a keypoint-aware horizontal flip, reframing and photometric jitter.

The keypoint / ROI augmentation of the official kp19 preprocessor (point and part drops, box shift,
scale and drop) runs inside the model in training mode, on the device; this file does what needs the
pixels. Everything works on one sample in the padded square at model resolution: pixels (S, S, 3) in
[0, 1], pixel mask (S, S), keypoints (19, 2) normalised to the square, -1 = missing.

The keypoint side of the flip (`flip_keypoints`) lives with the keypoint layout in processing/, where
the flip-augmented evaluation uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..processing.keypoint_layout import MISSING as MISSING_POINT
from ..processing.keypoint_layout import flip_keypoints

# ITU-R 601 luma weights, as torchvision's grayscale conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def flip_sample(
    pixels: np.ndarray, pixel_mask: np.ndarray, keypoints: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an (S, S, 3) image, its (S, S) mask and its keypoints."""
    return pixels[:, ::-1].copy(), pixel_mask[:, ::-1].copy(), flip_keypoints(keypoints)


def reframe_sample(
    pixels: np.ndarray,
    pixel_mask: np.ndarray,
    keypoints: np.ndarray,
    scale: float,
    shift: tuple[float, float] = (0.0, 0.0),
    fill: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample as a differently cut picture of the same person: the square window of side `scale`
    (in units of the square; < 1 cuts tighter, > 1 wider) centred at (0.5, 0.5) + `shift`, resampled to
    the square (bilinear). Beyond the square the picture continues as its mirror image (`fill` None: a
    wider cut of a real scene) or as a flat colour (`fill` an RGB triple in [0, 1]: a plain wall or page),
    which counts as photo content in the mask, as a wall beside a person in a photo does. Keypoints move
    with the picture; those that leave the window become missing.

    Why: a person cut from a scene is framed from detected keypoints, a few per cent off the framing of
    the training photos, and a model that never saw another cut moves its embedding by as much as the gap
    between two people (benchmarks/bench_framing.py).
    """
    side = pixels.shape[0]
    left, top = 0.5 + shift[0] - scale / 2, 0.5 + shift[1] - scale / 2
    centres = (np.arange(side, dtype=np.float64) + 0.5) / side * scale
    source_x, source_y = (left + centres) * side - 0.5, (top + centres) * side - 0.5  # source pixel coordinates
    outside = ((source_y < -0.5) | (source_y > side - 0.5))[:, None] | ((source_x < -0.5) | (source_x > side - 0.5))[None, :]
    columns, rows = _mirrored(source_x, side), _mirrored(source_y, side)
    reframed = _bilinear(pixels.astype(np.float32), rows, columns)
    mask = _bilinear(pixel_mask.astype(np.float32)[..., None], rows, columns)[..., 0] >= 0.5
    if fill is not None:
        reframed[outside] = np.asarray(fill, dtype=np.float32)
        mask[outside] = True
    moved = (keypoints.astype(np.float64) - (left, top)) / scale
    shown = (keypoints >= 0).all(axis=-1) & (moved >= 0).all(axis=-1) & (moved < 1).all(axis=-1)
    moved_keypoints = np.where(shown[:, None], moved, MISSING_POINT).astype(np.float32)
    return reframed, mask.astype(pixel_mask.dtype), moved_keypoints


def _mirrored(coordinates: np.ndarray, side: int) -> np.ndarray:
    """Pixel coordinates folded back into [0, side - 1] the way a mirror of the picture continues it."""
    period = 2 * side
    folded = np.mod(coordinates + 0.5, period)
    folded = np.where(folded >= side, period - folded, folded) - 0.5
    return np.clip(folded, 0.0, side - 1.0)


def _bilinear(image: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """image (H, W, C) sampled at every (row, column) of the two coordinate vectors (a separable grid)."""
    row_low = np.floor(rows).astype(np.int64)
    column_low = np.floor(columns).astype(np.int64)
    row_high = np.minimum(row_low + 1, image.shape[0] - 1)
    column_high = np.minimum(column_low + 1, image.shape[1] - 1)
    row_weight = (rows - row_low).astype(np.float32)[:, None, None]
    column_weight = (columns - column_low).astype(np.float32)[None, :, None]
    top = image[row_low][:, column_low] * (1 - column_weight) + image[row_low][:, column_high] * column_weight
    bottom = image[row_high][:, column_low] * (1 - column_weight) + image[row_high][:, column_high] * column_weight
    return (top * (1 - row_weight) + bottom * row_weight).astype(np.float32)


def photometric_jitter(
    pixels: np.ndarray,
    content: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    grayscale_prob: float = 0.0,
) -> np.ndarray:
    """Brightness, contrast, saturation jitter (factors uniform in [1 - j, 1 + j]) and random grayscale.

    Only image content changes: the square padding (content == 0) keeps its value, since the model
    and the processor treat the padding as a fixed fill, not as part of the photo.
    """
    jittered = pixels.astype(np.float32, copy=True)
    inside = content.astype(bool)
    if not inside.any():
        return jittered
    if brightness > 0:
        jittered *= rng.uniform(1 - brightness, 1 + brightness)
    if contrast > 0:
        mean_luma = float((jittered[inside] @ LUMA).mean())
        factor = rng.uniform(1 - contrast, 1 + contrast)
        jittered = (jittered - mean_luma) * factor + mean_luma
    if saturation > 0:
        luma = (jittered @ LUMA)[..., None]
        factor = rng.uniform(1 - saturation, 1 + saturation)
        jittered = (jittered - luma) * factor + luma
    if grayscale_prob > 0 and rng.random() < grayscale_prob:
        jittered = np.repeat((jittered @ LUMA)[..., None], 3, axis=-1)
    jittered = np.clip(jittered, 0.0, 1.0)
    jittered[~inside] = pixels[~inside]
    return jittered


@dataclass
class TrainingAugmentation:
    """Random flip, reframing and photometric jitter for one sample, driven by the caller's generator.

    Reframing (`reframe_prob` > 0): the scale is uniform in [1 - reframe_scale, 1 + reframe_scale], the
    shift uniform in +-reframe_shift on each axis, and a `reframe_flat_prob` share of the reframed samples
    continue the picture beyond the square with a flat colour (a grey level, or any colour) instead of
    its mirror. Off by default, so that the recipes trained without it repeat exactly (no extra draws).
    """

    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    grayscale_prob: float = 0.05
    reframe_prob: float = 0.0
    reframe_scale: float = 0.15
    reframe_shift: float = 0.08
    reframe_flat_prob: float = 0.5

    def __call__(
        self, pixels: np.ndarray, pixel_mask: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            pixels, pixel_mask, keypoints = flip_sample(pixels, pixel_mask, keypoints)
        if self.reframe_prob > 0 and rng.random() < self.reframe_prob:
            scale = rng.uniform(1 - self.reframe_scale, 1 + self.reframe_scale)
            shift = (rng.uniform(-self.reframe_shift, self.reframe_shift), rng.uniform(-self.reframe_shift, self.reframe_shift))
            fill = None
            if rng.random() < self.reframe_flat_prob:
                fill = np.full(3, rng.uniform(0, 1), np.float32) if rng.random() < 0.5 else rng.uniform(0, 1, 3).astype(np.float32)
            pixels, pixel_mask, keypoints = reframe_sample(pixels, pixel_mask, keypoints, scale, shift, fill)
        pixels = photometric_jitter(
            pixels, pixel_mask, rng, self.brightness, self.contrast, self.saturation, self.grayscale_prob
        )
        return pixels, pixel_mask, keypoints


__all__ = ["TrainingAugmentation", "flip_keypoints", "flip_sample", "photometric_jitter", "reframe_sample"]
