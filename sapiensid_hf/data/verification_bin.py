"""insightface verification pair files (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, ...).

A `.bin` is a pickle of `(images, is_same)`: `images` holds 2N encoded images (pair i = images 2i and
2i+1) and `is_same` N booleans. Pickles can run code when loaded, so this reader only accepts the
plain types such a file holds (lists, tuples, bytes, bools, numpy arrays) and refuses anything else.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np

from .common import (
    DatasetLayoutError,
    features_with,
    file_signature,
    generator_to_dataset,
    record,
    require_file,
)

_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "bool_"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _PairFileUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DatasetLayoutError(
            f"refusing to load {module}.{name}: a verification .bin holds only images and booleans"
        )


def read_verification_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """(2N encoded images, N is_same booleans) from a verification `.bin`."""
    path = require_file(Path(path), "verification pair file")
    data = path.read_bytes()
    try:
        try:
            content = _PairFileUnpickler(io.BytesIO(data)).load()
        except UnicodeDecodeError:  # written by Python 2: byte strings
            content = _PairFileUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetLayoutError as error:
        raise DatasetLayoutError(f"{path}: {error}") from None
    except Exception as error:
        raise DatasetLayoutError(f"{path}: not a readable pickle ({type(error).__name__}: {error})") from None
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise DatasetLayoutError(
            f"{path}: expected a pickled (images, is_same) pair, got {type(content).__name__}"
        )
    images, is_same = content
    is_same = np.asarray(is_same, dtype=bool).reshape(-1)
    if len(images) != 2 * len(is_same):
        raise DatasetLayoutError(
            f"{path}: {len(images)} images for {len(is_same)} pairs; expected exactly 2 per pair"
        )
    return [_as_bytes(image, path, i) for i, image in enumerate(images)], is_same


def _as_bytes(image, path: Path, index: int) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 1:
        return image.tobytes()
    raise DatasetLayoutError(
        f"{path}: image {index} is a {type(image).__name__}, expected encoded image bytes"
    )


def _generate(path: str) -> Iterator[dict]:
    images, is_same = read_verification_bin(path)
    name = Path(path).name
    for index, image in enumerate(images):
        yield record(
            image,
            f"{name}#{index}",
            -1,
            -1,
            -1,
            "pair",
            pair_index=index // 2,
            is_same=bool(is_same[index // 2]),
        )


def load_verification_bin(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """A verification `.bin` as a `datasets.Dataset`: one row per image, with `pair_index` and `is_same`.

    Rows 2i and 2i+1 form pair i, in file order; `pid` is -1 (the files carry no identities).
    """
    file = require_file(Path(path), "verification pair file")
    read_verification_bin(file)  # validate before building, so errors name the file
    return generator_to_dataset(
        _generate,
        {"path": str(file)},
        file_signature(file),
        features_with(pair_index=datasets.Value("int64"), is_same=datasets.Value("bool")),
        cache_dir,
    )
