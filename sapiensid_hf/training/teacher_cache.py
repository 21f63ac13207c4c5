"""The face teacher's embedding of every training photo, computed once and kept on disk (like the keypoints).

The teacher costs ~0.15 s a photo on one core, far more than a training step spends on it, and its answer
never changes for a given photo, so distillation reads targets from this cache. Layout of a cache folder:

    embeddings.npy   (N, 128) float32: the teacher's raw descriptor (zeros where it found no face)
    found.npy        (N,) bool: the teacher found a face (a photo without one gets no teacher term)
    boxes.npy        (N, 4) float32: the teacher's face box, xyxy in fractions of the photo (-1: none)
    readable.npy     (N,) bool: False when the photo could not be decoded (see unreadable.json)
    unreadable.json  [{"row", "path", "reason"}, ...]
    meta.json        the rows' fingerprint (count + hash of the paths) and the teacher's rules

The build is chunked (`chunks/`), so an interrupted build resumes where it stopped; chunks are computed
by worker processes, each with its own teacher. A cache of another list of photos is refused; one made
under other teacher rules (another model file, another face choice) is stale: it is computed again,
with a warning, never silently reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic_files import save_npz_atomically
from ..cache_files import read_cache_folder, read_cache_meta, write_cache_folder
from ..keypoint_cache import UNREADABLE_ERRORS, dataset_fingerprint
from ..parallel_processing import resolve_num_workers
from ..processing.image_decoding import load_rgb
from .face_teacher import DlibFaceTeacher

logger = logging.getLogger(__name__)

ARRAYS = ("embeddings", "found", "boxes", "readable")
CACHE_VERSION = 1


class TeacherCacheMismatchError(ValueError):
    """The teacher cache on disk was made for another list of photos."""


@dataclass
class TeacherCache:
    embeddings: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    readable: np.ndarray
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.found)
        for name, shape in (("embeddings", (rows, self.embeddings.shape[-1])), ("boxes", (rows, 4)), ("readable", (rows,))):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.found)

    @property
    def rules(self) -> dict[str, Any]:
        return self.meta.get("rules", {})

    def save(self, folder: str | os.PathLike) -> None:
        arrays = {name: getattr(self, name) for name in ARRAYS}
        write_cache_folder(folder, arrays, self.unreadable, self.meta, CACHE_VERSION)

    @classmethod
    def load(
        cls, folder: str | os.PathLike, fingerprint: dict[str, Any] | None = None, rules: dict[str, Any] | None = None
    ) -> TeacherCache:
        """Read a cache; refuse one of other photos (`fingerprint`) or other teacher rules (`rules`)."""
        meta = read_cache_meta(folder, "teacher cache")
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            raise TeacherCacheMismatchError(
                f"the teacher cache in {folder} was made for other photos ({meta.get('fingerprint')} vs "
                f"{fingerprint}); delete it or point distill.teacher_cache elsewhere"
            )
        if rules is not None and meta.get("rules") != _normalised(rules):
            raise TeacherCacheMismatchError(
                f"the teacher cache in {folder} was made under other teacher rules ({meta.get('rules')}, now "
                f"{_normalised(rules)}): it is stale"
            )
        arrays, unreadable, meta = read_cache_folder(folder, ARRAYS, meta)
        return cls(**arrays, unreadable=unreadable, meta=meta)


def _normalised(rules: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(rules, sort_keys=True))


def build_teacher_cache(
    paths: Sequence[Any],
    folder: str | os.PathLike,
    teacher: Any | None = None,
    names: Sequence[str] | None = None,
    chunk_size: int = 256,
    num_workers: int | None = None,
    progress: bool = True,
) -> TeacherCache:
    """The teacher's targets for `paths` (image files, or encoded image bytes), from `folder` if it holds
    them, else computed there.

    `names` (default: `paths`) identify the rows in the cache's fingerprint: a dataset's own relative
    paths keep a cache valid when the data folder moves. A complete cache is read without the teacher's
    package installed; computing one needs it. `num_workers` processes compute chunks
    (None: one per core, at most 8; 0: this process).
    """
    teacher = teacher if teacher is not None else DlibFaceTeacher()
    folder = Path(folder)
    names = paths if names is None else names
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} photos")
    fingerprint = dataset_fingerprint(names)
    rules = _normalised(teacher.rules)  # constants: known without the teacher's package
    if (folder / "meta.json").is_file():
        try:
            # A complete cache needs no teacher: training on another machine needs only the caches.
            return TeacherCache.load(folder, fingerprint, rules)
        except TeacherCacheMismatchError as error:
            if json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("fingerprint") != fingerprint:
                raise
            logger.warning("%s: computing the teacher targets again", error)
            (folder / "meta.json").unlink()
    if hasattr(teacher, "check_available"):
        teacher.check_available()  # a missing extra is said before any work
    if not paths:
        raise ValueError("no photos given: nothing for the teacher to embed")
    chunk_dir = folder / "chunks"
    _discard_chunks_of_other_rules(chunk_dir, {"rules": rules, "fingerprint": fingerprint, "chunk_size": chunk_size})
    starts = [start for start in range(0, len(paths), chunk_size) if not (chunk_dir / _chunk_name(start)).is_file()]
    bar = tqdm(total=len(paths), desc="face teacher", unit="img", disable=not progress)
    bar.update(len(paths) - sum(min(len(paths), start + chunk_size) - start for start in starts))
    jobs = [
        (teacher, list(paths[start : start + chunk_size]), [str(name) for name in names[start : start + chunk_size]], start)
        for start in starts
    ]
    num_workers = min(resolve_num_workers(num_workers), len(jobs))
    if num_workers == 0:
        results = (_embed_chunk(job) for job in jobs)
        _save_chunks(results, chunk_dir, bar)
    else:
        with ProcessPoolExecutor(num_workers) as pool:
            _save_chunks(pool.map(_embed_chunk, jobs), chunk_dir, bar)
    bar.close()
    cache = _merge_chunks(chunk_dir, len(paths), chunk_size, {"fingerprint": fingerprint, "rules": rules})
    cache.save(folder)
    shutil.rmtree(chunk_dir)
    logger.info(
        "face teacher: a face in %d of %d photos (%d unreadable)", int(cache.found.sum()), len(cache), len(cache.unreadable)
    )
    return cache


def _chunk_name(start: int) -> str:
    return f"chunk_{start:010d}.npz"


def _discard_chunks_of_other_rules(chunk_dir: Path, wanted: dict[str, Any]) -> None:
    record = chunk_dir / "record.json"
    if chunk_dir.is_dir() and (not record.is_file() or json.loads(record.read_text(encoding="utf-8")) != wanted):
        logger.warning("discarding unfinished teacher chunks in %s: made for other photos, teacher rules or chunk size", chunk_dir)
        shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(wanted, sort_keys=True) + "\n", encoding="utf-8")


def _embed_chunk(job: tuple[Any, list[Any], list[str], int]) -> tuple[int, dict[str, Any]]:
    teacher, paths, names, start = job
    count = len(paths)
    chunk = {
        "embeddings": np.zeros((count, teacher.dim), np.float32),
        "found": np.zeros(count, bool),
        "boxes": np.full((count, 4), -1.0, np.float32),
        "readable": np.zeros(count, bool),
        "unreadable": [],
    }
    for offset, (path, name) in enumerate(zip(paths, names, strict=True)):
        try:
            rgb = load_rgb(path, name)
        except UNREADABLE_ERRORS as error:
            chunk["unreadable"].append({"row": start + offset, "path": name, "reason": f"{type(error).__name__}: {error}"})
            continue
        chunk["readable"][offset] = True
        face = teacher.embed(rgb)
        if face is not None:
            chunk["embeddings"][offset], chunk["boxes"][offset], chunk["found"][offset] = face.embedding, face.box, True
    return start, chunk


def _save_chunks(results: Any, chunk_dir: Path, bar: Any) -> None:
    for start, chunk in results:
        target = chunk_dir / _chunk_name(start)
        arrays = {name: chunk[name] for name in ARRAYS}
        save_npz_atomically(target, unreadable=np.asarray(json.dumps(chunk["unreadable"])), **arrays)
        bar.update(len(chunk["found"]))


def _merge_chunks(chunk_dir: Path, total: int, chunk_size: int, meta: dict[str, Any]) -> TeacherCache:
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    unreadable: list[dict[str, Any]] = []
    for start in range(0, total, chunk_size):
        with np.load(chunk_dir / _chunk_name(start)) as chunk:
            for name in ARRAYS:
                parts[name].append(chunk[name])
            unreadable += json.loads(str(chunk["unreadable"]))
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    return TeacherCache(**arrays, unreadable=unreadable, meta=meta)


__all__ = ["TeacherCache", "TeacherCacheMismatchError", "build_teacher_cache"]
