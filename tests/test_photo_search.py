"""`photo_search`: the ranking behind `sapiensid search --gallery`, the Space's search and Python."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.evaluation.calibration import embedding_rule_record
from sapiensid_hf.inference import NoPersonFoundError
from sapiensid_hf.photo_search import PhotoGallery, rank_photos, search_photos
from sapiensid_hf.search_evidence import search_evidence

RULE = embedding_rule_record(True, (1.0,))


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_ranking_is_by_cosine_with_ties_in_gallery_order():
    gallery = PhotoGallery(["a", "b", "c", "d"], unit([[1, 0], [0, 1], [1, 0], [1, 1]]))
    (result,) = rank_photos(["q"], unit([[1, 0]]), np.array([True]), gallery, 3, None, RULE)
    assert [match.name for match in result.matches] == ["a", "c", "d"]  # a and c tie: gallery order
    assert [match.index for match in result.matches] == [0, 2, 3]
    assert [match.score for match in result.matches] == pytest.approx([1.0, 1.0, np.sqrt(0.5)])
    assert result.evidence is None  # no calibration: no rate


def test_a_gallery_from_embeddings_keeps_the_photos_with_somebody(pipeline, people_dir, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 180, dtype=np.uint8)).save(blank)
    photos = [str(people_dir / "face_a_1.jpg"), str(blank), str(people_dir / "two_men.jpg")]
    result = pipeline.embed(photos)
    gallery = PhotoGallery.from_result(photos, result, RULE)
    assert gallery.names == [photos[0], photos[2]] and len(gallery) == 2
    np.testing.assert_array_equal(gallery.embeddings, result.embeddings[[0, 2]])
    np.testing.assert_array_equal(gallery.face_found, result.face_found[[0, 2]].astype(bool))
    with pytest.raises(NoPersonFoundError, match="wall.png: no person found in the query photo"):
        search_photos(pipeline, [str(blank)], gallery)


def test_search_photos_finds_a_copy_first_and_reads_the_evidence_of_each_match(tmp_path, people_dir, trained_tiny_model_dir):
    from calibration_records import made_up_calibration

    from sapiensid_hf.evaluation.calibration import record_calibration
    from sapiensid_hf.inference import load_pipeline

    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model")
    record_calibration(folder, made_up_calibration())
    pipeline = load_pipeline(str(folder))
    photos = [str(people_dir / name) for name in ("face_a_1.jpg", "face_b_1.jpg", "face_a_3.jpg", "two_men.jpg")]
    embedded = pipeline.embed(photos)
    rule = embedding_rule_record(True, pipeline.embedding_cuts)
    gallery = PhotoGallery.from_result(photos, embedded, rule)
    (result,) = search_photos(pipeline, [photos[2]], gallery, top_k=3)
    assert result.query == photos[2] and result.matches[0].name == photos[2]
    assert result.matches[0].score == pytest.approx(1.0, abs=1e-5)
    scores = embedded.embeddings @ embedded.embeddings[2]
    order = np.argsort(-scores, kind="stable")[:3]
    assert [match.index for match in result.matches] == order.tolist()
    ranked = [match.score for match in result.matches]  # the query alone in its batch: equal to float32 noise
    np.testing.assert_allclose(ranked, scores[order], atol=1e-5)
    faces = embedded.face_found.astype(bool)
    expected = search_evidence(pipeline.calibration, rule, bool(faces[2]), ranked, faces[order].tolist(), 4, int(faces.sum()), rule)
    assert result.evidence == expected and expected is not None
    # A gallery that does not say how it was embedded gets no rate; the ranking is the same.
    (bare,) = search_photos(pipeline, [photos[2]], PhotoGallery(gallery.names, gallery.embeddings), top_k=3)
    assert bare.evidence is None and [match.name for match in bare.matches] == [match.name for match in result.matches]


def test_a_gallery_of_another_width_or_of_nobody_is_refused():
    with pytest.raises(ValueError, match="4-d embeddings but the queries are 2-d"):
        rank_photos(["q"], unit([[1, 0]]), np.array([True]), PhotoGallery(["a"], unit([[1, 0, 0, 0]])), 1, None, RULE)
    with pytest.raises(ValueError, match="the gallery holds nobody"):
        rank_photos(["q"], unit([[1, 0]]), np.array([True]), PhotoGallery([], np.zeros((0, 2), np.float32)), 1, None, RULE)
