"""Turn any supported image input into an RGB uint8 array (H, W, 3), or fail with a clear error.

Inputs: file paths (``str`` / ``pathlib.Path``), encoded bytes, ``PIL.Image.Image``, numpy arrays and
torch tensors. Files and bytes are decoded with PIL and turned upright from their EXIF orientation.

Mode rule (documented in docs/processor.md):

- RGB is kept; 1, L, P, CMYK, YCbCr, LAB, HSV go through PIL's ``convert("RGB")``.
- Anything with an alpha channel or a transparency key (RGBA, LA, PA, RGBa, La, P / L / RGB with
  ``transparency``) is composited on white, the colour of the square padding.
- 16/32-bit integer grey (I;16*, I) is clipped to [0, 65535] and scaled to 8 bit (round(v / 257)).
- 32-bit float grey (F) and float arrays must lie in [0, 1] and are scaled by 255; anything else is
  refused rather than guessed.
- Arrays: uint8 as is, uint16 like I;16, bool as 0 / 255, other integer types only when every value
  is in [0, 255]. Grey (H, W) or one channel is repeated; 4 channels are RGBA (composited on white).
  Layout: numpy arrays are read as HWC when the last axis has 1, 3 or 4 entries, else CHW; torch
  tensors as CHW when the first axis has 1, 3 or 4 entries, else HWC.
- Animated / multi-page files: the first frame.

HEIC / HEIF photos (what phones save) are read when the pillow-heif plug-in is installed (its opener is
registered on the first such file); without it they are refused with a message that says so. This project
does not install it: its binary wheels are GPLv2. AVIF is read by PIL itself.

Size rule: every side needs at least `MIN_IMAGE_SIDE` pixels. Files above `max_image_pixels` are
decoded at a reduced scale when they are JPEGs (DCT scaling by 2, 4 or 8, so a 20000 x 20000 JPEG
never decodes at full size) and refused otherwise; in-memory images of any size are accepted, since
the rest of the pipeline only ever samples them at the output resolution.
"""

import importlib
import io
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_IMAGE_SIDE = 8
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
_DRAFT_SCALES = (2, 4, 8)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_INT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_WHITE = 255
# The brands of HEIF stills (ISO/IEC 23008-12) at bytes 8-12, after the "ftyp" box name at 4-8.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
HEIF_NEEDS_PLUGIN = (
    "a HEIC / HEIF photo (the format phones save), which PIL reads only with the pillow-heif plug-in: "
    "pip install pillow-heif (GPLv2 binary wheels, so not installed by this project), or save it as JPEG"
)


class SapiensIDInputError(ValueError):
    """An input the processor cannot turn into a picture, with the input named and the problem said."""


def describe_input(image: object, index: int | str) -> str:
    """A short name for an input, used in error messages: "image 3 ('/data/x.jpg')"; `index` is its place in
    the call, or a label the user knows it by ("A")."""
    if isinstance(image, str | os.PathLike):
        return f"image {index} ({os.fspath(image)!r})"
    if isinstance(image, bytes | bytearray | memoryview):
        return f"image {index} (bytes, length {len(image)})"
    if isinstance(image, Image.Image):
        return f"image {index} (PIL {image.mode} {image.width}x{image.height})"
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is not None:
        return f"image {index} ({type(image).__module__.split('.')[0]} array, shape {tuple(shape)}, dtype {dtype})"
    return f"image {index} ({type(image).__name__})"


# Besides SapiensIDInputError (and its subclasses), the exact error types whose message names the input
# first (the processor's): safe to rebuild renamed.
_NAMING_ERRORS = (RuntimeError, ValueError)


def renamed_error(error: BaseException, old_name: str, new_name: str) -> BaseException:
    """`error` with its message's leading `old_name` replaced by `new_name` (same type, same cause); any
    other error as it is. A file decoded once and handed on as an array (or cut into pieces) keeps the
    file's name in what goes wrong."""
    message = str(error)
    names_input = isinstance(error, SapiensIDInputError) or type(error) in _NAMING_ERRORS
    if not names_input or not message.startswith(old_name):
        return error
    renamed = type(error)(new_name + message[len(old_name) :])
    renamed.__cause__ = error.__cause__
    return renamed


def load_rgb(image: object, name: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode / convert one input into an RGB uint8 array (H, W, 3)."""
    if isinstance(image, str) and "://" in image:
        raise SapiensIDInputError(
            f"{name}: URLs are not fetched by the processor; download the file and pass its path"
        )
    if isinstance(image, str | os.PathLike):
        rgb = _rgb_from_path(Path(os.fspath(image)), name, max_image_pixels)
    elif isinstance(image, bytes | bytearray | memoryview):
        if len(image) == 0:
            raise SapiensIDInputError(f"{name}: the byte string is empty (0 bytes), not an encoded image")
        rgb = _rgb_from_encoded(io.BytesIO(bytes(image)), name, max_image_pixels)
    elif isinstance(image, Image.Image):
        rgb = _rgb_from_pil(image, name, max_image_pixels)
    elif isinstance(image, np.ndarray):
        rgb = _rgb_from_array(image, name, channels_first=False)
    elif type(image).__module__.startswith("torch") and hasattr(image, "detach"):
        rgb = _rgb_from_array(image.detach().cpu().numpy(), name, channels_first=True)
    else:
        raise SapiensIDInputError(
            f"{name}: unsupported input type {type(image).__name__}; pass a file path, encoded bytes, "
            "a PIL image, a numpy array or a torch tensor"
        )
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise SapiensIDInputError(
            f"{name}: the image is {width}x{height} pixels; the processor needs at least {MIN_IMAGE_SIDE} pixels per side"
        )
    return rgb


def _rgb_from_path(path: Path, name: str, max_image_pixels: int) -> np.ndarray:
    if not path.exists():
        raise SapiensIDInputError(f"{name}: no such file")
    if not path.is_file():
        raise SapiensIDInputError(f"{name}: not a regular file")
    if path.stat().st_size == 0:
        raise SapiensIDInputError(f"{name}: the file is empty (0 bytes)")
    with open(path, "rb") as handle:
        return _rgb_from_encoded(handle, name, max_image_pixels)


@contextmanager
def _pil_size_guard_lifted() -> Iterator[None]:
    # PIL refuses to open images above 2x its own pixel limit; this module applies its own limit instead
    # (and decodes oversized JPEGs at a reduced scale), so PIL's check is lifted while opening.
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def is_heif(head: bytes) -> bool:
    """Whether a file starting with `head` (12 bytes suffice) is a HEIF still: a .heic / .heif photo."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def _heif_opener_registered() -> bool:
    """Registers pillow-heif's opener with PIL when the plug-in is installed; False when it is not."""
    try:
        plugin = importlib.import_module("pillow_heif")
    except ImportError:
        return False
    plugin.register_heif_opener()
    return True


def _rgb_from_encoded(stream: io.BufferedIOBase, name: str, max_image_pixels: int, heif_plugin_tried: bool = False) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(stream)
            except Image.DecompressionBombError:
                stream.seek(0)
                with _pil_size_guard_lifted():
                    image = Image.open(stream)
    except UnidentifiedImageError:
        stream.seek(0)
        if is_heif(stream.read(12)):
            stream.seek(0)
            if not heif_plugin_tried and _heif_opener_registered():
                return _rgb_from_encoded(stream, name, max_image_pixels, heif_plugin_tried=True)
            raise SapiensIDInputError(f"{name}: {HEIF_NEEDS_PLUGIN}") from None
        raise SapiensIDInputError(
            f"{name}: not an image file PIL can read (unknown or unsupported format)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise SapiensIDInputError(f"{name}: could not be opened as an image ({error})") from error
    with image:
        return _rgb_from_pil(image, name, max_image_pixels)


def _rgb_from_pil(image: Image.Image, name: str, max_image_pixels: int) -> np.ndarray:
    width, height = image.size
    if width * height > max_image_pixels:
        _reduce_while_decoding(image, name, max_image_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as error:
        raise SapiensIDInputError(f"{name}: the image data is corrupt or truncated ({error})") from error
    return _pil_to_rgb_array(upright if upright is not None else image, name)


def _reduce_while_decoding(image: Image.Image, name: str, max_image_pixels: int) -> None:
    width, height = image.size
    megapixels = width * height / 1e6
    limit = f"the processor's limit of {max_image_pixels / 1e6:g} MP (`max_image_pixels`)"
    if not image.tile:
        return  # already decoded in memory: nothing left to save by refusing it
    if image.format != "JPEG":
        raise SapiensIDInputError(
            f"{name}: the image is {width}x{height} ({megapixels:.1f} MP), above {limit}; only JPEGs are decoded "
            "at reduced scale. Downscale it first or raise `max_image_pixels`."
        )
    for scale in _DRAFT_SCALES:
        if math.ceil(width / scale) * math.ceil(height / scale) <= max_image_pixels:
            image.draft(image.mode, (width // scale, height // scale))
            return
    raise SapiensIDInputError(
        f"{name}: the JPEG is {width}x{height} ({megapixels:.1f} MP); even decoded at 1/8 scale it exceeds {limit}"
    )


def _pil_to_rgb_array(image: Image.Image, name: str) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _composite_on_white(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    if mode in _WIDE_INT_MODES:
        return _grey_to_rgb(_scale_16bit(np.asarray(image)))
    if mode == "F":
        return _grey_to_rgb(_scale_unit_float(np.asarray(image), name))
    try:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as error:
        raise SapiensIDInputError(
            f"{name}: PIL mode {mode!r} cannot be converted to RGB ({error})"
        ) from error


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    blended = rgba[..., :3].astype(np.float32) * alpha + _WHITE * (1.0 - alpha)
    return np.round(blended).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(values.astype(np.int64), 0, 65535)
    return ((clipped + 128) // 257).astype(np.uint8)


def _scale_unit_float(values: np.ndarray, name: str) -> np.ndarray:
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise SapiensIDInputError(f"{name}: float pixel values must be finite; found NaN or infinity")
    low, high = float(values.min()), float(values.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise SapiensIDInputError(
            f"{name}: float pixel values must lie in [0, 1], found [{low:g}, {high:g}]; pass uint8 for 0-255 data"
        )
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)


def _to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if values.dtype == np.uint16:
        return _scale_16bit(values)
    if np.issubdtype(values.dtype, np.floating):
        return _scale_unit_float(values, name)
    if np.issubdtype(values.dtype, np.integer):
        if values.size and (values.min() < 0 or values.max() > 255):
            raise SapiensIDInputError(
                f"{name}: {values.dtype} pixel values must lie in [0, 255] (found [{values.min()}, {values.max()}]); "
                "pass uint8, uint16 or floats in [0, 1]"
            )
        return values.astype(np.uint8)
    raise SapiensIDInputError(f"{name}: unsupported pixel dtype {values.dtype}")


def _channels_last(values: np.ndarray, name: str, channels_first: bool) -> np.ndarray:
    if values.ndim == 2:
        return values[..., None]
    if values.ndim != 3:
        raise SapiensIDInputError(
            f"{name}: expected an image of shape (H, W), (H, W, C) or (C, H, W), got {values.ndim} dimensions"
        )
    first, last = values.shape[0] in (1, 3, 4), values.shape[-1] in (1, 3, 4)
    if channels_first and first or not last and first:
        return np.moveaxis(values, 0, -1)
    if last:
        return values
    raise SapiensIDInputError(
        f"{name}: cannot find a channel axis with 1, 3 or 4 entries in shape {values.shape}"
    )


def _rgb_from_array(values: np.ndarray, name: str, channels_first: bool) -> np.ndarray:
    if values.size == 0:
        raise SapiensIDInputError(f"{name}: the array is empty")
    pixels = _to_uint8(_channels_last(values, name, channels_first), name)
    channels = pixels.shape[-1]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=-1))
    if channels == 4:
        return _composite_on_white(pixels)
    return np.ascontiguousarray(pixels)
