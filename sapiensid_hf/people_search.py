"""Find a person among the people of many photos: `sapiensid search --all-people`, the Space and Python.

The gallery holds one entry per person found (`PeopleGallery`, from photos or from the parquet file of
`sapiensid embed --all-people`); a query photo may itself hold several people, and `query_person` picks
one (0 = the most prominent). A query photo with nobody in it, or fewer people than `query_person`,
is refused with its name: there is nobody to search for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inference import NoPersonFoundError
from .people_embedding import PeopleEmbeddings, PersonChoiceError, PersonEmbedding
from .photo_search import photo_name
from .search_evidence import SearchEvidence, search_evidence


@dataclass
class GalleryPerson:
    """One person of the gallery: the photo, which of its people, and where."""

    path: str
    person_index: int
    box: tuple[float, float, float, float]
    face_found: bool | None = None  # None: the gallery's file does not say


@dataclass
class PeopleGallery:
    """The people to search among, their (P, D) L2-normalised embeddings in the same order, and how they
    were embedded (`embedding_rule_record`; None when not recorded: no false-match rates then)."""

    people: list[GalleryPerson]
    embeddings: np.ndarray
    embedded_with: dict[str, Any] | None = None

    @classmethod
    def from_people(cls, photos: Sequence[Any], found: PeopleEmbeddings) -> PeopleGallery:
        """The gallery of `found` = `embed_people(photos)`; a photo is named by its path (or "image i")."""
        people = [
            GalleryPerson(photo_name(photos[row.image_index], row.image_index), row.person_index, row.person.box, row.person.face_found)
            for row in found.rows
        ]
        return cls(people, found.embeddings, found.embedded_with)

    def __len__(self) -> int:
        return len(self.people)


@dataclass
class PersonMatch:
    person: GalleryPerson
    score: float  # cosine similarity


@dataclass
class PeopleSearchResult:
    """One query: the photo, the person searched for (and how many people its photo holds), the matches,
    and how often different people score as high (search_evidence.py; None where no figure can be given)."""

    query: str
    query_person: PersonEmbedding
    people_in_query: int
    matches: list[PersonMatch]
    evidence: SearchEvidence | None = None


def pick_query_person(found: PeopleEmbeddings, image_index: int, query_person: int, name: str) -> PersonEmbedding:
    """The `query_person`-th person (0 = most prominent) of photo `image_index`, or a clear error."""
    people = found.people_of(image_index)
    if not people:
        raise NoPersonFoundError(f"{name}: no person found in the query photo: there is nobody to search for")
    if not 0 <= query_person < len(people):
        raise PersonChoiceError(
            f"{name}: query person {query_person} asked, but the photo holds {len(people)} "
            f"{'person' if len(people) == 1 else 'people'} (0 to {len(people) - 1})"
        )
    return people[query_person]


def rank_people(query: np.ndarray, gallery: PeopleGallery, top_k: int) -> list[PersonMatch]:
    """The gallery's people by cosine similarity to `query`, best first; ties keep gallery order."""
    if not len(gallery):
        return []
    scores = gallery.embeddings @ query
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [PersonMatch(gallery.people[index], float(scores[index])) for index in order]


def match_person(
    person: PersonEmbedding, gallery: PeopleGallery, top_k: int, calibration: dict[str, Any] | None,
    embedded_with: dict[str, Any] | None,
) -> tuple[list[PersonMatch], SearchEvidence | None]:  # fmt: skip
    """`person` (embedded by the rule `embedded_with`) ranked against `gallery`, and how often different
    people score as high as each match (search_evidence.py; None where no figure can be given)."""
    matches = rank_people(person.embedding, gallery, top_k)
    faces = [entry.face_found for entry in gallery.people]
    evidence = search_evidence(
        calibration, embedded_with, person.person.face_found, [match.score for match in matches],
        [match.person.face_found for match in matches], len(gallery), None if None in faces else sum(faces),
        gallery.embedded_with,
    )  # fmt: skip
    return matches, evidence


def search_people(
    pipeline: Any,
    queries: Sequence[Any],
    gallery: PeopleGallery,
    query_person: int = 0,
    top_k: int = 5,
    flip: bool = True,
    max_people: int = 20,
    min_person_size: float = 48,
) -> list[PeopleSearchResult]:
    """For each query photo, its `query_person` ranked against every person of `gallery`, with how often
    different people score as high as each match (`PeopleSearchResult.evidence`)."""
    if gallery.embeddings.ndim != 2 or not len(gallery):
        raise ValueError("the gallery holds nobody: no person was found in any of its photos")
    found = pipeline.embed_people(queries, max_people=max_people, min_person_size=min_person_size, flip=flip)
    results = []
    for index, query in enumerate(queries):
        name = photo_name(query, index)
        person = pick_query_person(found, index, query_person, name)
        if person.embedding.shape[0] != gallery.embeddings.shape[1]:
            raise ValueError(
                f"the gallery holds {gallery.embeddings.shape[1]}-d embeddings but this model gives "
                f"{person.embedding.shape[0]}-d ones: embed the gallery with the same model"
            )
        matches, evidence = match_person(person, gallery, top_k, pipeline.calibration, found.embedded_with)
        results.append(PeopleSearchResult(name, person, len(found.people_of(index)), matches, evidence))
    return results


__all__ = ["GalleryPerson", "PeopleGallery", "PeopleSearchResult", "PersonMatch", "match_person", "pick_query_person", "rank_people", "search_people"]
