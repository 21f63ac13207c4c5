"""The folder layout the training caches share (keypoints, teacher targets): one `.npy` per array,
`unreadable.json` (the photos that could not be read, with the reason), and `meta.json` written last, so
its presence marks a complete cache."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Bookkeeping written beside a cache's own meta fields, and dropped again on reading.
_BOOKKEEPING = ("version", "num_rows")


def write_cache_folder(
    folder: str | os.PathLike, arrays: dict[str, np.ndarray], unreadable: list[dict[str, Any]], meta: dict[str, Any], version: int
) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in arrays.items():
        np.save(folder / f"{name}.npy", values)
    (folder / "unreadable.json").write_text(json.dumps(unreadable, indent=1) + "\n", encoding="utf-8")
    rows = len(next(iter(arrays.values())))
    record = {"version": version, "num_rows": rows, **meta}
    (folder / "meta.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_cache_meta(folder: str | os.PathLike, what: str) -> dict[str, Any]:
    """The meta record of a complete cache (FileNotFoundError naming `what` when there is none)."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no complete {what} (meta.json missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_cache_folder(
    folder: str | os.PathLike, names: Sequence[str], meta: dict[str, Any]
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], dict[str, Any]]:
    """(arrays, unreadable, meta without the bookkeeping) of a cache whose meta was read and checked."""
    folder = Path(folder)
    arrays = {name: np.load(folder / f"{name}.npy") for name in names}
    unreadable = json.loads((folder / "unreadable.json").read_text(encoding="utf-8"))
    return arrays, unreadable, {key: value for key, value in meta.items() if key not in _BOOKKEEPING}


__all__ = ["read_cache_folder", "read_cache_meta", "write_cache_folder"]
