"""Face (or body) data stored one folder per identity: `root/<identity>/<image>`.

The layout of WebFace / CASIA style extracted training sets and of torchvision's `ImageFolder`.
Identities are numbered 0..N-1 in sorted folder-name order (the `pid` column); the folder name is kept
in the `identity` column.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from .common import (
    DatasetLayoutError,
    features_with,
    file_record,
    list_images,
    records_to_dataset,
    require_dir,
)


def load_image_folder(
    root: str | os.PathLike,
    role: str = "train",
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Every image under `root/<identity>/`, with `pid` = rank of the identity folder name."""
    root = require_dir(Path(root), "identity-folder root")
    identities = sorted(p for p in root.iterdir() if p.is_dir())
    if not identities:
        raise DatasetLayoutError(f"{root}: expected one sub-folder per identity, found none")
    rows = []
    empty = []
    for pid, folder in enumerate(identities):
        images = list_images(folder)
        if not images:
            empty.append(folder.name)
        for image in images:
            rows.append(file_record(image, root, pid, -1, -1, role, identity=folder.name))
    if empty:
        raise DatasetLayoutError(
            f"{root}: {len(empty)} identity folder(s) contain no images (e.g. {', '.join(empty[:5])}); "
            "remove them so identity numbers stay meaningful"
        )
    return records_to_dataset(rows, features_with(identity=datasets.Value("string")), cache_dir)
