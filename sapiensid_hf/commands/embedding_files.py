"""Embedding files written by `sapiensid embed` and read back by `sapiensid search --gallery`.

- ``NAME.npy``: (N, D) float32 L2-normalised embeddings, row i for line i of ``NAME.paths.txt``;
  ``NAME.meta.json`` beside them holds what the parquet metadata holds, plus ``person_found`` and
  ``face_found`` per row (files written before 2026-12-05 lack ``face_found``).
- ``NAME.parquet``: one row per image: ``path``, ``embedding`` (fixed-size list of D float32),
  ``person_found``, ``face_found``, ``num_people``, ``framed`` (embedded from cuts of a person who fills
  little of the photo, sapiensid_hf/small_person_framing.py); the schema metadata names the model, its
  weights fingerprint, whether its weights were trained, whether every row is unit-length, and the share
  below which a person's frame was cut (``small_person_share``; files written before 2026-12-04 lack it:
  their small people were embedded from the whole photo).

The fingerprint (sha256 over the model's weights) lets `search` refuse a gallery embedded by another
model, which would otherwise rank garbage silently when both give the same width. A row whose image
shows nobody has no identity embedding (see `commands.common.NO_PERSON`); `search` leaves it out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_files import write_atomically, write_text_atomically
from ..inference import EmbeddingResult
from ..processing.detector_assets import file_sha256
from ..small_person_framing import SMALL_PERSON_SHARE
from .common import CommandError

FORMATS = (".npy", ".parquet")
METADATA_PREFIX = "sapiensid."


def paths_file(npy_path: Path) -> Path:
    """The text file listing the images of an .npy embedding file (gallery.npy -> gallery.paths.txt)."""
    return npy_path.with_name(npy_path.stem + ".paths.txt")


def meta_file(npy_path: Path) -> Path:
    """The JSON written beside an .npy embedding file (gallery.npy -> gallery.meta.json)."""
    return npy_path.with_name(npy_path.stem + ".meta.json")


@dataclass
class SavedEmbeddings:
    names: list[str]
    embeddings: np.ndarray  # (N, D) float32
    person_found: np.ndarray | None  # (N,) bool; None for files that do not say
    model: str | None
    fingerprint: str | None  # None for files written before fingerprints were recorded
    flip: bool | None  # whether flip test-time augmentation was on; None when not recorded
    small_person_share: float | None = None  # None: written before small people were cut from their photos
    face_found: np.ndarray | None = None  # (N,) bool; None for files that do not say


def check_output_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise CommandError(
            f"output {path}: the file name must end in .npy or .parquet (that picks the format)"
        )
    if path.exists() and path.is_dir():
        raise CommandError(f"output {path} is a folder; give a file name ending in .npy or .parquet")


def write_embeddings(
    path: Path,
    image_paths: Sequence[Path],
    result: EmbeddingResult,
    model: str,
    trained: bool,
    fingerprint: str,
    flip: bool = True,
) -> list[Path]:
    """Write the embeddings (and their image paths) in the format of `path`'s suffix; the files written."""
    check_output_path(path)
    names = [os.fspath(image) for image in image_paths]
    embeddings = np.ascontiguousarray(result.embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=1)
    # True only when it is: the rows of pictures without a person need not be unit-length.
    unit = bool(len(norms)) and bool(np.allclose(norms, 1.0, atol=1e-4))
    person_found = result.person_found.astype(bool)
    if path.suffix.lower() == ".npy":
        broken = [name for name in names if "\n" in name or "\r" in name]
        if broken:
            raise CommandError(
                f"{broken[0]!r}: a file name with a line break cannot be listed in {paths_file(path).name} "
                "(one path per line); rename it or write a .parquet file"
            )
        # Each file is replaced whole; the meta file, written last, holds the digests of the other two, so
        # a write killed between files is refused at read time instead of pairing rows with wrong paths.
        listing = paths_file(path)
        write_atomically(path, lambda temporary: _save_npy(temporary, embeddings))
        write_text_atomically(listing, "".join(f"{name}\n" for name in names))
        meta = {
            "model": model, "weights_fingerprint": fingerprint, "trained": trained, "l2_normalized": unit,
            "flip": flip, "person_found": person_found.tolist(),
            "face_found": result.face_found.astype(bool).tolist(), "framed": result.framed.astype(bool).tolist(),
            "small_person_share": SMALL_PERSON_SHARE,
            "embeddings_sha256": file_sha256(path), "paths_sha256": file_sha256(listing),
        }  # fmt: skip
        write_text_atomically(meta_file(path), json.dumps(meta) + "\n")
        return [path, listing, meta_file(path)]
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "path": pa.array(names, type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
            "person_found": pa.array(person_found),
            "face_found": pa.array(result.face_found.astype(bool)),
            "num_people": pa.array(result.num_people.astype(np.int64)),
            "framed": pa.array(result.framed.astype(bool)),
        }
    )
    metadata = {
        f"{METADATA_PREFIX}model": model,
        f"{METADATA_PREFIX}weights_fingerprint": fingerprint,
        f"{METADATA_PREFIX}trained": "true" if trained else "false",
        f"{METADATA_PREFIX}l2_normalized": "true" if unit else "false",
        f"{METADATA_PREFIX}rows_without_person": str(int((~person_found).sum())),
        f"{METADATA_PREFIX}flip": "true" if flip else "false",
        f"{METADATA_PREFIX}small_person_share": str(SMALL_PERSON_SHARE),
    }
    write_atomically(path, lambda temporary: pq.write_table(table.replace_schema_metadata(metadata), temporary))
    return [path]


def _save_npy(target: str, embeddings: np.ndarray) -> None:
    with open(target, "wb") as handle:  # a file object: np.save would add ".npy" to the temporary name
        np.save(handle, embeddings)


def read_embeddings(path: Path) -> SavedEmbeddings:
    """Image paths, (N, D) embeddings and what is known of their model, from `write_embeddings` files."""
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
        meta = {}
        if meta_file(path).is_file():
            try:
                meta = json.loads(meta_file(path).read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise CommandError(f"{meta_file(path)}: not valid JSON ({error})") from error
        for file, key in ((path, "embeddings_sha256"), (listing, "paths_sha256")):
            if key in meta and file_sha256(file) != meta[key]:
                raise CommandError(
                    f"{path}: {file.name} is not the file {meta_file(path).name} was written with (a write was "
                    "interrupted, or the file was changed by hand): embed again"
                )
        found, faces = meta.get("person_found"), meta.get("face_found")
        person_found = None if found is None else np.asarray(found, dtype=bool)
        face_found = None if faces is None else np.asarray(faces, dtype=bool)
        model, fingerprint, flip = meta.get("model"), meta.get("weights_fingerprint"), meta.get("flip")
        share = meta.get("small_person_share")
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
        found = table.column("person_found").to_pylist() if "person_found" in table.column_names else None
        person_found = None if found is None else np.asarray(found, dtype=bool)
        faces = table.column("face_found").to_pylist() if "face_found" in table.column_names else None
        face_found = None if faces is None else np.asarray(faces, dtype=bool)
        metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
        if metadata.get(f"{METADATA_PREFIX}rows") == "people":
            raise CommandError(
                f"{path}: written by `sapiensid embed --all-people` (one row per person, not per photo); "
                "a gallery of photos comes from `sapiensid embed` without --all-people"
            )
        model = metadata.get(f"{METADATA_PREFIX}model")
        fingerprint = metadata.get(f"{METADATA_PREFIX}weights_fingerprint")
        flip = {"true": True, "false": False}.get(metadata.get(f"{METADATA_PREFIX}flip", ""))
        share = metadata.get(f"{METADATA_PREFIX}small_person_share")
    else:
        raise CommandError(f"embedding file {path}: expected .npy or .parquet")
    if embeddings.ndim != 2 or len(embeddings) != len(names):
        raise CommandError(
            f"{path}: {len(names)} image paths for embeddings of shape {embeddings.shape}; the files do not match"
        )
    for column, flags in (("person_found", person_found), ("face_found", face_found)):
        if flags is not None and len(flags) != len(names):
            raise CommandError(f"{path}: {column} has {len(flags)} rows for {len(names)} images")
    return SavedEmbeddings(
        names, embeddings.astype(np.float32, copy=False), person_found, model, fingerprint, flip, _share(path, share),
        face_found,
    )


def _share(path: Path, recorded: object) -> float | None:
    if recorded is None:
        return None
    try:
        share = float(recorded)
    except (TypeError, ValueError):
        share = float("nan")
    if not 0.0 <= share <= 1.0:
        raise CommandError(f"{path}: small_person_share is {recorded!r}, not a share of the photo in [0, 1]")
    return share


def small_person_words(recorded: float | None) -> str:
    """How photos whose person fills little of them were embedded, for a gallery or index recording `recorded`."""
    if recorded is None:
        return "before people who fill little of their photo were cut from it (2026-12-04): those photos hold whole-photo embeddings"
    return f"cutting people whose frame covers less than {recorded:g} of their photo, these queries below {SMALL_PERSON_SHARE:g}"


def small_person_note(gallery: Path, saved: SavedEmbeddings) -> str | None:
    """What `search` says of a gallery whose small people were embedded otherwise than its queries are."""
    if saved.small_person_share == SMALL_PERSON_SHARE:
        return None
    return f"note: {gallery} was embedded {small_person_words(saved.small_person_share)}; embed the gallery again for the best ranking"
