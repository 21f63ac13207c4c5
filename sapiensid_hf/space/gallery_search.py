"""The Space's Search tab: a gallery of uploads searched with one query picture.

Each gallery picture is embedded once per session: the session's `cache` maps an upload's server path
(Gradio names uploads by content hash) to its embedding and detection, and holds only the current gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np

from ..inference import UNTRAINED_WARNING, SapiensIDPipeline
from ..people_search import GalleryPerson, PeopleGallery, match_person, pick_query_person
from ..photo_search import PhotoGallery, rank_photos
from ..processing.visualization_sapiensid import draw_people
from ..search_evidence import evidence_notes, match_cell
from .messages import failure_message
from .pictures import OVERLAY_SIDE, Detection, people_overlay, render_overlay
from .uploads import UploadError, person_number, read_upload, upload_path_and_name

MAX_GALLERY_IMAGES = 100
MAX_TOP_K = 20
DEFAULT_TOP_K = 5
PEOPLE_CACHE_PREFIX = "people:"  # cache entries holding every person of a gallery picture


def gallery_uploads(gallery_images: Any) -> list[tuple[str, str]]:
    """(server path, the visitor's file name) of each gallery upload; `UploadError` for none or too many."""
    gallery = [entry for entry in map(upload_path_and_name, gallery_images or []) if entry is not None]
    if not gallery:
        raise UploadError("Gallery: no images given. Upload the pictures to search among.")
    if len(gallery) > MAX_GALLERY_IMAGES:
        raise UploadError(f"Gallery: {len(gallery)} files given; this demo searches at most {MAX_GALLERY_IMAGES}.")
    return gallery


def search_photos(
    pipeline: SapiensIDPipeline, grid_size: int, gallery_images: Any, query_image: Any, top_k: float, cache: dict
) -> tuple:
    """One entry per gallery photo (its most prominent person): (ranked gallery, result table, query
    overlay, messages, cache). `cache` maps an upload's server path to its embedding and detection."""
    empty = ([], [], None)
    try:
        query_rgb = read_upload(query_image, "Query image")
        gallery = gallery_uploads(gallery_images)
        messages = embed_gallery(pipeline, gallery, cache)
        # Keep only the current gallery: the session never holds more than one gallery's embeddings.
        cache = {path: cache[path] for path, _ in gallery if path in cache}
        query_result = pipeline.embed([query_rgb])
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
        return [], [], render_overlay(query_rgb, query, grid_size), message, cache
    nobody = [name for path, name in indexed if not cache[path]["person_found"]]
    if nobody:
        messages.append(f"Left out (no person found): {', '.join(nobody)}.")
    indexed = [(path, name) for path, name in indexed if cache[path]["person_found"]]
    if not indexed:
        message = "\n".join(messages + ["No person was found in any gallery picture."])
        gr.Warning(message)
        return *empty, message, cache
    messages.insert(0, query.summary("Query"))
    if not pipeline.trained:
        messages.insert(0, UNTRAINED_WARNING)

    made_with = pipeline.embedding_rule(True)  # gallery and query: embed's default
    gallery = PhotoGallery(
        [path for path, _ in indexed], np.stack([cache[path]["embedding"] for path, _ in indexed]),
        np.asarray([bool(cache[path]["face_found"]) for path, _ in indexed]), made_with,
    )  # fmt: skip
    count = max(1, min(int(top_k or DEFAULT_TOP_K), MAX_TOP_K, len(indexed)))
    names = dict(indexed)
    (result,) = rank_photos(["Query"], query_result.embeddings[:1], query_result.face_found[:1], gallery, count,
                            pipeline.calibration, made_with)  # fmt: skip
    evidence = result.evidence
    ranked, table = [], []
    for rank, match in enumerate(result.matches, start=1):
        entry = cache[match.name]
        score = round(float(np.clip(match.score, -1.0, 1.0)), 4)
        ranked.append((match.name, f"#{rank} {names[match.name]} · {score:.3f}"))
        table.append([rank, names[match.name], score, entry["person_found"], entry["face_found"], match_cell(evidence, rank)])
    messages += evidence_notes(["Query"], [evidence])
    overlay = render_overlay(query_rgb, query, grid_size)
    return ranked, table, overlay, "\n".join(messages), cache


def search_people(
    pipeline: SapiensIDPipeline, gallery_images: Any, query_image: Any, top_k: float, cache: dict, query_person: Any
) -> tuple:
    """One entry per person found in the gallery photos, the query being its `query_person`-th person
    (0 = most prominent): as `search_photos`, each match shown with the matched person boxed."""
    try:
        query_rgb = read_upload(query_image, "Query image")
        gallery = gallery_uploads(gallery_images)
        messages, people = [], []
        for index, (path, name) in enumerate(gallery, start=1):
            key = PEOPLE_CACHE_PREFIX + path
            if key not in cache:
                try:
                    rgb = read_upload({"path": path, "orig_name": name}, f"Gallery file {index}")
                except UploadError as error:
                    messages.append(f"Skipped: {error}")
                    continue
                found = pipeline.embed_people([rgb])
                cache[key] = [(row.person, row.embedding) for row in found.rows]
            if not cache[key]:
                messages.append(f"Left out (no person found): {name}.")
            people += [(path, name, number, person, embedding) for number, (person, embedding) in enumerate(cache[key])]
        cache = {key: value for key, value in cache.items() if key.removeprefix(PEOPLE_CACHE_PREFIX) in dict(gallery)}
        query_found = pipeline.embed_people([query_rgb])
        number = person_number(query_person) or 0
        query = pick_query_person(query_found, 0, number, "Query image")
    except Exception as error:  # every failure becomes a message in the page
        message = failure_message(error)
        gr.Warning(message)
        return [], [], None, message, cache
    if not people:
        message = "\n".join(messages + ["No person was found in any gallery picture."])
        gr.Warning(message)
        return [], [], None, message, cache
    made_with = pipeline.embedding_rule(True)  # gallery and query: embed_people's default
    entries = PeopleGallery(
        [GalleryPerson(path, number, person.box, person.face_found) for path, _, number, person, _ in people],
        np.stack([embedding for *_, embedding in people]), made_with,
    )  # fmt: skip
    count = max(1, min(int(top_k or DEFAULT_TOP_K), MAX_TOP_K, len(people)))
    matches, evidence = match_person(query, entries, count, pipeline.calibration, query_found.embedded_with)
    found_in = {(path, number): (name, person) for path, name, number, person, _ in people}
    pictures: dict[str, np.ndarray] = {}  # a group photo may hold several of the matches: decoded once
    ranked, table = [], []
    for rank, match in enumerate(matches, start=1):
        path, index_in_photo = match.person.path, match.person.person_index
        name, person = found_in[(path, index_in_photo)]
        score = float(np.clip(match.score, -1.0, 1.0))
        others = [entry[3] for entry in people if entry[0] == path]
        if path not in pictures:
            pictures[path] = read_upload({"path": path, "orig_name": name}, name)
        picture = draw_people(pictures[path], others, index_in_photo, OVERLAY_SIDE)
        ranked.append((picture, f"#{rank} {name} · person {index_in_photo} · {score:.3f}"))
        table.append([rank, f"{name} (person {index_in_photo})", round(score, 4), True, person.face_found, match_cell(evidence, rank)])
    people_in_query = len(query_found.people_of(0))
    messages.insert(0, f"Query: {people_in_query} {'person' if people_in_query == 1 else 'people'} found; "
                       f"searching for person {query.person_index} (yellow box), among {len(people)} people "
                       f"in {len(gallery)} gallery pictures.")  # fmt: skip
    messages += evidence_notes([f"Query person {query.person_index}"], [evidence])
    if not pipeline.trained:
        messages.insert(0, UNTRAINED_WARNING)
    overlay = people_overlay(query_rgb, [row.person for row in query_found.people_of(0)], query.person_index)
    return ranked, table, overlay, "\n".join(messages), cache


def embed_gallery(pipeline: SapiensIDPipeline, gallery: Sequence[tuple[str, str]], cache: dict) -> list[str]:
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
        result = pipeline.embed([rgb for _, rgb in decoded])
        for row, (path, _) in enumerate(decoded):
            found = Detection.from_result(result, row)
            cache[path] = {
                "embedding": result.embeddings[row],
                "person_found": found.person_found,
                "face_found": found.face_found,
            }
    return messages
