"""LTCC (Qian et al., ACCV 2020), long-term clothes-changing re-identification.

Layout (`LTCC_ReID/`):

    train/  query/  test/      (test = gallery)  *.png named `<pid>_<clothes>_c<cam>_<frame>.png`

e.g. `001_1_c11_015848.png`: person 1 in outfit 1 seen by camera 11. As in the CAL reference: the
clothes label is the `<pid>_<clothes>` prefix, numbered by sorted order over the query and gallery
together (train numbered on its own), cameras become 0-based. pids are used as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from .common import (
    clothes_labels,
    features_with,
    file_record,
    images_by_split,
    match_file_name,
    records_to_dataset,
    require_dir,
)

SPLIT_FOLDERS = {"train": "train", "query": "query", "gallery": "test"}
_NAME = re.compile(r"^((\d+)_\d+)_c(\d+)")


def parse_ltcc_name(name: str) -> tuple[int, str, int]:
    """(pid, clothes key, camid) from an LTCC file name; camid is 0-based."""
    match = match_file_name(_NAME, name, "an LTCC name '<pid>_<clothes>_c<cam>_<frame>.png'")
    return int(match.group(2)), match.group(1), int(match.group(3)) - 1


def load_ltcc(
    root: str | os.PathLike,
    splits: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """LTCC as one `datasets.Dataset`; `role` is train / query / gallery, with clothes ids.

    Args:
        root: the `LTCC_ReID` folder.
        splits: any of "train", "query", "gallery"; default: every split whose folder exists.
    """
    root = require_dir(Path(root), "LTCC root")
    parsed = {
        split: [(image, *parse_ltcc_name(image.name)) for image in images]
        for split, images in images_by_split(root, SPLIT_FOLDERS, splits, "LTCC", (".png",)).items()
    }
    keys = {split: [clothes for _, _, clothes, _ in entries] for split, entries in parsed.items()}
    labels = clothes_labels(keys)
    rows = [
        file_record(image, root, pid, camid, labels[(split, clothes)], split)
        for split, entries in parsed.items()
        for image, pid, clothes, camid in entries
    ]
    return records_to_dataset(rows, features_with(), cache_dir)
