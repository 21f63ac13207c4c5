"""Embeddings of a whole benchmark: batched, flip-augmented, cached on disk, split across processes.

- Images go through the project's one embedding loop (`embedding_views.embed_images`: the processor in
  worker processes when `num_workers > 0`, the model here), the same loop `sapiensid embed` uses.
- Flip test-time augmentation as the official evaluators: embedding of the image plus embedding of the
  mirrored image (pixels, padding mask and keypoints mirrored, left/right keypoints swapped), then
  L2-normalised. Without flip the embedding is just L2-normalised.
- Under `accelerate launch`, every process embeds a contiguous slice of the rows and the main process
  gathers them (Accelerate `PartialState.split_between_processes` + `gather_object`); in a plain
  Python process this is a no-op.
- A cache file (npz) is keyed by the model, the processor settings, the dataset content (its listing
  plus the size and modification time of every image file it reads from disk) and the flip setting,
  so an unchanged re-run skips the model entirely and an image replaced in place is embedded again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ..atomic_files import save_npz_atomically
from ..data.common import UndecodedImages
from ..embedding_views import embed_images
from ..processing.standing_person_prior import SOURCE_PRIOR

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class BenchmarkImageError(ValueError):
    """A benchmark image could not be read or processed: the benchmark is refused, not scored without it."""


def image_file_stamps(dataset: datasets.Dataset) -> str:
    """sha256 over (path, size, mtime) of every image the dataset reads from a file (lazy `image` paths).

    The dataset fingerprint covers the listing only; this covers the files' contents as the file system
    reports them, so replacing a photo in place changes the cache key. Embedded image bytes are part of
    the dataset fingerprint already.
    """
    digest = hashlib.sha256()
    if "image" not in dataset.column_names:
        return digest.hexdigest()
    images = dataset.data.column("image").combine_chunks()
    if not hasattr(images.type, "get_field_index") or images.type.get_field_index("path") < 0:
        return digest.hexdigest()
    paths = images.field("path").to_pylist()
    has_bytes = images.type.get_field_index("bytes") >= 0
    stored = images.field("bytes").is_valid().to_pylist() if has_bytes else [False] * len(paths)
    for path, in_table in zip(paths, stored, strict=True):
        if in_table or path is None:
            continue
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def embedding_cache_key(model: torch.nn.Module, processor: Any, dataset: datasets.Dataset, flip: bool) -> str:
    """Hex digest identifying (model weights, processor settings, dataset content, flip)."""
    source = str(getattr(model, "name_or_path", "") or "")
    weights = []
    if source and Path(source).is_dir():
        weights = [
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(source).iterdir())
            if p.suffix in _WEIGHT_SUFFIXES
        ]
    identity = {
        "model": source,
        "model_revision": getattr(model.config, "_commit_hash", None),
        "weights": weights,
        "config": model.config.to_json_string(use_diff=False),
        "processor": processor.to_json_string() if hasattr(processor, "to_json_string") else repr(processor),
        "dataset": dataset._fingerprint,
        "image_files": image_file_stamps(dataset),
        "rows": len(dataset),
        "flip": flip,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class DatasetEmbeddings:
    """Every row's embedding, whether its image has keypoints (without, every such image gets the same
    embedding: the results say how many there were), and whether they are the processor's standing-person
    prior (the detector found nobody in a person crop; processing/standing_person_prior.py)."""

    embeddings: np.ndarray  # (N, output_dim) float32, L2-normalised
    person_found: np.ndarray  # (N,) bool
    keypoint_prior: np.ndarray  # (N,) bool

    @property
    def detector_found_nobody(self) -> np.ndarray:
        """(N,) bool: rows in which the detector found nobody (prior keypoints or none at all)."""
        return ~self.person_found | self.keypoint_prior


def _embed_rows(
    model: torch.nn.Module,
    processor: Any,
    dataset: datasets.Dataset,
    batch_size: int,
    flip: bool,
    device: torch.device,
    num_workers: int,
    show_progress: bool,
) -> DatasetEmbeddings:
    chunks, found, prior = [], [], []
    progress = tqdm(total=len(dataset), desc="embedding", unit="img", disable=not show_progress)
    batches = embed_images(
        model, processor, UndecodedImages(dataset), batch_size, device, flip, num_workers
    )
    for batch in batches:
        if batch.failures:
            raise BenchmarkImageError(f"a benchmark image cannot be embedded, so no score would be right: {batch.failures[0][1]}")
        chunks.append(batch.embeddings)
        found.append(np.asarray(batch.features["person_found"], dtype=bool).reshape(-1))
        prior.append(np.array([source == SOURCE_PRIOR for source in batch.features["keypoint_source"]], dtype=bool))
        progress.update(len(batch.indices))
    progress.close()
    if not chunks:
        none = np.zeros(0, dtype=bool)
        return DatasetEmbeddings(np.zeros((0, model.config.output_dim), np.float32), none, none)
    return DatasetEmbeddings(torch.cat(chunks).numpy(), np.concatenate(found), np.concatenate(prior))


def embed_dataset(
    model: torch.nn.Module,
    processor: Any,
    dataset: datasets.Dataset,
    batch_size: int = 32,
    flip: bool = True,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """(len(dataset), output_dim) float32 L2-normalised embeddings, in dataset row order.

    Every process of an `accelerate launch` gets the full array back.
    """
    return embed_dataset_rows(model, processor, dataset, batch_size, flip, num_workers, cache_dir, device).embeddings


def embed_dataset_rows(
    model: torch.nn.Module,
    processor: Any,
    dataset: datasets.Dataset,
    batch_size: int = 32,
    flip: bool = True,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> DatasetEmbeddings:
    """`embed_dataset`, with each row's `person_found` and `keypoint_prior` beside its embedding (cached
    together)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    state = PartialState()
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{embedding_cache_key(model, processor, dataset, flip)[:24]}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                if "keypoint_prior" in cached:  # older caches lack the row flags: made again
                    return DatasetEmbeddings(cached["embeddings"], cached["person_found"], cached["keypoint_prior"])

    target = torch.device(device) if device is not None else state.device
    model = model.to(target).eval()
    with state.split_between_processes(list(range(len(dataset)))) as rows:
        local = _embed_rows(
            model,
            processor,
            dataset.select(rows),
            batch_size,
            flip,
            target,
            num_workers,
            state.is_main_process,
        )
    parts = gather_object([local])
    rows = DatasetEmbeddings(
        np.concatenate([part.embeddings for part in parts]),
        np.concatenate([part.person_found for part in parts]),
        np.concatenate([part.keypoint_prior for part in parts]),
    )
    if len(rows.embeddings) != len(dataset):
        raise RuntimeError(f"gathered {len(rows.embeddings)} embeddings for {len(dataset)} images")
    if cache_file is not None and state.is_main_process:
        save_npz_atomically(cache_file, embeddings=rows.embeddings, person_found=rows.person_found, keypoint_prior=rows.keypoint_prior)
    state.wait_for_everyone()
    return rows
