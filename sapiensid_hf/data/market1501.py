"""Market-1501 (Zheng et al., ICCV 2015).

Layout (the official zip, e.g. `Market-1501-v15.09.15/`):

    bounding_box_train/  0002_c1s1_000451_03.jpg ...   -> role "train"
    query/                                              -> role "query"
    bounding_box_test/                                  -> role "gallery"

File names are `<pid>_c<cam>s<seq>_<frame>_<box>.jpg`. As in torchreid: pid -1 ("junk" boxes) is
dropped, pid 0 ("distractor" boxes, `0000_...`) is kept as identity 0, cameras 1..6 become camid 0..5.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from .common import (
    DatasetLayoutError,
    features_with,
    file_record,
    images_by_split,
    match_file_name,
    records_to_dataset,
    require_dir,
)

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_NAME = re.compile(r"^([-\d]+)_c(\d)")


def parse_market_name(name: str, max_pid: int = 1501, num_cameras: int = 6) -> tuple[int, int]:
    """(pid, camid) from a Market-1501 style file name; camid is 0-based. Raises on a foreign name."""
    match = match_file_name(_NAME, name, "a Market-1501 style name '<pid>_c<cam>s<seq>_<frame>_<box>.jpg'")
    pid, cam = int(match.group(1)), int(match.group(2))
    if pid != -1 and not 0 <= pid <= max_pid:
        raise DatasetLayoutError(f"{name}: person id {pid} is outside 0..{max_pid}")
    if not 1 <= cam <= num_cameras:
        raise DatasetLayoutError(f"{name}: camera {cam} is outside 1..{num_cameras}")
    return pid, cam - 1


def load_market1501(
    root: str | os.PathLike,
    splits: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Market-1501 as one `datasets.Dataset`; `role` is train / query / gallery.

    Args:
        root: the extracted dataset folder (contains `query/`, `bounding_box_test/`, ...).
        splits: any of "train", "query", "gallery"; default: every split whose folder exists.
        cache_dir: `datasets` cache folder (default: the library default).
    """
    root = require_dir(Path(root), "Market-1501 root")
    rows = []
    for split, images in images_by_split(root, SPLIT_FOLDERS, splits, "Market-1501", (".jpg",)).items():
        for image in images:
            pid, camid = parse_market_name(image.name)
            if pid == -1:
                continue  # junk boxes are not part of any protocol
            rows.append(file_record(image, root, pid, camid, -1, split))
    return records_to_dataset(rows, features_with(), cache_dir)
