"""What every image subcommand shares: finding images, loading the model loudly, embedding with a progress bar."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cut_views import PHOTO_AS_IT_IS
from ..inference import (
    MODEL_ENV_VAR,
    UNTRAINED_SOURCE,
    UNTRAINED_WARNING,
    EmbeddingResult,
    SapiensIDPipeline,
    checked_model_source,
    concatenate_results,
    default_model_source,
    load_pipeline,
)
from ..processing.detector_assets import DetectorNotAvailableError
from ..processing.image_decoding import SapiensIDInputError

# HEIC / HEIF are listed whether or not their plug-in is installed: a phone's photos in a folder are read, or
# each is named with what it needs (processing/image_decoding.py), never silently left out.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif", ".heic", ".heif"})
BANNER_WIDTH = 78


class CommandError(Exception):
    """A problem with what the user asked for, reported as one message and exit code 1 (no traceback)."""


def is_user_error(error: BaseException) -> bool:
    """Errors caused by the input or the environment, shown as a message rather than a traceback."""
    from ..onnx_export import OnnxExportError

    return isinstance(
        error,
        CommandError
        | SapiensIDInputError
        | DetectorNotAvailableError
        | OnnxExportError
        | OSError
        | ValueError,
    )


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def images_in_folder(folder: Path, recursive: bool) -> list[Path]:
    """Image files in `folder` (by suffix, case-insensitive), sorted by path for a stable order."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(path for path in candidates if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def collect_images(
    inputs: Iterable[str | os.PathLike], recursive: bool = False, what: str = "input"
) -> list[Path]:
    """Expand files and folders into a list of image paths, in the order given (folders sorted).

    A missing path, or a folder without images, is a `CommandError` naming it. A file is taken
    whatever its suffix: the processor says clearly if it is not an image.
    """
    paths: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = images_in_folder(path, recursive)
            if not found:
                hint = "" if recursive else " (use --recursive to look in sub-folders)"
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                raise CommandError(f"{what} folder {path} holds no images ({suffixes}){hint}")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise CommandError(f"{what} {path}: no such file or folder")
    if not paths:
        raise CommandError(f"no {what} images given")
    return paths


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def banner(message: str, stream=None) -> None:
    """A boxed, hard-to-miss message on stderr."""
    stream = stream if stream is not None else sys.stderr
    rule = "!" * BANNER_WIDTH
    lines = textwrap.wrap(message, BANNER_WIDTH - 6)
    print(rule, file=stream)
    for line in lines:
        print(f"!! {line:<{BANNER_WIDTH - 6}} !!", file=stream)
    print(rule, file=stream, flush=True)


class _DropUntrainedWarning(logging.Filter):
    """`load_pipeline` logs the untrained warning; the commands show it as a banner instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != UNTRAINED_WARNING


def person_crops_of(args: argparse.Namespace) -> bool:
    """`--person-crops`, refused beside `--all-people`: one says every image is one person, the other looks
    for every person in it."""
    if args.person_crops and getattr(args, "all_people", False):
        raise CommandError("--person-crops says every image is one person; --all-people looks for every person: choose one")
    return args.person_crops


def open_pipeline(model: str | None, device: str = "cpu", person_crops: bool = False, no_cuts: bool = False) -> SapiensIDPipeline:
    """Load the model and its processor: `model` (folder or hub id), else $SAPIENSID_MODEL, else the shipped
    sapiensid-small; `untrained` gives a randomly initialised tiny model on purpose. `person_crops`: every
    image is a crop of one person (`--person-crops`): the processor's standing-person prior is on.
    `no_cuts` (`--no-cuts`): photos are embedded as they are, not by the folder's rule of centre cuts.

    Says on stderr which model is used, and prints a banner when its weights are untrained. A model
    argument that is neither an existing folder nor a hub id is refused before anything is loaded.
    """
    source = model if model is not None else os.environ.get(MODEL_ENV_VAR)
    if source is not None and source != UNTRAINED_SOURCE:
        try:
            source = checked_model_source(source)
        except FileNotFoundError as error:
            raise CommandError(f"model {error}; or '{UNTRAINED_SOURCE}' for a randomly initialised model") from error
    inference_logger = logging.getLogger("sapiensid_hf.inference")
    quiet = _DropUntrainedWarning()
    inference_logger.addFilter(quiet)
    try:
        pipeline = load_pipeline(source, device=device)
    except OSError as error:
        raise CommandError(f"model {source or default_model_source()}: could not be loaded ({error})") from error
    finally:
        inference_logger.removeFilter(quiet)
    print(f"model: {pipeline.description}", file=sys.stderr)
    if person_crops:
        pipeline.processor.standing_person_prior = True
        pipeline.frame_small_people = False  # a crop of one person is framed already: never cut again
        print(
            "--person-crops: every image is taken as a crop of one person; one in which the detector finds nobody "
            "gets the keypoints of a standing person filling it, and no person is cut from an image",
            file=sys.stderr,
        )
    if no_cuts and pipeline.embedding_cuts != PHOTO_AS_IT_IS:
        pipeline.model.config.embedding_cuts = None  # the weights fingerprint follows: files remember the rule
        print("--no-cuts: each photo is embedded as it is, not as the mean of its centre cuts", file=sys.stderr)
    if not pipeline.trained:
        banner(UNTRAINED_WARNING)
    return pipeline


def model_label(model: str | None, pipeline: SapiensIDPipeline) -> str:
    """What to call the model in saved outputs: the folder / hub id, or that it is untrained."""
    return pipeline.source if pipeline.source is not None else pipeline.description


def untrained_note(pipeline: SapiensIDPipeline) -> str:
    """One line for saved outputs: empty for trained weights, a loud warning otherwise."""
    return "" if pipeline.trained else f"WARNING: {UNTRAINED_WARNING}"


# ----------------------------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------------------------


@dataclass
class EmbeddedImages:
    paths: list[Path]  # the images embedded, in order (unreadable ones removed when skipped)
    result: EmbeddingResult
    skipped: list[tuple[Path, str]]  # (path, reason) of images left out


def follow_recorded_flip(args: argparse.Namespace, recorded: bool | None) -> None:
    """`search` embeds its queries the way its gallery or index was embedded (flip or not), unless the
    command line said --flip / --no-flip; a gallery that records nothing (a folder, an older file): flip."""
    if args.flip is None:
        args.flip = True if recorded is None else recorded


# Said when a folder's unreadable file stops a command that could have left it out.
SKIP_UNREADABLE_HINT = "; add --skip-unreadable to leave out (and list) the files that are not readable images"


def embed_images(
    pipeline: SapiensIDPipeline,
    paths: Sequence[Path],
    batch_size: int = 8,
    skip_unreadable: bool = False,
    description: str = "embedding",
    flip: bool = True,
    num_workers: int = 0,
) -> EmbeddedImages:
    """Embed `paths` in batches of `batch_size` with a progress bar (images/s) on stderr (shown on a
    terminal); `num_workers` processes decode and detect while the model runs in this one.

    An image the processor cannot read stops everything with its name and the problem, unless
    `skip_unreadable`, which leaves it out and records why.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {batch_size}")
    names = [os.fspath(path) for path in paths]
    kept: list[Path] = []
    results: list[EmbeddingResult] = []
    skipped: list[tuple[Path, str]] = []
    with tqdm(total=len(paths), desc=description, unit="img", disable=None, file=sys.stderr) as progress:
        for indices, result, failures in pipeline.embed_batches(names, batch_size, flip, num_workers):
            for index, error in failures:
                if not isinstance(error, SapiensIDInputError):
                    raise error
                if not skip_unreadable:
                    raise SapiensIDInputError(f"{error}{SKIP_UNREADABLE_HINT}") from error
                skipped.append((paths[index], str(error)))
            if result is not None:
                results.append(result)
                kept.extend(paths[index] for index in indices)
            progress.update(len(indices) + len(failures))
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not results:
        raise CommandError("none of the images could be read")
    return EmbeddedImages(kept, concatenate_results(results), skipped)


# The model pools its features at the person's keypoints (Semantic Attention Head): with no keypoint,
# every picture gets the same embedding, so it says nothing about who is in it.
NO_PERSON = "no person found, so it has no identity embedding (the model reads a person at their keypoints)"


def not_found_notes(paths: Sequence[Path], result: EmbeddingResult, consequence: str = "") -> list[str]:
    """A line per image where the detector found nobody; `consequence` says what the command does about it."""
    return [
        f"{path}: {NO_PERSON}" + (f"; {consequence}" if consequence else "")
        for path, found in zip(paths, result.person_found, strict=True)
        if not found
    ]
