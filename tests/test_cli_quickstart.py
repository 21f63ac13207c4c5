"""examples/quickstart.py: the README's main job, on real photos, loud about untrained weights."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detector_files import require_detector_files
from PIL import Image

from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.inference import MODEL_ENV_VAR

REPO_ROOT = Path(__file__).resolve().parents[1]
PEOPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
PHOTOS = ("face_a_2.jpg", "two_men.jpg")


@pytest.fixture(scope="module")
def quickstart():
    spec = importlib.util.spec_from_file_location("quickstart", REPO_ROOT / "examples" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(people_dir) -> list[str]:
    require_detector_files()
    return [str(people_dir / name) for name in PHOTOS]


@pytest.fixture(autouse=True)
def _no_model_from_environment(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)


def test_default_images_are_the_shared_photos(quickstart):
    assert quickstart.DEFAULT_IMAGES == PEOPLE


def test_untrained_run_writes_every_output_and_warns_everywhere(quickstart, photos, tmp_path, capsys):
    assert quickstart.main(["--output", str(tmp_path), "--images", *photos, "--model", "untrained"]) == 0
    out = capsys.readouterr().out
    assert out.count("NO TRAINED WEIGHTS") == 2  # banner at the start and at the end

    with open(tmp_path / "similarity.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", *PHOTOS]  # a plain table: the warning is in detections.json / summary.md
    similarity = np.array([[float(value) for value in row[1:]] for row in rows[1:]])
    np.testing.assert_allclose(similarity, similarity.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-5)

    embeddings = np.load(tmp_path / "embeddings.npy")
    np.testing.assert_allclose(embeddings @ embeddings.T, similarity, atol=1e-5)
    detections = json.loads((tmp_path / "detections.json").read_text())
    assert detections["trained"] is False and "NO TRAINED WEIGHTS" in detections["warning"]
    assert detections["images"]["two_men.jpg"]["person_found"] is True
    assert "NO TRAINED WEIGHTS" in (tmp_path / "summary.md").read_text()
    for name in ("similarity.png", *(f"overlays/{Path(photo).stem}.png" for photo in PHOTOS)):
        with Image.open(tmp_path / name) as picture:
            assert picture.width > 100


def test_a_given_model_runs_without_warnings(quickstart, photos, tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}  # counts as trained
    model.save_pretrained(model_dir)
    assert (
        quickstart.main(["--output", str(tmp_path / "out"), "--model", str(model_dir), "--images", *photos])
        == 0
    )
    assert "NO TRAINED WEIGHTS" not in capsys.readouterr().out
    first_line = (tmp_path / "out" / "similarity.csv").read_text().splitlines()[0]
    assert first_line == "image," + ",".join(PHOTOS)


def test_missing_images_fail_with_a_message(quickstart, tmp_path, capsys):
    assert quickstart.main(["--output", str(tmp_path), "--images", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_photos_with_the_same_file_name_keep_apart(quickstart, photos, tmp_path):
    copies = []
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        copies.append(tmp_path / folder / "person.jpg")
        copies[-1].write_bytes(Path(photos[0]).read_bytes())
    output = tmp_path / "out"
    assert quickstart.main(["--output", str(output), "--images", *map(str, copies), photos[1], "--model", "untrained"]) == 0
    header = (output / "similarity.csv").read_text().splitlines()[0]
    assert header == f"image,first/person.jpg,second/person.jpg,{Path(photos[1]).name}"
    assert sorted(path.name for path in (output / "overlays").iterdir()) == sorted(
        ["first__person.png", "second__person.png", f"{Path(photos[1]).stem}.png"]
    )


def test_the_readme_pairs_say_how_often_different_people_reach_their_scores(quickstart):
    from sapiensid_hf.evaluation.far_curve import FalseMatchRate

    names = ["face_a_1.jpg", "face_a_2.jpg", "face_a_3.jpg", "face_b_1.jpg"]
    similarity = np.array([[1, 0.45, 0.31, 0.26], [0.45, 1, 0.51, 0.03], [0.31, 0.51, 1, -0.13], [0.26, 0.03, -0.13, 1]])
    asked = []

    def rate_of(a, b, score):
        asked.append((a, b, score))
        return FalseMatchRate(0.074, "about", 329_256, "LFW", kind="face") if score > 0.2 else None

    check = quickstart.pair_check(names, similarity, rate_of)
    assert len(asked) == 6 and ("face_b_1.jpg", "face_a_1.jpg", 0.26) in asked
    assert set(check["false_match_rates"]) == {"face_a_1.jpg / face_a_2.jpg", "face_a_1.jpg / face_a_3.jpg",
                                                "face_a_2.jpg / face_a_3.jpg", "face_b_1.jpg / face_a_1.jpg"}  # fmt: skip
    json.dumps(check)  # written into detections.json
    text = quickstart.pair_check_text(check)
    assert "  face_b_1.jpg / face_a_1.jpg   0.260   about 7.4 % of different-person face pairs score this high" in text
    assert "  face_b_1.jpg / face_a_2.jpg   0.030\n" in text  # no rate for that pair: the score alone
    assert 'docs/cli.md, "How strong the evidence is"' in text
    # Without rates (an uncalibrated model) the text is as it was.
    plain = quickstart.pair_check_text(quickstart.pair_check(names, similarity))
    assert "score this high" not in plain and "How strong" not in plain
