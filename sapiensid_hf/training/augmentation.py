"""Image-level training augmentation: a keypoint-aware horizontal flip and photometric jitter.

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

from ..processing.keypoint_layout import flip_keypoints

# ITU-R 601 luma weights, as torchvision's grayscale conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def flip_sample(
    pixels: np.ndarray, pixel_mask: np.ndarray, keypoints: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an (S, S, 3) image, its (S, S) mask and its keypoints."""
    return pixels[:, ::-1].copy(), pixel_mask[:, ::-1].copy(), flip_keypoints(keypoints)


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
    """Random flip + photometric jitter for one sample, driven by the caller's generator."""

    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    grayscale_prob: float = 0.05

    def __call__(
        self, pixels: np.ndarray, pixel_mask: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            pixels, pixel_mask, keypoints = flip_sample(pixels, pixel_mask, keypoints)
        pixels = photometric_jitter(
            pixels, pixel_mask, rng, self.brightness, self.contrast, self.saturation, self.grayscale_prob
        )
        return pixels, pixel_mask, keypoints


__all__ = ["TrainingAugmentation", "flip_keypoints", "flip_sample", "photometric_jitter"]
