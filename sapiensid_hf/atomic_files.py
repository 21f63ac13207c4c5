"""Files that are replaced whole or not at all: a killed write leaves the previous file as it was.

Every file the project writes for later reading (embedding files, caches, a model folder's config.json and
card, detector files) goes through `write_atomically`: the content is written to a hidden file beside the
target, then moved over it in one step (os.replace is atomic on one file system).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(temporary_path)` for a hidden file beside `path`, then move it over `path` in one step;
    on any failure (`write` raising included) the temporary file is removed and `path` is untouched.

    The temporary name ends with `path`'s suffix, for writers that choose a format by it; numpy, which
    adds its suffix to a name without it (case-sensitively), is given a file object instead. The file gets
    the permissions a plain `open` would give it (or the previous file's), not mkstemp's owner-only ones.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_file_beside(path)
    try:
        write(temporary)
        if path.exists():
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    return write_atomically(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomically(path, lambda temporary: Path(temporary).write_bytes(data))


def write_json_atomically(path: str | os.PathLike, value: Any) -> Path:
    return write_text_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def save_npz_atomically(path: str | os.PathLike, **arrays: Any) -> Path:
    """np.savez(path, **arrays), replaced whole."""

    def save(temporary: str) -> None:
        with open(temporary, "wb") as handle:  # a file object: np.savez adds ".npz" to a name without it
            np.savez(handle, **arrays)

    return write_atomically(path, save)


def _new_file_beside(path: Path) -> str:
    """A new hidden file next to `path`, created as `open` would create it (0o666 less the umask, which the
    system applies; mkstemp would make it owner-only, and reading the umask means setting it, which races
    with other threads)."""
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial{path.suffix}"
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return str(temporary)
    raise FileExistsError(f"{path.parent}: no free temporary name beside {path.name}")


__all__ = ["save_npz_atomically", "write_atomically", "write_bytes_atomically", "write_json_atomically", "write_text_atomically"]
