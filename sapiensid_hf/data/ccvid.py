"""CCVID (Gu et al., CVPR 2022), clothes-changing video re-identification, frame by frame.

Layout (`CCVID/`):

    train.txt  query.txt  gallery.txt        lines: `<session>/<pid>_<cam> <pid> <clothes label>`
    session1/001_01/00001.jpg ...            one folder of frames per tracklet

Each frame is one row (the official SapiensID CCVID evaluation is image level); the `tracklet` column
names the tracklet so frames can be averaged per video (`evaluation.aggregate_by_group`). Labels follow
the CAL reference: camid is the number after the `_` of the tracklet name, plus 12 for `session3`;
clothes ids number the `<pid>_<clothes label>` keys in sorted order over query and gallery together
(train on its own). pids are used as written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from .common import (
    DatasetLayoutError,
    check_known_splits,
    clothes_labels,
    features_with,
    file_record,
    list_file_lines,
    list_images,
    records_to_dataset,
    require_dir,
    require_file,
)

SPLIT_LISTS = {"train": "train.txt", "query": "query.txt", "gallery": "gallery.txt"}


def parse_ccvid_list(list_path: Path) -> list[tuple[str, int, str, int]]:
    """(tracklet, pid, clothes key, camid) per line."""
    entries = []
    for where, line, parts in list_file_lines(list_path):
        if len(parts) != 3 or not parts[1].isdigit():
            raise DatasetLayoutError(
                f"{where}: expected '<session>/<pid>_<cam> <pid> <clothes label>', got {line!r}"
            )
        tracklet, pid_text, clothes = parts
        fields = tracklet.split("_")
        if len(fields) < 2 or not fields[1].isdigit():
            raise DatasetLayoutError(f"{where}: tracklet {tracklet!r} should be '<session>/<pid>_<cam>'")
        camid = int(fields[1]) + (12 if tracklet.split("/")[0] == "session3" else 0)
        entries.append((tracklet, int(pid_text), f"{pid_text}_{clothes}", camid))
    return entries


def load_ccvid(
    root: str | os.PathLike,
    splits: Sequence[str] = ("query", "gallery"),
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """CCVID frames as one `datasets.Dataset` with a `tracklet` column; `role` is train / query / gallery."""
    root = require_dir(Path(root), "CCVID root")
    check_known_splits(splits, SPLIT_LISTS, "CCVID")
    parsed = {
        split: parse_ccvid_list(require_file(root / SPLIT_LISTS[split], f"CCVID {split} list"))
        for split in splits
    }
    keys = {split: [clothes for _, _, clothes, _ in entries] for split, entries in parsed.items()}
    labels = clothes_labels(keys)
    rows = []
    for split in splits:
        for tracklet, pid, clothes, camid in parsed[split]:
            frames = list_images(
                require_dir(root / tracklet, f"CCVID tracklet listed in {SPLIT_LISTS[split]}")
            )
            if not frames:
                raise DatasetLayoutError(f"CCVID: tracklet folder {root / tracklet} has no frames")
            for frame in frames:
                clothes_id = labels[(split, clothes)]
                rows.append(file_record(frame, root, pid, camid, clothes_id, split, tracklet=tracklet))
    return records_to_dataset(rows, features_with(tracklet=datasets.Value("string")), cache_dir)
