"""MSMT17 (Wei et al., CVPR 2018), versions V1 and V2.

Layout:

    MSMT17_V1/  train/ test/              list_train.txt list_val.txt list_query.txt list_gallery.txt
    MSMT17_V2/  mask_train_v2/ mask_test_v2/  (same list files)

Each list line is `<relative image path> <pid>`, e.g. `0000/0000_000_01_0303morning_0015_0.jpg 0`;
the camera is the third `_`-separated field of the path (1-based, stored 0-based as torchreid does).
Train and val images live in the train folder, query and gallery in the test folder. pids are used as
written (no relabelling).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from .common import (
    DatasetLayoutError,
    features_with,
    list_file_lines,
    record,
    records_to_dataset,
    require_dir,
    require_file,
)

VERSION_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
SPLIT_LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}


def detect_msmt17_version(root: Path) -> str:
    for version, (train_dir, test_dir) in VERSION_FOLDERS.items():
        if (root / test_dir).is_dir() or (root / train_dir).is_dir():
            return version
    raise DatasetLayoutError(
        f"MSMT17: {root} has neither V1 folders (train/, test/) nor V2 folders (mask_train_v2/, mask_test_v2/)"
    )


def parse_msmt17_list(list_path: Path, image_root: Path) -> list[tuple[Path, str, int, int]]:
    """(image file, relative path, pid, camid) per line of a MSMT17 list file."""
    entries = []
    for where, line, parts in list_file_lines(list_path):
        if len(parts) != 2:
            raise DatasetLayoutError(f"{where}: expected '<image path> <pid>', got {line!r}")
        relative, pid_text = parts
        fields = Path(relative).name.split("_")
        if not pid_text.lstrip("-").isdigit() or len(fields) < 3 or not fields[2].isdigit():
            raise DatasetLayoutError(
                f"{where}: expected '<pid>/<pid>_<idx>_<cam>_<...>.jpg <pid>', got {line!r}"
            )
        image = image_root / relative
        if not image.is_file():
            raise DatasetLayoutError(f"{where}: image {image} does not exist")
        entries.append((image, relative, int(pid_text), int(fields[2]) - 1))
    return entries


def load_msmt17(
    root: str | os.PathLike,
    splits: Sequence[str] = ("train", "query", "gallery"),
    version: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """MSMT17 V1 or V2 as one `datasets.Dataset`; `role` is train / val / query / gallery.

    Args:
        root: the extracted folder (contains the list files).
        splits: any of "train", "val", "query", "gallery" (val is not part of training by default, as
            in torchreid; add it for the "combine all" setting).
        version: "V1" or "V2"; detected from the folders when None.
    """
    root = require_dir(Path(root), "MSMT17 root")
    version = version or detect_msmt17_version(root)
    if version not in VERSION_FOLDERS:
        raise ValueError(f"MSMT17 version must be 'V1' or 'V2', got {version!r}")
    train_dir, test_dir = VERSION_FOLDERS[version]
    rows = []
    for split in splits:
        if split not in SPLIT_LISTS:
            raise ValueError(f"MSMT17: unknown split {split!r}; expected some of {list(SPLIT_LISTS)}")
        list_path = require_file(root / SPLIT_LISTS[split], f"MSMT17 {split} list")
        image_root = require_dir(
            root / (train_dir if split in ("train", "val") else test_dir), f"MSMT17 {version} {split} images"
        )
        for image, relative, pid, camid in parse_msmt17_list(list_path, image_root):
            rows.append(record(str(image.resolve()), f"{image_root.name}/{relative}", pid, camid, -1, split))
    return records_to_dataset(rows, features_with(), cache_dir)
