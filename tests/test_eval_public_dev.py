"""Development checks (`--benchmark public-dev`): the sets, the scores on known embeddings, the run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sapiensid_hf.evaluation.public_dev import (
    UNTRAINED,
    balanced_split_order,
    headline,
    load_dev_sets,
    run_dev_checks,
    score_dev_set,
    with_crop_prior,
)
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult
from sapiensid_hf.processing.standing_person_prior import standing_person_keypoints


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 32), (value, 255 - value, 40)).save(path)


@pytest.fixture
def identities(tmp_path):
    """A miniature identities folder in the shared layout: 3 CUHK03-val people x 2 cameras, Con-ReID
    query / gallery of 2 people, LFW val of 4 people with a 5 + 5 pairs file."""
    root = tmp_path / "identities"
    lines = ["path,identity,camera,source,split"]
    for person in range(3):
        for shot in (0, 1, 5, 6):
            name = f"cuhk03/val/{person:04d}_{shot:02d}.jpg"
            _image(root / name, 30 * person + shot)
            lines.append(f"{name},cuhk03-val-{person:04d},{0 if shot < 5 else 1},cuhk03,val")
    lines.append("lfw/val/Ann/Ann_0001.jpg,lfw-Ann,-1,lfw,val")  # val rows of another source are not CUHK03
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    for folder, names in (("query", ["0001_c1s1_000001.jpg", "0002_c1s1_000001.jpg"]),
                          ("bounding_box_test", ["0001_c2s1_000002.jpg", "0002_c3s1_000002.jpg", "0003_c2s1_000001_1.jpg"])):  # fmt: skip
        for index, name in enumerate(names):
            _image(root / "conreid" / folder / name, 50 + index)
    for name, count in (("Ann", 3), ("Bob", 3), ("Cy", 2), ("Dee", 2)):
        for number in range(1, count + 1):
            _image(root / "lfw" / "val" / name / f"{name}_{number:04d}.jpg", 10 * number)
    pairs = ["1\t5", "Ann 1 2", "Ann 1 3", "Bob 1 2", "Bob 2 3", "Cy 1 2",
             "Ann 1 Bob 1", "Ann 2 Cy 1", "Bob 3 Dee 1", "Cy 2 Dee 2", "Dee 1 Ann 3"]  # fmt: skip
    (root / "lfw" / "pairs_val.txt").write_text("\n".join(pairs) + "\n")
    return root


def test_dev_sets_rows_and_pairs(identities):
    sets = load_dev_sets(identities)
    assert len(sets["cuhk03_val"].dataset) == 12 and set(sets["cuhk03_val"].dataset["source"]) == {"cuhk03"}
    assert sorted(sets["conreid"].dataset["role"]) == ["gallery"] * 3 + ["query"] * 2
    lfw = sets["lfw_fold7"]
    paths = lfw.dataset["path"]
    assert len(paths) == len(set(paths)) == 10  # each image embedded once, however many pairs use it
    first, second, same = lfw.pairs
    assert same.tolist() == [True] * 5 + [False] * 5
    assert (paths[first[5]], paths[second[5]]) == ("Ann/Ann_0001.jpg", "Bob/Bob_0001.jpg")


def test_scores_of_separable_embeddings_are_perfect(identities):
    sets = load_dev_sets(identities)
    for name, dev in sets.items():
        if name == "lfw_fold7":
            names = [path.split("/")[0] for path in dev.dataset["path"]]
            identity = {person: index for index, person in enumerate(sorted(set(names)))}
            labels = np.array([identity[person] for person in names])
        else:
            labels = np.asarray(dev.dataset["pid"])
        embeddings = np.eye(8, dtype=np.float32)[labels]  # one direction per identity
        scores = score_dev_set(dev, embeddings)
        for part in scores.values():
            if "rank1" in part:
                assert part["rank1"] == 1.0 and part["mAP"] == 1.0
            else:
                assert part["accuracy"] == 1.0 and part["tar@far=0.01"] == 1.0


def test_balanced_split_order_puts_both_kinds_in_every_tenth():
    same = np.array([True] * 300 + [False] * 300)
    tenths = same[balanced_split_order(same)].reshape(10, 60)
    assert (tenths.sum(axis=1) == 30).all()
    uneven = np.array([True] * 7 + [False] * 3)
    assert sorted(balanced_split_order(uneven).tolist()) == list(range(10))


class SquareCentreDetector:
    def detect(self, image):
        keypoints = np.full((19, 2), -1.0, np.float32)
        keypoints[0] = (0.5, 0.3)
        return KeypointResult(keypoints=keypoints, person_boxes=np.zeros((0, 4), np.float32), source="pose")


class NobodyInDarkRedPhotos(SquareCentreDetector):
    """Finds nobody in the fixture photos whose red channel goes below 15 (4 CUHK03 and 4 LFW photos)."""

    def detect(self, image):
        if np.asarray(image)[..., 0].min() < 15:  # the photo itself, not its square padding
            return KeypointResult(keypoints=np.full((19, 2), -1.0, np.float32), person_boxes=np.zeros((0, 4), np.float32), source="none")
        return super().detect(image)


def test_run_writes_tables_and_plots_beside_the_untrained_model(identities, tmp_path):
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    processor = SapiensIDImageProcessor.from_model_config(config, detector=SquareCentreDetector())
    models = {"tiny": (SapiensIDModel(config), processor), UNTRAINED: (SapiensIDModel(SapiensIDConfig.tiny()), processor)}
    models["tiny"][0].config.embedding_cuts = {"scales": [1.0, 0.9], "source": "tests"}  # its folder's rule
    results = run_dev_checks(models, identities, tmp_path / "out", batch_size=4)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["models"].keys() == {"tiny", UNTRAINED}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| cuhk03_val cam0_to_cam1 | rank1 (%) |" in table and "| lfw_fold7 pairs | accuracy (%) |" in table
    for key in ("cmc_cuhk03_val", "cmc_conreid", "roc_lfw_fold7_0", "roc_lfw_fold7_1"):
        assert (tmp_path / "out" / results["files"][key].split("/")[-1]).is_file()
    figures = headline(results, "tiny")
    assert set(figures) == {"cuhk03_val_rank1", "conreid_rank1", "lfw_fold7_accuracy", "lfw_fold7_tar@far=0.01"}
    assert all(0.0 <= value <= 1.0 for value in figures.values())
    assert (tmp_path / "out" / "keypoints" / "cuhk03_val" / "meta.json").is_file()  # cached for the next run
    assert results["flip"] and results["embedding_cuts"] == {"tiny": [1.0, 0.9], UNTRAINED: [1.0]}
    rule = "the mean of the photo's centre cuts at 1, 0.9 of its width and height"
    assert results["calibration"]["tiny"]["source"].endswith(f"(tiny, flip test-time augmentation, {rule})")
    assert f"tiny embeds each photo as {rule}" in table
    # Every figure has its 95 % interval, drawn the same way every run, and the table shows it.
    assert written["intervals"] == {"level": 0.95, "resamples": 1000, "seed": 0}
    for per_model in written["models"].values():
        for parts in per_model.values():
            for values in parts.values():
                assert set(values["intervals"]) == ({"rank1", "mAP"} if "rank1" in values else {"accuracy", "tar@far=0.01"})
                for metric, (low, high) in values["intervals"].items():
                    assert 0.0 <= low <= values[metric] <= high <= 1.0, metric
    again = run_dev_checks(models, identities, tmp_path / "again", tmp_path / "out" / "keypoints", batch_size=4)
    assert again["models"]["tiny"]["lfw_fold7"]["pairs"]["intervals"] == written["models"]["tiny"]["lfw_fold7"]["pairs"]["intervals"]
    pairs = written["models"]["tiny"]["lfw_fold7"]["pairs"]
    low, high = pairs["intervals"]["accuracy"]
    assert f"| lfw_fold7 pairs | accuracy (%) | {100 * pairs['accuracy']:.1f} ({100 * low:.1f}-{100 * high:.1f}) |" in table
    assert "In brackets: 95 % intervals, percentile bootstrap of 1000 draws (seed 0): rankings over the query people" in table
    # The first model less each other one, on the same people, with the interval of the difference.
    for name, parts in written["differences"][UNTRAINED].items():
        for part, metrics in parts.items():
            for metric, entry in metrics.items():
                own, other = written["models"]["tiny"][name][part][metric], written["models"][UNTRAINED][name][part][metric]
                assert entry["difference"] == pytest.approx(own - other, abs=1e-9)
                assert entry["interval"][0] <= entry["interval"][1]
    assert f"| check | metric | tiny - {UNTRAINED} |" in table
    # The headline figures' intervals, CUHK03-val's mean of both directions with the same people drawn for both.
    for label in ("tiny", UNTRAINED):
        figures, intervals = headline(written, label), written["headline_intervals"][label]
        assert set(intervals) == set(figures)
        assert all(intervals[key][0] <= figures[key] <= intervals[key][1] for key in figures)
    low, high = written["headline_intervals"]["tiny"]["cuhk03_val_rank1"]
    mean_rank1 = 100 * headline(written, "tiny")["cuhk03_val_rank1"]
    assert f"the mean of both directions (the headline figure): tiny {mean_rank1:.1f} ({100 * low:.1f}-{100 * high:.1f})" in table
    assert not {'"_queries":', '"_correct":'} & {token for token in json.dumps(written).split() if token.startswith('"_')}  # kept private


def test_the_results_say_how_many_photos_have_nobody_in_them(identities, tmp_path):
    config = SapiensIDConfig.tiny()
    processor = SapiensIDImageProcessor.from_model_config(config, detector=NobodyInDarkRedPhotos())
    results = run_dev_checks({"tiny": (SapiensIDModel(config), processor)}, identities, tmp_path / "out", batch_size=4, flip=False)
    # Thresholds chosen on embeddings without flip say so (calibrate's own always use flip).
    assert results["calibration"]["tiny"]["source"].endswith("(tiny, no flip test-time augmentation)")
    assert results["photos_without_person"] == {
        "cuhk03_val": {"count": 4, "of": 12}, "conreid": {"count": 0, "of": 5}, "lfw_fold7": {"count": 4, "of": 10},
    }  # fmt: skip
    table = (tmp_path / "out" / "results.md").read_text()
    assert "cuhk03_val 4 of 12, conreid 0 of 5; scored with the keypoints of a standing person filling the crop" in table
    assert "lfw_fold7 4 of 10; scored, but every such photo gets the same embedding" in table
    assert results["standing_person_prior"] == ["cuhk03_val", "conreid"]


def test_person_crops_without_keypoints_get_a_standing_person_on_the_photo(identities):
    cuhk03 = load_dev_sets(identities, ("cuhk03_val",))["cuhk03_val"]
    detected = np.full((12, 19, 2), -1.0, np.float32)
    detected[0, 7] = (0.5, 0.3)  # one row has a detected shoulder: kept as it is
    keypoints = with_crop_prior(cuhk03, detected)
    np.testing.assert_array_equal(keypoints[0], detected[0])
    # The fixture photos are 16 x 32: centred in a 32-pixel square, x from 0.25 to 0.75.
    expected = standing_person_keypoints((0.25, 0.0, 0.75, 1.0))
    for row in range(1, 12):
        np.testing.assert_allclose(keypoints[row], expected)


class CountingNobodyInDarkRedPhotos(NobodyInDarkRedPhotos):
    """Counts the photos (and cuts) it is run on."""

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return super().detect(image)


def test_a_second_run_reads_the_cuts_keypoints_the_first_one_left(identities, tmp_path):
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    config.embedding_cuts = {"scales": [1.0, 0.9], "source": "tests"}  # one cut a photo
    detector = CountingNobodyInDarkRedPhotos()
    models = {"tiny": (SapiensIDModel(config), SapiensIDImageProcessor.from_model_config(config, detector=detector))}
    cache = tmp_path / "keypoints"

    def run(output, **options):
        detector.calls = 0
        results = run_dev_checks(models, identities, tmp_path / output, cache, batch_size=4, num_workers=0, **options)
        return results, detector.calls

    first, calls = run("first")
    assert calls == 2 * (12 + 5 + 10)  # each photo, then its cut
    for name in ("cuhk03_val", "conreid", "lfw_fold7"):
        assert (cache / name / "cut_keypoints_0.9.npz").is_file()
    again, calls = run("again")
    assert calls == 0 and again["models"] == first["models"]  # nothing detected, the very same scores
    # Other photo keypoints (without the standing-person prior, 4 CUHK03-val photos have none): that set's
    # cuts are detected again; Con-ReID (no photo without a person) and LFW keep theirs.
    _, calls = run("no_prior", standing_person_prior=False)
    assert calls == 12
    # A damaged file is not trusted: its set's cuts are detected again, and the file made whole.
    (cache / "lfw_fold7" / "cut_keypoints_0.9.npz").write_bytes(b"not an npz")
    _, calls = run("damaged", standing_person_prior=False)
    assert calls == 10
    _, calls = run("whole again", standing_person_prior=False)
    assert calls == 0


def test_public_dev_with_rerank_adds_re_ranked_rows_and_keeps_the_plain_figures(identities, tmp_path):
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    processor = SapiensIDImageProcessor.from_model_config(config, detector=SquareCentreDetector())
    models = {"tiny": (SapiensIDModel(config), processor)}
    cache = tmp_path / "keypoints"
    plain = run_dev_checks(models, identities, tmp_path / "plain", cache, batch_size=4, num_workers=0)
    both = run_dev_checks(models, identities, tmp_path / "both", cache, batch_size=4, num_workers=0, rerank=True)
    assert both["models"] == plain["models"] and "reranked" not in plain
    reranked = both["reranked"]["tiny"]
    assert set(reranked) == {"cuhk03_val", "conreid"}  # LFW fold 7 is pairs: nothing to re-rank
    assert set(reranked["cuhk03_val"]) == {"cam0_to_cam1", "cam1_to_cam0"}
    assert reranked["conreid"]["query_to_gallery"]["num_gallery"] == plain["models"]["tiny"]["conreid"]["query_to_gallery"]["num_gallery"]
    table = (tmp_path / "both" / "results.md").read_text()
    assert "| cuhk03_val cam0_to_cam1, re-ranked | rank1 (%) |" in table and "| conreid query_to_gallery, re-ranked | mAP (%) |" in table
    assert "k-reciprocal re-ranking (Zhong et al. 2017; k1 20, k2 6, lambda 0.3)" in table
    # What re-ranking changes, on the same people: the re-ranked figure less the plain one.
    changes = both["reranked_differences"]["tiny"]
    assert set(changes) == {"cuhk03_val", "conreid"}
    for name, parts in changes.items():
        for part, metrics in parts.items():
            for metric, entry in metrics.items():
                plain_figure = both["models"]["tiny"][name][part][metric]
                assert entry["difference"] == pytest.approx(reranked[name][part][metric] - plain_figure, abs=1e-9)
    assert "| check | metric | tiny: re-ranked - plain |" in table


def test_evaluate_against_another_model_reports_each_difference_on_the_same_people(capsys, tmp_path, model_dir, people_dir):
    import shutil

    from dev_layouts import identities_layout

    from sapiensid_cli import main

    root = identities_layout(people_dir, tmp_path / "identities")
    twin = tmp_path / "twin"
    shutil.copytree(model_dir, twin)
    common = ["evaluate", "--model", str(model_dir), "--dataset-root", str(root), "--benchmark", "public-dev"]
    status = main([*common, "--against", str(twin), "--output-dir", str(tmp_path / "out")])
    output = capsys.readouterr().out
    assert status == 0, output
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(written["models"]) == [model_dir.name, "twin", UNTRAINED]
    # The same weights under another name: every difference is nothing, and no draw of people moves it.
    for parts in written["differences"]["twin"].values():
        for metrics in parts.values():
            assert set(metrics) in ({"rank1", "mAP"}, {"accuracy", "tar@far=0.01"})
            assert all(entry == {"difference": 0.0, "interval": [0.0, 0.0]} for entry in metrics.values())
    assert f"| check | metric | {model_dir.name} - twin | {model_dir.name} - {UNTRAINED} |" in output
    assert "| lfw_fold7 pairs | accuracy | +0.0 (+0.0 to +0.0) |" in output

    # The model itself again, or another benchmark than public-dev: refused with a message.
    status = main([*common, "--against", str(model_dir), "--no-baseline", "--output-dir", str(tmp_path / "self")])
    captured = capsys.readouterr()
    assert status != 0 and "that model is already being scored" in captured.err + captured.out
    with pytest.raises(SystemExit, match="--against compares models on the development checks"):
        main(["evaluate", "--model", str(model_dir), "--dataset-root", str(root), "--benchmark", "market1501", "--against", str(twin)])


def test_the_evaluate_example_prints_the_development_table(tmp_path, model_dir, people_dir):
    import subprocess
    import sys

    from dev_layouts import identities_layout

    root = identities_layout(people_dir, tmp_path / "identities")
    example = Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"
    done = subprocess.run(
        [sys.executable, str(example), "--model", str(model_dir), "--dataset-root", str(root), "--benchmark", "public-dev",
         "--no-baseline", "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "results.md").read_text() in done.stdout  # the same table as results.md
    assert "| lfw_fold7 pairs | accuracy (%) |" in done.stdout and "In brackets: 95 % intervals" in done.stdout
