"""Square padding and bilinear resampling, computed only at the output pixels.

The official test transform is ``ToTensor -> SquarePad(fill=1) -> Resize(size, antialias=None)`` on
float tensors: white padding split as (wp // 2 left, wp - wp // 2 right), likewise top / bottom, then
bilinear interpolation without antialiasing (``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=False)``). Without antialiasing each output pixel reads just four input
pixels, so `resample_padded_square` gathers exactly those from the unpadded uint8 image, with the same
source-index arithmetic as PyTorch, and never builds the padded float copy (a 20000 x 20000 photo
stays as cheap as a small one). The detector's copy (`detector_square`) is an antialiased downscale
with bounded memory instead.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SquarePadding:
    """Where an image of `height` x `width` sits inside its padded square of side `side`."""

    height: int
    width: int
    side: int
    left: int
    top: int

    @classmethod
    def of(cls, height: int, width: int) -> "SquarePadding":
        side = max(height, width)
        return cls(height=height, width=width, side=side, left=(side - width) // 2, top=(side - height) // 2)

    def content_box(self) -> tuple[float, float, float, float]:
        """The image's extent in the square, normalised xyxy."""
        return (
            self.left / self.side,
            self.top / self.side,
            (self.left + self.width) / self.side,
            (self.top + self.height) / self.side,
        )

    def content_mask(self, size: int) -> np.ndarray:
        """(size, size) int64 mask of the resized square: 1 where the pixel centre falls on the image. An image
        thinner than one output pixel (a strip over `size` times longer than wide: 20000 x 50 in a 96-pixel
        square) has no pixel centre on it; it covers the line its middle falls on, so every image keeps content
        for the model to read (the model refuses an image whose mask is empty)."""
        centers = (np.arange(size, dtype=np.float64) + 0.5) * self.side / size
        rows = _covered_lines(centers, self.top, self.height, self.side, size)
        cols = _covered_lines(centers, self.left, self.width, self.side, size)
        return (rows[:, None] & cols[None, :]).astype(np.int64)


def _covered_lines(centers: np.ndarray, start: int, length: int, side: int, size: int) -> np.ndarray:
    """Output lines whose centre falls on [start, start + length) of the square's side; else the line of its middle."""
    lines = (centers >= start) & (centers < start + length)
    if not lines.any():
        lines[min(int((start + length / 2) * size / side), size - 1)] = True
    return lines


def source_indices(output_size: int, input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear source indices (align_corners=False): first / second neighbour and weight of the second."""
    scale = np.float32(input_size) / np.float32(output_size)
    source = (np.arange(output_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0.0))
    first = source.astype(np.int64)
    second = first + (first < input_size - 1)
    return first, second, (source - first.astype(np.float32)).astype(np.float32)


def _padded_lines(indices: np.ndarray, offset: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Image line for each padded-square line index (clamped), and whether that line is padding."""
    inside = (indices >= offset) & (indices < offset + length)
    return np.clip(indices - offset, 0, length - 1), ~inside


def resample_padded_square(image: np.ndarray, size: int, fill: float = 255.0) -> np.ndarray:
    """Bilinear resample of the `fill`-padded square of `image` (H, W, C uint8) to (size, size, C) float32.

    Exactly the official pad-then-interpolate (up to float rounding), in the input's units (0-255),
    reading only the 2 x 2 input pixels behind each output pixel.
    """
    padding = SquarePadding.of(*image.shape[:2])
    row0, row1, row_weight = source_indices(size, padding.side)
    col0, col1, col_weight = source_indices(size, padding.side)
    rows, rows_outside = _padded_lines(np.concatenate([row0, row1]), padding.top, padding.height)
    cols, cols_outside = _padded_lines(np.concatenate([col0, col1]), padding.left, padding.width)
    pixels = image.take(rows, axis=0).take(cols, axis=1).astype(np.float32)
    pixels[rows_outside] = fill
    pixels[:, cols_outside] = fill
    col_weight = col_weight[None, :, None]
    upper = pixels[:size, :size] * (1 - col_weight) + pixels[:size, size:] * col_weight
    lower = pixels[size:, :size] * (1 - col_weight) + pixels[size:, size:] * col_weight
    row_weight = row_weight[:, None, None]
    return upper * (1 - row_weight) + lower * row_weight


def detector_square(image: np.ndarray, max_side: int, fill: int = 255) -> np.ndarray:
    """The padded square as uint8 (D, D, C), D = min(square side, `max_side`), for the keypoint detector.

    Downscaling is antialiased (PIL bilinear). Huge images are first sampled every k-th pixel, with
    k chosen to keep at least 4 samples per output pixel, so memory stays bounded by the output size.
    """
    padding = SquarePadding.of(*image.shape[:2])
    side = padding.side
    output = min(side, max_side)
    stride = max(1, side // (4 * output))
    sampled_side = -(-side // stride)
    square = np.full((sampled_side, sampled_side, image.shape[2]), fill, dtype=np.uint8)
    first = stride // 2  # the padded-square pixel sampled in each stride x stride block
    row_from, row_to = _strided_span(padding.top, padding.height, stride, first, sampled_side)
    col_from, col_to = _strided_span(padding.left, padding.width, stride, first, sampled_side)
    square[row_from:row_to, col_from:col_to] = image[
        row_from * stride + first - padding.top :: stride, col_from * stride + first - padding.left :: stride
    ][: row_to - row_from, : col_to - col_from]
    if output == sampled_side:
        return square
    # `box` keeps the geometry exact: the sampled square covers side / stride of its own pixels.
    extent = side / stride
    resized = Image.fromarray(square).resize(
        (output, output), Image.Resampling.BILINEAR, box=(0, 0, extent, extent)
    )
    return np.asarray(resized)


def _strided_span(offset: int, length: int, stride: int, first: int, count: int) -> tuple[int, int]:
    """Range of sample indices j whose padded position j * stride + first falls on the image."""
    start = max(0, -(-(offset - first) // stride))
    stop = min(count, -(-(offset + length - first) // stride))
    return start, stop
