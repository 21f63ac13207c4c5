"""Square padding and resampling match the official transform; the detector copy keeps the geometry."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sapiensid_hf.processing.square_resampling import SquarePadding, detector_square, resample_padded_square


def _official_transform(rgb: np.ndarray, size: int) -> torch.Tensor:
    """ToTensor -> SquarePad(fill=1) -> Resize(size, antialias=None) on a tensor, as the official code does."""
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    _, height, width = image.shape
    side = max(height, width)
    pad_w, pad_h = side - width, side - height
    padded = F.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=1.0)
    return F.interpolate(
        padded[None], size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )[0]


@pytest.mark.parametrize(
    ("height", "width"), [(100, 37), (37, 100), (384, 384), (1000, 701), (9, 8), (200, 1999)]
)
@pytest.mark.parametrize("size", [384, 96])
def test_matches_pad_then_interpolate(height, width, size):
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours = torch.from_numpy(resample_padded_square(rgb, size) / 255).permute(2, 0, 1)
    torch.testing.assert_close(ours, _official_transform(rgb, size), atol=1e-5, rtol=0)


def test_padding_split_and_content_box():
    padding = SquarePadding.of(height=10, width=5)
    assert (padding.side, padding.left, padding.top) == (10, 2, 0)  # 5 columns of padding: 2 left, 3 right
    assert padding.content_box() == (0.2, 0.0, 0.7, 1.0)


def test_content_mask_marks_the_real_image():
    padding = SquarePadding.of(height=50, width=100)  # rows 25..75 of the 100-pixel square
    mask = padding.content_mask(4)
    np.testing.assert_array_equal(mask[:, 0], [0, 1, 1, 0])
    assert mask.dtype == np.int64 and mask.all(axis=0).sum() == 0 and mask[1].all()
    assert SquarePadding.of(64, 64).content_mask(8).all()


def test_an_image_thinner_than_an_output_pixel_covers_the_line_of_its_middle():
    wide = SquarePadding.of(height=50, width=20000).content_mask(96)  # 0.24 of a pixel high in the square
    assert wide.sum() == 96 and wide[48].all()  # its middle, row 10000 of 20000, falls on line 48
    tall = SquarePadding.of(height=20000, width=50).content_mask(96)
    assert tall.sum() == 96 and tall[:, 48].all()
    one_pixel = SquarePadding.of(height=209, width=20000).content_mask(96)  # line 47's centre falls on it: that line alone
    assert one_pixel.sum() == 96 and one_pixel[47].all()
    np.testing.assert_array_equal(SquarePadding.of(50, 100).content_mask(4)[:, 0], [0, 1, 1, 0])  # as before


def test_padding_is_white_in_the_output():
    rgb = np.zeros((10, 40, 3), dtype=np.uint8)
    out = resample_padded_square(rgb, 40)
    assert (out[:10] == 255).all() and (out[-10:] == 255).all()
    assert (out[16:24] == 0).all()


def test_detector_square_is_the_padded_image_when_small():
    rgb = np.random.default_rng(3).integers(0, 256, (50, 30, 3), dtype=np.uint8)
    square = detector_square(rgb, max_side=768)
    assert square.shape == (50, 50, 3) and square.dtype == np.uint8
    np.testing.assert_array_equal(square[:, 10:40], rgb)
    assert (square[:, :10] == 255).all() and (square[:, 40:] == 255).all()


@pytest.mark.parametrize("shape", [(1500, 900), (3000, 20000)])
def test_detector_square_keeps_geometry_when_downscaled(shape):
    height, width = shape
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    # A white image (like its padding) with a black vertical band at 40-60 % of its width.
    rgb[:, int(0.4 * width) : int(0.6 * width)] = 0
    square = detector_square(rgb, max_side=300)
    assert square.shape == (300, 300, 3)
    padding = SquarePadding.of(height, width)
    row = square[int(300 * (padding.top + height / 2) / padding.side)]
    band = (np.flatnonzero(row[:, 0] < 128) + 0.5) / 300
    band_start = (padding.left + 0.4 * width) / padding.side
    band_end = (padding.left + 0.6 * width) / padding.side
    assert band.min() == pytest.approx(band_start, abs=2 / 300)
    assert band.max() == pytest.approx(band_end, abs=2 / 300)
