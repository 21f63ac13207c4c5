"""Training data: the source dataset, its keypoints, the train / validation rows, and per-sample tensors.

Rows come from a `datasets.Dataset` with the sapiensid_hf.data schema (image, path, pid, camid,
clothes_id, role). Images are read undecoded and decoded by the processor, so an unreadable file becomes
a clear, counted skip instead of an exception deep inside `datasets`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ..processing.image_decoding import SapiensIDInputError
from .augmentation import TrainingAugmentation
from .config import ConfigError, DataConfig, ValidationConfig

logger = logging.getLogger(__name__)

HOLDOUT_STREAM = 4
SAMPLE_ERRORS = (SapiensIDInputError, OSError, ValueError, RuntimeError)


class TrainingDataError(ValueError):
    """The dataset cannot be trained on (no images, a single identity, missing columns...)."""


def load_source_dataset(config: DataConfig) -> datasets.Dataset:
    """The dataset named by the config: a `save_to_disk` folder or a `sapiensid_hf.data` loader."""
    if config.dataset_path is not None:
        state = Path(config.dataset_path) / "state.json"
        if state.is_file() and not json.loads(state.read_text(encoding="utf-8")).get("_data_files", True):
            raise TrainingDataError(f"data.dataset_path {config.dataset_path!r} is an empty dataset: it has no images")
        try:
            source = datasets.load_from_disk(config.dataset_path)
        except FileNotFoundError as error:
            raise TrainingDataError(f"data.dataset_path {config.dataset_path!r}: {error}") from error
    else:
        source = _find_loader(config.loader)(config.root, **config.loader_kwargs)
    if isinstance(source, datasets.DatasetDict):
        if config.split is None or config.split not in source:
            raise ConfigError(
                f"the data source holds several splits ({', '.join(source)}); choose one with data.split"
            )
        source = source[config.split]
    if not isinstance(source, datasets.Dataset):
        raise TrainingDataError(f"the data source gave a {type(source).__name__}, expected a datasets.Dataset")
    return source


def _find_loader(name: str):
    from .. import data as data_package

    function_name = name if name.startswith("load_") else f"load_{name}"
    found = getattr(data_package, function_name, None)
    modules = [module.name for module in pkgutil.iter_modules(data_package.__path__)]
    for module_name in modules:
        if found is not None:
            break
        module = importlib.import_module(f"{data_package.__name__}.{module_name}")
        found = getattr(module, function_name, None)
    if found is None:
        available = sorted(
            attribute[5:]
            for module_name in modules
            for attribute in dir(importlib.import_module(f"{data_package.__name__}.{module_name}"))
            if attribute.startswith("load_")
        )
        raise ConfigError(f"data.loader {name!r} is not a loader in sapiensid_hf.data; available: {', '.join(available)}")
    return found


class DatasetView:
    """Column access to a dataset without decoding its images."""

    def __init__(self, dataset: datasets.Dataset):
        if len(dataset) == 0:
            raise TrainingDataError("the dataset has no images")
        columns = set(dataset.column_names)
        if "pid" not in columns:
            raise TrainingDataError(f"the dataset needs a 'pid' column (identity); it has {sorted(columns)}")
        if "image" not in columns and "path" not in columns:
            raise TrainingDataError(f"the dataset needs an 'image' or 'path' column; it has {sorted(columns)}")
        image_feature = dataset.features.get("image")
        if isinstance(image_feature, datasets.Image) and image_feature.decode:
            dataset = dataset.cast_column("image", datasets.Image(decode=False))
        self.dataset = dataset
        self.pids = np.asarray(dataset["pid"], dtype=np.int64)
        self.roles = np.asarray(dataset["role"], dtype=object) if "role" in columns else None
        self.camids = np.asarray(dataset["camid"], dtype=np.int64) if "camid" in columns else np.zeros(len(dataset), np.int64)
        self.clothes = (
            np.asarray(dataset["clothes_id"], dtype=np.int64) if "clothes_id" in columns else np.full(len(dataset), -1)
        )
        self.paths = [str(path) for path in dataset["path"]] if "path" in columns else [f"row {i}" for i in range(len(dataset))]
        self.has_keypoint_column = "keypoints" in columns

    def __len__(self) -> int:
        return len(self.dataset)

    def image(self, row: int) -> Any:
        """Something the processor decodes: a path, encoded bytes or a PIL image."""
        entry = self.dataset[int(row)]
        image = entry.get("image", entry.get("path"))
        if isinstance(image, dict):
            image = image.get("bytes") or image.get("path")
        if image is None:
            raise SapiensIDInputError(f"{self.paths[row]}: the row has neither image bytes nor a path")
        return image

    def keypoint_column(self) -> np.ndarray:
        return np.asarray(self.dataset["keypoints"], dtype=np.float32)


@dataclass
class RecognitionRows:
    """Rows of the view that train, with contiguous class labels."""

    rows: np.ndarray  # view rows
    labels: np.ndarray  # class index per row, 0..num_classes-1
    class_pids: np.ndarray  # original pid of each class

    @property
    def num_classes(self) -> int:
        return len(self.class_pids)

    @classmethod
    def from_rows(cls, rows: np.ndarray, pids: np.ndarray, what: str = "training set") -> RecognitionRows:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            raise TrainingDataError(f"the {what} has no images (check data.train_roles and unreadable files)")
        class_pids, labels = np.unique(pids[rows], return_inverse=True)
        if len(class_pids) < 2:
            raise TrainingDataError(
                f"the {what} has a single identity (pid {class_pids[0]}, {len(rows)} images); recognition "
                "training needs at least 2 identities"
            )
        return cls(rows=rows, labels=labels.astype(np.int64), class_pids=class_pids)


@dataclass
class ValidationRows:
    query: np.ndarray
    gallery: np.ndarray  # empty for leave-one-out (the query set is its own gallery)
    leave_one_out: bool = False


def split_rows(
    view: DatasetView, readable: np.ndarray, data: DataConfig, validation: ValidationConfig, seed: int
) -> tuple[RecognitionRows, ValidationRows | None]:
    """Training rows (role filter, unreadable images removed, held-out identities removed) and validation rows."""
    usable = readable.copy()
    if view.roles is not None:
        usable &= np.isin(view.roles, data.train_roles)
    train = np.flatnonzero(usable)
    evaluation = None
    if validation.source == "holdout":
        train, evaluation = _hold_out(train, view.pids, validation.holdout_identities, seed)
    elif validation.source == "roles":
        if view.roles is None:
            raise TrainingDataError("validation.source 'roles' needs a 'role' column in the dataset")
        query = np.flatnonzero(readable & (view.roles == validation.query_role))
        gallery = np.flatnonzero(readable & (view.roles == validation.gallery_role))
        if len(query) == 0 or len(gallery) == 0:
            raise TrainingDataError(
                f"validation.source 'roles' found {len(query)} '{validation.query_role}' and {len(gallery)} "
                f"'{validation.gallery_role}' rows; both must be non-empty"
            )
        evaluation = ValidationRows(query, gallery)
    elif validation.source == "train":
        subset = train[np.random.default_rng([seed, HOLDOUT_STREAM]).permutation(len(train))[: validation.max_images]]
        evaluation = ValidationRows(np.sort(subset), np.empty(0, np.int64), leave_one_out=True)
    return RecognitionRows.from_rows(train, view.pids), evaluation


def _hold_out(train: np.ndarray, pids: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, ValidationRows]:
    identities, sizes = np.unique(pids[train], return_counts=True)
    candidates = identities[sizes >= 2]  # a held-out identity needs a query and a gallery image
    if len(candidates) < count:
        raise TrainingDataError(
            f"validation.holdout_identities = {count}, but only {len(candidates)} identities have 2+ images"
        )
    if len(identities) - count < 2:
        raise TrainingDataError(f"holding out {count} of {len(identities)} identities leaves fewer than 2 to train on")
    held = np.sort(np.random.default_rng([seed, HOLDOUT_STREAM]).choice(candidates, count, replace=False))
    in_holdout = np.isin(pids[train], held)
    held_rows = train[in_holdout]
    # Each held-out identity's first row is its query; the rest are its gallery.
    _, first = np.unique(pids[held_rows], return_index=True)
    is_query = np.zeros(len(held_rows), dtype=bool)
    is_query[first] = True
    return train[~in_holdout], ValidationRows(held_rows[is_query], held_rows[~is_query])


@dataclass
class SkippedSample:
    """A sample that could not be read; counted and logged by the trainer."""

    row: int
    path: str
    reason: str
    step: int = -1
    micro: int = -1


class SampleReader:
    """Decode + square-pad + resize one row with the processor and the row's known keypoints, or read the
    square from a `ResizedImageCache` made once (the same square to within half a grey level)."""

    def __init__(self, view: DatasetView, keypoints: np.ndarray, processor: Any, images: Any = None):
        self.view = view
        self.keypoints = keypoints
        self.processor = processor
        self.images = images  # training/image_cache.ResizedImageCache, or None
        self.mean = np.asarray(processor.image_mean, dtype=np.float32)
        self.std = np.asarray(processor.image_std, dtype=np.float32)

    def read(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pixels (S, S, 3) in [0, 1], pixel mask (S, S), keypoints (19, 2)); raises on an unreadable image."""
        if self.images is not None:
            if not self.images.readable(row):
                raise SapiensIDInputError(f"{self.view.paths[row]}: the photo could not be read when the image cache was made")
            pixels, pixel_mask = self.images.square(row)
            return pixels, pixel_mask, np.asarray(self.keypoints[row], dtype=np.float32)
        features = self.processor([self.view.image(row)], keypoints=self.keypoints[row][None], return_tensors="np")
        pixels = features["pixel_values"][0].transpose(1, 2, 0) * self.std + self.mean
        return pixels, features["pixel_mask"][0], features["keypoints"][0]

    def to_tensors(self, pixels: np.ndarray, pixel_mask: np.ndarray, keypoints: np.ndarray) -> dict[str, torch.Tensor]:
        # Channels first in one contiguous copy, then normalised in place: the same values as normalising
        # first, 5x faster (a transposed copy after the arithmetic was most of this function's time).
        normalised = np.array(pixels.transpose(2, 0, 1), dtype=np.result_type(pixels, np.float32), order="C")
        normalised -= self.mean[:, None, None]
        normalised /= self.std[:, None, None]
        return {
            "pixel_values": torch.from_numpy(normalised.astype(np.float32, copy=False)),
            "pixel_mask": torch.from_numpy(np.ascontiguousarray(pixel_mask, dtype=np.int64)),
            "keypoints": torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32)),
        }


@dataclass
class TeacherTargets:
    """The face teacher's embedding of each row of a view, and which rows have one to distil from. The
    mirrored photo takes the photo's own target (a face and its mirror: cosine 0.99 under the teacher)."""

    embeddings: np.ndarray  # (N, teacher_dim) float32
    found: np.ndarray  # (N,) bool

    def attach(self, sample: dict[str, Any], row: int) -> None:
        sample["teacher_embeddings"] = torch.from_numpy(np.ascontiguousarray(self.embeddings[row], dtype=np.float32))
        sample["teacher_found"] = bool(self.found[row])


class TrainingSamples(torch.utils.data.Dataset):
    """Map-style dataset keyed by (training row, augmentation seed, step, micro-batch) from `MicroBatchSampler`.

    With `teacher`, every sample also carries its teacher target (`TeacherTargets.attach`)."""

    def __init__(
        self,
        reader: SampleReader,
        rows: RecognitionRows,
        augmentation: TrainingAugmentation,
        teacher: TeacherTargets | None = None,
    ):
        self.reader = reader
        self.rows = rows
        self.augmentation = augmentation
        self.teacher = teacher

    def __len__(self) -> int:
        return len(self.rows.rows)

    def __getitem__(self, key: tuple[int, int, int, int]) -> dict[str, Any] | SkippedSample:
        index, seed, step, micro = key
        return self._sample(int(self.rows.rows[index]), int(self.rows.labels[index]), seed, step, micro)

    def _sample(self, row: int, label: int, seed: int, step: int, micro: int) -> dict[str, Any] | SkippedSample:
        try:
            pixels, pixel_mask, keypoints = self.reader.read(row)
        except SAMPLE_ERRORS as error:
            return SkippedSample(row, self.reader.view.paths[row], f"{type(error).__name__}: {error}", step, micro)
        pixels, pixel_mask, keypoints = self.augmentation(pixels, pixel_mask, keypoints, np.random.default_rng(seed))
        sample = self.reader.to_tensors(pixels, pixel_mask, keypoints)
        sample.update(labels=label, row=row, step=step, micro=micro)
        if self.teacher is not None:
            self.teacher.attach(sample, row)
        return sample


class UnlabelledSamples(TrainingSamples):
    """Photos without identities (label -1) that carry a teacher target, keyed like `TrainingSamples`
    (by `unlabelled_stream`); `rows` are the view rows to draw from. Never randomly erased: their only
    loss is the teacher's target, which describes the whole face."""

    def __init__(self, reader: SampleReader, rows: np.ndarray, augmentation: TrainingAugmentation, teacher: TeacherTargets):
        unerased = dataclasses.replace(augmentation, random_erasing_prob=0.0)
        super().__init__(reader, RecognitionRows(np.asarray(rows, np.int64), np.full(len(rows), -1), np.empty(0)), unerased, teacher)


class EvaluationSamples(torch.utils.data.Dataset):
    """Unaugmented samples of the given view rows (validation)."""

    def __init__(self, reader: SampleReader, rows: np.ndarray):
        self.reader = reader
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any] | SkippedSample:
        row = int(self.rows[index])
        try:
            sample = self.reader.to_tensors(*self.reader.read(row))
        except SAMPLE_ERRORS as error:
            return SkippedSample(row, self.reader.view.paths[row], f"{type(error).__name__}: {error}")
        sample.update(row=row, index=index)
        return sample


# The batch entries the recognition model takes as inputs.
MODEL_INPUTS = ("pixel_values", "keypoints", "pixel_mask", "labels", "teacher_embeddings", "teacher_found")


def collate_samples(items: Sequence[dict[str, Any] | SkippedSample]) -> dict[str, Any]:
    """Stack readable samples; unreadable ones travel along in `skipped` to be counted.

    The embedding head has BatchNorm, which needs two samples: a micro-batch left with one readable
    sample repeats it (and says so in `repeated`).
    """
    samples = [item for item in items if not isinstance(item, SkippedSample)]
    skipped = [item for item in items if isinstance(item, SkippedSample)]
    batch: dict[str, Any] = {"skipped": skipped, "repeated": 0}
    if len(samples) == 1 and "labels" in samples[0]:
        samples = samples * 2
        batch["repeated"] = 1
    if samples:
        for name in ("pixel_values", "pixel_mask", "keypoints"):
            batch[name] = torch.stack([sample[name] for sample in samples])
        for name in ("labels", "row", "index"):
            if name in samples[0]:
                batch[name] = torch.tensor([sample[name] for sample in samples], dtype=torch.int64)
        if "teacher_embeddings" in samples[0]:
            batch["teacher_embeddings"] = torch.stack([sample["teacher_embeddings"] for sample in samples])
            batch["teacher_found"] = torch.tensor([sample["teacher_found"] for sample in samples], dtype=torch.bool)
    first = samples[0] if samples else (skipped[0] if skipped else None)
    batch["step"] = first["step"] if isinstance(first, dict) and "step" in first else getattr(first, "step", -1)
    batch["micro"] = first["micro"] if isinstance(first, dict) and "micro" in first else getattr(first, "micro", -1)
    batch["size"] = len(samples)
    return batch


def join_unlabelled(labelled: dict[str, Any], unlabelled: dict[str, Any]) -> dict[str, Any]:
    """One micro-batch of the labelled photos followed by the unlabelled ones (label -1): one forward pass,
    so the embedding head's BatchNorm and data parallelism see a single batch."""
    if unlabelled["size"] == 0:
        return labelled
    joined = dict(labelled)
    for name in MODEL_INPUTS:
        if name in unlabelled:  # the unlabelled photos' labels are UNLABELLED already
            joined[name] = torch.cat([labelled[name], unlabelled[name]])
    return joined


__all__ = [
    "MODEL_INPUTS",
    "DatasetView",
    "EvaluationSamples",
    "RecognitionRows",
    "SampleReader",
    "SkippedSample",
    "TeacherTargets",
    "TrainingDataError",
    "TrainingSamples",
    "UnlabelledSamples",
    "ValidationRows",
    "collate_samples",
    "join_unlabelled",
    "load_source_dataset",
    "split_rows",
]
