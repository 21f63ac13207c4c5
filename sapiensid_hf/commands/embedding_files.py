"""Embedding files written by `sapiensid embed` and read back by `sapiensid search --gallery`.

- ``NAME.npy``: (N, D) float32 L2-normalised embeddings, row i for line i of ``NAME.paths.txt``.
- ``NAME.parquet``: one row per image: ``path``, ``embedding`` (fixed-size list of D float32),
  ``person_found``, ``face_found``, ``num_people``; the schema metadata names the model and says
  whether its weights were trained.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..inference import EmbeddingResult
from .common import CommandError

FORMATS = (".npy", ".parquet")
METADATA_PREFIX = "sapiensid."


def paths_file(npy_path: Path) -> Path:
    """The text file listing the images of an .npy embedding file (gallery.npy -> gallery.paths.txt)."""
    return npy_path.with_name(npy_path.stem + ".paths.txt")


def check_output_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise CommandError(
            f"output {path}: the file name must end in .npy or .parquet (that picks the format)"
        )
    if path.exists() and path.is_dir():
        raise CommandError(f"output {path} is a folder; give a file name ending in .npy or .parquet")


def write_embeddings(
    path: Path, image_paths: Sequence[Path], result: EmbeddingResult, model: str, trained: bool
) -> list[Path]:
    """Write the embeddings (and their image paths) in the format of `path`'s suffix; the files written."""
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [os.fspath(image) for image in image_paths]
    embeddings = np.ascontiguousarray(result.embeddings, dtype=np.float32)
    if path.suffix.lower() == ".npy":
        np.save(path, embeddings)
        listing = paths_file(path)
        listing.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        return [path, listing]
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "path": pa.array(names, type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
            "person_found": pa.array(result.person_found.astype(bool)),
            "face_found": pa.array(result.face_found.astype(bool)),
            "num_people": pa.array(result.num_people.astype(np.int64)),
        }
    )
    metadata = {
        f"{METADATA_PREFIX}model": model,
        f"{METADATA_PREFIX}trained": "true" if trained else "false",
        f"{METADATA_PREFIX}l2_normalized": "true",
    }
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return [path]


def read_embeddings(path: Path) -> tuple[list[str], np.ndarray]:
    """Image paths and (N, D) embeddings of a file written by `write_embeddings`."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CommandError(f"embedding file {path}: no such file")
    if suffix == ".npy":
        listing = paths_file(path)
        if not listing.is_file():
            raise CommandError(
                f"{path}: the image list {listing} written beside it by `sapiensid embed` is missing"
            )
        embeddings = np.load(path, allow_pickle=False)
        names = listing.read_text(encoding="utf-8").splitlines()
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = {"path", "embedding"} - set(table.column_names)
        if missing:
            raise CommandError(
                f"{path}: not a `sapiensid embed` file (no {', '.join(sorted(missing))} column)"
            )
        column = table.column("embedding").combine_chunks()
        if not hasattr(column.type, "list_size"):
            raise CommandError(f"{path}: the embedding column is not a fixed-size list of floats")
        names = table.column("path").to_pylist()
        flat = column.flatten().to_numpy(zero_copy_only=False)
        embeddings = flat.reshape(len(names), column.type.list_size)
    else:
        raise CommandError(f"embedding file {path}: expected .npy or .parquet")
    if embeddings.ndim != 2 or len(embeddings) != len(names):
        raise CommandError(
            f"{path}: {len(names)} image paths for embeddings of shape {embeddings.shape}; the files do not match"
        )
    return names, embeddings.astype(np.float32, copy=False)
