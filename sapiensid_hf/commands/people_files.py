"""The file `sapiensid embed --all-people` writes: one parquet row per person found, not per photo.

Columns: ``path``, ``person_index`` (0 = the photo's most prominent person), ``box`` (x0, y0, x1, y1 in
the photo's pixels), ``score``, ``body_found``, ``face_found``, ``keypoint_source`` ("redetected" /
"given", see people_embedding.py), ``embedding`` (D float32, L2-normalised). The schema metadata is an
image file's (model, weights fingerprint, trained, flip) plus ``sapiensid.rows = "people"``, the cuts
each person's embedding averages (``sapiensid.person_frame_scales``, JSON), how faces were framed
(``sapiensid.person_framing``) and, per photo, what was left out. A photo with nobody in it has no row. The file is written next to its final
name and moved there in one step, so a killed write leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_files import write_atomically
from ..people_embedding import PeopleEmbeddings
from ..people_search import GalleryPerson, PeopleGallery
from ..processing.people_in_image import PERSON_FRAME_SCALES, PERSON_FRAMING
from .common import CommandError

ROWS_KEY = "sapiensid.rows"
PEOPLE_ROWS = "people"


def write_people_parquet(
    path: Path,
    image_paths: Sequence[Path],
    people: PeopleEmbeddings,
    model: str,
    trained: bool,
    fingerprint: str,
    flip: bool = True,
    frame_scales: Sequence[float] = PERSON_FRAME_SCALES,
) -> Path:
    """Write one row per person of `people` (whose image indices point into `image_paths`); `frame_scales`:
    the cuts each person's embedding averages (`embed_people`'s), recorded like `flip`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() != ".parquet":
        raise CommandError(f"output {path}: --all-people writes one row per person with its box: give FILE.parquet")
    rows = people.rows
    dimension = people.embeddings.shape[1] if rows else 0
    flat = pa.array(people.embeddings.reshape(-1) if rows else np.zeros(0, np.float32), type=pa.float32())
    boxes = np.asarray([row.person.box for row in rows], dtype=np.float32).reshape(-1)
    table = pa.table(
        {
            "path": pa.array([os.fspath(image_paths[row.image_index]) for row in rows], type=pa.string()),
            "person_index": pa.array([row.person_index for row in rows], type=pa.int64()),
            "box": pa.FixedSizeListArray.from_arrays(pa.array(boxes, type=pa.float32()), 4),
            "score": pa.array([row.person.score for row in rows], type=pa.float32()),
            "body_found": pa.array([row.person.body_found for row in rows], type=pa.bool_()),
            "face_found": pa.array([row.person.face_found for row in rows], type=pa.bool_()),
            "keypoint_source": pa.array([row.keypoint_source for row in rows], type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, max(dimension, 1)) if rows else pa.array(
                [], type=pa.list_(pa.float32(), 1)
            ),
        }
    )
    photos = {
        os.fspath(image_paths[index]): found.summary() for index, found in enumerate(people.images)
    }
    metadata = {
        ROWS_KEY: PEOPLE_ROWS,
        "sapiensid.model": model,
        "sapiensid.weights_fingerprint": fingerprint,
        "sapiensid.trained": "true" if trained else "false",
        "sapiensid.l2_normalized": "true",
        "sapiensid.flip": "true" if flip else "false",
        "sapiensid.person_frame_scales": json.dumps([float(scale) for scale in frame_scales]),
        "sapiensid.person_framing": PERSON_FRAMING,
        "sapiensid.photos": json.dumps(photos),
    }
    write_atomically(path, lambda temporary: pq.write_table(table.replace_schema_metadata(metadata), temporary))
    return path


def describe_cuts(frame_scales: Sequence[float] | None) -> str:
    """How the people of a file or an index were cut, for the notes that say it differs from the queries."""
    if frame_scales is None:
        return "one cut a person (written before the cuts were recorded)"
    return f"cuts at {', '.join(f'{scale:g}' for scale in frame_scales)} of the frame"


def box_text(box: Sequence[float]) -> str:
    """A person's box as the tables and messages show it: "(x0, y0, x1, y1)" in whole pixels."""
    return "(" + ", ".join(f"{round(value)}" for value in box) + ")"


def describe_framing(framing: str | None) -> str:
    """How the faces of a file's or an index's people were framed (processing/people_in_image.py)."""
    if framing == PERSON_FRAMING:
        return "faces framed around OpenCV's face box"
    return "faces framed from their keypoints (made before faces were framed around OpenCV's face box)"


def embedded_otherwise_note(holder: str, frame_scales: Sequence[float] | None, framing: str | None, remedy: str) -> str | None:
    """The note `search` prints when the people of `holder` (a file, an index) were embedded otherwise than
    people are now, or None: it still searches, a little less well."""
    differences = []
    if frame_scales is None or tuple(frame_scales) != PERSON_FRAME_SCALES:
        differences.append(f"from {describe_cuts(frame_scales)}, the queries from {describe_cuts(PERSON_FRAME_SCALES)}")
    if framing != PERSON_FRAMING:
        differences.append(f"with {describe_framing(framing)}")
    if not differences:
        return None
    return f"note: {holder} holds people embedded {'; and '.join(differences)}: {remedy} for the best ranking"


@dataclass
class SavedPeople:
    """A people file read back: the gallery and what is known of the model that embedded it."""

    gallery: PeopleGallery
    model: str | None
    fingerprint: str | None
    flip: bool | None
    frame_scales: tuple[float, ...] | None = None  # None: written before the cuts were recorded (one cut)
    framing: str | None = None  # PERSON_FRAMING; None: written before faces were framed by OpenCV's face box


def read_people_parquet(path: Path) -> SavedPeople:
    """The people gallery written by `write_people_parquet`; a clear error for any other file."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise CommandError(f"people file {path}: no such file")
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a file that is not parquet
        raise CommandError(f"{path}: not a readable parquet file ({error})") from error
    metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
    if metadata.get(ROWS_KEY) != PEOPLE_ROWS:
        raise CommandError(
            f"{path}: one row per photo (written by `sapiensid embed` without --all-people); "
            "a gallery of people comes from `sapiensid embed PHOTOS --all-people --output FILE.parquet`"
        )
    missing = {"path", "person_index", "box", "embedding"} - set(table.column_names)
    if missing:
        raise CommandError(f"{path}: a people file without the column(s) {', '.join(sorted(missing))}")
    paths = table.column("path").to_pylist()
    indices = table.column("person_index").to_pylist()
    boxes = table.column("box").to_pylist()
    embeddings = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32).reshape(len(paths), -1)
    faces = table.column("face_found").to_pylist() if "face_found" in table.column_names else [None] * len(paths)
    people = [
        GalleryPerson(name, int(index), tuple(box), None if face is None else bool(face))
        for name, index, box, face in zip(paths, indices, boxes, faces, strict=True)
    ]
    flip = {"true": True, "false": False}.get(metadata.get("sapiensid.flip", ""))
    scales = metadata.get("sapiensid.person_frame_scales")
    try:
        frame_scales = tuple(float(scale) for scale in json.loads(scales)) if scales else None
    except (ValueError, TypeError) as error:
        raise CommandError(f"{path}: its sapiensid.person_frame_scales is not a list of scales ({scales!r}: {error})") from None
    return SavedPeople(
        PeopleGallery(people, embeddings), metadata.get("sapiensid.model"), metadata.get("sapiensid.weights_fingerprint"), flip,
        frame_scales, metadata.get("sapiensid.person_framing"),
    )


__all__ = [
    "SavedPeople", "box_text", "describe_cuts", "describe_framing", "embedded_otherwise_note", "read_people_parquet",
    "write_people_parquet",
]  # fmt: skip
