"""How strong a search match is (search_evidence.py): each match's false-match rate and the chance of the best
score without the person, the same in `sapiensid search` (photos, embedding files, --all-people, --index),
`search_people` and the Space, and withheld where the scores are not on the calibrated curves' scale."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from calibration_records import RULE, made_up_calibration
from detector_files import require_detector_files

from sapiensid_cli import main
from sapiensid_hf.evaluation.calibration import (
    embedding_rule_record,
    record_calibration,
    score_false_match_rate,
)
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.people_search import GalleryPerson, PeopleGallery, search_people
from sapiensid_hf.search_evidence import evidence_notes, search_evidence
from sapiensid_hf.space import DemoHandlers

GALLERY = ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg", "two_men.jpg")
QUERY = "face_a_3.jpg"


# ---------------------------------------------------------------------------------------------
# The rule, on numbers
# ---------------------------------------------------------------------------------------------


def test_each_match_is_read_off_the_curve_of_its_kind():
    calibration = made_up_calibration()
    scores, faces = [0.95, 0.9, 0.7], [True, None, False]
    evidence = search_evidence(calibration, RULE, True, scores, faces, 10, 4, RULE)
    expected = [score_false_match_rate(calibration, face is True, score, embedded_with=RULE) for score, face in zip(scores, faces, strict=True)]
    assert list(evidence.match_rates) == expected
    assert [rate.kind for rate in evidence.match_rates] == ["face", "body", "body"]  # unknown: read as a body
    # A query without a face makes every pair a body pair, whatever the match shows.
    without_face = search_evidence(calibration, RULE, False, scores, faces, 10, 4, RULE)
    assert [rate.kind for rate in without_face.match_rates] == ["body"] * 3
    assert without_face.match_rates[0].rate > evidence.match_rates[0].rate  # the body curve is the higher here
    assert evidence.match_words(1) == f"{expected[0].percent()} (faces)"


def test_the_best_scores_chance_is_that_of_the_best_of_the_gallerys_pairs():
    calibration = made_up_calibration()
    score = 0.9
    face_rate = score_false_match_rate(calibration, True, score, embedded_with=RULE).rate
    body_rate = score_false_match_rate(calibration, False, score, embedded_with=RULE).rate
    chance = search_evidence(calibration, RULE, True, [score], [True], 25, 15, RULE).best_score_chance
    assert chance.rate == pytest.approx(1 - (1 - face_rate) ** 15 * (1 - body_rate) ** 10, rel=1e-9)
    assert (chance.entries, chance.face_entries, chance.bound) == (25, 15, "about")
    # Without the query's face, or the gallery's count of faces, every entry is judged as a body.
    for query_face, face_entries in ((False, 15), (True, None)):
        body_only = search_evidence(calibration, RULE, query_face, [score], [True], 25, face_entries, RULE)
        assert body_only.best_score_chance.rate == pytest.approx(1 - (1 - body_rate) ** 25, rel=1e-9)
    assert chance.describe() == (
        f"without the person searched for, these 25 gallery entries give a best score of 0.900 or higher in {chance.percent()} of searches"
    )


def test_the_chance_is_what_galleries_of_strangers_give():
    # Different-person scores drawn independently from the face curve's own distribution: the share of
    # galleries of 20 strangers whose best score reaches 0.88 is the chance said, up to the interpolation.
    calibration = made_up_calibration()
    chance = search_evidence(calibration, RULE, True, [0.88], [True], 20, 20, RULE).best_score_chance
    galleries = np.random.default_rng(1).normal(0.80, 0.05, (20_000, 20))
    measured = float((galleries.max(axis=1) >= 0.88).mean())
    assert 0.3 < measured < 0.95
    assert chance.rate == pytest.approx(measured, abs=0.02)


def test_a_score_beyond_the_curve_is_a_bound():
    calibration = made_up_calibration()
    evidence = search_evidence(calibration, RULE, True, [1.0, 0.3], [True, True], 3, 3, RULE)
    assert [rate.bound for rate in evidence.match_rates] == ["under", "over"]
    assert evidence.best_score_chance.bound == "under"
    assert evidence.match_words(2).startswith("over 50.0 %")


def test_no_figure_where_the_scores_are_not_on_the_curves_scale():
    calibration = made_up_calibration()
    no_flip = embedding_rule_record(False, (1.0,))
    assert search_evidence(None, RULE, True, [0.9], [True], 3, 3, RULE) is None  # no calibration
    assert search_evidence(calibration, RULE, True, [0.9], [True], 3, 3, no_flip) is None  # gallery made otherwise
    assert search_evidence(calibration, RULE, True, [0.9], [True], 3, 3, None) is None  # gallery says nothing
    assert search_evidence(calibration, None, True, [0.9], [True], 3, 3, None) is None  # neither says
    assert search_evidence(calibration, no_flip, True, [0.9], [True], 3, 3, no_flip) is None  # not the curves' rule
    without_curves = {kind: {key: value for key, value in calibration[kind].items() if key != "far_curve"} for kind in ("face", "body")}
    assert search_evidence({**calibration, **without_curves}, RULE, True, [0.9], [True], 3, 3, RULE) is None
    assert search_evidence(calibration, RULE, True, [], [], 3, 3, RULE) is None
    assert evidence_notes(["q.jpg"], [None]) == []


def test_the_notes_name_each_kinds_pairs_and_each_querys_chance():
    calibration = made_up_calibration()
    faces = search_evidence(calibration, RULE, True, [0.9], [True], 5, 5, RULE)
    bodies = search_evidence(calibration, RULE, False, [0.8], [True], 5, 5, RULE)
    notes = evidence_notes(["a.jpg", "b.jpg", "c.jpg"], [faces, None, bodies])
    assert len(notes) == 3
    assert "(faces: made-up face pairs, 200,000 pairs; bodies: made-up body pairs, 200,000 pairs)" in notes[0]
    assert notes[0].endswith("can be several times higher on others (docs/cli.md)")  # measured: bench_search_evidence
    assert "several times" not in evidence_notes(["a.jpg"], [faces])[0]  # said where a body rate is shown
    assert notes[1] == f"- a.jpg: {faces.best_score_chance.describe()}"
    assert notes[2] == f"- c.jpg: {bodies.best_score_chance.describe()}"


# ---------------------------------------------------------------------------------------------
# Every way to search
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory, trained_tiny_model_dir) -> Path:
    require_detector_files()
    folder = tmp_path_factory.mktemp("search_evidence") / "model"
    shutil.copytree(trained_tiny_model_dir, folder)
    record_calibration(folder, made_up_calibration())
    return folder


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory, people_dir) -> Path:
    folder = tmp_path_factory.mktemp("gallery")
    for name in GALLERY:
        shutil.copy(people_dir / name, folder / name)
    return folder


def expected_evidence(pipeline, query: Path, photos: list[Path], top_k: int, flip: bool = True):
    """The ranking and evidence computed here from the pipeline's embeddings and the record's curves."""
    embedded = pipeline.embed([str(query)] + [str(photo) for photo in photos], flip=flip)
    scores = embedded.embeddings[1:] @ embedded.embeddings[0]
    order = np.argsort(-scores, kind="stable")[:top_k]
    faces = embedded.face_found[1:].astype(bool)
    rule = embedding_rule_record(flip, pipeline.embedding_cuts)
    evidence = search_evidence(
        pipeline.calibration, rule, bool(embedded.face_found[0]), scores[order], faces[order], len(photos), int(faces.sum()), rule
    )
    return [str(photos[i]) for i in order], evidence


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_search_of_photos_and_of_an_embedding_file_say_the_same_rates(capsys, tmp_path, calibrated_model, gallery_dir, people_dir):
    pipeline = load_pipeline(str(calibrated_model))
    photos = sorted(gallery_dir.iterdir())
    names, expected = expected_evidence(pipeline, people_dir / QUERY, photos, 3)
    assert expected is not None and all(rate.bound == "about" for rate in expected.match_rates)
    saved = tmp_path / "gallery.parquet"
    assert main(["embed", str(gallery_dir), "-o", str(saved), "--model", str(calibrated_model)]) == 0
    capsys.readouterr()
    for gallery in (gallery_dir, saved):
        out_dir = tmp_path / f"out_{gallery.name}"
        argv = ["search", str(people_dir / QUERY), "--gallery", str(gallery), "--top-k", "3", "--model", str(calibrated_model)]
        assert main(argv + ["--output-dir", str(out_dir)]) == 0
        out = capsys.readouterr().out
        rows = read_csv(out_dir / "ranking.csv")
        assert [row["gallery_image"] for row in rows] == names
        for row, rate in zip(rows, expected.match_rates, strict=True):
            assert float(row["false_match_rate"]) == pytest.approx(rate.rate, rel=1e-4, abs=1e-7)
            assert (row["false_match_bound"], row["false_match_kind"]) == (rate.bound, rate.kind)
        chance = expected.best_score_chance
        assert float(rows[0]["best_score_chance_without_person"]) == pytest.approx(chance.rate, rel=1e-4)
        assert [row["best_score_chance_bound"] for row in rows] == [chance.bound, "", ""]
        assert "| query | rank | score | false-match rate | gallery image |" in out
        assert f"| 1 | {float(rows[0]['score']):.4f} | {expected.match_words(1)} | {names[0]} |" in out
        assert f"- {people_dir / QUERY}: {chance.describe()}" in out
        assert (out_dir / "ranking.md").read_text() == out[out.index("| query") : out.index("wrote ")]


def test_search_gives_no_rate_for_a_gallery_embedded_by_another_rule(capsys, tmp_path, calibrated_model, gallery_dir, people_dir):
    saved = tmp_path / "no_flip.npy"
    assert main(["embed", str(gallery_dir), "-o", str(saved), "--no-flip", "--model", str(calibrated_model)]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "out"
    argv = ["search", str(people_dir / QUERY), "--gallery", str(saved), "--flip", "--model", str(calibrated_model), "--output-dir", str(out_dir)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "false-match rate" not in out and "without the person searched for" not in out
    assert all(row["false_match_rate"] == "" for row in read_csv(out_dir / "ranking.csv"))
    assert "note: no false-match rates: the gallery was embedded with no flip test-time augmentation, the queries with flip" in err
    # Queries embedded the gallery's way (search follows the file's record by default): one rule, but not
    # the curves' one.
    assert main(["search", str(people_dir / QUERY), "--gallery", str(saved), "--model", str(calibrated_model)]) == 0
    out, err = capsys.readouterr()
    assert "false-match rate" not in out
    assert "no false-match rates: the model's FAR curves were measured on embeddings made with flip test-time augmentation, these were made with no flip" in err


def test_search_with_an_uncalibrated_model_shows_no_rate_column(capsys, tmp_path, trained_tiny_model_dir, gallery_dir, people_dir):
    out_dir = tmp_path / "out"
    argv = ["search", str(people_dir / QUERY), "--gallery", str(gallery_dir), "--model", str(trained_tiny_model_dir), "--output-dir", str(out_dir)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "false-match rate" not in out
    assert "note: no false-match rates: the model folder records no FAR curves (`sapiensid calibrate` measures them)" in err
    rows = read_csv(out_dir / "ranking.csv")
    assert rows and all(row["false_match_rate"] == "" and row["best_score_chance_without_person"] == "" for row in rows)


def test_people_search_and_a_per_person_index_give_the_libraries_rates(capsys, tmp_path, calibrated_model, gallery_dir, people_dir):
    pipeline = load_pipeline(str(calibrated_model))
    photos = [str(path) for path in sorted(gallery_dir.iterdir())]
    found = pipeline.embed_people(photos)
    gallery = PeopleGallery.from_people(photos, found)
    assert gallery.embedded_with == embedding_rule_record(True, pipeline.embedding_cuts)
    (result,) = search_people(pipeline, [str(people_dir / QUERY)], gallery, top_k=3)
    faces = [person.face_found for person in gallery.people]
    scores = [match.score for match in result.matches]
    expected = search_evidence(
        pipeline.calibration, gallery.embedded_with, result.query_person.person.face_found, scores,
        [match.person.face_found for match in result.matches], len(gallery), sum(faces), gallery.embedded_with,
    )  # fmt: skip
    assert result.evidence == expected and expected is not None
    assert result.evidence.best_score_chance.entries == len(found.rows)
    # A gallery put together by hand does not say how it was embedded: no rate rather than a wrong one.
    (bare,) = search_people(pipeline, [str(people_dir / QUERY)], PeopleGallery(gallery.people, gallery.embeddings), top_k=3)
    assert bare.evidence is None and [match.score for match in bare.matches] == scores

    # The CLI's --all-people search of the same photos and a per-person index of them print the same rates.
    assert main(["search", str(people_dir / QUERY), "--gallery", str(gallery_dir), "--all-people", "--top-k", "3",
                 "--model", str(calibrated_model)]) == 0  # fmt: skip
    people_out = capsys.readouterr().out
    index = tmp_path / "people.sidx"
    assert main(["index", "build", str(gallery_dir), "--output", str(index), "--all-people", "--model", str(calibrated_model)]) == 0
    capsys.readouterr()
    assert main(["search", str(people_dir / QUERY), "--index", str(index), "--top-k", "3", "--model", str(calibrated_model)]) == 0
    index_out = capsys.readouterr().out
    for out in (people_out, index_out):
        for rank in range(1, 4):
            assert f"| {rank} | {scores[rank - 1]:.4f} | {expected.match_words(rank)} |" in out
        assert f"- {people_dir / QUERY}: {expected.best_score_chance.describe()}" in out


def test_the_space_search_shows_each_matchs_rate_and_the_chance(calibrated_model, gallery_dir, people_dir):
    handlers = DemoHandlers(load_pipeline(str(calibrated_model)))
    photos = sorted(gallery_dir.iterdir())
    uploads = [{"path": str(path), "orig_name": path.name} for path in photos]
    query = {"path": str(people_dir / QUERY), "orig_name": QUERY}
    _, table, _, status, _ = handlers.search(uploads, query, 3, {})
    names, expected = expected_evidence(handlers.pipeline, people_dir / QUERY, photos, 3)
    assert [row[1] for row in table] == [Path(name).name for name in names]
    assert [row[5] for row in table] == [expected.match_words(rank) for rank in (1, 2, 3)]
    assert f"- Query: {expected.best_score_chance.describe()}" in status
    _, people_table, _, people_status, _ = handlers.search(uploads, query, 3, {}, True, 0)
    # The same as `search_people` on the same photos, each embedded on its own as the Space does.
    pipeline, people, vectors, rule = handlers.pipeline, [], [], None
    for path in photos:
        found = pipeline.embed_people([str(path)])
        people += [GalleryPerson(str(path), row.person_index, row.person.box, row.person.face_found) for row in found.rows]
        vectors += [row.embedding for row in found.rows]
        rule = found.embedded_with
    (result,) = search_people(pipeline, [str(people_dir / QUERY)], PeopleGallery(people, np.stack(vectors), rule), top_k=3)
    assert [row[1] for row in people_table] == [f"{Path(m.person.path).name} (person {m.person.person_index})" for m in result.matches]
    assert [row[5] for row in people_table] == [result.evidence.match_words(rank) for rank in (1, 2, 3)]
    assert f"- Query person 0: {result.evidence.best_score_chance.describe()}" in people_status


def test_an_embedding_file_records_which_pictures_show_a_face(tmp_path, calibrated_model, gallery_dir):
    from sapiensid_hf.commands.embedding_files import read_embeddings

    pipeline = load_pipeline(str(calibrated_model))
    expected = pipeline.embed([str(path) for path in sorted(gallery_dir.iterdir())]).face_found.astype(bool)
    for name in ("gallery.npy", "gallery.parquet"):
        assert main(["embed", str(gallery_dir), "-o", str(tmp_path / name), "--model", str(calibrated_model)]) == 0
        saved = read_embeddings(tmp_path / name)
        np.testing.assert_array_equal(saved.face_found, expected)


def test_the_ranking_picture_writes_each_matchs_rate_under_it(people_dir):
    from sapiensid_hf.commands.ranking_image import CAPTION, GAP, QUERY_GAP, RATE_LINE, THUMB, render_ranking
    from sapiensid_hf.commands.ranking_image import RankedRow as Row

    matches = [(str(people_dir / name), 0.5) for name in GALLERY[:2]]
    plain = render_ranking([Row(str(people_dir / QUERY), matches)])
    rated = render_ranking([Row(str(people_dir / QUERY), matches, match_rates=["about 7.4 %", "over 50.0 %"])])
    assert rated.height == plain.height + RATE_LINE and rated.width == plain.width
    # The third caption line holds dark text under each match, and nothing under the query.
    line = np.asarray(rated.convert("L"))[GAP + THUMB + CAPTION - 2 : GAP + THUMB + CAPTION + RATE_LINE - 2]
    first_match = slice(GAP + QUERY_GAP + THUMB + GAP, GAP + QUERY_GAP + 2 * THUMB + GAP)
    assert (line[:, first_match] < 100).any() and not (line[:, : GAP + THUMB] < 100).any()
