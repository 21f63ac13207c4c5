"""Training photos decoded and resampled once to the model's padded square, kept as uint8 on disk.

Reading a training sample through the processor decodes the JPEG and resamples it to the model's square
every time: ~10-20 ms of CPU a photo, several seconds a step for the data worker at the recipe's batch
sizes, while the square itself never changes (augmentation happens after it). This cache stores each
photo's square once, as the processor makes it (`resample_padded_square`), rounded to uint8, with the
photo's original height and width (which give the padding mask). A sample read from it differs from the
processor's by at most half a grey level (1 / 510) per value; keypoints come from the keypoint cache as
before. Layout of a cache folder:

    pixels.npy     (N, S, S, 3) uint8, memory-mapped when read
    sizes.npy      (N, 2) int32: original height and width; 0, 0 = the photo could not be read
    meta.json      the rows' fingerprint, the square's side and fill, the rule version

Built in chunks by worker processes (a killed build resumes); a cache of other photos or another square
is refused by name, never silently used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic_files import save_npz_atomically
from ..keypoint_cache import UNREADABLE_ERRORS, dataset_fingerprint
from ..parallel_processing import resolve_num_workers
from ..processing.image_decoding import load_rgb
from ..processing.square_resampling import SquarePadding, resample_padded_square

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


class ImageCacheMismatchError(ValueError):
    """The image cache on disk was made for other photos or another square."""


@dataclass
class ResizedImageCache:
    pixels: np.ndarray  # (N, S, S, 3) uint8
    sizes: np.ndarray  # (N, 2) int32

    @property
    def side(self) -> int:
        return int(self.pixels.shape[1])

    def readable(self, row: int) -> bool:
        return bool(self.sizes[row, 0] > 0)

    def square(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (S, S, 3) float32 in [0, 1], pixel mask (S, S) int64) of a row, as the processor makes them
        (to within half a grey level)."""
        height, width = (int(value) for value in self.sizes[row])
        pixels = np.asarray(self.pixels[row], dtype=np.float32) / 255.0
        return pixels, SquarePadding.of(height, width).content_mask(self.side)  # int64 already


def cache_rules(processor: Any) -> dict[str, Any]:
    """What decides the cached squares: a cache made under other rules is not reused."""
    size = processor.size
    side = int(size["height"]) if isinstance(size, dict) else int(size)
    return {"version": CACHE_VERSION, "side": side, "pad_fill": float(processor.pad_fill)}


def build_image_cache(
    images: Sequence[Any],
    names: Sequence[str],
    processor: Any,
    folder: str | os.PathLike,
    chunk_size: int = 512,
    num_workers: int | None = None,
    progress: bool = True,
) -> ResizedImageCache:
    """The padded squares of `images` (paths or encoded bytes) at the processor's size, from `folder` if it
    holds them (same `names` and rules), else made there by `num_workers` processes (None: one per core)."""
    folder = Path(folder)
    meta = {"fingerprint": dataset_fingerprint(names), "rules": cache_rules(processor)}
    if (folder / "meta.json").is_file():
        return load_image_cache(folder, meta)
    chunk_dir = folder / "chunks"
    record = chunk_dir / "record.json"
    wanted = {**meta, "chunk_size": chunk_size}
    if chunk_dir.is_dir() and (not record.is_file() or json.loads(record.read_text(encoding="utf-8")) != wanted):
        logger.warning("discarding unfinished image chunks in %s: made for other photos or another square", chunk_dir)
        shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(wanted, sort_keys=True) + "\n", encoding="utf-8")
    rules = meta["rules"]
    starts = [start for start in range(0, len(images), chunk_size) if not (chunk_dir / f"chunk_{start:010d}.npz").is_file()]
    jobs = [(list(images[start : start + chunk_size]), list(names[start : start + chunk_size]), rules, start) for start in starts]
    bar = tqdm(total=len(jobs), desc="resizing training photos", unit="chunk", disable=not progress)
    workers = min(resolve_num_workers(num_workers), len(jobs))
    with ProcessPoolExecutor(workers) if workers else _InThisProcess() as pool:
        for start, pixels, sizes in pool.map(_resize_chunk, jobs):
            target = chunk_dir / f"chunk_{start:010d}.npz"
            save_npz_atomically(target, pixels=pixels, sizes=sizes)
            bar.update(1)
    bar.close()
    side = rules["side"]
    pixels = np.lib.format.open_memmap(folder / "pixels.partial.npy", mode="w+", dtype=np.uint8, shape=(len(images), side, side, 3))
    sizes = np.zeros((len(images), 2), np.int32)
    for start in range(0, len(images), chunk_size):
        with np.load(chunk_dir / f"chunk_{start:010d}.npz") as chunk:
            pixels[start : start + len(chunk["sizes"])] = chunk["pixels"]
            sizes[start : start + len(chunk["sizes"])] = chunk["sizes"]
    pixels.flush()
    del pixels
    os.replace(folder / "pixels.partial.npy", folder / "pixels.npy")
    np.save(folder / "sizes.npy", sizes)
    # meta.json last: its presence marks a complete cache.
    (folder / "meta.json").write_text(json.dumps({**meta, "num_rows": len(images)}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(chunk_dir)
    logger.info("image cache: %d photos at %d px in %s (%d unreadable)", len(images), side, folder, int((sizes[:, 0] == 0).sum()))
    return load_image_cache(folder, meta)


def load_image_cache(folder: str | os.PathLike, expected: dict[str, Any] | None = None) -> ResizedImageCache:
    """Open a complete cache (pixels memory-mapped); with `expected` (fingerprint and rules), refuse another."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} holds no complete image cache (meta.json missing)")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if expected is not None:
        for key in ("fingerprint", "rules"):
            if meta.get(key) != expected[key]:
                raise ImageCacheMismatchError(
                    f"the image cache in {folder} was made for other {'photos' if key == 'fingerprint' else 'settings'} "
                    f"({meta.get(key)} vs {expected[key]}); delete it or point the image cache setting elsewhere"
                )
    return ResizedImageCache(np.load(folder / "pixels.npy", mmap_mode="r"), np.load(folder / "sizes.npy"))


def _resize_chunk(job: tuple[list[Any], list[str], dict[str, Any], int]) -> tuple[int, np.ndarray, np.ndarray]:
    images, names, rules, start = job
    side = rules["side"]
    pixels = np.zeros((len(images), side, side, 3), np.uint8)
    sizes = np.zeros((len(images), 2), np.int32)
    for offset, (image, name) in enumerate(zip(images, names, strict=True)):
        try:
            rgb = load_rgb(image, name)
        except UNREADABLE_ERRORS:
            continue  # sizes stay 0: the keypoint cache lists and skips it too
        square = resample_padded_square(rgb, side, fill=rules["pad_fill"] * 255.0)
        pixels[offset] = np.clip(np.rint(square), 0, 255).astype(np.uint8)
        sizes[offset] = rgb.shape[:2]
    return start, pixels, sizes


class _InThisProcess:
    """`ProcessPoolExecutor`'s map, in this process (num_workers 0)."""

    def __enter__(self) -> _InThisProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def map(self, function, jobs):
        return map(function, jobs)


__all__ = ["ImageCacheMismatchError", "ResizedImageCache", "build_image_cache", "cache_rules", "load_image_cache"]
