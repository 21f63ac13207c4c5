"""The `sapiensid` command line on a tiny saved model and real photos: same numbers as the Python API."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from detector_files import require_detector_files
from PIL import Image

from sapiensid_cli import DEFAULT_COMPARE_THRESHOLD, DELEGATED, OWN_COMMANDS, main
from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.inference import MODEL_ENV_VAR, load_pipeline
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

QUERY = "face_a_2.jpg"
OTHERS = ("face_b_1.jpg", "two_men.jpg")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}  # counts as trained
    model.save_pretrained(folder)
    SapiensIDImageProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def photos(people_dir) -> Path:
    """The real photos (conftest's `people_dir`), for tests that run the keypoint detector on them."""
    require_detector_files()
    return people_dir


@pytest.fixture(scope="module")
def pipeline(model_dir):
    return load_pipeline(model_dir)


@pytest.fixture(autouse=True)
def _no_model_from_environment(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----------------------------------------------------------------------------------------------
# Help
# ----------------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in [*OWN_COMMANDS, *DELEGATED]:
        assert command in text
    assert "examples:" in text and "sapiensid compare" in text


def test_help_names_the_default_model_the_commands_load(capsys):
    # The help once said a command without --model ran a random tiny model, long after the shipped model
    # became the default: a user reading it would think every score meaningless.
    from sapiensid_hf.pretrained import DEFAULT_MODEL_NAME

    with pytest.raises(SystemExit):
        main(["--help"])
    top_level = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    model_option = " ".join(capsys.readouterr().out.split())
    for text in (top_level, model_option):
        assert f"shipped default model, {DEFAULT_MODEL_NAME}" in text or f"shipped {DEFAULT_MODEL_NAME}" in text
        assert "none = untrained" not in text and "Without one, the commands run a randomly" not in text
    assert "'untrained' = a randomly initialised tiny model" in model_option


@pytest.mark.parametrize("command", list(OWN_COMMANDS))
def test_help_of_each_own_command_teaches_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"sapiensid {command}" in text
    assert "examples:" in text


@pytest.mark.parametrize("command", list(DELEGATED))
def test_help_of_delegated_commands_is_their_own_parser(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: sapiensid {command}" in capsys.readouterr().out


def test_help_and_argument_errors_import_neither_torch_nor_transformers():
    # `sapiensid --help` once took 5 s because the parser lived inside the package that registers the
    # Auto classes; the parser package must stay light.
    probe = (
        "import sys, sapiensid_cli\n"
        "for argv in (['--help'], ['compare', '--top-k', '0', 'a.jpg', 'b.jpg']):\n"
        "    try:\n"
        "        sapiensid_cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(name for name in ('torch', 'transformers', 'sapiensid_hf') if name in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# embed
# ----------------------------------------------------------------------------------------------


def test_embed_npy_matches_the_python_api(capsys, tmp_path, model_dir, photos, pipeline):
    images = [photos / QUERY, *(photos / name for name in OTHERS)]
    output = tmp_path / "out" / "embeddings.npy"
    status, out, err = run_cli(
        capsys, "embed", *images, "--output", output, "--model", model_dir, "--batch-size", 2
    )
    assert status == 0, err
    embeddings = np.load(output)
    listed = (tmp_path / "out" / "embeddings.paths.txt").read_text().splitlines()
    assert listed == [str(path) for path in images]
    assert embeddings.shape == (3, SapiensIDConfig.tiny().output_dim)
    assert embeddings.dtype == np.float32
    expected = pipeline.embed([str(path) for path in images]).embeddings
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert "embedded 3 image(s)" in out and "NO TRAINED WEIGHTS" not in err


def test_embed_folder_to_parquet_skips_unreadable_files(capsys, tmp_path, model_dir, photos, pipeline):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos / QUERY, folder / "b_query.jpg")
    shutil.copy(photos / OTHERS[1], folder / "a_other.JPG")  # suffixes match case-insensitively
    (folder / "c_broken.jpg").write_text("not a picture")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    output = tmp_path / "gallery.parquet"

    status, _, err = run_cli(capsys, "embed", folder, "-o", output, "--model", model_dir)
    assert status == 1
    assert "c_broken.jpg" in err and "Traceback" not in err

    status, out, err = run_cli(
        capsys, "embed", folder, "-o", output, "--model", model_dir, "--skip-unreadable"
    )
    assert status == 0, err
    assert "skipped" in err and "c_broken.jpg" in err
    table = pq.read_table(output)
    assert table.column("path").to_pylist() == [str(folder / "a_other.JPG"), str(folder / "b_query.jpg")]
    embeddings = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    expected = pipeline.embed([str(folder / "a_other.JPG"), str(folder / "b_query.jpg")]).embeddings
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    assert table.column("person_found").to_pylist() == [True, True]
    assert table.schema.metadata[b"sapiensid.trained"] == b"true"


# ----------------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------------


def test_compare_gives_the_pipeline_similarity_and_a_verdict(capsys, model_dir, photos, pipeline):
    first, second = photos / QUERY, photos / OTHERS[0]
    status, out, err = run_cli(capsys, "compare", first, second, "--model", model_dir, "--json")
    assert status == 0, err
    result = json.loads(out)
    expected = pipeline.similarity(str(first), str(second))
    assert result["score"] == pytest.approx(expected, abs=1e-5)
    assert result["threshold"] == DEFAULT_COMPARE_THRESHOLD  # the test folder records no calibration
    assert "untuned default" in result["threshold_origin"] and result["threshold_kind"] is None
    assert result["same_person"] == (result["score"] >= DEFAULT_COMPARE_THRESHOLD)
    assert result["trained"] is True

    for threshold, verdict in ((expected - 0.01, "SAME PERSON"), (expected + 0.01, "DIFFERENT PEOPLE")):
        status, out, _ = run_cli(
            capsys, "compare", first, second, "--model", model_dir, "--threshold", threshold
        )
        assert status == 0
        assert f"cosine similarity: {expected:.4f}" in out
        assert f"verdict at threshold {threshold:.3f}: {verdict}" in out
        assert f"threshold: {threshold:.3f} (given with --threshold)" in out
        assert "MEANINGLESS" not in out


def test_compare_with_untrained_weights_says_so_loudly(capsys, photos):
    status, out, err = run_cli(capsys, "compare", photos / QUERY, photos / OTHERS[0], "--model", "untrained")
    assert status == 0
    assert "MEANINGLESS: untrained weights" in out
    assert err.count("NO TRAINED WEIGHTS") == 2  # a banner before and after the result


# ----------------------------------------------------------------------------------------------
# search
# ----------------------------------------------------------------------------------------------


def test_search_ranks_an_identical_copy_of_the_query_first(capsys, tmp_path, model_dir, photos):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(photos / QUERY, gallery / "zz_copy_of_query.jpg")  # sorts last: rank 1 is earned, not ordered
    for name in OTHERS:
        shutil.copy(photos / name, gallery / name)
    results = tmp_path / "results"

    status, out, err = run_cli(
        capsys,
        "search",
        photos / QUERY,
        "--gallery",
        gallery,
        "--top-k",
        2,
        "--output-dir",
        results,
        "--model",
        model_dir,
    )
    assert status == 0, err
    with open(results / "ranking.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert rows[0]["gallery_image"] == str(gallery / "zz_copy_of_query.jpg")
    assert float(rows[0]["score"]) == pytest.approx(1.0, abs=1e-5)
    assert float(rows[0]["score"]) >= float(rows[1]["score"])
    assert f"| {photos / QUERY} | 1 |" in (results / "ranking.md").read_text()
    with Image.open(results / "ranking.png") as picture:
        assert picture.width > 3 * 160 and picture.height > 160  # the query and its two matches

    # The same search against embeddings saved by `embed` gives the same ranking.
    saved = tmp_path / "gallery.npy"
    assert run_cli(capsys, "embed", gallery, "-o", saved, "--model", model_dir)[0] == 0
    status, out_from_file, err = run_cli(
        capsys, "search", photos / QUERY, "--gallery", saved, "--top-k", 2, "--model", model_dir
    )
    assert status == 0, err
    assert out_from_file.splitlines()[2] == out.splitlines()[2]  # first ranked row, score to 4 decimals


def test_search_refuses_a_gallery_from_another_model(capsys, tmp_path, model_dir, photos):
    saved = tmp_path / "wide.npy"
    np.save(saved, np.ones((1, 7), dtype=np.float32))
    (tmp_path / "wide.paths.txt").write_text(f"{photos / QUERY}\n")
    status, _, err = run_cli(capsys, "search", photos / QUERY, "--gallery", saved, "--model", model_dir)
    assert status == 1
    assert "7-d" in err and "same --model" in err


def _picture_without_a_person(path: Path) -> Path:
    """Smooth colour ramps: a real picture in which the detector finds nobody."""
    ramp = np.linspace(0, 255, 300, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (200, 1)), np.tile(ramp[::-1], (200, 1)), np.full((200, 300), 90, np.uint8)], -1)
    Image.fromarray(pixels).save(path)
    return path


def test_compare_withholds_the_verdict_when_nobody_is_found(capsys, tmp_path, model_dir, photos):
    wall = _picture_without_a_person(tmp_path / "wall.png")
    other_wall = _picture_without_a_person(tmp_path / "other_wall.png")
    status, out, err = run_cli(capsys, "compare", wall, other_wall, "--model", model_dir, "--json")
    assert status == 0, err
    result = json.loads(out)
    # Two such pictures would score exactly alike whatever they show: no score, no verdict.
    assert result["score"] is None and result["same_person"] is None
    assert result["verdict"] == "unknown: no person found in A and B"
    status, out, _ = run_cli(capsys, "compare", photos / QUERY, wall, "--model", model_dir)
    assert "verdict at threshold 0.300: unknown: no person found in B" in out
    assert "cosine similarity: none" in out and "SAME PERSON" not in out and "DIFFERENT" not in out
    assert "no identity embedding" in out and "whole picture" not in out


def test_search_leaves_out_pictures_without_a_person(capsys, tmp_path, model_dir, photos):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(photos / QUERY, gallery / "copy.jpg")
    _picture_without_a_person(gallery / "wall.png")
    status, out, err = run_cli(capsys, "search", photos / QUERY, "--gallery", gallery, "--model", model_dir)
    assert status == 0, err
    assert "wall.png" not in out and "copy.jpg" in out
    assert "wall.png: no person found" in err and "left out of the gallery" in err
    wall = _picture_without_a_person(tmp_path / "query_wall.png")
    status, _, err = run_cli(capsys, "search", wall, "--gallery", gallery, "--model", model_dir)
    assert status == 1 and "no person found in any query image" in err


def test_saved_embeddings_record_their_model_and_a_search_by_another_model_is_refused(
    capsys, tmp_path, model_dir, photos
):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos / QUERY, folder / "a.jpg")
    _picture_without_a_person(folder / "b_wall.png")
    for name in ("gallery.parquet", "gallery.npy"):
        status, _, err = run_cli(capsys, "embed", folder, "-o", tmp_path / name, "--model", model_dir)
        assert status == 0, err
    table = pq.read_table(tmp_path / "gallery.parquet")
    metadata = {key.decode(): value.decode() for key, value in table.schema.metadata.items()}
    norms = np.linalg.norm(np.asarray(table.column("embedding").to_pylist()), axis=1)
    assert table.column("person_found").to_pylist() == [True, False]
    assert metadata["sapiensid.rows_without_person"] == "1"
    assert metadata["sapiensid.l2_normalized"] == ("true" if np.allclose(norms, 1, atol=1e-4) else "false")
    meta = json.loads((tmp_path / "gallery.meta.json").read_text())
    assert meta["person_found"] == [True, False] and meta["weights_fingerprint"] == metadata["sapiensid.weights_fingerprint"]

    other = tmp_path / "other_model"
    torch.manual_seed(1)  # same shape and width, other weights
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: another stand-in"}
    model.save_pretrained(other)
    for name in ("gallery.parquet", "gallery.npy"):
        status, _, err = run_cli(capsys, "search", photos / QUERY, "--gallery", tmp_path / name, "--model", other)
        assert status == 1 and "was embedded by another model" in err and "same --model" in err
        status, out, err = run_cli(capsys, "search", photos / QUERY, "--gallery", tmp_path / name, "--model", model_dir)
        assert status == 0, err
        assert "a.jpg" in out and "b_wall.png" not in out  # the row without a person is left out


def test_a_file_name_with_a_line_break_is_not_written_to_the_paths_list(capsys, tmp_path, model_dir, photos):
    odd = tmp_path / "two\nlines.jpg"
    shutil.copy(photos / QUERY, odd)
    status, _, err = run_cli(capsys, "embed", odd, "-o", tmp_path / "e.npy", "--model", model_dir)
    assert status == 1 and "line break" in err and ".parquet" in err
    assert not (tmp_path / "e.npy").exists()
    status, _, err = run_cli(capsys, "embed", odd, "-o", tmp_path / "e.parquet", "--model", model_dir)
    assert status == 0, err
    assert pq.read_table(tmp_path / "e.parquet").column("path").to_pylist() == [str(odd)]


# ----------------------------------------------------------------------------------------------
# Bad input: a message naming the problem, exit status 1, no traceback
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["embed", "{tmp}/missing.jpg", "-o", "{tmp}/e.npy"], "missing.jpg: no such file or folder"),
        (["embed", "{photos}/face_a_2.jpg", "-o", "{tmp}/e.csv"], "must end in .npy or .parquet"),
        (["embed", "{tmp}", "-o", "{tmp}/e.npy"], "holds no images"),
        (["compare", "{photos}/face_a_2.jpg", "{tmp}/nobody.jpg"], "image B ('{tmp}/nobody.jpg'): no such file"),
        (["compare", "{photos}", "{photos}/face_a_2.jpg"], "is a folder"),
        (
            ["compare", "{photos}/face_a_2.jpg", "{photos}/face_b_1.jpg", "--model", "{tmp}/no_model"],
            "no_model",
        ),
        (["compare", "{photos}/face_a_2.jpg", "{photos}/face_b_1.jpg", "--model", "{tmp}"], "no config.json"),
        (
            ["evaluate", "--benchmark", "public-dev", "--dataset-root", "{tmp}", "--model", "{tmp}/no_model"],
            "{tmp}/no_model: no such folder (give a saved SapiensID folder or a hub id 'owner/name')",
        ),
        (
            ["evaluate", "--benchmark", "public-dev", "--dataset-root", "{tmp}", "--no-baseline", "--against", "{tmp}"],
            "{tmp}: not a model folder (no config.json)",
        ),
        (["search", "{photos}/face_a_2.jpg", "--gallery", "{tmp}/nowhere"], "nowhere: no such folder"),
        (["export-onnx", "--model", "untrained", "-o", "{tmp}/m.onnx"], "needs trained weights"),
        (["export-onnx", "--model", "{tmp}", "-o", "{tmp}/m.onnx", "--opset", "13"], "GridSample"),
        (["export-onnx", "--model", "{tmp}", "-o", "{tmp}/m.txt"], "must end in .onnx"),
    ],
)
def test_bad_input_gives_a_clear_message_and_exit_status_1(capsys, tmp_path, people_dir, argv, expected):
    status, _, err = run_cli(capsys, *(arg.format(tmp=tmp_path, photos=people_dir) for arg in argv))
    assert status == 1
    assert expected.format(tmp=tmp_path, photos=people_dir) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("fake_side", ["A", "B"])
def test_unreadable_image_is_named_as_the_photo_the_user_gave(capsys, tmp_path, model_dir, photos, fake_side):
    fake = tmp_path / "fake.jpg"
    fake.write_text("just text")
    pair = (fake, photos / QUERY) if fake_side == "A" else (photos / QUERY, fake)
    status, _, err = run_cli(capsys, "compare", *pair, "--model", model_dir)
    assert status == 1 and "Traceback" not in err
    # Each photo is read on its own first: B was called "image 0", the processor's number within one call.
    assert f"image {fake_side} ({str(fake)!r}): not an image file" in err


@pytest.mark.parametrize("all_people", [False, True])
def test_an_unreadable_file_in_a_folder_stops_embed_naming_it_and_the_option_that_leaves_it_out(
    capsys, tmp_path, model_dir, photos, all_people
):
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "b_fake.jpg").write_text("just text")
    shutil.copy(photos / "face_a_1.jpg", folder / "a.jpg")
    output = tmp_path / "album.parquet"
    status, _, err = run_cli(capsys, "embed", folder, "-o", output, "--model", model_dir, *(["--all-people"] if all_people else []))
    assert status == 1 and "b_fake.jpg" in err and "--skip-unreadable" in err and "Traceback" not in err
    assert not output.exists()  # nothing half-written


def test_usage_error_exits_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "photo.jpg"])  # --output missing
    assert exit_info.value.code == 2
    assert "--output" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["compare", "a.jpg", "b.jpg", "--threshold", "3"], "--threshold: must be a cosine similarity between -1 and 1, got 3"),
        (["compare", "a.jpg", "b.jpg", "--threshold", "nan"], "--threshold: must be a cosine similarity"),
        (["search", "a.jpg", "--gallery", "g", "--top-k", "0"], "--top-k/-k: must be at least 1, got 0"),
        (["embed", "a.jpg", "-o", "e.npy", "--batch-size", "0"], "--batch-size: must be at least 1"),
        (["embed", "a.jpg", "-o", "e.npy", "--batch-size", "two"], "--batch-size: expected a whole number"),
        (["compare", "a.jpg", "b.jpg", "--device", "banana"], "'banana' is not a torch device; devices here: cpu"),
        (["evaluate", "--dataset-root", "d", "--benchmark", "market1501", "--max-rank", "0"], "--max-rank: must be at least 1"),
        (["evaluate", "--dataset-root", "d", "--benchmark", "market1501", "--device", "banana"], "not a torch device"),
    ],
)
def test_bad_option_values_exit_2_before_any_work(capsys, argv, expected):
    # --model points nowhere: had the command started, it would fail on the model instead.
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--model", "/nowhere/model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and "nowhere" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_on_a_machine_without_it_names_the_devices_there(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "a.jpg", "b.jpg", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "'cuda': this torch build or machine has no CUDA device; devices here: cpu" in capsys.readouterr().err


def test_pipeline_similarity_refuses_a_picture_without_a_person(tmp_path, pipeline, photos):
    from sapiensid_hf.inference import NoPersonFoundError

    wall = _picture_without_a_person(tmp_path / "wall.png")
    with pytest.raises(NoPersonFoundError, match="no person found in the second image"):
        pipeline.similarity(str(photos / QUERY), str(wall))


def test_flip_is_the_evaluation_rule_everywhere(capsys, tmp_path, model_dir, photos, pipeline):
    from sapiensid_hf.embedding_views import embed_batch

    first, second = str(photos / QUERY), str(photos / OTHERS[0])
    flipped = pipeline.embed([first, second]).embeddings  # on by default, as in every command
    plain = pipeline.embed([first, second], flip=False).embeddings
    # The evaluation runner's function on the same processor batch gives the same numbers.
    features = pipeline.processor([first, second], return_tensors="pt")
    np.testing.assert_allclose(flipped, embed_batch(pipeline.model, features, torch.device("cpu"), flip=True).numpy(), atol=1e-6)
    assert not np.allclose(flipped, plain, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    status, out, err = run_cli(capsys, "compare", first, second, "--model", model_dir, "--json", "--flip")
    assert status == 0, err
    assert json.loads(out)["score"] == pytest.approx(float(flipped[0] @ flipped[1]), abs=1e-5)
    # Every command uses flip by default, as the calibrated thresholds were chosen; --no-flip turns it off.
    status, out, err = run_cli(capsys, "compare", first, second, "--model", model_dir, "--json")
    assert status == 0, err
    assert json.loads(out)["score"] == pytest.approx(float(flipped[0] @ flipped[1]), abs=1e-5)
    assert pipeline.verify(first, second).score == pytest.approx(float(flipped[0] @ flipped[1]), abs=1e-5)
    status, out, err = run_cli(capsys, "compare", first, second, "--model", model_dir, "--json", "--no-flip")
    assert status == 0, err
    assert json.loads(out)["score"] == pytest.approx(float(plain[0] @ plain[1]), abs=1e-5)
    status, _, err = run_cli(capsys, "embed", first, second, "-o", tmp_path / "f.parquet", "--model", model_dir)
    assert status == 0, err
    table = pq.read_table(tmp_path / "f.parquet")
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), flipped, atol=1e-5)
    assert table.schema.metadata[b"sapiensid.flip"] == b"true"
    status, _, err = run_cli(capsys, "search", first, "--gallery", tmp_path / "f.parquet", "--model", model_dir, "--no-flip")
    assert status == 0 and "embedded with --flip and the queries are embedded without it" in err
    # Without --flip / --no-flip, search embeds its queries the way the gallery was (an older, unflipped one too).
    status, _, err = run_cli(capsys, "embed", first, second, "-o", tmp_path / "plain.parquet", "--model", model_dir, "--no-flip")
    assert status == 0, err
    status, out, err = run_cli(capsys, "search", first, "--gallery", tmp_path / "plain.parquet", "--model", model_dir)
    assert status == 0 and "--flip" not in err, err  # no note of a flip mismatch
    second_row = next(line for line in out.splitlines() if line.endswith(f"| {second} |"))
    assert float(second_row.split("|")[3]) == pytest.approx(float(plain[0] @ plain[1]), abs=1e-4)


def test_person_crops_give_a_crop_without_a_detected_person_a_standing_persons_keypoints(capsys, tmp_path, model_dir, photos):
    folder = tmp_path / "crops"
    folder.mkdir()
    shutil.copy(photos / QUERY, folder / "a.jpg")
    _picture_without_a_person(folder / "b_wall.png")
    status, _, err = run_cli(capsys, "embed", folder, "-o", tmp_path / "crops.parquet", "--model", model_dir, "--person-crops")
    assert status == 0, err
    assert "--person-crops: every image is taken as a crop of one person" in err
    assert pq.read_table(tmp_path / "crops.parquet").column("person_found").to_pylist() == [True, True]
    status, _, err = run_cli(capsys, "embed", folder, "-o", tmp_path / "plain.parquet", "--model", model_dir)
    assert pq.read_table(tmp_path / "plain.parquet").column("person_found").to_pylist() == [True, False]
    for command in (["embed", folder, "-o", tmp_path / "p.parquet"], ["search", photos / QUERY, "--gallery", folder]):
        status, _, err = run_cli(capsys, *command, "--model", model_dir, "--person-crops", "--all-people")
        assert status == 1 and "--person-crops says every image is one person" in err
