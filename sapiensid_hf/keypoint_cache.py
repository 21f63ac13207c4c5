"""Run the processor's keypoint detector once over a dataset and keep the result on disk.

Detection costs far more than decoding, and its result never changes for a given image, so training
reads keypoints from this cache instead of detecting every epoch. Pixel masks are not stored: they
follow from the image size and are recomputed for free.

Layout of a cache folder:

    keypoints.npy      (N, 19, 2) float32, normalised to the padded square, -1 = missing
    person_found.npy   (N,) bool
    face_found.npy     (N,) bool
    readable.npy       (N,) bool: False when the image could not be decoded (see unreadable.json)
    unreadable.json    [{"row", "path", "reason"}, ...]
    meta.json          dataset fingerprint (row count, hash of the paths), the processor's keypoint rules
                       (rules version + detector settings) and the other processor settings

Building is chunked (`chunks/` holds finished chunks until the cache is complete), so an interrupted
build resumes where it stopped, and chunks are split over processes when several build together.
Unreadable images are recorded, counted and logged, never silently dropped. A cache (or unfinished
chunks) made under other keypoint rules than the processor's (`processor.keypoint_rules`: e.g. before
the person-crop fallback) is detected again, with a warning, never silently reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .atomic_files import save_npz_atomically
from .cache_files import read_cache_folder, read_cache_meta, write_cache_folder
from .cache_fingerprints import dataset_fingerprint, keypoint_rules_of
from .parallel_processing import process_images, resolve_num_workers
from .processing.detector_assets import DetectorNotAvailableError
from .processing.image_decoding import SapiensIDInputError

logger = logging.getLogger(__name__)

NUM_KEYPOINTS = 19
ARRAYS = ("keypoints", "person_found", "face_found", "readable")
CACHE_VERSION = 1
RULES_FILE = "keypoint_rules.json"
# What an image that cannot be decoded raises; recorded and skipped, never silently dropped.
UNREADABLE_ERRORS = (SapiensIDInputError, RuntimeError, OSError, ValueError)


class KeypointCacheMismatchError(ValueError):
    """The cache on disk was built for another dataset (different rows or paths)."""


@dataclass
class KeypointCache:
    keypoints: np.ndarray
    person_found: np.ndarray
    face_found: np.ndarray
    readable: np.ndarray
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.keypoints)
        if self.keypoints.shape != (rows, NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints must have shape (N, {NUM_KEYPOINTS}, 2), got {self.keypoints.shape}")
        for name in ARRAYS[1:]:
            if getattr(self, name).shape != (rows,):
                raise ValueError(f"{name} must have shape ({rows},), got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def num_unreadable(self) -> int:
        return int((~self.readable).sum())

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray, fingerprint: dict[str, Any] | None = None) -> KeypointCache:
        """A cache of known keypoints (datasets that ship them, or tests); every image counts as readable."""
        keypoints = np.asarray(keypoints, dtype=np.float32)
        shown = (keypoints != -1).all(axis=-1)
        return cls(
            keypoints=keypoints,
            person_found=shown.any(axis=1),
            face_found=shown[:, :5].sum(axis=1) >= 2,
            readable=np.ones(len(keypoints), dtype=bool),
            meta={"fingerprint": fingerprint or {"num_rows": len(keypoints)}, "source": "given"},
        )

    def save(self, folder: str | os.PathLike) -> None:
        arrays = {name: getattr(self, name) for name in ARRAYS}
        write_cache_folder(folder, arrays, self.unreadable, self.meta, CACHE_VERSION)

    @classmethod
    def load(cls, folder: str | os.PathLike, fingerprint: dict[str, Any] | None = None) -> KeypointCache:
        """Read a cache; with `fingerprint`, refuse one built for a different dataset."""
        meta = read_cache_meta(folder, "keypoint cache")
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            raise KeypointCacheMismatchError(
                f"the keypoint cache in {folder} was built for a different dataset "
                f"({meta.get('fingerprint')} vs {fingerprint}); delete it or point data.keypoint_cache elsewhere"
            )
        arrays, unreadable, meta = read_cache_folder(folder, ARRAYS, meta)
        return cls(**arrays, unreadable=unreadable, meta=meta)


def build_keypoint_cache(
    images: Callable[[int], Any],
    paths: Sequence[str],
    processor: Any,
    folder: str | os.PathLike,
    batch_size: int = 16,
    chunk_size: int = 1024,
    process_index: int = 0,
    num_processes: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
    num_workers: int | None = None,
) -> KeypointCache:
    """Detect keypoints for every row and save the cache (or load it if it is already complete).

    Args:
        images: row -> anything the processor accepts (path, bytes, PIL image, array).
        paths: one name per row (for the fingerprint and for naming unreadable files).
        processor: a `SapiensIDImageProcessor` (its detector runs; its pixel outputs are discarded).
        folder: the cache folder.
        batch_size: images per processor call.
        chunk_size: rows per saved chunk (the unit of resumption and of work split across processes).
        process_index, num_processes, barrier: to build with several processes; each takes every
            num_processes-th chunk, `barrier` (e.g. `accelerator.wait_for_everyone`) syncs before the merge.
        progress: show a progress bar on process 0.
        num_workers: worker processes that decode and detect (parallel_processing); None = the cores
            this process may use (at most 8) shared among the `num_processes` building processes; 0 = here.
    """
    folder = Path(folder)
    fingerprint = dataset_fingerprint(paths)
    rules = keypoint_rules_of(processor)
    if (folder / "meta.json").is_file():
        cache = KeypointCache.load(folder, fingerprint)
        if cache.meta.get("keypoint_rules") == rules:
            return cache
        if barrier is not None:
            barrier()  # every process has read the stale cache before it goes
        if process_index == 0:
            logger.warning(
                "keypoint cache %s was made under other keypoint rules (%s, now %s): detecting again",
                folder, cache.meta.get("keypoint_rules", "unrecorded"), rules,
            )  # fmt: skip
            (folder / "meta.json").unlink()
    total = len(paths)
    if total == 0:
        raise ValueError("the dataset has no images: nothing to detect keypoints on")
    chunk_dir = folder / "chunks"
    if process_index == 0:
        _discard_chunks_of_other_rules(chunk_dir, rules)
    if barrier is not None:
        barrier()  # chunks of other rules are gone before anyone reuses one
    num_workers = resolve_num_workers(num_workers, num_processes)
    starts = list(range(0, total, chunk_size))
    mine = [start for index, start in enumerate(starts) if index % num_processes == process_index]
    bar = tqdm(total=total, desc="detecting keypoints", unit="img", disable=not progress or process_index != 0)
    for start in mine:
        stop = min(total, start + chunk_size)
        target = chunk_dir / f"chunk_{start:010d}.npz"
        if not target.is_file():
            _save_chunk(target, _detect_rows(images, paths, processor, range(start, stop), batch_size, num_workers))
        bar.update((stop - start) * num_processes)
    bar.close()
    if barrier is not None:
        barrier()
    if process_index == 0:
        cache = _merge_chunks(chunk_dir, starts, fingerprint, processor)
        cache.save(folder)
        shutil.rmtree(chunk_dir)
        if cache.num_unreadable:
            logger.warning(
                "keypoint cache: %d of %d images could not be read and will be skipped (listed in %s)",
                cache.num_unreadable, total, folder / "unreadable.json",
            )  # fmt: skip
    if barrier is not None:
        barrier()
    return KeypointCache.load(folder, fingerprint)


def _discard_chunks_of_other_rules(chunk_dir: Path, rules: dict[str, Any]) -> None:
    record = chunk_dir / RULES_FILE
    if chunk_dir.is_dir() and (not record.is_file() or json.loads(record.read_text(encoding="utf-8")) != rules):
        logger.warning("discarding unfinished keypoint chunks in %s: made under other keypoint rules", chunk_dir)
        shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(rules, sort_keys=True) + "\n", encoding="utf-8")


class _ImageOfRow:
    """offset within `rows` -> image (a class, not a lambda: picklable for spawned workers)."""

    def __init__(self, images: Callable[[int], Any], rows: range):
        self.images, self.rows = images, rows

    def __call__(self, offset: int) -> Any:
        return self.images(self.rows[offset])


def _detect_rows(
    images: Callable[[int], Any],
    paths: Sequence[str],
    processor: Any,
    rows: range,
    batch_size: int,
    num_workers: int,
) -> dict[str, Any]:
    count = len(rows)
    result = {
        "rows": np.asarray(rows, dtype=np.int64),
        "keypoints": np.full((count, NUM_KEYPOINTS, 2), -1.0, dtype=np.float32),
        "person_found": np.zeros(count, dtype=bool),
        "face_found": np.zeros(count, dtype=bool),
        "readable": np.zeros(count, dtype=bool),
        "unreadable": [],
    }
    batches = process_images(processor, _ImageOfRow(images, rows), batch_size, num_workers, count=count)
    for batch in batches:
        for offset, error in batch.failures:
            if isinstance(error, DetectorNotAvailableError) or not isinstance(error, UNREADABLE_ERRORS):
                raise error
            row = rows[offset]
            reason = f"{type(error).__name__}: {error}"
            logger.warning("skipping unreadable image %s (row %d): %s", paths[row], row, reason)
            result["unreadable"].append({"row": int(row), "path": str(paths[row]), "reason": reason})
        for position, offset in enumerate(batch.indices):
            result["keypoints"][offset] = batch.features["keypoints"][position].numpy()
            result["person_found"][offset] = bool(batch.features["person_found"][position])
            result["face_found"][offset] = bool(batch.features["face_found"][position])
            result["readable"][offset] = True
    return result


def _save_chunk(target: Path, chunk: dict[str, Any]) -> None:
    arrays = {key: value for key, value in chunk.items() if key != "unreadable"}
    save_npz_atomically(target, unreadable=np.asarray(json.dumps(chunk["unreadable"])), **arrays)


def _merge_chunks(chunk_dir: Path, starts: list[int], fingerprint: dict[str, Any], processor: Any) -> KeypointCache:
    parts = []
    for start in starts:
        path = chunk_dir / f"chunk_{start:010d}.npz"
        if not path.is_file():
            raise RuntimeError(f"keypoint cache chunk {path} is missing; did a building process fail?")
        with np.load(path) as chunk:
            parts.append({key: chunk[key] for key in chunk.files})
    unreadable = [entry for part in parts for entry in json.loads(str(part["unreadable"]))]
    settings = processor.to_dict() if hasattr(processor, "to_dict") else {}
    detector_settings = {key: value for key, value in settings.items() if isinstance(value, int | float | str | bool)}
    return KeypointCache(
        **{name: np.concatenate([part[name] for part in parts]) for name in ARRAYS},
        unreadable=unreadable,
        meta={
            "fingerprint": fingerprint,
            "source": "detector",
            "keypoint_rules": keypoint_rules_of(processor),
            "processor": detector_settings,
        },
    )


__all__ = [
    "KeypointCache",
    "KeypointCacheMismatchError",
    "build_keypoint_cache",
    "dataset_fingerprint",
    "keypoint_rules_of",
]
