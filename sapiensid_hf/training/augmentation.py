"""Image-level training augmentation: a keypoint-aware horizontal flip, reframing, photometric jitter and
random erasing.

The keypoint / ROI augmentation of the official kp19 preprocessor (point and part drops, box shift,
scale and drop) runs inside the model in training mode, on the device; this file does what needs the
pixels. Everything works on one sample in the padded square at model resolution: pixels (S, S, 3) in
[0, 1], pixel mask (S, S), keypoints (19, 2) normalised to the square, -1 = missing.

The keypoint side of the flip (`flip_keypoints`) lives with the keypoint layout in processing/, where
the flip-augmented evaluation uses it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..processing.blaze_ops import Roi, crop_roi
from ..processing.keypoint_layout import MISSING, flip_keypoints, visible

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
    window = Roi(center_x=0.5 + shift[0], center_y=0.5 + shift[1], size=scale, rotation=0.0)
    channels = np.concatenate([pixels, pixel_mask[..., None]], axis=-1).astype(np.float32)
    sampled = crop_roi(torch.from_numpy(channels).permute(2, 0, 1), window, side, padding_mode="reflection").numpy()
    reframed, mask = np.ascontiguousarray(sampled[..., :3]), sampled[..., 3] >= 0.5
    left, top = window.center_x - scale / 2, window.center_y - scale / 2
    if fill is not None:
        centres = (np.arange(side) + 0.5) / side * scale  # each output pixel's centre, in units of the square
        beyond_x, beyond_y = (left + centres < 0) | (left + centres > 1), (top + centres < 0) | (top + centres > 1)
        outside = beyond_y[:, None] | beyond_x[None, :]
        reframed[outside] = np.asarray(fill, dtype=np.float32)
        mask[outside] = True
    moved = (keypoints.astype(np.float64) - (left, top)) / scale
    shown = visible(keypoints) & (moved >= 0).all(axis=-1) & (moved < 1).all(axis=-1)
    moved_keypoints = np.where(shown[:, None], moved, MISSING).astype(np.float32)
    return reframed, mask.astype(pixel_mask.dtype), moved_keypoints


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
    # In place, and the luma of the whole square before picking the photo's pixels: a data worker shares
    # the cores with the model's step, so this runs for every photo of every step (0.30 -> 0.18 ms).
    if brightness > 0:
        jittered *= rng.uniform(1 - brightness, 1 + brightness)
    if contrast > 0:
        mean_luma = float((jittered @ LUMA)[inside].mean())
        factor = rng.uniform(1 - contrast, 1 + contrast)
        jittered -= mean_luma
        jittered *= factor
        jittered += mean_luma
    if saturation > 0:
        luma = (jittered @ LUMA)[..., None]
        factor = rng.uniform(1 - saturation, 1 + saturation)
        jittered -= luma
        jittered *= factor
        jittered += luma
    if grayscale_prob > 0 and rng.random() < grayscale_prob:
        jittered = np.repeat((jittered @ LUMA)[..., None], 3, axis=-1)
    np.clip(jittered, 0.0, 1.0, out=jittered)
    outside = ~inside
    if outside.any():  # a mask of the pixels' own shape: copyto with a broadcast one is 4x slower
        np.copyto(jittered, pixels, where=np.repeat(outside[..., None], pixels.shape[-1], axis=-1))
    return jittered


def random_erasing(
    pixels: np.ndarray,
    content: np.ndarray,
    rng: np.random.Generator,
    min_area: float = 0.02,
    max_area: float = 0.4,
    min_aspect: float = 0.3,
    attempts: int = 10,
) -> np.ndarray:
    """Random erasing (Zhong et al., AAAI 2020, as torchreid and timm train re-identification models): one
    rectangle of the photo, its area a uniform share in [min_area, max_area] of the photo's, its height / width
    log-uniform in [min_aspect, 1 / min_aspect], filled with uniform random values: an occluder the model must
    look past. "The photo" is the content of the padded square (`content` != 0), whose box the rectangle lies
    in and whose padding keeps its value. A rectangle that does not fit is drawn again, up to `attempts`
    times (then nothing is erased), as in the paper. Writes into `pixels` (float32 in [0, 1])."""
    rows, columns = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if not rows.size:
        return pixels
    top, left = int(rows[0]), int(columns[0])
    height, width = int(rows[-1]) + 1 - top, int(columns[-1]) + 1 - left
    for _ in range(attempts):
        area = rng.uniform(min_area, max_area) * height * width
        aspect = math.exp(rng.uniform(math.log(min_aspect), -math.log(min_aspect)))
        erase_height, erase_width = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < erase_height < height and 0 < erase_width < width:
            y = top + int(rng.integers(0, height - erase_height + 1))
            x = left + int(rng.integers(0, width - erase_width + 1))
            noise = rng.uniform(0.0, 1.0, (erase_height, erase_width, pixels.shape[-1])).astype(np.float32)
            window = pixels[y : y + erase_height, x : x + erase_width]
            np.copyto(window, noise, where=content[y : y + erase_height, x : x + erase_width, None].astype(bool))
            return pixels
    return pixels


@dataclass
class TrainingAugmentation:
    """Random flip, reframing and photometric jitter for one sample, driven by the caller's generator.

    Reframing (`reframe_prob` > 0): the scale is uniform in [1 - reframe_scale, 1 + reframe_scale], the
    shift uniform in +-reframe_shift on each axis, and a `reframe_flat_prob` share of the reframed samples
    continue the picture beyond the square with a flat colour (a grey level, or any colour) instead of
    its mirror. Off by default, so that the recipes trained without it repeat exactly (no extra draws).

    Random erasing (`random_erasing_prob` > 0, `random_erasing`): after the jitter, one rectangle of the photo
    filled with noise, its area a share in [random_erasing_min_area, random_erasing_max_area] of the photo's
    and its height / width in [random_erasing_min_aspect, 1 / random_erasing_min_aspect]. Off by default
    (no extra draws), and never on the unlabelled faces, whose teacher targets describe the whole face.
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
    random_erasing_prob: float = 0.0
    random_erasing_min_area: float = 0.02
    random_erasing_max_area: float = 0.4
    random_erasing_min_aspect: float = 0.3

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
        if self.random_erasing_prob > 0 and rng.random() < self.random_erasing_prob:
            pixels = random_erasing(
                pixels, pixel_mask, rng, self.random_erasing_min_area, self.random_erasing_max_area,
                self.random_erasing_min_aspect,
            )  # fmt: skip
        return pixels, pixel_mask, keypoints


__all__ = ["TrainingAugmentation", "flip_keypoints", "flip_sample", "photometric_jitter", "random_erasing", "reframe_sample"]
