"""What every benchmark loader shares: the column schema, layout errors, and turning records into a
`datasets.Dataset` with `Dataset.from_generator`.

Images read from a folder are stored by absolute path (decoded lazily by the `Image` feature, nothing
is copied); images inside container files (RecordIO, verification .bin) are stored as encoded bytes.
The `path` column is the image's path relative to the benchmark root (or `<file>#<record>`), as the
official SapiensID validation sets store it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

BASE_COLUMNS = {
    "image": datasets.Image(),
    "path": datasets.Value("string"),
    "pid": datasets.Value("int64"),
    "camid": datasets.Value("int64"),
    "clothes_id": datasets.Value("int64"),
    "role": datasets.Value("string"),
}


class DatasetLayoutError(ValueError):
    """A benchmark folder or file does not have the layout its loader expects."""


def features_with(**extra: datasets.features.features.FeatureType) -> datasets.Features:
    """The base columns plus loader-specific ones."""
    return datasets.Features({**BASE_COLUMNS, **extra})


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        hint = "it does not exist" if not path.exists() else "it is not a folder"
        raise DatasetLayoutError(f"{what}: expected the folder {path}, but {hint}")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        hint = "it does not exist" if not path.exists() else "it is not a file"
        raise DatasetLayoutError(f"{what}: expected the file {path}, but {hint}")
    return path


def resolve_splits(root: Path, folders: dict[str, str], splits: Sequence[str] | None, name: str) -> list[str]:
    """Requested splits (each must exist), or every split whose folder exists when `splits` is None."""
    if splits is None:
        present = [s for s, folder in folders.items() if (root / folder).is_dir()]
        if not present:
            expected = ", ".join(folders.values())
            raise DatasetLayoutError(f"{name}: {root} contains none of the expected folders ({expected})")
        return present
    unknown = [s for s in splits if s not in folders]
    if unknown:
        raise ValueError(f"{name}: unknown split(s) {unknown}; expected some of {list(folders)}")
    for split in splits:
        require_dir(root / folders[split], f"{name} split {split!r}")
    return list(splits)


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (other files such as Thumbs.db ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def record(
    image: str | bytes,
    path: str,
    pid: int,
    camid: int = -1,
    clothes_id: int = -1,
    role: str = "",
    **extra: Any,
) -> dict:
    """One dataset row; `image` is an absolute file path or encoded image bytes."""
    return {
        "image": image,
        "path": path,
        "pid": int(pid),
        "camid": int(camid),
        "clothes_id": int(clothes_id),
        "role": role,
        **extra,
    }


def records_to_dataset(
    records: list[dict], features: datasets.Features, cache_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """`Dataset.from_generator` over file-backed records, fingerprinted by their content so a changed
    folder never reuses a stale cache."""
    if not records:
        raise DatasetLayoutError("no images found: the selected splits are empty")
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    return datasets.Dataset.from_generator(
        _yield_records,
        features=features,
        gen_kwargs={"records": records},
        cache_dir=None if cache_dir is None else str(cache_dir),
        fingerprint=digest[:32],
    )


def generator_to_dataset(
    generator: Callable[..., Iterator[dict]],
    gen_kwargs: dict,
    fingerprint_parts: Sequence[Any],
    features: datasets.Features,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """`Dataset.from_generator` for loaders that read a container file inside the generator."""
    digest = hashlib.sha256(json.dumps([str(p) for p in fingerprint_parts]).encode()).hexdigest()
    return datasets.Dataset.from_generator(
        generator,
        features=features,
        gen_kwargs=gen_kwargs,
        cache_dir=None if cache_dir is None else str(cache_dir),
        fingerprint=digest[:32],
    )


def file_signature(path: Path) -> tuple[str, int, int]:
    """Identity of a file's content for cache fingerprints: path, size, modification time."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _yield_records(records: list[dict]) -> Iterator[dict]:
    yield from records
