"""Clustering without labels: the two methods, the scores, and `sapiensid cluster` on real photos."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from detector_files import require_detector_files

from sapiensid_cli import main
from sapiensid_hf.clustering import (
    bcubed_scores,
    cluster_embeddings,
    pairwise_scores,
    record_clustering_threshold,
    recorded_clustering_threshold,
)
from sapiensid_hf.evaluation.calibration import record_calibration
from sapiensid_hf.evaluation.far_curve import FarCurve


def on_circle(degrees) -> np.ndarray:
    radians = np.radians(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_a_bridge_between_two_people_merges_components_but_not_chinese_whispers():
    # two tight groups 60 degrees apart, and one picture half-way that is close to both
    embeddings = on_circle([0, 5, 10, 35, 60, 65, 70, 150])
    threshold = float(np.cos(np.radians(27)))
    components = cluster_embeddings(embeddings, threshold, "components")
    assert [list(cluster) for cluster in components.clusters] == [[0, 1, 2, 3, 4, 5, 6]]
    whispers = cluster_embeddings(embeddings, threshold, "chinese-whispers")
    clusters = sorted(sorted(cluster.tolist()) for cluster in whispers.clusters)
    assert len(clusters) == 2 and {0, 1, 2} <= set(clusters[0]) and {4, 5, 6} <= set(clusters[1])
    assert whispers.singletons.tolist() == [7]  # seen once
    again = cluster_embeddings(embeddings, threshold, "chinese-whispers")
    assert np.array_equal(again.labels, whispers.labels)  # seeded: the same answer every time


def test_pairwise_and_bcubed_scores_on_a_worked_example():
    truth = np.array([0, 0, 1, 1])
    predicted = np.array([0, 0, 0, -1])  # three together, the fourth seen once
    pairs = pairwise_scores(predicted, truth)
    assert pairs["precision"] == pytest.approx(1 / 3) and pairs["recall"] == pytest.approx(1 / 2)
    cubed = bcubed_scores(predicted, truth)
    assert cubed["precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)
    assert cubed["recall"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    perfect = bcubed_scores(np.array([0, 0, 1, 1]), truth)
    assert perfect == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        cluster_embeddings(on_circle([0, 1]), 0.5, "kmeans")
    with pytest.raises(ValueError, match="threshold is a cosine"):
        cluster_embeddings(on_circle([0, 1]), 1.5)


def test_cluster_command_writes_the_assignment_folders_and_sheets(people_dir, trained_tiny_model_dir, tmp_path, capsys):
    require_detector_files()
    model_dir = trained_tiny_model_dir
    album = tmp_path / "album"
    album.mkdir()
    for name in ("face_a_1.jpg", "face_b_1.jpg", "two_men.jpg"):
        (album / name).write_bytes((people_dir / name).read_bytes())
    (album / "face_a_1_copy.jpg").write_bytes((people_dir / "face_a_1.jpg").read_bytes())  # the same picture twice
    output = tmp_path / "people"
    status = main(["cluster", str(album), "--output-dir", str(output), "--threshold", "0.999", "--model", str(model_dir)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    record = json.loads((output / "clusters.json").read_text())
    assert [sorted(member["path"].rsplit("/", 1)[1] for member in cluster) for cluster in record["clusters"]] == [
        ["face_a_1.jpg", "face_a_1_copy.jpg"]
    ]
    assert len(record["seen_once"]) == 2 and record["threshold"] == 0.999
    assert sorted(link.name for link in (output / "person_000").iterdir()) == ["0000_face_a_1.jpg", "0001_face_a_1_copy.jpg"]
    assert (output / "person_000" / "0000_face_a_1.jpg").resolve() == (album / "face_a_1.jpg").resolve()
    assert (output / "person_000.jpg").stat().st_size > 1000 and (output / "seen_once.jpg").is_file()
    assert "1 people seen more than once, 2 seen once, from 4 photos" in captured.out

    # every person of the photos, and a folder that is not empty is refused
    people = tmp_path / "people_rows"
    assert main(["cluster", str(album), "--all-people", "--output-dir", str(people), "--threshold", "0.999",
                 "--model", str(model_dir)]) == 0  # fmt: skip
    rows = json.loads((people / "clusters.json").read_text())
    assert rows["rows"] == "people" and any("box" in member for member in rows["seen_once"])
    # A folder that records no grouping threshold gets the default, and is told how to measure its own ...
    assert main(["cluster", str(album), "--output-dir", str(tmp_path / "default"), "--model", str(model_dir)]) == 0
    default = json.loads((tmp_path / "default" / "clusters.json").read_text())
    assert default["threshold"] == 0.6 and "bench_clustering.py --record" in default["threshold_origin"]
    assert default["threshold_false_match_rates"] == {}  # no calibration: nothing to say about its strictness
    # ... one that records it is grouped at its own, which the output names, with how strict it is when the
    # folder's calibration has FAR curves.
    recorded = tmp_path / "recorded_model"
    shutil.copytree(model_dir, recorded)
    record_clustering_threshold(recorded, 0.999, "measured on test photos")
    different = np.random.default_rng(0).normal(0.5, 0.2, 100_000)  # made-up different-person cosines
    calibration = {"default": "best_accuracy", "source": "tests"}
    for kind, shift in (("face", 0.0), ("body", 0.2)):
        curve = FarCurve.from_different_scores(different + shift, f"made-up {kind} pairs", {"best_accuracy": 0.3})
        calibration[kind] = {"best_accuracy": 0.3, "far_1e-2": 0.9, "pairs_from": "tests", "far_curve": curve.to_record()}
    record_calibration(recorded, calibration)
    assert main(["cluster", str(album), "--output-dir", str(tmp_path / "own"), "--model", str(recorded)]) == 0
    own = json.loads((tmp_path / "own" / "clusters.json").read_text())
    assert own["threshold"] == 0.999 and own["threshold_origin"] == "recorded in the model folder: measured on test photos"
    assert len(own["clusters"]) == 1  # only the two copies of one picture reach 0.999
    rates = own["threshold_false_match_rates"]
    face_rate = FarCurve.from_record(calibration["face"]["far_curve"]).rate_at(0.999)
    assert rates["face"]["rate"] == face_rate.rate and rates["body"]["rate"] > rates["face"]["rate"]
    assert recorded_clustering_threshold(json.loads((recorded / "config.json").read_text())) == (0.999, "measured on test photos")
    with pytest.raises(ValueError, match=r"lies in \(-1, 1\)"):
        record_clustering_threshold(recorded, 1.5, "a typo")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        record_clustering_threshold(tmp_path, 0.5, "not a model folder")
    out = capsys.readouterr().out
    assert "threshold: 0.999 (recorded in the model folder: measured on test photos)" in out
    assert f"on the model's development pairs, {face_rate.percent()} of different-person face pairs and " in out
    capsys.readouterr()
    assert main(["cluster", str(album), "--output-dir", str(output), "--model", str(model_dir)]) != 0
    assert "is not empty" in capsys.readouterr().err
