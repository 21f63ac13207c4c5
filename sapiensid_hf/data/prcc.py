"""PRCC (Yang et al., TPAMI 2019), clothes-changing re-identification with three cameras.

Layout (`prcc/rgb/`, the root may be `prcc/` or `prcc/rgb/`):

    train/<pid>/{A,B,C}_*.jpg         val/<pid>/...                         -> roles "train", "val"
    test/A/<pid>/*.jpg   -> "gallery"      (camera A, clothes 1)
    test/B/<pid>/*.jpg   -> "query_same"   (camera B, same clothes as A)
    test/C/<pid>/*.jpg   -> "query_diff"   (camera C, other clothes)

Labels follow the CAL reference: camid A/B/C = 0/1/2; in the test split the clothes id is
`2 * rank(pid)` for A and B and `2 * rank(pid) + 1` for C, ranking the pids of `test/A`; in train / val
camera A and B images share one outfit per person and camera C images another, numbered by sorted order.
pids are used as written (folder names).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from .common import (
    DatasetLayoutError,
    check_known_splits,
    features_with,
    file_record,
    list_images,
    records_to_dataset,
    require_dir,
)

CAMERAS = {"A": 0, "B": 1, "C": 2}
TEST_ROLES = {"A": "gallery", "B": "query_same", "C": "query_diff"}
SPLITS = ("train", "val", "query_same", "query_diff", "gallery")


def _person_folders(folder: Path) -> list[tuple[int, Path]]:
    people = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not child.name.isdigit():
            raise DatasetLayoutError(f"PRCC: {child} should be a person folder named by its numeric id")
        people.append((int(child.name), child))
    if not people:
        raise DatasetLayoutError(f"PRCC: {folder} contains no person folders")
    return people


def _test_rows(rgb: Path, roles: Sequence[str]) -> list[dict]:
    test = require_dir(rgb / "test", "PRCC test split")
    for cam in CAMERAS:
        require_dir(test / cam, f"PRCC test camera {cam}")
    gallery_pids = sorted(pid for pid, _ in _person_folders(test / "A"))
    rank = {pid: index for index, pid in enumerate(gallery_pids)}
    rows = []
    for cam, role in TEST_ROLES.items():
        if role not in roles:
            continue
        for pid, person in _person_folders(test / cam):
            if pid not in rank:
                raise DatasetLayoutError(
                    f"PRCC: {person} has no gallery counterpart {test / 'A' / person.name}"
                )
            clothes = 2 * rank[pid] + (1 if cam == "C" else 0)
            for image in list_images(person, (".jpg",)):
                rows.append(file_record(image, rgb, pid, CAMERAS[cam], clothes, role))
    return rows


def _train_rows(rgb: Path, split: str) -> list[dict]:
    folder = require_dir(rgb / split, f"PRCC {split} split")
    images = []
    for pid, person in _person_folders(folder):
        for image in list_images(person, (".jpg",)):
            cam = image.name[0]
            if cam not in CAMERAS:
                raise DatasetLayoutError(f"PRCC: {image} should start with its camera letter A, B or C")
            # Cameras A and B saw the same outfit; C another one (CAL `_process_dir_train`).
            images.append((image, pid, cam, person.name if cam in "AB" else person.name + "C"))
    outfits = {key: index for index, key in enumerate(sorted({outfit for *_, outfit in images}))}
    return [
        file_record(image, rgb, pid, CAMERAS[cam], outfits[outfit], split) for image, pid, cam, outfit in images
    ]


def load_prcc(
    root: str | os.PathLike,
    splits: Sequence[str] = ("query_same", "query_diff", "gallery"),
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """PRCC as one `datasets.Dataset`.

    Args:
        root: `prcc/` (containing `rgb/`) or `prcc/rgb/`.
        splits: any of "train", "val", "query_same", "query_diff", "gallery".
    """
    root = require_dir(Path(root), "PRCC root")
    rgb = root / "rgb" if (root / "rgb").is_dir() else root
    check_known_splits(splits, SPLITS, "PRCC")
    rows = []
    for split in ("train", "val"):
        if split in splits:
            rows.extend(_train_rows(rgb, split))
    test_roles = [s for s in splits if s in TEST_ROLES.values()]
    if test_roles:
        rows.extend(_test_rows(rgb, test_roles))
    return records_to_dataset(rows, features_with(), cache_dir)
