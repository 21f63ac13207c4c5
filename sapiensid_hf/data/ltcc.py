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
    DatasetLayoutError,
    features_with,
    list_images,
    record,
    records_to_dataset,
    require_dir,
    resolve_splits,
)

SPLIT_FOLDERS = {"train": "train", "query": "query", "gallery": "test"}
_NAME = re.compile(r"^((\d+)_\d+)_c(\d+)")


def parse_ltcc_name(name: str) -> tuple[int, str, int]:
    """(pid, clothes key, camid) from an LTCC file name; camid is 0-based."""
    match = _NAME.match(name)
    if match is None:
        raise DatasetLayoutError(f"{name}: not an LTCC name '<pid>_<clothes>_c<cam>_<frame>.png'")
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
    chosen = resolve_splits(root, SPLIT_FOLDERS, splits, "LTCC")
    parsed = {
        split: [
            (image, *parse_ltcc_name(image.name))
            for image in list_images(root / SPLIT_FOLDERS[split], (".png",))
        ]
        for split in chosen
    }
    # Clothes labels: train on its own, query + gallery together (CAL `_process_dir_train/_test`).
    labels = {}
    for group in (("train",), ("query", "gallery")):
        keys = sorted({clothes for split in group for _, _, clothes, _ in parsed.get(split, [])})
        labels.update({(split, key): index for split in group for index, key in enumerate(keys)})
    rows = [
        record(
            str(image.resolve()),
            image.relative_to(root).as_posix(),
            pid,
            camid,
            labels[(split, clothes)],
            split,
        )
        for split in chosen
        for image, pid, clothes, camid in parsed[split]
    ]
    return records_to_dataset(rows, features_with(), cache_dir)
