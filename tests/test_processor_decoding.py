"""Decoding every supported input into RGB, and a clear error for every bad one."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sapiensid_hf.processing.image_decoding import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
    SapiensIDInputError,
    describe_input,
    load_rgb,
)
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _load(image):
    return load_rgb(image, describe_input(image, 0))


# --- modes -------------------------------------------------------------------------------------


def test_rgb_is_kept_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_load(Image.fromarray(pixels)), pixels)


def test_grey_and_one_bit_are_repeated_to_three_channels():
    grey = np.arange(200, dtype=np.uint8).reshape(10, 20)
    rgb = _load(Image.fromarray(grey, "L"))
    assert rgb.shape == (10, 20, 3)
    np.testing.assert_array_equal(rgb[..., 0], grey)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    bits = _load(Image.new("1", (10, 10), 1))
    assert (bits == 255).all()


def test_palette_images_use_their_palette():
    palette_image = Image.new("P", (10, 10), 1)
    palette_image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert (_load(palette_image) == [10, 20, 30]).all()


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    np.testing.assert_array_equal(_load(rgba)[0, 0], [255, 127, 127])
    assert (_load(Image.new("RGBA", (10, 10), (0, 0, 0, 0))) == 255).all()
    assert (_load(Image.new("LA", (10, 10), (0, 0))) == 255).all()
    keyed = Image.new("P", (10, 10), 1)
    keyed.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    keyed.info["transparency"] = 1
    assert (_load(keyed) == 255).all()


def test_cmyk_is_converted():
    cyan = Image.new("CMYK", (10, 10), (255, 0, 0, 0))
    np.testing.assert_array_equal(_load(cyan)[0, 0], [0, 255, 255])
    decoded = _load(_encode(cyan, "JPEG", quality=95))
    np.testing.assert_allclose(decoded[5, 5], [0, 255, 255], atol=8)


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    values = np.array([[0, 257 * 100, 65535, 300]], dtype=np.uint16).repeat(8, axis=0).repeat(2, axis=1)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    rgb = _load(_encode(image, "PNG"))
    np.testing.assert_array_equal(rgb[0, ::2, 0], [0, 100, 255, 1])
    wide = Image.fromarray(values.astype(np.int32))
    assert wide.mode == "I"
    np.testing.assert_array_equal(_load(wide)[0, ::2, 1], [0, 100, 255, 1])


def test_float_mode_must_be_in_unit_range():
    ok = Image.fromarray(np.full((10, 10), 0.5, dtype=np.float32), "F")
    assert (_load(ok) == 128).all()
    with pytest.raises(SapiensIDInputError, match=r"must lie in \[0, 1\]"):
        _load(Image.fromarray(np.full((10, 10), 2.0, dtype=np.float32), "F"))


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rgb = _load(_encode(image, "JPEG", exif=exif, quality=95))
    assert rgb.shape == (40, 20, 3)
    assert rgb[5, 10].mean() > 200 and rgb[35, 10].mean() < 50  # the white half is now on top


def test_animated_images_use_the_first_frame():
    frames = [Image.new("RGB", (10, 10), color) for color in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    rgb = _load(data)
    assert rgb[0, 0, 0] > 200 and rgb[0, 0, 2] < 50


def test_path_bytes_and_pil_inputs_agree(people_dir):
    path = people_dir / "two_men.jpg"
    from_path = _load(path)
    np.testing.assert_array_equal(from_path, _load(str(path)))
    np.testing.assert_array_equal(from_path, _load(path.read_bytes()))
    np.testing.assert_array_equal(from_path, _load(Image.open(path)))


# --- arrays and tensors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [
        lambda rgb: rgb,
        lambda rgb: np.ascontiguousarray(rgb.transpose(2, 0, 1)),
        lambda rgb: rgb.astype(np.float32) / 255,
        lambda rgb: rgb.astype(np.uint16) * 257,
        lambda rgb: rgb.astype(np.int64),
        lambda rgb: torch.from_numpy(rgb.transpose(2, 0, 1).copy()),
        lambda rgb: torch.from_numpy(rgb.astype(np.float64) / 255).permute(2, 0, 1),
        lambda rgb: torch.from_numpy(rgb.copy()),
    ],
    ids=["hwc-uint8", "chw-uint8", "float", "uint16", "int64", "tensor-chw", "tensor-float", "tensor-hwc"],
)
def test_array_layouts_and_dtypes(convert):
    rgb = np.random.default_rng(1).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_load(convert(rgb)), rgb)


def test_grey_bool_and_rgba_arrays():
    grey = np.full((9, 9), 7, dtype=np.uint8)
    assert (_load(grey) == 7).all()
    assert (_load(grey[..., None]) == 7).all()
    assert (_load(np.ones((9, 9), dtype=bool)) == 255).all()
    rgba = np.zeros((9, 9, 4), dtype=np.uint8)
    assert (_load(rgba) == 255).all()  # fully transparent -> white


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((10, 10, 3), 3.0), r"must lie in \[0, 1\]"),
        (np.full((10, 10, 3), np.nan, dtype=np.float32), "finite"),
        (np.full((10, 10, 3), 300, dtype=np.int32), r"must lie in \[0, 255\]"),
        (np.zeros((10, 10, 5), dtype=np.uint8), "channel axis"),
        (np.zeros((2, 10, 10, 3, 1), dtype=np.uint8), "dimensions"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
        (np.zeros((10, 10, 3), dtype=np.complex64), "dtype"),
    ],
)
def test_bad_arrays_are_refused(array, message):
    with pytest.raises(SapiensIDInputError, match=message) as error:
        _load(array)
    assert "image 0 (numpy array" in str(error.value)


# --- bad files and sizes -----------------------------------------------------------------------


def test_tiny_images_are_refused_and_small_ones_accepted():
    with pytest.raises(SapiensIDInputError, match=r"1x1 pixels.*at least"):
        _load(np.zeros((1, 1, 3), dtype=np.uint8))
    with pytest.raises(SapiensIDInputError, match="1x1"):
        _load(_encode(Image.new("RGB", (1, 1)), "PNG"))
    assert _load(np.zeros((MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 3), dtype=np.uint8)).shape == (8, 8, 3)


def test_bad_files_name_the_file_and_the_problem(tmp_path, people_dir):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((people_dir / "two_men.jpg").read_bytes()[:20000])
    corrupt = tmp_path / "corrupt.png"
    valid_png = _encode(Image.new("RGB", (64, 64), (10, 200, 30)), "PNG")
    corrupt.write_bytes(valid_png[:60] + bytes(range(256)) * 4 + valid_png[-12:])
    cases = {
        empty: "empty",
        text: "not an image file",
        truncated: "corrupt or truncated",
        corrupt: "corrupt|could not be opened",
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(SapiensIDInputError, match=message) as error:
            _load(path)
        assert str(path) in str(error.value)


def test_bad_bytes_and_types():
    with pytest.raises(SapiensIDInputError, match="empty"):
        _load(b"")
    with pytest.raises(SapiensIDInputError, match="not an image file"):
        _load(b"GIF89 certainly not")
    with pytest.raises(SapiensIDInputError, match="URLs are not fetched"):
        _load("https://example.com/person.jpg")
    with pytest.raises(SapiensIDInputError, match="unsupported input type dict"):
        _load({"image": 1})


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    Image.new("L", (20000, 20000), 90).save(path, "JPEG", quality=40)
    return path


def test_huge_jpeg_is_decoded_at_reduced_scale(huge_jpeg):
    rgb = _load(huge_jpeg)
    assert rgb.shape[0] * rgb.shape[1] <= DEFAULT_MAX_IMAGE_PIXELS
    assert rgb.shape == (5000, 5000, 3)  # DCT scaling by 4
    assert abs(int(rgb[2500, 2500, 0]) - 90) <= 2
    out = SapiensIDImageProcessor(size=64)(huge_jpeg, keypoints=np.full((19, 2), -1.0))
    assert out["pixel_values"].shape == (1, 3, 64, 64)
    assert torch.allclose(out["pixel_values"], torch.tensor(90 / 255 * 2 - 1), atol=0.02)


def test_huge_non_jpeg_is_refused_with_the_limit_named(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 20000), 1).save(path, "PNG")
    with pytest.raises(SapiensIDInputError, match=r"20000x20000 \(400\.0 MP\).*max_image_pixels"):
        _load(path)
    # A higher limit lets it through (as a small test of the knob, on a smaller file).
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(SapiensIDInputError, match="max_image_pixels"):
        load_rgb(small, "small", max_image_pixels=5000)
    assert load_rgb(small, "small", max_image_pixels=10000).shape == (100, 100, 3)
