"""Build, grow, shrink and search a photo index (the folder format: store.py).

Rows are photos (one embedding each, the single-person path) or, with `all_people`, people
(people_embedding.py). A photo with nobody in it keeps a row (so `add` knows it has seen it) but is
not searchable. Each row records the sha256 of its file: `add` embeds only new or changed files and
replaces a changed file's rows. An `add` of new photos only grows the faiss index in place; a write that
replaces or removes rows builds it again from the stored embeddings (exact inner product on unit vectors,
"Flat", by default; any faiss factory string, e.g. "IVF1024,Flat" or "HNSW32", trained on the collection
itself). Searching checks that the query model is
the index's model (weights fingerprint) and refuses any other by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import weights_fingerprint
from ..processing.detector_assets import file_sha256
from ..processing.image_decoding import SapiensIDInputError
from ..processing.people_in_image import PERSON_FRAME_SCALES, PERSON_FRAMING
from ..small_person_framing import SMALL_PERSON_SHARE
from .process_split import embed_rows_in_every_process, is_writer, wait_for_the_writer, writer_lock_if_writer
from .store import (
    Manifest,
    PhotoIndexError,
    Rows,
    current_version,
    read_manifest,
    read_rows,
    write_version,
    writer_lock,
)

FAISS_FILE_NAME = "index.faiss"


def content_hash(path: Path) -> str:
    """The sha256 of the file: `add` re-embeds a photo whose bytes changed."""
    return file_sha256(Path(path))


@dataclass
class SearchHit:
    path: str
    person_index: int  # -1: a per-photo row
    box: tuple[float, float, float, float] | None
    score: float  # cosine similarity
    row: int
    face_found: bool | None = None  # whether the row's picture shows a face


@dataclass
class BuildReport:
    """What a build / add / remove did."""

    folder: Path
    rows: int  # rows in the index now
    searchable: int  # of which have a person
    added: list[str] = field(default_factory=list)  # photos embedded
    replaced: list[str] = field(default_factory=list)  # of those, photos whose file had changed
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason): unreadable
    missing: list[str] = field(default_factory=list)  # indexed photos whose file is gone (not removed)


def build_faiss_index(rows: Rows, index_type: str):
    """A faiss index over the rows that have a person, with the row numbers as ids."""
    import faiss

    searchable = np.flatnonzero(rows.person_found)
    dimension = rows.embeddings.shape[1]
    vectors = np.ascontiguousarray(rows.embeddings[searchable], dtype=np.float32)
    try:
        base = faiss.index_factory(dimension, index_type, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise PhotoIndexError(f"index type {index_type!r} is not a faiss factory string ({error})") from None
    if not base.is_trained:
        if len(vectors) < _training_rows_needed(base):
            raise PhotoIndexError(
                f"index type {index_type!r} must be trained on at least {_training_rows_needed(base)} rows with a "
                f"person; this collection has {len(vectors)}: use the exact index (--index-type Flat)"
            )
        base.train(vectors)
    index = faiss.IndexIDMap(base)
    if len(vectors):
        index.add_with_ids(vectors, searchable.astype(np.int64))
    return index


def grown_faiss_index(faiss_index: Any, new_rows: Rows, first_id: int) -> Any:
    """`faiss_index` with the searchable rows of `new_rows` added under ids from `first_id` on: the same
    index a build of all the rows gives for Flat (exact), and for HNSW / IVF without the cost of building
    a million rows again (an IVF index keeps the lists trained on the rows it was built with)."""
    searchable = np.flatnonzero(new_rows.person_found)
    if len(searchable):
        vectors = np.ascontiguousarray(new_rows.embeddings[searchable], dtype=np.float32)
        faiss_index.add_with_ids(vectors, (searchable + first_id).astype(np.int64))
    return faiss_index


def _training_rows_needed(base) -> int:
    import faiss

    ivf = faiss.try_extract_index_ivf(base)
    return int(ivf.nlist) if ivf is not None else 1


class PhotoIndex:
    """An opened index: its manifest, rows and faiss index, as CURRENT named them when opened."""

    def __init__(self, folder: Path, manifest: Manifest, rows: Rows, faiss_index: Any):
        self.folder, self.manifest, self.rows, self.faiss_index = folder, manifest, rows, faiss_index

    @classmethod
    def open(cls, folder: str | os.PathLike) -> PhotoIndex:
        import faiss

        folder = Path(folder)
        version = current_version(folder)
        manifest = read_manifest(version)
        rows = read_rows(version, manifest)
        try:
            faiss_index = faiss.read_index(str(version / FAISS_FILE_NAME))
        except RuntimeError as error:
            raise PhotoIndexError(f"{version / FAISS_FILE_NAME}: cannot be read ({error}); the index is damaged") from None
        if faiss_index.ntotal != int(rows.person_found.sum()) or faiss_index.d != manifest.dimension:
            raise PhotoIndexError(f"index {folder}: the faiss index and the rows disagree; the index is damaged")
        return cls(folder, manifest, rows, faiss_index)

    def check_model(self, pipeline: Any, flip: bool | None = None) -> None:
        """Refuse a pipeline whose model is not the one that embedded the index (by weights fingerprint)."""
        fingerprint = weights_fingerprint(pipeline.model)
        if fingerprint != self.manifest.weights_fingerprint:
            raise PhotoIndexError(
                f"index {self.folder} was embedded by another model or embedding rule ({self.manifest.model}, weights "
                f"{self.manifest.weights_fingerprint}); this is {pipeline.description} (weights {fingerprint}): "
                "search it with the same --model and --no-cuts setting, or build a new index"
            )

    def searchable_counts(self) -> tuple[int, int]:
        """(rows a search ranks, of which show a face): what a best score's chance is counted over."""
        return int(self.rows.person_found.sum()), int((self.rows.person_found & self.rows.face_found).sum())

    def search(self, queries: np.ndarray, top_k: int, nprobe: int | None = None, ef_search: int | None = None) -> list[list[SearchHit]]:
        """The `top_k` best rows for each (unit-length) query, best first."""
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.manifest.dimension:
            raise PhotoIndexError(
                f"index {self.folder} holds {self.manifest.dimension}-d embeddings, the queries are {queries.shape[1]}-d"
            )
        parameters = faiss.ParameterSpace()
        base = faiss.downcast_index(self.faiss_index.index)
        if nprobe is not None and faiss.try_extract_index_ivf(base) is not None:
            parameters.set_index_parameter(base, "nprobe", nprobe)
        if ef_search is not None and hasattr(base, "hnsw"):
            base.hnsw.efSearch = ef_search
        k = min(top_k, self.faiss_index.ntotal)
        if k == 0:
            return [[] for _ in queries]
        scores, ids = self.faiss_index.search(queries, k)
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits = []
            for score, row in zip(row_scores, row_ids, strict=True):
                if row < 0:
                    continue
                box = tuple(float(v) for v in self.rows.boxes[row]) if self.rows.person_index[row] >= 0 else None
                hits.append(
                    SearchHit(self.rows.paths[row], int(self.rows.person_index[row]), box, float(score), int(row), bool(self.rows.face_found[row]))
                )
            results.append(hits)
        return results


def embed_rows(
    pipeline: Any, photos: Sequence[Path], all_people: bool, flip: bool, num_workers: int = 0,
    frame_scales: Sequence[float] = PERSON_FRAME_SCALES, face_boxes: bool = True, frame_small_people: bool = True,
) -> tuple[Rows, list[tuple[str, str]]]:  # fmt: skip
    """Rows for `photos` (unreadable ones skipped and returned with the reason); with `all_people`, each
    person is the mean of the cuts `frame_scales`, a face framed around OpenCV's face box (`face_boxes`) or
    from its keypoints; without, a small person is cut from the photo first (`frame_small_people`). An index
    keeps one rule: `Manifest.add_rules`."""
    dimension = int(pipeline.model.config.output_dim)
    parts, skipped = [Rows.empty(dimension)], []
    if all_people:
        for photo in photos:
            try:
                found = pipeline.embed_people(
                    [photo], flip=flip, frame_scales=frame_scales,
                    detections=None if face_boxes else [pipeline.processor.detect_people(photo, face_boxes=False)],
                )  # fmt: skip
                digest = content_hash(photo)
            except (SapiensIDInputError, OSError) as error:
                skipped.append((os.fspath(photo), str(error)))
                continue
            if not found.rows:  # remembered, not searchable
                parts.append(_no_person_row(photo, digest, dimension))
                continue
            part = Rows(
                [os.fspath(photo)] * len(found.rows), [digest] * len(found.rows),
                np.asarray([row.person_index for row in found.rows], np.int64),
                np.asarray([row.person.box for row in found.rows], np.float32),
                np.ones(len(found.rows), bool), np.asarray([row.person.face_found for row in found.rows], bool),
                found.embeddings,
            )  # fmt: skip
            parts.append(part)
        return Rows.concatenate(*parts), skipped
    names = [os.fspath(photo) for photo in photos]
    for indices, result, failures in pipeline.embed_batches(names, 8, flip, num_workers, frame_small_people):
        for index, error in failures:
            if not isinstance(error, SapiensIDInputError | OSError):
                raise error
            skipped.append((names[index], str(error)))
        if result is None:
            continue
        part = Rows(
            [names[i] for i in indices], [content_hash(photos[i]) for i in indices], np.full(len(indices), -1, np.int64),
            np.full((len(indices), 4), -1, np.float32), result.person_found.astype(bool), result.face_found.astype(bool),
            result.embeddings.astype(np.float32),
        )  # fmt: skip
        parts.append(part)
    return Rows.concatenate(*parts), skipped


def _no_person_row(photo: Path, digest: str, dimension: int) -> Rows:
    return Rows([os.fspath(photo)], [digest], np.full(1, -1, np.int64), np.full((1, 4), -1, np.float32),
                np.zeros(1, bool), np.zeros(1, bool), np.zeros((1, dimension), np.float32))  # fmt: skip


def build_index(
    pipeline: Any, photos: Sequence[Path], folder: str | os.PathLike, all_people: bool = False, flip: bool = True,
    index_type: str = "Flat", num_workers: int = 0, model_label: str | None = None,
) -> BuildReport:  # fmt: skip
    """A new index of `photos` at `folder` (refused if an index is already there: use `add_to_index`)."""
    folder = Path(folder)
    photos = [Path(photo).resolve() for photo in photos]  # rows name photos by absolute path
    if (folder / "CURRENT").exists():
        raise PhotoIndexError(f"index {folder} already exists: add photos with `sapiensid index add`, or remove the folder")
    if folder.exists() and not folder.is_dir():
        raise PhotoIndexError(f"index {folder}: a file is in the way")
    with writer_lock_if_writer(folder):
        rows, skipped = embed_rows_in_every_process(embed_rows, pipeline, photos, all_people, flip, num_workers)
        if not len(rows):
            raise PhotoIndexError("none of the photos could be read: nothing to index")
        manifest = Manifest(
            model=model_label or pipeline.description, weights_fingerprint=weights_fingerprint(pipeline.model),
            flip=flip, dimension=rows.embeddings.shape[1], index_type=index_type, per_person=all_people, rows=len(rows),
            person_frame_scales=list(PERSON_FRAME_SCALES) if all_people else None,
            person_framing=PERSON_FRAMING if all_people else None,
            small_person_share=None if all_people else SMALL_PERSON_SHARE,
        )  # fmt: skip
        if is_writer():
            write_version(folder, manifest, rows, build_faiss_index(rows, index_type))
    wait_for_the_writer()
    return BuildReport(folder, len(rows), int(rows.person_found.sum()), added=sorted(set(rows.paths)), skipped=skipped)


def photos_to_embed(
    photos: Sequence[Path], known: dict[str, str]
) -> tuple[list[Path], list[str], int, list[tuple[str, str]]]:
    """Which of `photos` (absolute paths) an add must embed, given the indexed path -> sha256: (new or
    changed photos, the changed ones' names, how many are unchanged, (name, reason) of unreadable files)."""
    todo, changed, unchanged, skipped = [], [], 0, []
    for photo in photos:
        name = os.fspath(photo)
        try:
            digest = content_hash(photo)
        except OSError as error:
            skipped.append((name, str(error)))
            continue
        if known.get(name) == digest:
            unchanged += 1
            continue
        todo.append(Path(photo))
        if name in known:
            changed.append(name)
    return todo, changed, unchanged, skipped


def add_to_index(pipeline: Any, folder: str | os.PathLike, photos: Sequence[Path], num_workers: int = 0) -> BuildReport:
    """Embed the photos that are new or whose file changed (sha256) and write the next version."""
    folder = Path(folder)
    photos = [Path(photo).resolve() for photo in photos]
    with writer_lock_if_writer(folder):
        index = PhotoIndex.open(folder)
        index.check_model(pipeline)
        todo, changed, unchanged, skipped = photos_to_embed(photos, dict(zip(index.rows.paths, index.rows.content_hashes, strict=True)))
        manifest = index.manifest
        rules = manifest.add_rules(f"index {folder}")
        new_rows, failed = embed_rows_in_every_process(
            embed_rows, pipeline, todo, manifest.per_person, manifest.flip, num_workers,
            rules["frame_scales"], rules["face_boxes"], rules["frame_small_people"],
        )  # fmt: skip
        skipped += failed
        embedded = set(new_rows.paths)
        keep = np.asarray([path not in embedded for path in index.rows.paths], bool)
        rows = Rows.concatenate(index.rows.take(keep), new_rows)
        missing = sorted({path for path in rows.paths if not Path(path).exists()})
        if todo and embedded and is_writer():
            manifest = Manifest(**{**manifest.__dict__, "rows": len(rows)})
            if keep.all():  # only new photos: the rows keep their numbers, the index grows in place
                faiss_index = grown_faiss_index(index.faiss_index, new_rows, first_id=len(index.rows))
            else:  # replaced rows renumber the collection: the index is built again
                faiss_index = build_faiss_index(rows, manifest.index_type)
            write_version(folder, manifest, rows, faiss_index)
    wait_for_the_writer()
    return BuildReport(folder, len(rows), int(rows.person_found.sum()), added=sorted(embedded),
                       replaced=sorted(set(changed) & embedded), unchanged=unchanged, skipped=skipped, missing=missing)  # fmt: skip


def remove_from_index(folder: str | os.PathLike, photos: Sequence[str | os.PathLike] = (), missing: bool = False) -> BuildReport:
    """Remove the rows of `photos` (paths as indexed), and with `missing` those of files that are gone."""
    folder = Path(folder)
    with writer_lock(folder):
        index = PhotoIndex.open(folder)
        targets = {os.fspath(Path(photo).resolve()) for photo in photos}
        unknown = sorted(targets - set(index.rows.paths))
        if unknown:
            raise PhotoIndexError(f"index {folder} holds no row for {unknown[0]}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        if missing:
            targets |= {path for path in index.rows.paths if not Path(path).exists()}
        keep = np.asarray([path not in targets for path in index.rows.paths], bool)
        rows = index.rows.take(keep)
        if targets:
            manifest = Manifest(**{**index.manifest.__dict__, "rows": len(rows)})
            write_version(folder, manifest, rows, build_faiss_index(rows, manifest.index_type))
    return BuildReport(folder, len(rows), int(rows.person_found.sum()), removed=sorted(targets))


__all__ = ["BuildReport", "PhotoIndex", "SearchHit", "add_to_index", "build_index", "content_hash", "photos_to_embed", "remove_from_index"]
