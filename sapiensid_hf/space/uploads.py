"""Uploads of the Space: Gradio's raw upload records decoded by the processor's own decoder.

The handlers take the records unprocessed (`preprocess=False`) so that a file that cannot be used is named
as the visitor knows it (its original name) with what is wrong with it, in words they can act on.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..processing.image_decoding import HEIF_NEEDS_PLUGIN, SapiensIDInputError, load_rgb

# Decoded-size limit for uploads; larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale, others refused.
MAX_IMAGE_PIXELS = 40_000_000


class UploadError(ValueError):
    """An upload that cannot be used, with a message meant for the person who uploaded it."""




def upload_path_and_name(payload: Any) -> tuple[str, str] | None:
    """The server path and the user's file name of an unprocessed Gradio upload (dict or path)."""
    if payload is None:
        return None
    if isinstance(payload, str | os.PathLike):
        return os.fspath(payload), Path(payload).name
    if isinstance(payload, dict) and payload.get("path"):
        return payload["path"], payload.get("orig_name") or Path(payload["path"]).name
    return None


def read_upload(payload: Any, label: str) -> np.ndarray:
    """Decode one upload into an RGB uint8 array, or raise `UploadError` saying what is wrong with it."""
    located = upload_path_and_name(payload)
    if located is None:
        raise UploadError(
            f"{label}: no image given. Upload a photo, take one with the webcam or pick an example."
        )
    path, name = located
    try:
        return load_rgb(path, f"{label} ('{name}')", max_image_pixels=MAX_IMAGE_PIXELS)
    except SapiensIDInputError as error:
        message = str(error)
        if "max_image_pixels" in message:  # a processor option: nothing a visitor of the page can change
            message = re.sub(r"the processor's limit of ([\d.]+) MP \(`max_image_pixels`\)", r"this demo's limit of \1 MP", message)
            message = message.replace("Downscale it first or raise `max_image_pixels`.", "Upload a smaller copy of it.")
            message = message.replace("`max_image_pixels`", "the size limit")
        # Nor can a visitor install a plug-in on the server: a phone's HEIC photo needs another copy.
        message = message.replace(
            HEIF_NEEDS_PLUGIN, "a HEIC / HEIF photo (the format phones save), which this demo cannot read: upload a JPEG or PNG copy of it"
        )
        raise UploadError(message) from error
    except MemoryError as error:
        raise UploadError(f"{label} ('{name}'): the image is too large to decode on this server.") from error


def person_number(value: float | None) -> int | None:
    """A person number typed on the page: None for "best match" (-1, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or int(value) < 0:
        return None
    return int(value)
