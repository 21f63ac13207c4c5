"""Run the image processor (decode + keypoint detection + retina ROIs) over many images in worker
processes, one image at a time per worker, and hand the results back in the caller's order, in batches.

The processor is the slow part of embedding a folder (the detector alone is ~60 % of it) and it uses
one core per image, so `sapiensid embed`, a gallery `search`, `evaluate` and the training keypoint
cache spread it over a `torch.utils.data.DataLoader` with workers while the model runs in the main
process. Workers take one image at a time (an even load on a short list) and the batches for the model
are assembled in the main process, in order. Each worker builds its own detector interpreter (the processor rebuilds it in a new process)
limited to one thread, as is torch inside it, so the workers do not oversubscribe the cores.

A failing image never stops the others: its exception comes back with its index, and the caller
decides (raise it, or skip it with `--skip-unreadable`). The features of one image do not depend on
the other images of its batch, so results equal one processor call over the whole list.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature

from .cut_views import PHOTO_AS_IT_IS
from .processing.image_decoding import (
    DEFAULT_MAX_IMAGE_PIXELS,
    SapiensIDInputError,
    describe_input,
    load_rgb,
    renamed_error,
)

# Names the processor gives an input in its messages: "image 0 (...)" for a one-image call.
_SINGLE_IMAGE_NAME = "image 0 "


@dataclass
class ProcessedBatch:
    """Processor outputs of the images of one batch that worked, plus the failures, by caller index."""

    indices: list[int]
    features: BatchFeature | None  # torch tensors for `indices`, in order; None when every image failed
    failures: list[tuple[int, BaseException]] = field(default_factory=list)


def available_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_num_workers() -> int:
    """Worker processes for a large job: the cores this process may use, at most 8."""
    return max(1, min(8, available_cores()))


def resolve_num_workers(requested: int | None, num_processes: int = 1) -> int:
    """A `--num-workers` value: `requested`, or for None ("auto") the default shared among the
    `num_processes` processes of a launch (at least one each)."""
    if requested is not None:
        return requested
    return max(1, default_num_workers() // num_processes)


@contextlib.contextmanager
def model_threads_beside(num_workers: int, device: torch.device) -> Iterator[None]:
    """While `num_workers` processes decode and detect, a model on the CPU takes only the cores they
    leave (at least one): measured on 2 cores with 2 workers, 1 model thread embeds 1.3x faster than 2
    (the workers are the bottleneck, and a second model thread takes a core from them)."""
    if num_workers == 0 or device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(previous, available_cores() - num_workers)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _OneImageEach(torch.utils.data.Dataset):
    """Item i = the processor run on image i alone (numpy outputs), or the exception it raised.
    With `keypoints` (N, 19, 2), image i is read at keypoints[i] and nothing is detected. With more
    `cut_scales` than the photo itself, the features also hold its centre cuts, each at the person the
    detector finds there, or at the photo's keypoints where it misses them (processing/centre_cuts.py);
    with `cut_keypoints` (N, cuts, 19, 2) as well, at cut_keypoints[i] and nothing is detected on the cuts.
    With `frame_small_people`, a person who fills little of a photo is cut from it first (the processor's
    setting, processing/small_person_frame.py)."""

    def __init__(
        self,
        processor: Any,
        image_at: Callable[[int], Any],
        count: int,
        keypoints: np.ndarray | None = None,
        cut_scales: Sequence[float] = PHOTO_AS_IT_IS,
        cut_keypoints: np.ndarray | None = None,
        frame_small_people: bool = False,
    ):
        self.processor = processor
        self.image_at = image_at
        self.count = count
        self.keypoints = keypoints
        self.cut_scales = tuple(cut_scales)
        self.cut_keypoints = cut_keypoints
        # The views are this loop's choice (the model config's cuts or --no-cuts here, flip in embed_batch), never
        # the processor's own settings (the folder's rule for AutoModel users; load_processor turns them off).
        self.views_off = {
            name: off for name, off in (("embedding_cuts", None), ("embedding_flip", False)) if getattr(processor, name, off) != off
        }
        # So is the small-person cut (the pipeline's `frame_small_people`, off for --person-crops and datasets).
        if getattr(processor, "frame_small_people", False) != frame_small_people:
            self.views_off["frame_small_people"] = frame_small_people

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[int, dict[str, Any] | None, BaseException | None]:
        given = None if self.keypoints is None else self.keypoints[index : index + 1]
        try:
            image = self.image_at(index)
            if not self.cut_scales[1:]:
                return index, dict(self.processor([image], keypoints=given, return_tensors="np", **self.views_off)), None
            # Decoded once (a large photo's decode costs as much as a detection): the photo and its cuts are
            # read from the array, and what the processor says about the array is said about the file.
            name = describe_input(image, 0)
            rgb = load_rgb(image, name, getattr(self.processor, "max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))
            known = None if self.cut_keypoints is None else self.cut_keypoints[index : index + 1]
            try:
                views = {**self.views_off, "embedding_cuts": list(self.cut_scales)}
                features = dict(self.processor([rgb], keypoints=given, return_tensors="np", cut_keypoints=known, **views))
            except Exception as error:
                raise renamed_error(error, describe_input(rgb, 0), name) from error.__cause__
            return index, features, None
        except Exception as error:  # returned, not raised: one bad file must not stop a worker's batch
            return index, None, _renumbered(error, index)


def _renumbered(error: BaseException, index: int) -> BaseException:
    """The processor numbers inputs within its call; a one-image call says "image 0": use the caller's index."""
    if isinstance(error, SapiensIDInputError):
        return renamed_error(error, _SINGLE_IMAGE_NAME, f"image {index} ")
    return error


def merge_features(parts: Sequence[dict[str, Any]]) -> BatchFeature:
    """One batch from one-image processor outputs: arrays concatenated and made torch tensors, per-image
    lists (person boxes, keypoint sources) joined."""
    merged: dict[str, Any] = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if isinstance(values[0], np.ndarray):
            merged[key] = torch.from_numpy(np.concatenate(values))
        else:
            merged[key] = [
                torch.from_numpy(item) if isinstance(item, np.ndarray) else item for value in values for item in value
            ]
    return BatchFeature(data=merged)


def _collate(items: list[tuple[int, dict[str, Any] | None, BaseException | None]]) -> ProcessedBatch:
    good = [(index, features) for index, features, error in items if error is None]
    failures = [(index, error) for index, _, error in items if error is not None]
    features = merge_features([features for _, features in good]) if good else None
    return ProcessedBatch([index for index, _ in good], features, failures)


def _one_thread_worker_init(worker_id: int) -> None:
    """`worker_init_fn` of the loader `process_images` builds (its dataset is an `_OneImageEach`): torch
    and the detector on one thread in each worker."""
    torch.set_num_threads(1)
    dataset = torch.utils.data.get_worker_info().dataset
    set_threads = getattr(dataset.processor, "set_detector_threads", None)
    if set_threads is not None:
        set_threads(1)


def process_images(
    processor: Any,
    images: Sequence[Any] | Callable[[int], Any],
    batch_size: int,
    num_workers: int = 0,
    count: int | None = None,
    keypoints: np.ndarray | None = None,
    cut_scales: Sequence[float] = PHOTO_AS_IT_IS,
    cut_keypoints: np.ndarray | None = None,
    frame_small_people: bool = False,
) -> Iterator[ProcessedBatch]:
    """Processor outputs for `images` (a sequence, or a callable row -> image with `count` rows), in batches
    of `batch_size` in order; `num_workers` processes do the work (0: this process). `keypoints`
    (count, 19, 2), when given, are used as the images' keypoints instead of detecting them. `cut_scales`
    beyond the photo itself (1.0, first) add each photo's centre cuts (cut_views.py); `cut_keypoints`
    (count, cuts, 19, 2), the `cut_keypoints` features of an earlier run with the same `keypoints`, are
    used as the cuts' keypoints instead of detecting them. `frame_small_people`: a person who fills little of
    a photo is cut from it and the cut processed instead (processing/small_person_frame.py).

    This is the one path that runs the processor over many images: `sapiensid embed` / `search`, the
    evaluation runner, the development checks and the training keypoint cache all come through here."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
    if callable(images) and not isinstance(images, Sequence):
        if count is None:
            raise ValueError("count is required when images is a callable")
        image_at = images
    else:
        count = len(images)
        image_at = images.__getitem__
    if keypoints is not None and len(keypoints) != count:
        raise ValueError(f"{len(keypoints)} keypoint rows given for {count} images")
    if not cut_scales or cut_scales[0] != 1.0:
        raise ValueError(f"cut_scales must start with the photo itself (1.0), got {tuple(cut_scales)}")
    if cut_keypoints is not None and np.shape(cut_keypoints)[:2] != (count, len(cut_scales) - 1):
        raise ValueError(
            f"cut_keypoints of shape {np.shape(cut_keypoints)} given for {count} images with {len(cut_scales) - 1} cuts each"
        )
    dataset = _OneImageEach(processor, image_at, count, keypoints, cut_scales, cut_keypoints, frame_small_people)
    if num_workers == 0:
        for start in range(0, count, batch_size):
            yield _collate([dataset[index] for index in range(start, min(count, start + batch_size))])
        return
    # Workers take one image at a time (even load on a short list); batches are assembled here, in order.
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,  # the caller's order
        num_workers=min(num_workers, max(1, count)),
        collate_fn=_as_is,
        worker_init_fn=_one_thread_worker_init,
        prefetch_factor=min(16, max(2, batch_size)),  # images each worker may run ahead
        # The workers' seeds come from a private generator: starting workers must not draw from the global
        # RNG, or a seeded training run would depend on whether its keypoint cache was already built.
        generator=torch.Generator().manual_seed(0),
    )
    pending: list[tuple[int, dict[str, Any] | None, BaseException | None]] = []
    for item in loader:
        pending.append(item)
        if len(pending) == batch_size:
            yield _collate(pending)
            pending = []
    if pending:
        yield _collate(pending)


def _as_is(item: Any) -> Any:
    return item


__all__ = [
    "ProcessedBatch",
    "available_cores",
    "default_num_workers",
    "model_threads_beside",
    "merge_features",
    "process_images",
    "resolve_num_workers",
]
