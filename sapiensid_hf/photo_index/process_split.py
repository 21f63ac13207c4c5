"""Embed a collection with every process of an `accelerate launch`: on one machine or many.

    accelerate launch --num_processes 4 -m sapiensid_cli index build album/ --output album.sidx
    accelerate launch --multi_gpu --num_machines 2 --machine_rank R --main_process_ip HOST ... \
        -m sapiensid_cli index add album.sidx new_photos/

Each process embeds a contiguous slice of the photos to embed; the rows are gathered, in photo order, in
every process, and only the main process takes the index's writer lock and writes (the others never
touch the folder). Without a launch (one process) this is the plain embedding loop. The photos and the
index folder must be at the same paths on every machine (a shared file system).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object

from ..processing.people_in_image import PERSON_FRAME_SCALES
from .store import Rows, writer_lock


def embed_rows_in_every_process(
    embed_rows: Any, pipeline: Any, photos: Sequence[Path], all_people: bool, flip: bool, num_workers: int = 0,
    frame_scales: Sequence[float] = PERSON_FRAME_SCALES, face_boxes: bool = True, frame_small_people: bool = True,
) -> tuple[Rows, list[tuple[str, str]]]:  # fmt: skip
    """`embed_rows(pipeline, photos, all_people, flip, num_workers, frame_scales, face_boxes, frame_small_people)`,
    its photos split among the processes of the launch; every process gets all the rows and skipped photos
    back, in photo order."""
    state = PartialState()
    rules = (frame_scales, face_boxes, frame_small_people)
    if state.num_processes == 1:
        return embed_rows(pipeline, photos, all_people, flip, num_workers, *rules)
    with state.split_between_processes(list(photos)) as mine:
        part = embed_rows(pipeline, mine, all_people, flip, num_workers, *rules)
    parts = gather_object([part])  # in process order: the slices are contiguous, so in photo order
    return Rows.concatenate(*(rows for rows, _ in parts)), [entry for _, skipped in parts for entry in skipped]


def is_writer() -> bool:
    """Whether this process writes the index: the only one, or the main process of a launch."""
    return PartialState().is_main_process


def writer_lock_if_writer(folder: Path) -> AbstractContextManager[None]:
    """The index's writer lock in the process that writes; nothing in the others of a launch."""
    return writer_lock(folder) if is_writer() else nullcontext()


def wait_for_the_writer() -> None:
    """Every process of a launch returns once the main process has written."""
    PartialState().wait_for_everyone()
