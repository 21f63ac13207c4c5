"""Which training rows each process reads at each step: a deterministic, resumable stream.

Everything is a pure function of the run seed: the per-epoch order of rows (shuffled, or
identity-balanced), each step's batch size (from the masking schedule), and a per-sample augmentation
seed. A run resumed at step k replays the stream arithmetically up to k (no data is read) and then
reads exactly the rows the uninterrupted run would have read.

A step of `accumulation` micro-batches over P processes takes accumulation x P consecutive slices of
the epoch order, each `batch_size` long; process p reads slice p of each micro-batch. When the epoch
has fewer rows left than a micro-batch needs, the tail is dropped and the next epoch starts (rows
dropped this epoch come back in the next one's shuffle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .masking import MaskingSchedule

ORDER_STREAM = 1
SAMPLE_SEED_STREAM = 2
UNLABELLED_ORDER_STREAM = 5
UNLABELLED_SEED_STREAM = 6


class ShuffledOrder:
    """Every training row once per epoch, in a fresh random order."""

    def __init__(self, num_rows: int, seed: int, stream: int = ORDER_STREAM):
        self.num_rows = num_rows
        self.seed = seed
        self.stream = stream  # another stream number: an independent order from the same run seed

    def __call__(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.stream, epoch]).permutation(self.num_rows)

    @property
    def epoch_length(self) -> int:
        return self.num_rows


class IdentityBalancedOrder:
    """Every identity `images_per_identity` times per epoch, however many images it has.

    Each identity contributes K images (a random subset without replacement; an identity with fewer than
    K images repeats a shuffle of its images as evenly as possible), kept together as one group, and the
    groups are shuffled. Identities with thousands of images no longer dominate the softmax, and
    a batch holds K images of each identity it contains.
    """

    def __init__(self, labels: np.ndarray, images_per_identity: int, seed: int):
        labels = np.asarray(labels)
        if images_per_identity < 1:
            raise ValueError(f"images_per_identity must be positive, got {images_per_identity}")
        by_label = np.argsort(labels, kind="stable")
        _, starts, counts = np.unique(labels[by_label], return_index=True, return_counts=True)
        self.groups = [by_label[start : start + count] for start, count in zip(starts, counts, strict=True)]
        self.images_per_identity = images_per_identity
        self.seed = seed

    def __call__(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, ORDER_STREAM, epoch])
        picks = self.images_per_identity
        chunks = [np.resize(rows[rng.permutation(len(rows))], picks) for rows in self.groups]
        return np.concatenate([chunks[index] for index in rng.permutation(len(chunks))])

    @property
    def epoch_length(self) -> int:
        return len(self.groups) * self.images_per_identity


@dataclass(frozen=True)
class MicroBatch:
    """The rows one process reads for one micro-batch."""

    step: int
    micro: int
    epoch: int
    rows: np.ndarray  # indices into the training table
    seeds: np.ndarray  # one augmentation seed per row


class TrainingStream:
    """The deterministic sequence of micro-batches for one process.

    Args:
        order: epoch -> array of training-table rows (`ShuffledOrder` or `IdentityBalancedOrder`).
        epoch_length: rows per epoch in `order`.
        schedule: gives each step's per-process batch size.
        num_processes, process_index: data-parallel layout.
        accumulation_steps: micro-batches per optimizer step.
        seed: run seed (for the per-sample augmentation seeds).
        seed_stream: the random stream of the augmentation seeds (another stream for another data source).
    """

    def __init__(
        self,
        order: Callable[[int], np.ndarray],
        epoch_length: int,
        schedule: MaskingSchedule,
        num_processes: int = 1,
        process_index: int = 0,
        accumulation_steps: int = 1,
        seed: int = 0,
        seed_stream: int = SAMPLE_SEED_STREAM,
    ):
        largest = schedule.largest_batch_size * num_processes
        if epoch_length < largest:
            raise ValueError(
                f"the training set has {epoch_length} samples per epoch, but one micro-batch can need up to "
                f"{largest} ({schedule.largest_batch_size} per process x {num_processes} processes); lower "
                "batch_size (or masking.max_batch_size) or add images"
            )
        self.order = order
        self.epoch_length = epoch_length
        self.schedule = schedule
        self.num_processes = num_processes
        self.process_index = process_index
        self.accumulation_steps = accumulation_steps
        self.seed = seed
        self.seed_stream = seed_stream

    def micro_batches(self, start_step: int = 0) -> Iterator[MicroBatch]:
        """Micro-batches from `start_step` on (infinite); earlier steps are replayed without reading data."""
        epoch, cursor, step = 0, 0, 0
        current: tuple[int, np.ndarray, np.ndarray] | None = None  # (epoch, order, seeds) once reading starts
        while True:
            batch = self.schedule.at(step).batch_size
            needed = batch * self.num_processes
            for micro in range(self.accumulation_steps):
                if cursor + needed > self.epoch_length:
                    epoch, cursor = epoch + 1, 0
                if step >= start_step:
                    if current is None or current[0] != epoch:
                        current = (epoch, *self._epoch(epoch))
                    _, order, seeds = current
                    mine = slice(cursor + self.process_index * batch, cursor + (self.process_index + 1) * batch)
                    yield MicroBatch(step, micro, epoch, order[mine], seeds[mine])
                cursor += needed
            step += 1

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = self.order(epoch)
        if len(order) != self.epoch_length:
            raise RuntimeError(f"epoch {epoch} has {len(order)} rows, expected {self.epoch_length}")
        seeds = np.random.default_rng([self.seed, self.seed_stream, epoch]).integers(0, 2**63, size=len(order))
        return order, seeds


@dataclass(frozen=True)
class _FixedPlan:
    batch_size: int


class FixedBatchSize:
    """A stand-in for the masking schedule where every step has the same per-process batch size (the
    unlabelled distillation photos: a fixed number per step, whatever the step's token count)."""

    def __init__(self, batch_size: int):
        self.largest_batch_size = batch_size
        self._plan = _FixedPlan(batch_size)

    def at(self, step: int) -> _FixedPlan:
        return self._plan


def unlabelled_stream(
    num_rows: int, batch_size: int, seed: int, num_processes: int = 1, process_index: int = 0, accumulation_steps: int = 1
) -> TrainingStream:
    """`batch_size` unlabelled photos per process and micro-batch, in shuffled epochs of their own: a pure
    function of the run seed on streams of its own, so resuming replays it like the labelled stream."""
    return TrainingStream(
        ShuffledOrder(num_rows, seed, stream=UNLABELLED_ORDER_STREAM), num_rows, FixedBatchSize(batch_size),
        num_processes=num_processes, process_index=process_index, accumulation_steps=accumulation_steps,
        seed=seed, seed_stream=UNLABELLED_SEED_STREAM,
    )  # fmt: skip


class MicroBatchSampler:
    """A DataLoader `batch_sampler`: yields (row, seed, step, micro) keys for steps [start, stop)."""

    def __init__(self, stream: TrainingStream, start_step: int, stop_step: int):
        self.stream = stream
        self.start_step = start_step
        self.stop_step = stop_step

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        for batch in self.stream.micro_batches(self.start_step):
            if batch.step >= self.stop_step:
                return
            yield [(int(row), int(seed), batch.step, batch.micro) for row, seed in zip(batch.rows, batch.seeds, strict=True)]

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.stream.accumulation_steps


__all__ = [
    "FixedBatchSize",
    "IdentityBalancedOrder",
    "MicroBatch",
    "MicroBatchSampler",
    "ShuffledOrder",
    "TrainingStream",
    "unlabelled_stream",
]
