"""The on-disk form of a photo index (`sapiensid index`), written so that a killed write loses nothing.

An index is a folder (by convention ``NAME.sidx``):

    NAME.sidx/CURRENT            the name of the complete version in use, replaced in one step
    NAME.sidx/LOCK               held (flock) by the one process that writes
    NAME.sidx/v000003/manifest.json   model label, weights fingerprint, flip, dimension, index type, rows
    NAME.sidx/v000003/rows.parquet    path, content_hash, person_index, box, person_found, face_found, embedding
    NAME.sidx/v000003/index.faiss     the faiss index over the rows' embeddings, row i = faiss id i

A writer builds the next version in a new folder, syncs it, and only then points CURRENT at it; older
versions are deleted afterwards. A process killed at any moment leaves CURRENT naming a complete version,
so the index stays searchable as it was. Readers read CURRENT once and use that version only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sapiensid-photo-index"
FORMAT_VERSION = 1
CURRENT, LOCK = "CURRENT", "LOCK"
MANIFEST, ROWS, FAISS_FILE = "manifest.json", "rows.parquet", "index.faiss"


class PhotoIndexError(ValueError):
    """An index folder that cannot be used: missing, corrupt, of another model, or busy. The message names
    the folder and the problem."""


@dataclass
class Manifest:
    model: str
    weights_fingerprint: str
    flip: bool
    dimension: int
    index_type: str  # a faiss factory string, e.g. "Flat", "IVF256,Flat", "HNSW32"
    per_person: bool  # rows are people (--all-people) or photos
    rows: int
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    # Per-person rows: the cuts each person's embedding averages (people_embedding.py); None for photo rows
    # and for indexes built before the cuts were recorded (one cut a person).
    person_frame_scales: list[float] | None = None
    # Per-person rows: how their faces were framed (processing/people_in_image.PERSON_FRAMING); None for photo
    # rows and for indexes built before faces were framed around OpenCV's face box.
    person_framing: str | None = None
    # Photo rows: the share of the photo below which a person's frame was cut from it first
    # (small_person_framing.py); None for per-person rows and for indexes built before 2026-12-04.
    small_person_share: float | None = None

    def people_cuts(self) -> tuple[float, ...]:
        """The cuts its people are embedded from, which an add must use too: as recorded, or one cut (the
        frame) for an index built before the cuts were recorded."""
        return tuple(self.person_frame_scales) if self.person_frame_scales is not None else (1.0,)

    def add_rules(self, where: str) -> dict[str, Any]:
        """How `index add` embeds new photos so that every row of the index follows one rule (`embed_rows`'
        frame_scales, face_boxes, frame_small_people): the index's recorded rules, or those of its time for
        an index built before they were recorded. A rule this version cannot reproduce is refused, naming
        `where`: an index of mixed rows would rank them unevenly, and nothing would say so."""
        from ..processing.people_in_image import PERSON_FRAMING
        from ..small_person_framing import SMALL_PERSON_SHARE

        if self.per_person and self.person_framing not in (None, PERSON_FRAMING):
            raise PhotoIndexError(f"{where}: its faces were framed by a rule this version does not know "
                                  f"({self.person_framing!r}); build the index again to add photos")  # fmt: skip
        share = self.small_person_share
        if not self.per_person and share is not None and share != SMALL_PERSON_SHARE:
            raise PhotoIndexError(f"{where}: its people were cut from their photos below {share:g} of the photo, "
                                  f"this version cuts below {SMALL_PERSON_SHARE:g}; build the index again to add photos")  # fmt: skip
        return {
            "frame_scales": self.people_cuts(),
            "face_boxes": self.person_framing is not None,  # built before the face box framed faces: keypoints
            "frame_small_people": share is not None,  # built before small people were cut: photos whole
        }


@dataclass
class Rows:
    """The index's rows, in faiss id order."""

    paths: list[str]
    content_hashes: list[str]
    person_index: np.ndarray  # (N,) int64, -1 for a per-photo row
    boxes: np.ndarray  # (N, 4) float32 in the photo's pixels, -1 when unknown
    person_found: np.ndarray  # (N,) bool
    face_found: np.ndarray  # (N,) bool
    embeddings: np.ndarray  # (N, D) float32, L2-normalised

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, keep: np.ndarray) -> Rows:
        keep = np.asarray(keep)
        pick = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Rows(
            [self.paths[i] for i in pick], [self.content_hashes[i] for i in pick], self.person_index[pick],
            self.boxes[pick], self.person_found[pick], self.face_found[pick], self.embeddings[pick],
        )  # fmt: skip

    @classmethod
    def concatenate(cls, *parts: Rows) -> Rows:
        """One Rows of `parts` in order (at least one), copied once: join a loop's parts at its end."""
        return cls(
            [path for part in parts for path in part.paths], [digest for part in parts for digest in part.content_hashes],
            np.concatenate([part.person_index for part in parts]), np.concatenate([part.boxes for part in parts]),
            np.concatenate([part.person_found for part in parts]), np.concatenate([part.face_found for part in parts]),
            np.concatenate([part.embeddings for part in parts]).astype(np.float32),
        )  # fmt: skip

    @classmethod
    def empty(cls, dimension: int) -> Rows:
        return cls([], [], np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, bool), np.zeros(0, bool),
                   np.zeros((0, dimension), np.float32))  # fmt: skip


@contextmanager
def writer_lock(folder: Path) -> Iterator[None]:
    """Hold the index's write lock; a second writer is refused at once, naming the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PhotoIndexError(f"index {folder}: another process is writing it; try again when it has finished") from None
        yield
    finally:
        handle.close()  # releases the lock


def current_version(folder: Path) -> Path:
    """The complete version CURRENT names, or a clear error."""
    if not folder.is_dir():
        raise PhotoIndexError(f"index {folder}: no such folder (make one with `sapiensid index build`)")
    pointer = folder / CURRENT
    if not pointer.is_file():
        raise PhotoIndexError(f"index {folder}: not a photo index (no {CURRENT} file)")
    version = folder / pointer.read_text(encoding="utf-8").strip()
    for name in (MANIFEST, ROWS, FAISS_FILE):
        if not (version / name).is_file():
            raise PhotoIndexError(f"index {folder}: {version.name}/{name} is missing; the index is damaged")
    return version


def read_manifest(version: Path) -> Manifest:
    try:
        data = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except (json.JSONDecodeError, TypeError) as error:
        raise PhotoIndexError(f"{version / MANIFEST}: not a photo-index manifest ({error})") from error
    return checked_manifest(manifest, str(version / MANIFEST))


def checked_manifest(manifest: Manifest, where: str) -> Manifest:
    """The manifest, refused naming `where` when its cuts are not a list of scales or its format is newer."""
    scales = manifest.person_frame_scales
    if scales is not None and not (isinstance(scales, list) and all(isinstance(scale, int | float) for scale in scales)):
        raise PhotoIndexError(f"{where}: person_frame_scales is not a list of scales ({scales!r})")
    if manifest.person_framing is not None and not isinstance(manifest.person_framing, str):
        raise PhotoIndexError(f"{where}: person_framing is not the name of a framing rule ({manifest.person_framing!r})")
    share = manifest.small_person_share
    if share is not None and not (isinstance(share, int | float) and not isinstance(share, bool) and 0.0 <= share <= 1.0):
        raise PhotoIndexError(f"{where}: small_person_share is not a share of the photo in [0, 1] ({share!r})")
    if manifest.format != FORMAT or manifest.format_version > FORMAT_VERSION:
        raise PhotoIndexError(f"{where}: format {manifest.format} v{manifest.format_version} is not readable here")
    return manifest


def read_rows(version: Path, manifest: Manifest) -> Rows:
    where = version / ROWS
    try:
        return _read_rows_in_batches(where, manifest)
    except PhotoIndexError:
        raise
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise PhotoIndexError(f"{where}: cannot be read ({error}); the index is damaged") from error


# Rows converted at a time: the decoded batch stays small beside the arrays it is copied into.
READ_BATCH_ROWS = 32_768


def _read_rows_in_batches(where: Path, manifest: Manifest) -> Rows:
    """The rows straight into preallocated numpy arrays, a batch at a time (no Python object per value: a
    million 512-d rows are 2 GB of floats, which a list of Python floats made ~30 GB of)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(where)
    count, width = parquet.metadata.num_rows, manifest.dimension
    if count != manifest.rows:
        raise PhotoIndexError(f"{where}: {count} rows, the manifest says {manifest.rows}; the index is damaged")
    embeddings, boxes = np.empty((count, width), np.float32), np.empty((count, 4), np.float32)
    person_index, person_found, face_found = np.empty(count, np.int64), np.empty(count, bool), np.empty(count, bool)
    paths: list[str] = []
    hashes: list[str] = []
    start = 0
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
        stop = start + batch.num_rows
        embeddings[start:stop] = _fixed_width(batch.column("embedding"), where, "embedding", width)
        boxes[start:stop] = _fixed_width(batch.column("box"), where, "box", 4)
        person_index[start:stop] = batch.column("person_index").to_numpy()
        person_found[start:stop] = batch.column("person_found").to_numpy(zero_copy_only=False)
        face_found[start:stop] = batch.column("face_found").to_numpy(zero_copy_only=False)
        paths += batch.column("path").to_pylist()
        hashes += batch.column("content_hash").to_pylist()
        start = stop
    return Rows(paths, hashes, person_index, boxes, person_found, face_found, embeddings)


def _fixed_width(column: Any, where: Path, name: str, width: int) -> np.ndarray:
    """A list column's values as (rows, width) float32; a missing value or another width is damage."""
    import pyarrow.compute as pc

    values = pc.list_flatten(column)
    if column.null_count or values.null_count or len(values) != width * len(column):
        found = len(values) // max(len(column), 1)
        raise PhotoIndexError(
            f"{where}: the {name} column holds {found} values a row (some missing: {bool(column.null_count or values.null_count)}), "
            f"not {width}; the index is damaged"
        )
    return values.to_numpy(zero_copy_only=False).reshape(len(column), width)


def write_version(folder: Path, manifest: Manifest, rows: Rows, faiss_index) -> Path:
    """Write the next version completely, then point CURRENT at it (the caller holds `writer_lock`)."""
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    existing = sorted(path.name for path in folder.glob("v[0-9]*") if path.is_dir())
    number = int(existing[-1][1:]) + 1 if existing else 1
    version = folder / f"v{number:06d}"
    version.mkdir()
    flat = pa.array(rows.embeddings.reshape(-1), type=pa.float32())
    table = pa.table({
        "path": pa.array(rows.paths, type=pa.string()),
        "content_hash": pa.array(rows.content_hashes, type=pa.string()),
        "person_index": pa.array(rows.person_index.astype(np.int64)),
        "box": pa.FixedSizeListArray.from_arrays(pa.array(rows.boxes.reshape(-1), type=pa.float32()), 4),
        "person_found": pa.array(rows.person_found.astype(bool)),
        "face_found": pa.array(rows.face_found.astype(bool)),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, manifest.dimension),
    })  # fmt: skip
    pq.write_table(table, version / ROWS)
    faiss.write_index(faiss_index, str(version / FAISS_FILE))
    (version / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    for name in (ROWS, FAISS_FILE, MANIFEST):
        _fsync(version / name)
    _fsync(version)
    pointer = folder / (CURRENT + ".partial")
    pointer.write_text(version.name + "\n", encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, folder / CURRENT)
    _fsync(folder)
    for old in existing:  # only once CURRENT names the new version
        shutil.rmtree(folder / old, ignore_errors=True)
    return version


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["PhotoIndexError", "Manifest", "Rows", "current_version", "read_manifest", "read_rows", "write_version", "writer_lock"]
