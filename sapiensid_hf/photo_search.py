"""Find a person among photos, one person a photo: `sapiensid search --gallery`, the Space and Python.

The gallery holds the photos in which somebody was found (`PhotoGallery`, from `pipeline.embed` or from
an embedding file of `sapiensid embed`); each query is ranked against it by cosine similarity, ties in
gallery order, and each ranking says how strong its matches are (search_evidence.py). For people in
group photos and street scenes, one entry a person: people_search.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inference import EmbeddingResult, NoPersonFoundError
from .search_evidence import SearchEvidence, search_evidence


@dataclass
class PhotoGallery:
    """The photos to search among (`names`), their (N, D) L2-normalised embeddings, whether each shows a
    face (None: its file does not say) and how they were embedded (`embedding_rule_record`; None: not
    recorded, and no false-match rates then)."""

    names: list[str]
    embeddings: np.ndarray
    face_found: np.ndarray | None = None
    embedded_with: dict[str, Any] | None = None

    @classmethod
    def from_result(cls, names: Sequence[str], result: EmbeddingResult, embedded_with: dict[str, Any] | None) -> PhotoGallery:
        """The gallery of `result` = `pipeline.embed(photos)`, named by `names`: the photos where somebody
        was found (a photo with nobody has no identity embedding to rank)."""
        found = result.person_found.astype(bool)
        kept = [name for name, keep in zip(names, found, strict=True) if keep]
        return cls(kept, result.embeddings[found], result.face_found.astype(bool)[found], embedded_with)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class PhotoMatch:
    name: str
    index: int  # row in the gallery
    score: float  # cosine similarity


@dataclass
class PhotoSearchResult:
    """One query: its name, its matches best first, and how often different people score as high
    (search_evidence.py; None where no figure can be given)."""

    query: str
    matches: list[PhotoMatch]
    evidence: SearchEvidence | None


def photo_name(photo: Any, index: int) -> str:
    """How a ranking names a photo: its path, or "image i" for pixels given in memory."""
    return os.fspath(photo) if isinstance(photo, str | os.PathLike) else f"image {index}"


def rank_photos(
    query_names: Sequence[str], query_embeddings: np.ndarray, query_faces: np.ndarray, gallery: PhotoGallery, top_k: int,
    calibration: dict[str, Any] | None, embedded_with: dict[str, Any],
) -> list[PhotoSearchResult]:  # fmt: skip
    """Each query's `top_k` best gallery photos (ties keep gallery order) with their evidence; the queries
    were embedded by the rule `embedded_with`, and each shows a person."""
    if not len(gallery):
        raise ValueError("the gallery holds nobody: no person was found in any of its photos")
    if query_embeddings.shape[1] != gallery.embeddings.shape[1]:
        raise ValueError(
            f"the gallery holds {gallery.embeddings.shape[1]}-d embeddings but the queries are "
            f"{query_embeddings.shape[1]}-d: embed the gallery with the same model"
        )
    scores = query_embeddings @ gallery.embeddings.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    faces = gallery.face_found
    face_entries = None if faces is None else int(faces.sum())
    results = []
    for row, name in enumerate(query_names):
        ranked = order[row]
        evidence = search_evidence(
            calibration, embedded_with, bool(query_faces[row]), scores[row, ranked],
            [None if faces is None else bool(faces[index]) for index in ranked], len(gallery), face_entries,
            gallery.embedded_with,
        )  # fmt: skip
        matches = [PhotoMatch(gallery.names[index], int(index), float(scores[row, index])) for index in ranked]
        results.append(PhotoSearchResult(name, matches, evidence))
    return results


def search_photos(pipeline: Any, queries: Sequence[Any], gallery: PhotoGallery, top_k: int = 5, flip: bool = True) -> list[PhotoSearchResult]:
    """Each query photo's person ranked against `gallery` (one person a photo, the most prominent), with
    how strong each match is. Raises `NoPersonFoundError` naming a query in which nobody is found."""
    result = pipeline.embed(list(queries), flip=flip)
    names = [photo_name(query, index) for index, query in enumerate(queries)]
    nobody = [name for name, found in zip(names, result.person_found, strict=True) if not found]
    if nobody:
        raise NoPersonFoundError(f"{nobody[0]}: no person found in the query photo: there is nobody to search for")
    made_with = pipeline.embedding_rule(flip)
    return rank_photos(names, result.embeddings, result.face_found, gallery, top_k, pipeline.calibration, made_with)


__all__ = ["PhotoGallery", "PhotoMatch", "PhotoSearchResult", "photo_name", "rank_photos", "search_photos"]
