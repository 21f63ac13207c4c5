"""What every benchmark loader shares: the column schema, layout errors, split / folder / list-file checks,
file-name matching, clothes numbering, and turning records into a `datasets.Dataset` with
`Dataset.from_generator`.

Images read from a folder are stored by absolute path (decoded lazily by the `Image` feature, nothing
is copied); images inside container files (RecordIO, verification .bin) are stored as encoded bytes.
The `path` column is the image's path relative to the benchmark root (or `<file>#<record>`), as the
official SapiensID validation sets store it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


class UndecodedImages:
    """A dataset's images as the processor reads them, row by row: the encoded bytes when the table holds
    them, else the file path. Undecoded, so the processor's own decoding and error messages apply;
    picklable, so data workers can take it."""

    def __init__(self, dataset: datasets.Dataset):
        self.images = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, row: int) -> bytes | str:
        image = self.images[int(row)]["image"]
        return image["bytes"] if image.get("bytes") is not None else image["path"]


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


def check_known_splits(splits: Sequence[str], known: Iterable[str], name: str) -> None:
    """A `ValueError` naming every requested split that the benchmark `name` does not have."""
    known = list(known)
    unknown = [s for s in splits if s not in known]
    if unknown:
        raise ValueError(f"{name}: unknown split(s) {unknown}; expected some of {known}")


def resolve_splits(root: Path, folders: dict[str, str], splits: Sequence[str] | None, name: str) -> list[str]:
    """Requested splits (each must exist), or every split whose folder exists when `splits` is None."""
    if splits is None:
        present = [s for s, folder in folders.items() if (root / folder).is_dir()]
        if not present:
            expected = ", ".join(folders.values())
            raise DatasetLayoutError(f"{name}: {root} contains none of the expected folders ({expected})")
        return present
    check_known_splits(splits, folders, name)
    for split in splits:
        require_dir(root / folders[split], f"{name} split {split!r}")
    return list(splits)


def images_by_split(
    root: Path, folders: dict[str, str], splits: Sequence[str] | None, name: str, suffixes: Sequence[str]
) -> dict[str, list[Path]]:
    """The image files of each split folder (see `resolve_splits`), in split order, sorted by name."""
    chosen = resolve_splits(root, folders, splits, name)
    return {split: list_images(root / folders[split], suffixes) for split in chosen}


def match_file_name(pattern: re.Pattern[str], name: str, expected: str) -> re.Match[str]:
    """`pattern` matched at the start of a file name; a foreign name is a layout error naming `expected`."""
    match = pattern.match(name)
    if match is None:
        raise DatasetLayoutError(f"{name}: not {expected}")
    return match


def list_file_lines(list_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """`(where, line, fields)` for each non-blank line of a benchmark list file; `where` is `path:line number`
    for error messages, `fields` the line split on whitespace."""
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if line.strip():
            yield f"{list_path}:{number}", line, line.split()


def clothes_labels(clothes_keys: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], int]:
    """Clothes ids keyed by (split, clothes key): the keys numbered in sorted order, train on its own and
    query + gallery together, as the CAL reference (`_process_dir_train` / `_process_dir_test`) does."""
    labels = {}
    for group in (("train",), ("query", "gallery")):
        keys = sorted({key for split in group for key in clothes_keys.get(split, ())})
        labels.update({(split, key): index for split in group for index, key in enumerate(keys)})
    return labels


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


def file_record(
    image: Path, root: Path, pid: int, camid: int = -1, clothes_id: int = -1, role: str = "", **extra: Any
) -> dict:
    """The row of an image file under a benchmark root: stored by absolute path, `path` relative to root."""
    relative = image.relative_to(root).as_posix()
    return record(str(image.resolve()), relative, pid, camid, clothes_id, role, **extra)


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
