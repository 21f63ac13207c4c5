"""One embedding per person in each photo: `SapiensIDPipeline.embed_people` and `sapiensid embed --all-people`.

Each person found by `SapiensIDImageProcessor.detect_people` is cut from the full-resolution photo
(`Person.crop_box`) three times, 5 % tighter, as framed and 5 % wider (`PERSON_FRAME_SCALES`), and each
cut goes through the normal single-person path: the processor detects again on the crop, so the model
sees the kind of picture it was trained on. The person's embedding is the L2-normalised mean of the
three, i.e. of `pipeline.embed([cut])` for each cut (itself under the model folder's rule of centre cuts,
cut_views.py, when it has one). When the detector's choice in a cut is somebody else
(a crowd) or nobody, the person's own keypoints, mapped into that cut, are used instead
(`keypoint_source` "given"): a person is never embedded from another person's keypoints, and a box
without keypoints never gets a row. A find whose frame (the cut at the scale nearest 1.0) covers less than
SMALL_PERSON_SHARE of the photo, and in which the detector sees nobody, or only a face too weak to count
alone, is not confirmed as a person: it gets no row and is counted in its photo's `unseen_in_frame`
(flowers, animals and prints fool the search's look at a whole photo and its tiles, and rarely the look
at their frame). A find that shows a face and no legs must also be confirmed by another detector, OpenCV's
YuNet face detector (processing/face_check.py; for a find whose frame covers the share or more, whose frame
is its own photo again, it is the only second look), or it gets no row and is counted in
`face_unconfirmed`. The single-person path keeps the same rules: it cuts a person to their frame, and looks
again, below the same share, and asks YuNet of a face without legs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .embedding_views import embed_images
from .processing.face_check import face_confirmed, needs_face_check
from .processing.image_decoding import describe_input, load_rgb
from .processing.keypoint_detector import sees_somebody
from .processing.keypoint_layout import apply_official_rules
from .processing.people_detection import same_person_keypoints
from .processing.people_in_image import (
    DEFAULT_MAX_PEOPLE,
    DEFAULT_MIN_PERSON_SIZE,
    PERSON_FRAME_SCALES,
    PeopleInImage,
    Person,
    keypoints_in_crop,
)
from .processing.small_person_frame import SMALL_PERSON_SHARE, box_share

KEYPOINTS_REDETECTED, KEYPOINTS_GIVEN = "redetected", "given"


class PersonChoiceError(ValueError):
    """A person number (`--query-person`, a pair to compare) that the photo does not hold."""


@dataclass
class PersonEmbedding:
    """One person of one photo and their identity embedding (L2-normalised float32)."""

    image_index: int
    person_index: int  # 0 = the most prominent person of that photo
    person: Person
    crop_box: tuple[int, int, int, int]  # the cut whose scale is nearest 1.0 (the frame itself by default)
    embedding: np.ndarray
    keypoint_source: str  # "redetected" (the single-person path on every cut) or "given" (the person's own, in one or more)
    frame_boxes: tuple[tuple[int, int, int, int], ...] = ()  # every cut the embedding averages, in frame_scales order


@dataclass
class PeopleEmbeddings:
    """Every person embedded, photo by photo, and what was found in each photo."""

    rows: list[PersonEmbedding] = field(default_factory=list)
    images: list[PeopleInImage] = field(default_factory=list)
    # How the embeddings were made (flip, the model folder's centre cuts: `embedding_rule_record`), so a
    # search can tell whether its query's scores are on the scale of the calibrated FAR curves.
    embedded_with: dict[str, Any] | None = None

    @property
    def embeddings(self) -> np.ndarray:
        """(people, D) in row order."""
        if not self.rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([row.embedding for row in self.rows]).astype(np.float32)

    def people_of(self, image_index: int) -> list[PersonEmbedding]:
        return [row for row in self.rows if row.image_index == image_index]


def embed_people(
    pipeline: Any,
    images: Sequence[Any],
    max_people: int = DEFAULT_MAX_PEOPLE,
    min_person_size: float = DEFAULT_MIN_PERSON_SIZE,
    flip: bool = True,
    batch_size: int = 8,
    detections: Sequence[PeopleInImage] | None = None,
    frame_scales: Sequence[float] = PERSON_FRAME_SCALES,
) -> PeopleEmbeddings:
    """Detect every person in each photo and embed each one from their cuts (see the module docstring).

    `detections`: `processor.detect_people` of each photo when the caller has it already (it is not run
    again). `frame_scales`: the cuts averaged per person (`(1.0,)`: one cut, a third of the model's work).
    A photo with nobody in it contributes no row (its `PeopleInImage.summary()` says "nobody found"). The
    first photo that cannot be read raises its error, naming it.
    """
    if len(images) == 0:
        raise ValueError("no images given")
    if detections is not None and len(detections) != len(images):
        raise ValueError(f"{len(detections)} detections given for {len(images)} images")
    if len(frame_scales) == 0 or min(frame_scales) <= 0:
        raise ValueError(f"frame_scales must be one or more scales > 0, got {tuple(frame_scales)}")
    processor = pipeline.processor
    result = PeopleEmbeddings(embedded_with=pipeline.embedding_rule(flip))
    frames = len(frame_scales)
    middle = min(range(frames), key=lambda index: abs(frame_scales[index] - 1.0))
    crops, owners, large, face_refuted = [], [], [], []
    for image_index, image in enumerate(images):
        rgb = load_rgb(image, describe_input(image, image_index), processor.max_image_pixels)
        if detections is not None:
            found = detections[image_index]
        else:
            found = processor.detect_people(rgb, max_people=max_people, min_person_size=min_person_size)
        result.images.append(found)
        for person_index, person in enumerate(found.people):
            boxes = [person.crop_box(found.width, found.height, scale) for scale in frame_scales]
            for left, top, right, bottom in boxes:
                crops.append(np.ascontiguousarray(rgb[top:bottom, left:right]))
                owners.append((image_index, person_index, person, (left, top, right, bottom)))
            large.append(box_share(boxes[middle], found.height, found.width) >= SMALL_PERSON_SHARE)
            face_refuted.append(
                needs_face_check(person.keypoints) and not face_confirmed(rgb, person.keypoints, processor.detector_cache_dir)
            )
    if not crops:
        return result

    embeddings, redetected_keypoints, seen = _embed(pipeline, crops, flip, batch_size)
    # A person framed small is confirmed by the detector's look at their frame (for one who fills the photo that
    # frame is the photo again); one who shows a face and no legs, by the face check as well.
    confirmed = [
        not face_refuted[person] and (large[person] or bool(seen[person * frames + middle])) for person in range(len(large))
    ]
    own_keypoints = np.stack([apply_official_rules(keypoints_in_crop(person, box)) for _, _, person, box in owners])
    wrong = [
        index
        for index in range(len(crops))
        if confirmed[index // frames] and not same_person_keypoints(own_keypoints[index], redetected_keypoints[index])
    ]
    given_cut = np.zeros(len(crops), dtype=bool)
    if wrong:
        embeddings[wrong] = _embed(pipeline, [crops[index] for index in wrong], flip, batch_size, own_keypoints[wrong])[0]
        given_cut[wrong] = True
    kept: dict[int, list[Person]] = {index: [] for index in range(len(images))}
    for first in range(0, len(crops), frames):
        image_index, _, person, _ = owners[first]
        if not confirmed[first // frames]:
            continue
        cuts = slice(first, first + frames)
        boxes = tuple(box for _, _, _, box in owners[cuts])
        source = KEYPOINTS_GIVEN if given_cut[cuts].any() else KEYPOINTS_REDETECTED
        embedding = _normalised(embeddings[cuts].sum(axis=0))
        person_index = len(kept[image_index])
        kept[image_index].append(person)
        result.rows.append(PersonEmbedding(image_index, person_index, person, boxes[middle], embedding, source, boxes))
    refuted_in = np.bincount([owners[person * frames][0] for person in range(len(large)) if face_refuted[person]], minlength=len(images))
    # A find both unseen and refuted is counted once, as refuted.
    for image_index, found in enumerate(result.images):
        left_out = len(found.people) - len(kept[image_index])
        if left_out:
            refuted = int(refuted_in[image_index])
            result.images[image_index] = replace(
                found,
                people=kept[image_index],
                unseen_in_frame=found.unseen_in_frame + left_out - refuted,
                face_unconfirmed=found.face_unconfirmed + refuted,
            )
    return result


def _normalised(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _embed(
    pipeline: Any, crops: list[np.ndarray], flip: bool, batch_size: int, keypoints: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, keypoints used, (N,) bool: the detector saw somebody there) of the crops, through the one
    embedding loop of the project."""
    embeddings, used, seen = [], [], []
    batches = embed_images(pipeline.model, pipeline.processor, crops, batch_size, pipeline.device, flip, keypoints=keypoints)
    for batch in batches:
        if batch.failures:
            raise batch.failures[0][1]
        embeddings.append(batch.embeddings.numpy())
        points = np.asarray(batch.features["keypoints"], dtype=np.float32)
        used.append(points)
        rows = zip(points, batch.features["keypoint_source"], np.asarray(batch.features["detection_score"]), strict=True)
        seen.append(np.array([sees_somebody(keypoints, source, float(score)) for keypoints, source, score in rows], dtype=bool))
    return np.concatenate(embeddings), np.concatenate(used), np.concatenate(seen)


__all__ = ["KEYPOINTS_GIVEN", "KEYPOINTS_REDETECTED", "PeopleEmbeddings", "PersonChoiceError", "PersonEmbedding", "embed_people"]
