"""Calibrated verification thresholds: the rules on hand-worked pairs, the record in the model folder, and
`compare` / `SapiensIDPipeline.verify` using it (faces when both pictures show a face, bodies otherwise)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from detector_files import require_detector_files
from dev_layouts import identities_layout

from sapiensid_cli import DEFAULT_COMPARE_THRESHOLD, main
from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.evaluation.calibration import (
    UNCALIBRATED_THRESHOLD,
    KindThresholds,
    best_accuracy_threshold,
    calibration_record,
    choose_threshold,
    cross_camera_pairs,
    embedding_rule_record,
    record_calibration,
    threshold_at_far,
)
from sapiensid_hf.inference import load_pipeline

RECORD = {
    "face": {"best_accuracy": 0.41, "far_1e-2": 0.55, "pairs_from": "LFW fold 7 (development pairs)"},
    "body": {"best_accuracy": 0.23, "far_1e-2": 0.47, "pairs_from": "CUHK03 val, every cross-camera pair"},
    "default": "best_accuracy",
    "source": "tests",
}


def test_best_accuracy_threshold_cuts_between_scores_where_most_pairs_are_right():
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8])
    same = np.array([0, 1, 0, 0, 1, 1, 1], bool)
    threshold, accuracy = best_accuracy_threshold(scores, same)
    assert threshold == pytest.approx(0.475) and accuracy == pytest.approx(6 / 7)  # only the 0.2 pair is missed
    # Balanced: 1 same vs 9 different pairs; accepting everything >= 0.25 gets both kinds fully right.
    scores = np.array([0.1] * 8 + [0.2, 0.3])
    same = np.array([0] * 9 + [1], bool)
    threshold, accuracy = best_accuracy_threshold(scores, same, balanced=True)
    assert threshold == pytest.approx(0.25) and accuracy == 1.0


def test_a_tie_of_a_same_and_a_different_pair_is_never_split():
    threshold, _ = best_accuracy_threshold(np.array([0.2, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1], bool))
    assert threshold in (pytest.approx(0.35), pytest.approx(0.7))


def test_threshold_at_far_accepts_at_most_that_share_of_the_different_pairs():
    rng = np.random.default_rng(0)
    different = rng.normal(0.0, 0.1, 1000)
    same_scores = rng.normal(0.5, 0.1, 100)
    scores = np.r_[different, same_scores]
    same = np.r_[np.zeros(1000, bool), np.ones(100, bool)]
    threshold = threshold_at_far(scores, same, 1e-2)
    assert (different >= threshold).sum() == 10  # exactly 1 %: the 11th highest is just refused
    assert (different >= np.nextafter(threshold, -np.inf)).sum() == 11
    entry = KindThresholds.from_pairs(scores, same, balanced=True)  # recorded to 4 decimals, rounded up
    assert threshold <= entry.far_1e_2 < threshold + 1e-4 and (different >= entry.far_1e_2).sum() <= 10
    assert entry.tar_at_far_1e_2 == pytest.approx((same_scores >= entry.far_1e_2).mean())
    assert entry.best_accuracy == round(entry.best_accuracy, 4)


def test_the_far_threshold_is_chosen_on_the_wider_different_person_pairs_when_given():
    # 300 + 300 protocol pairs: 1 % of its different-person pairs is 3, so the threshold rests on the 3rd
    # highest; the wider set (every different-person pair of the photos) gives the FAR it claims.
    rng = np.random.default_rng(1)
    wider = rng.normal(0.0, 0.1, 100_000)
    protocol_different, same_scores = wider[:300], rng.normal(0.5, 0.1, 300)
    scores, same = np.r_[protocol_different, same_scores], np.r_[np.zeros(300, bool), np.ones(300, bool)]
    own = KindThresholds.from_pairs(scores, same, balanced=False)
    chosen = KindThresholds.from_pairs(scores, same, balanced=False, different_scores=wider, far_from="every pair")
    assert (wider >= chosen.far_1e_2).mean() <= 0.01 < (wider >= chosen.far_1e_2 - 2e-4).mean()
    assert chosen.tar_at_far_1e_2 == pytest.approx((same_scores >= chosen.far_1e_2).mean())
    assert chosen.best_accuracy == own.best_accuracy and chosen.accuracy == own.accuracy  # only the FAR point moves
    record = calibration_record(chosen, own, "test")
    assert record["face"]["far_from"] == "every pair" and "far_from" not in record["body"]
    with pytest.raises(ValueError, match="far_from"):
        KindThresholds.from_pairs(scores, same, balanced=False, different_scores=wider)


def test_cross_camera_pairs_are_every_camera_0_camera_1_pair():
    embeddings = np.eye(4, dtype=np.float32)
    scores, same = cross_camera_pairs(embeddings, np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1]))
    assert scores.tolist() == [0, 0, 0, 0] and same.tolist() == [True, False, False, True]


def test_choose_threshold_says_which_one_and_where_it_came_from():
    chosen = choose_threshold(RECORD, both_faces=True, model_name="m")
    assert chosen.value == 0.41 and chosen.kind == "face" and "LFW fold 7" in chosen.origin and "recorded in m" in chosen.origin
    chosen = choose_threshold(RECORD, both_faces=False, model_name="m")
    assert chosen.value == 0.23 and chosen.kind == "body" and "not both pictures show a face" in chosen.origin
    assert chosen.origin.startswith("bodies, best accuracy on ")
    assert choose_threshold(RECORD, True, "m", given=0.5).origin == "given with --threshold"
    fallback = choose_threshold(None, True, "m")
    assert fallback.value == UNCALIBRATED_THRESHOLD == DEFAULT_COMPARE_THRESHOLD and "untuned" in fallback.origin


def test_a_threshold_chosen_on_embeddings_made_otherwise_says_so():
    record = {**RECORD, "embedded_with": embedding_rule_record(True, (1.0, 0.95, 0.9))}
    same_rule = choose_threshold(record, True, "m", embedded_with=embedding_rule_record(True, (1.0, 0.95, 0.9)))
    assert same_rule.value == 0.41 and "NOTE" not in same_rule.origin
    for flip, cuts, words in ((False, (1.0, 0.95, 0.9), "these were made with no flip test-time augmentation, the mean"),
                              (True, (1.0,), "these were made with flip test-time augmentation, the photo as it is: the scores move")):  # fmt: skip
        other = choose_threshold(record, True, "m", embedded_with=embedding_rule_record(flip, cuts))
        assert other.value == 0.41  # still the recorded one, with a warning
        assert "NOTE: chosen on embeddings made with flip test-time augmentation, the mean of the photo's centre cuts" in other.origin
        assert words in other.origin
    # A record that does not say how its embeddings were made (older folders) warns of nothing.
    assert "NOTE" not in choose_threshold(RECORD, True, "m", embedded_with=embedding_rule_record(False, (1.0,))).origin


def test_compare_without_flip_warns_that_the_threshold_was_chosen_with_it(capsys, tmp_path, trained_tiny_model_dir, people_dir):
    require_detector_files()
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model")
    record_calibration(folder, {**RECORD, "embedded_with": embedding_rule_record(True, (1.0,))})
    faces = [str(people_dir / "face_a_1.jpg"), str(people_dir / "face_a_2.jpg")]
    assert main(["compare", *faces, "--model", str(folder)]) == 0
    assert "NOTE" not in capsys.readouterr().out
    assert main(["compare", *faces, "--model", str(folder), "--no-flip"]) == 0
    shown = capsys.readouterr().out
    assert "NOTE: chosen on embeddings made with flip test-time augmentation, the photo as it is; these were made with no flip" in shown


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory, trained_tiny_model_dir):
    require_detector_files()
    folder = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(trained_tiny_model_dir, folder)
    record_calibration(folder, RECORD)
    return folder


def test_compare_and_verify_use_the_recorded_threshold_of_the_kind_of_pictures(capsys, calibrated_dir, people_dir):
    pipeline = load_pipeline(str(calibrated_dir))
    assert pipeline.calibration == RECORD
    for first, second in (("face_a_1.jpg", "face_a_2.jpg"), ("face_a_1.jpg", "street_bus.jpg")):
        verification = pipeline.verify(str(people_dir / first), str(people_dir / second))
        kind = "face" if verification.result.face_found.all() else "body"
        assert verification.threshold.kind == kind and verification.threshold.value == RECORD[kind]["best_accuracy"]
        assert verification.same == (verification.score >= RECORD[kind]["best_accuracy"])

        status = main(["compare", str(people_dir / first), str(people_dir / second), "--model", str(calibrated_dir), "--json"])
        shown = json.loads(capsys.readouterr().out)
        expected_score, expected_kind = verification.score, kind
        if second == "street_bus.jpg":  # two people there: compare takes the best-matching pair (people_compare)
            comparison = pipeline.compare_people(str(people_dir / first), str(people_dir / second))
            expected_score, expected_kind = comparison.score, comparison.threshold.kind
        assert status == 0 and shown["threshold"] == RECORD[expected_kind]["best_accuracy"]
        assert shown["threshold_kind"] == expected_kind and "recorded in" in shown["threshold_origin"]
        assert shown["score"] == pytest.approx(expected_score, abs=1e-5)
    main(["compare", str(people_dir / "face_a_1.jpg"), str(people_dir / "face_a_2.jpg"), "--model", str(calibrated_dir)])
    assert "threshold: 0.410 (faces, best accuracy on LFW fold 7" in capsys.readouterr().out


def test_compare_and_verify_say_how_often_different_people_reach_the_score(capsys, tmp_path, trained_tiny_model_dir, people_dir):
    from sapiensid_hf.evaluation.far_curve import FarCurve

    different = np.random.default_rng(0).normal(0.25, 0.1, 50_000)  # a made-up model's different-person cosines
    record = {**RECORD, "source": "tests"}
    for kind in ("face", "body"):
        points = {point: RECORD[kind][point] for point in ("best_accuracy", "far_1e-2")}
        record[kind] = {**RECORD[kind], "far_curve": FarCurve.from_different_scores(different, "made-up pairs", points).to_record()}
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model")
    record_calibration(folder, record)
    faces = [str(people_dir / name) for name in ("face_a_1.jpg", "face_a_2.jpg")]
    verification = load_pipeline(str(folder)).verify(*faces)
    kind = verification.threshold.kind
    curve = FarCurve.from_record(record[kind]["far_curve"])
    expected = dataclasses.replace(curve.rate_at(verification.score), kind=kind)
    assert verification.false_match_rate == expected and 0 < expected.rate < 1
    assert main(["compare", *faces, "--model", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["score_false_match_rate"] == expected.to_json()
    assert main(["compare", *faces, "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"  {expected.describe()}\n" in out
    measured = 100 * curve.far_at["best_accuracy"]
    assert f"; {measured:.1f} % of different-person {kind} pairs pass it (made-up pairs))" in out
    # A record without a curve: nothing said about the score's rarity.
    assert main(["compare", *faces, "--model", str(calibrated_dir_without_curve(tmp_path, trained_tiny_model_dir)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score_false_match_rate"] is None


def calibrated_dir_without_curve(tmp_path, trained_tiny_model_dir):
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model_without_curve")
    record_calibration(folder, RECORD)
    return folder


def test_compare_of_two_group_photos_raises_the_threshold_for_the_pairs_it_picks_the_best_from(tmp_path, trained_tiny_model_dir, people_dir):
    from sapiensid_hf.evaluation.far_curve import FarCurve

    different = np.random.default_rng(0).normal(0.25, 0.1, 50_000)  # a made-up model's different-person cosines
    record = {**RECORD, "source": "tests"}
    for kind in ("face", "body"):
        points = {point: RECORD[kind][point] for point in ("best_accuracy", "far_1e-2")}
        curve = FarCurve.from_different_scores(different, "made-up pairs", points)
        record[kind] = {**RECORD[kind], "far_curve": curve.to_record()}
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model")
    record_calibration(folder, record)
    pipeline = load_pipeline(str(folder))
    photos = str(people_dir / "two_men.jpg"), str(people_dir / "street_bus.jpg")
    detections = [pipeline.processor.detect_people(photo) for photo in photos]
    best = pipeline.compare_people(*photos, detections=detections)
    pairs = best.scores.size
    assert pairs > 1 and best.pairs_judged == pairs
    kind = best.threshold.kind
    assert best.threshold.value == choose_threshold(record, kind == "face", pipeline.description, pairs=pairs).value
    assert best.threshold.value > record[kind]["best_accuracy"] and f"the best of {pairs} pairs is judged" in best.threshold.origin
    # How often the best of that many different-person pairs reaches the score, from the same curve.
    curve = FarCurve.from_record(record[kind]["far_curve"])
    assert best.false_match_rate == dataclasses.replace(curve.rate_at(best.score), kind=kind).for_best_of(pairs)
    # Both people chosen: one pair, the calibrated threshold as it is.
    one = pipeline.compare_people(*photos, pair=best.pair, detections=detections)
    assert one.pairs_judged == 1 and one.threshold.value == record[one.threshold.kind]["best_accuracy"]
    assert "raised" not in one.threshold.origin


def test_record_calibration_keeps_every_other_field_and_leaves_no_partial_file(calibrated_dir):
    config = json.loads((calibrated_dir / "config.json").read_text())
    assert config["calibration"] == RECORD and config["training"]["trainer"].startswith("tests")
    assert not list(calibrated_dir.glob("*.partial"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        record_calibration(calibrated_dir / "nowhere", RECORD)


def test_calibrate_command_records_thresholds_chosen_on_the_development_pairs(capsys, tmp_path, people_dir):
    require_detector_files()
    root = identities_layout(people_dir, tmp_path / "identities")
    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    SapiensIDModel(SapiensIDConfig.tiny()).save_pretrained(model_dir)
    status = main(["calibrate", str(model_dir), "--dataset-root", str(root), "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    record = json.loads((model_dir / "config.json").read_text())["calibration"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["calibration"][model_dir.name]["face"] == record["face"]
    assert set(results["models"][model_dir.name]) == {"cuhk03_val", "lfw_fold7"}  # only the sets it chooses on
    assert record["face"]["pairs"] == 10 and record["face"]["same_pairs"] == 5
    assert record["body"]["pairs"] == 36 and record["body"]["same_pairs"] == 12  # 6 x 6 cross-camera, 3 people
    for kind in ("face", "body"):
        assert -1 <= record[kind]["best_accuracy"] <= 1 and 0.5 <= record[kind]["accuracy_at_best"] <= 1
        curve = record[kind]["far_curve"]  # what compare raises the threshold with for the best of several pairs
        assert set(curve["far_at"]) == {"best_accuracy", "far_1e-2"} and curve["thresholds_at_far"]
    # Faces: every different-person pair of the fold's photos, not only the protocol's 5 different pairs.
    assert record["face"]["far_curve"]["different_pairs"] > 5
    # Bodies: every different-person pair of the photos, of one camera too (a gallery mixes them): 48 of
    # the 12 photos' 66 pairs, 24 of them cross-camera.
    assert record["body"]["far_curve"]["different_pairs"] == 48
    assert "same camera or not" in record["body"]["far_from"]
    assert record["embedded_with"] == {"flip": True, "cut_scales": [1.0]}  # how the scores it chose on were made
    assert "| face (LFW fold 7" in captured.out and "recorded in" in captured.out
    assert load_pipeline(str(model_dir)).calibration == record
    assert main(["calibrate", str(tmp_path / "missing"), "--dataset-root", str(root)]) == 1
    assert f"{tmp_path / 'missing'}: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["calibrate", str(tmp_path / "empty"), "--dataset-root", str(root)]) == 1
    assert "not a saved model folder (no config.json)" in capsys.readouterr().err


def test_training_from_a_calibrated_folder_does_not_carry_its_thresholds_over(calibrated_dir):
    from sapiensid_hf.training.config import ModelConfig
    from sapiensid_hf.training.recognition_model import build_backbone

    backbone = build_backbone(ModelConfig(pretrained=str(calibrated_dir)))
    assert getattr(backbone.config, "calibration", None) is None
    assert "calibration" not in backbone.config.to_dict()
