"""Compare two photos that hold several people: every person of one against every person of the other.

`compare_people` embeds each person (people_embedding.py), scores all pairs, and reports the
best-matching pair with a verdict at the threshold `SapiensIDPipeline.verify` would use for those two
people (the calibrated face threshold when both show a face, the body one otherwise), raised for the
number of pairs the best one was picked from (evaluation/far_curve.py): the best of 8 pairs of different
people passes a one-pair threshold far more often than one pair does. `sapiensid compare`
takes this path when a photo holds more than one person; the Space lets the visitor pick a person on
each side (`pair`). `compare_photos` is that choice, made once for `sapiensid compare`, the Space and
`SapiensIDPipeline.compare`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inference import NoPersonFoundError
from .people_embedding import PersonChoiceError, PersonEmbedding
from .processing.image_decoding import renamed_error


@dataclass
class PeopleComparison:
    """All pairs of people of photos A and B, and the verdict for the pair asked for (the best one by default)."""

    people_a: list[PersonEmbedding]
    people_b: list[PersonEmbedding]
    scores: np.ndarray  # (len(people_a), len(people_b)) cosine similarities
    pair: tuple[int, int]  # the pair the verdict is about: the best-matching one unless chosen
    threshold: Any  # evaluation.calibration.ChosenThreshold for that pair
    pairs_judged: int = 1  # how many pairs that pair is the best of: the threshold is raised for them
    false_match_rate: Any = None  # how often the best of that many different-person pairs reaches the score (FalseMatchRate)

    @property
    def score(self) -> float:
        return float(self.scores[self.pair])

    @property
    def same(self) -> bool:
        return self.score >= self.threshold.value


def compare_people(
    pipeline: Any,
    first: Any,
    second: Any,
    threshold: float | None = None,
    flip: bool = True,
    pair: tuple[int | None, int | None] | None = None,
    max_people: int = 20,
    min_person_size: float = 48,
    detections: Sequence[Any] | None = None,
) -> PeopleComparison:
    """Every person of `first` against every person of `second`; `pair` = (person in A, person in B)
    picks the pair the verdict is about (default: the best-matching pair; a None side: the best match of
    the person chosen on the other side). `flip` (on by default) adds each cut's mirrored view, as when the
    thresholds were calibrated. `detections`: the two photos' `detect_people`, if already run. Raises `NoPersonFoundError` naming the photo where nobody was
    found, ValueError for a person number the photo does not hold."""
    from .evaluation.calibration import choose_threshold, score_false_match_rate

    found = pipeline.embed_people(
        [first, second], max_people=max_people, min_person_size=min_person_size, flip=flip, detections=detections
    )
    people_a, people_b = found.people_of(0), found.people_of(1)
    nobody = [label for label, people in (("A", people_a), ("B", people_b)) if not people]
    if nobody:
        raise NoPersonFoundError(f"no person found in image {' and '.join(nobody)}: nothing to compare")
    scores = _matrix(people_a) @ _matrix(people_b).T
    asked = pair if pair is not None else (None, None)
    pair = _chosen_pair(scores, asked)
    both_faces = people_a[pair[0]].person.face_found and people_b[pair[1]].person.face_found
    made_with = pipeline.embedding_rule(flip)
    judged = pairs_judged(scores.shape, asked)
    chosen = choose_threshold(pipeline.calibration, both_faces, pipeline.description, threshold, made_with, pairs=judged)
    rarity = score_false_match_rate(pipeline.calibration, both_faces, float(scores[pair]), pairs=judged, embedded_with=made_with)
    return PeopleComparison(people_a, people_b, scores, pair, chosen, judged, rarity)


def compare_photos(
    pipeline: Any,
    first: Any,
    second: Any,
    threshold: float | None = None,
    flip: bool = True,
    pair: tuple[int | None, int | None] | None = None,
    every_pair: bool = False,
) -> Any:
    """Two photos compared the way `sapiensid compare` and the Space do: a `PeopleComparison` when a photo
    holds several people, a person is chosen (`pair`) or `every_pair` is asked for; otherwise the
    single-person `Verification` (`SapiensIDPipeline.verify`). When the people search refused every find
    of a photo (an animal's head the face check did not confirm) and nobody was chosen, the photo is
    answered as any photo without a person: a `Verification` without a score. With a person chosen or
    `every_pair`, `NoPersonFoundError` is raised instead: what was asked for cannot be answered."""
    asked = pair if pair is not None else (None, None)
    pairs_asked_for = every_pair or asked != (None, None)
    detections = []
    for label, image in zip("AB", (first, second), strict=True):
        with _photos_named(label):
            detections.append(pipeline.processor.detect_people(image))
    with _photos_named("A", "B"):
        if pairs_asked_for or any(len(found.people) > 1 for found in detections):
            try:
                return compare_people(pipeline, first, second, threshold=threshold, flip=flip, pair=asked, detections=detections)
            except NoPersonFoundError:
                if pairs_asked_for:
                    raise
        return pipeline.verify(first, second, threshold=threshold, flip=flip)


@contextlib.contextmanager
def _photos_named(*labels: str) -> Iterator[None]:
    """The processor numbers a call's inputs from 0 ("image 1 ('b.jpg'): not an image file ..."); the user
    of a comparison knows its photos as A and B, and a one-photo call would name B "image 0"."""
    try:
        yield
    except Exception as error:
        renamed = error
        for index, label in enumerate(labels):
            renamed = renamed_error(renamed, f"image {index} ", f"image {label} ")
        if renamed is error:
            raise
        raise renamed from error.__cause__


def pairs_judged(shape: tuple[int, int], asked: tuple[int | None, int | None]) -> int:
    """How many pairs the verdict's pair is the best of: every pair when no person is chosen, the other
    photo's people when one side is, one when both are."""
    first, second = asked
    return (shape[0] if first is None else 1) * (shape[1] if second is None else 1)


def _chosen_pair(scores: np.ndarray, pair: tuple[int | None, int | None]) -> tuple[int, int]:
    """The pair asked for; a None side is filled with the best match of the other side (both None: the
    best-matching pair of all)."""
    first, second = pair
    for side, (index, count) in enumerate(((first, scores.shape[0]), (second, scores.shape[1]))):
        if index is not None and not 0 <= index < count:
            raise PersonChoiceError(
                f"person {index} of image {'AB'[side]} asked, but it holds {count} {'person' if count == 1 else 'people'}"
            )
    if first is None and second is None:
        first, second = np.unravel_index(int(np.argmax(scores)), scores.shape)
    elif first is None:
        first = int(np.argmax(scores[:, second]))
    elif second is None:
        second = int(np.argmax(scores[first]))
    return int(first), int(second)


def _matrix(people: Sequence[PersonEmbedding]) -> np.ndarray:
    return np.stack([person.embedding for person in people]).astype(np.float32)


__all__ = ["PeopleComparison", "PersonChoiceError", "compare_people", "compare_photos", "pairs_judged"]
