"""The Gradio Space driven through gradio_client, served on 127.0.0.1 with a tiny saved model."""

import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detector_files import require_detector_files
from PIL import Image
from space_server import GRADIO_QUEUE_WARNING_FILTERS, served

from sapiensid_hf.commands import demo as demo_command
from sapiensid_hf.inference import UNTRAINED_WARNING, load_pipeline, load_processor
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.space import build_demo, pictures
from sapiensid_hf.space.messages import DEFAULT_THRESHOLD, failure_message, verdict_markdown
from sapiensid_hf.space.page import MAX_UPLOAD_SIZE
from sapiensid_hf.space.page_text import untrained_banner
from sapiensid_hf.space.pictures import OVERLAY_SIDE
from sapiensid_hf.space.uploads import MAX_IMAGE_PIXELS

REPO_ROOT = Path(__file__).resolve().parents[1]
PEOPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
ALL_PEOPLE = (
    "couple",
    "face_a_1",
    "face_a_2",
    "face_a_3",
    "face_b_1",
    "selfie-many-people",
    "street_bus",
    "two_men",
)

gradio_client = pytest.importorskip("gradio_client")

pytestmark = GRADIO_QUEUE_WARNING_FILTERS


def photo(name: str) -> Path:
    path = PEOPLE_DIR / f"{name}.jpg"
    if not path.is_file():
        pytest.skip(f"real test photo {path} not found (../shared/data/people beside the repo)")
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    folder = tmp_path_factory.mktemp("space_tiny_model")
    model = SapiensIDModel(config)
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}  # counts as trained
    model.save_pretrained(folder)
    load_processor(None, config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    require_detector_files()
    with served(load_pipeline(tiny_model_dir)) as url:
        yield gradio_client.Client(url, verbose=False)


@pytest.fixture(scope="module")
def not_an_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("uploads") / "holiday.jpg"
    path.write_text("this is a text file with a .jpg name\n")
    return path


def upload(path: Path):
    return gradio_client.handle_file(str(path))


# ---------------------------------------------------------------------------------------------
# Compare
# ---------------------------------------------------------------------------------------------


def test_compare_returns_cosine_score_verdict_and_overlays(client):
    overlay_a, overlay_b, score, verdict, status, threshold = client.predict(
        upload(photo("face_a_2")), upload(photo("street_bus")), api_name="/compare"
    )
    assert isinstance(score, float) and -1.0 <= score <= 1.0
    # The test model records no calibration: the untuned default is used, and the verdict says so.
    assert threshold == DEFAULT_THRESHOLD
    expected = "Same person" if score >= threshold else "Different people"
    assert expected in verdict and f"{threshold:.3f}" in verdict and "untuned default" in verdict
    assert "Image A:" in status and "Image B:" in status
    for overlay in (overlay_a, overlay_b):
        with Image.open(overlay) as picture:  # the padded square, drawn at the overlay size
            assert picture.size == (OVERLAY_SIDE, OVERLAY_SIDE)


def test_compare_says_when_a_person_who_fills_little_of_the_photo_was_cut_from_it(client, tmp_path):
    with Image.open(photo("face_a_1")) as portrait:
        portrait = portrait.convert("RGB")
        portrait.thumbnail((300, 300))
        wide = Image.new("RGB", (3 * portrait.width, 3 * portrait.height), (150, 150, 150))
        wide.paste(portrait, (portrait.width, portrait.height))
        wide.save(tmp_path / "wide.png")
    _, _, score, _, status, _ = client.predict(upload(photo("face_a_2")), upload(tmp_path / "wide.png"), api_name="/compare")
    assert score is not None
    assert "Image B: the person fills little of the photo, so they were cut from it first" in status
    assert "Image A: the person fills little" not in status  # a portrait is embedded as it is


def test_compare_of_a_picture_with_itself_scores_one(client):
    picture = upload(photo("face_a_1"))
    _, _, score, verdict, _, _ = client.predict(picture, picture, api_name="/compare")
    assert score == pytest.approx(1.0, abs=1e-3)
    assert "Same person" in verdict


def test_compare_reports_a_text_file_named_jpg(client, not_an_image):
    overlay_a, overlay_b, score, verdict, status, _ = client.predict(
        upload(not_an_image), upload(photo("face_a_1")), api_name="/compare"
    )
    assert (overlay_a, overlay_b, score, verdict) == (None, None, None, "")
    assert "Image A ('holiday.jpg')" in status and "not an image" in status
    assert "Traceback" not in status


def test_compare_reports_a_missing_image(client):
    _, _, score, _, status, _ = client.predict(upload(photo("face_a_1")), None, api_name="/compare")
    assert score is None
    assert status.startswith("Image B: no image given")


def test_compare_refuses_an_oversized_image(client, tmp_path):
    side = math.isqrt(MAX_IMAGE_PIXELS) + 100  # a PNG: not decodable at reduced scale
    huge = tmp_path / "huge.png"
    Image.new("L", (side, side), 128).save(huge)
    _, _, score, _, status, _ = client.predict(upload(photo("face_a_1")), upload(huge), api_name="/compare")
    assert score is None
    assert "Image B ('huge.png')" in status and f"{side}x{side}" in status
    # A visitor cannot change a processor option: the page names the demo's limit instead.
    assert "this demo's limit of 40 MP" in status and "max_image_pixels" not in status


def test_compare_asks_for_another_copy_of_a_phones_heic_photo(client, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # the plug-in is not installed on the server
    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    _, _, score, _, status, _ = client.predict(upload(photo("face_a_1")), upload(heic), api_name="/compare")
    assert score is None
    assert "Image B ('IMG_0001.HEIC')" in status and "upload a JPEG or PNG copy" in status
    assert "pip install" not in status  # nothing a visitor can do


def test_untrained_banner_is_plain_text_and_overlays_mark_a_chosen_person_only_among_several(monkeypatch):
    banner = untrained_banner()
    assert "`" not in banner and "sapiensid convert-official" in banner
    drawn = []
    original = pictures.draw_retina

    def record(square, keypoints, roi_boxes, grid_size, person_box, **kwargs):
        drawn.append(person_box)
        return original(square, keypoints, roi_boxes, grid_size, person_box, **kwargs)

    monkeypatch.setattr(pictures, "draw_retina", record)
    rgb = np.full((120, 80, 3), 128, dtype=np.uint8)
    for people in (1, 3):
        detection = pictures.Detection(
            keypoints=np.full((19, 2), -1.0, dtype=np.float32), roi_boxes=np.full((2, 4), -1.0, dtype=np.float32),
            person_box=np.array([0.2, 0.1, 0.8, 0.9], dtype=np.float32), person_found=True, face_found=False,
            num_people=people,
        )  # fmt: skip
        pictures.render_overlay(rgb, detection, 6)
    assert drawn[0] is None and drawn[1] is not None


def test_compare_says_when_no_person_is_found(client, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((240, 320, 3), 200, dtype=np.uint8)).save(blank)
    _, _, score, verdict, status, _ = client.predict(upload(photo("face_a_1")), upload(blank), api_name="/compare")
    # Every picture without a person gets the same embedding: no score, no verdict, and the page says why.
    assert score is None
    assert "Unknown" in verdict and "No person found in image B" in verdict
    assert "Image B: no person found" in status and "cannot be matched" in status
    assert "Image A: face found" in status


def test_compare_answers_unknown_when_every_person_found_in_a_picture_is_refused(client, tiny_model_dir, tmp_path):
    # gradio's cheetah photo, cut about its head: the people search fits the head more than once (so the
    # several-people path runs) and the face check refuses every fit. The page answers as for any picture
    # without a person (before: only the warning of a failure, no overlays, no verdict).
    import gradio

    source = Path(gradio.__file__).parent / "test_data" / "cheetah2.jpg"
    if not source.is_file():
        pytest.skip("gradio's test_data/cheetah2.jpg is not installed")
    cheetah = tmp_path / "cheetah.png"
    Image.open(source).convert("RGB").crop((359, 290, 741, 684)).save(cheetah)
    assert len(load_pipeline(tiny_model_dir).processor.detect_people(cheetah).people) >= 2
    overlay_a, overlay_b, score, verdict, status, _ = client.predict(upload(cheetah), upload(photo("face_a_1")), api_name="/compare")
    assert score is None and overlay_a is not None and overlay_b is not None
    assert "Unknown" in verdict and "No person found in image A" in verdict


def test_search_leaves_out_gallery_pictures_without_a_person(client, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((240, 320, 3), 200, dtype=np.uint8)).save(blank)
    gallery = [upload(photo("face_a_1")), upload(photo("face_b_1")), upload(blank)]
    results, table, _, status = client.predict(gallery, upload(photo("face_a_3")), 5, api_name="/search")
    assert [row[1] for row in table["data"]] and "wall.png" not in [row[1] for row in table["data"]]
    assert len(table["data"]) == 2 and "Left out (no person found): wall.png" in status
    results, table, _, status = client.predict(gallery, upload(blank), 5, api_name="/search")
    assert table["data"] == [] or table["data"] == [[]] or not table["data"]
    assert "Query: no person found" in status


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def ranked_scores(table: dict) -> list[float]:
    return [row[2] for row in table["data"]]


def test_search_puts_the_identical_copy_first_and_orders_by_score(client):
    gallery = [upload(photo(name)) for name in ALL_PEOPLE]
    k = 4
    results, table, query_overlay, status = client.predict(
        gallery, upload(photo("face_a_3")), k, api_name="/search"
    )
    assert len(results) == k and len(table["data"]) == k
    assert table["data"][0][1] == "face_a_3.jpg"
    scores = ranked_scores(table)
    assert scores[0] == pytest.approx(1.0, abs=1e-3)
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= score <= 1.0 for score in scores)
    assert [row[0] for row in table["data"]] == list(range(1, k + 1))
    captions = [item["caption"] for item in results]
    assert captions[0].startswith("#1 face_a_3.jpg")
    assert [float(re.search(r"· (-?\d\.\d+)$", caption).group(1)) for caption in captions] == pytest.approx(
        scores, abs=1e-3
    )
    assert query_overlay is not None and status.startswith("Query: ")


def test_search_with_a_body_query_and_k_larger_than_the_gallery(client):
    gallery = [upload(photo(name)) for name in ("face_a_1", "two_men", "street_bus")]
    _, table, _, _ = client.predict(gallery, upload(photo("two_men")), 10, api_name="/search")
    assert [row[1] for row in table["data"]][0] == "two_men.jpg"
    assert len(table["data"]) == 3


def test_search_skips_unreadable_gallery_files_with_a_message(client, not_an_image):
    gallery = [upload(photo("face_a_1")), upload(not_an_image), upload(photo("face_b_1"))]
    _, table, _, status = client.predict(gallery, upload(photo("face_b_1")), 5, api_name="/search")
    assert sorted(row[1] for row in table["data"]) == ["face_a_1.jpg", "face_b_1.jpg"]
    assert "Skipped: Gallery file 2 ('holiday.jpg')" in status and "not an image" in status


def test_search_reports_a_bad_query(client, not_an_image):
    results, table, overlay, status = client.predict(
        [upload(photo("face_a_1"))], upload(not_an_image), 5, api_name="/search"
    )
    assert results == [] and overlay is None
    assert "Query image ('holiday.jpg')" in status and "not an image" in status


def test_search_reports_an_empty_gallery(client):
    _, _, _, status = client.predict([], upload(photo("face_a_1")), 5, api_name="/search")
    assert status.startswith("Gallery: no images given")


# ---------------------------------------------------------------------------------------------
# Page, verdict and launch settings (no server needed)
# ---------------------------------------------------------------------------------------------


def test_verdict_follows_the_threshold_and_says_where_it_came_from():
    assert verdict_markdown(0.5, 0.5).startswith("### Same person")
    assert verdict_markdown(0.5, 0.41, origin="faces, best accuracy").endswith("threshold 0.410 (faces, best accuracy)")
    assert verdict_markdown(0.49, 0.5).startswith("### Different people")
    assert verdict_markdown(None, 0.5) == ""
    rarity = "about 7.4 % of different-person face pairs score this high or higher (LFW: 329,256)"
    assert verdict_markdown(0.26, 0.18, rarity=rarity).endswith(f"\n\nOn the model's development photos, {rarity}.")
    assert "meaningless" in verdict_markdown(0.9, 0.5, trained=False)


def html_values(demo) -> str:
    return " ".join(str(component.get("props", {}).get("value")) for component in demo.config["components"])


def test_untrained_model_gets_a_warning_banner_and_a_trained_one_does_not(
    tiny_model_dir, monkeypatch
):
    monkeypatch.delenv("SAPIENSID_MODEL", raising=False)
    untrained = build_demo(load_pipeline("untrained"), examples_dir=None)
    trained = build_demo(load_pipeline(tiny_model_dir), examples_dir=None)
    shown = UNTRAINED_WARNING.replace("`", "")  # the banner is HTML: no markdown backticks
    assert shown in html_values(untrained)
    assert shown not in html_values(trained)


def test_page_has_about_tab_with_paper_licence_and_privacy(tiny_model_dir):
    demo = build_demo(load_pipeline(tiny_model_dir), examples_dir=None)
    text = html_values(demo)
    for expected in ("CVPR 2025", "2504.04708", "Licences", "MIT", "Privacy", "not stored"):
        assert expected in text
    assert demo.analytics_enabled is False


def test_command_line_defaults_are_local_and_private(monkeypatch):
    for name in ("SAPIENSID_MODEL", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = demo_command.parse_args([])
    assert (args.host, args.port, args.share, args.model) == ("127.0.0.1", None, False, None)
    monkeypatch.setenv("SAPIENSID_MODEL", "some/model")
    assert demo_command.parse_args(["--port", "7999"]).model == "some/model"
    assert demo_command.parse_args(["--model", "other", "--port", "7999"]).port == 7999


def test_space_readme_pins_the_installed_gradio():
    import gradio

    readme = (REPO_ROOT / "spaces_app" / "README.md").read_text()
    front_matter = dict(
        line.split(":", 1) for line in readme.split("---")[1].strip().splitlines() if ":" in line
    )
    front_matter = {key.strip(): value.strip().strip('"') for key, value in front_matter.items()}
    assert front_matter["sdk"] == "gradio"
    assert front_matter["sdk_version"].split(".")[:2] == gradio.__version__.split(".")[:2]
    assert (REPO_ROOT / "spaces_app" / front_matter["app_file"]).is_file()
    assert front_matter["python_version"] and front_matter["license"]


def test_main_loads_the_model_and_launches_locally_with_an_upload_limit(
    tiny_model_dir, monkeypatch
):
    launched = {}

    def record_launch(demo, **settings):
        launched.update(settings, demo=demo)

    monkeypatch.setattr(demo_command, "launch_demo", record_launch)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert (
        demo_command.main(["--model", str(tiny_model_dir), "--port", "7999", "--examples-dir", "/nonexistent"])
        == 0
    )
    assert (launched["host"], launched["port"], launched["share"]) == ("127.0.0.1", 7999, False)
    assert launched["max_file_size"] == MAX_UPLOAD_SIZE
    assert "compare" in {dependency.get("api_name") for dependency in launched["demo"].config["dependencies"]}


def test_demo_command_line_names_the_problem(tiny_model_dir, caplog):
    import socket

    with pytest.raises(SystemExit, match="--model /nowhere/model: no such folder"):
        demo_command.main(["--model", "/nowhere/model"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit, match=rf"port {port} on 127.0.0.1 could not be used .*choose one with --port"):
            demo_command.main(["--model", str(tiny_model_dir), "--port", str(port), "--examples-dir", str(tiny_model_dir)])
    caplog.set_level("WARNING", logger="sapiensid_hf.space")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit, match="choose one with --port"):
            demo_command.main(["--model", str(tiny_model_dir), "--host", "0.0.0.0", "--port", str(port),
                             "--examples-dir", str(tiny_model_dir)])  # fmt: skip
    assert "anyone who can reach this address can use the demo" in caplog.text


def test_compare_on_photos_with_several_people_uses_the_best_pair_or_the_chosen_people(
    client, tiny_model_dir
):
    pipeline = load_pipeline(tiny_model_dir)
    expected = pipeline.compare_people(str(photo("two_men")), str(photo("street_bus")))
    overlay_a, _, score, verdict, status, _ = client.predict(
        upload(photo("two_men")), upload(photo("street_bus")), api_name="/compare"
    )
    assert score == pytest.approx(expected.score, abs=1e-4)
    first, second = expected.pair
    assert f"Compared the best-matching pair: person {first} of A with person {second} of B" in status
    assert "Image A: 2 people found (numbered on the picture)" in status and "the best of" in status
    with Image.open(overlay_a) as picture:
        assert picture.size == (OVERLAY_SIDE, OVERLAY_SIDE)

    # the visitor picks person 1 in A; B's person is then A's person 1's best match
    _, _, score, _, status, _ = client.predict(
        upload(photo("two_men")), upload(photo("street_bus")), 1, -1, api_name="/compare"
    )
    row = expected.scores[1]
    assert score == pytest.approx(float(row.max()), abs=1e-4)
    assert f"person 1 of A with person {int(np.argmax(row))} of B" in status and "the people chosen" in status

    _, _, score, verdict, status, _ = client.predict(
        upload(photo("two_men")), upload(photo("street_bus")), 5, -1, api_name="/compare"
    )
    assert score is None and "person 5 of image A asked, but it holds 2 people" in status


def test_search_every_person_ranks_people_and_boxes_the_match(client, tiny_model_dir):
    pipeline = load_pipeline(tiny_model_dir)
    gallery = [upload(photo("two_men")), upload(photo("street_bus")), upload(photo("face_b_1"))]
    results, table, overlay, status = client.predict(
        gallery, upload(photo("street_bus")), 5, True, 1, api_name="/search"
    )
    own = pipeline.embed_people([str(photo("street_bus"))]).rows[1]
    assert table["data"][0][1] == "street_bus.jpg (person 1)" and table["data"][0][2] == pytest.approx(1.0, abs=1e-3)
    assert len(table["data"]) == 5  # 2 + 2 + 1 people in the gallery
    assert "searching for person 1 (yellow box), among 5 people in 3 gallery pictures" in status
    assert results[0]["caption"].startswith("#1 street_bus.jpg · person 1")
    assert own.person.face_found == table["data"][0][4]

    _, _, _, status = client.predict(gallery, upload(photo("street_bus")), 5, True, 4, api_name="/search")
    assert "query person 4 asked, but the photo holds 2 people" in status


def test_a_missing_detector_file_is_told_with_the_command_that_fetches_it():
    # e.g. a Space deployed before the face check, whose detector/ folder lacks YuNet's file
    from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError, locate_face_check_file

    with pytest.raises(DetectorNotAvailableError) as missing:
        locate_face_check_file(Path("/nonexistent-detector-folder"))
    message = failure_message(missing.value)
    assert message.startswith("A detector file is not installed on this server")
    assert "face_detection_yunet_2023mar_int8bq.onnx" in message and "sapiensid download-detector" in message


def test_the_space_app_file_runs_sapiensid_demo_with_its_bundled_detector(tmp_path, monkeypatch):
    """spaces_app/app.py, the deployed Space's `app_file`, is `sapiensid demo` with the detector files
    shipped beside it; run as a script, it names a bad --model like the command does."""
    import runpy
    import shutil
    import subprocess

    from sapiensid_hf.processing.detector_assets import DETECTOR_DIR_ENV

    space = tmp_path / "space"
    (space / "detector").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "spaces_app" / "app.py", space / "app.py")
    seen = {}

    def record_main(argv=None):
        seen.update(argv=argv, detector_dir=os.environ.get(DETECTOR_DIR_ENV))
        return 0

    # Unset for app.py (an empty value counts as unset), and restored afterwards whatever app.py sets.
    monkeypatch.setenv(DETECTOR_DIR_ENV, "")
    monkeypatch.setattr(demo_command, "main", record_main)
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(space / "app.py"), run_name="__main__")
    assert stopped.value.code == 0 and seen == {"argv": None, "detector_dir": str(space / "detector")}
    monkeypatch.undo()
    assert DETECTOR_DIR_ENV not in os.environ or os.environ[DETECTOR_DIR_ENV] != str(space / "detector")

    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "spaces_app" / "app.py"), "--model", "/nowhere/model"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1 and "sapiensid demo: --model /nowhere/model: no such folder" in done.stderr
