"""The processor cuts a person who fills little of the photo (processing/small_person_frame.py, its
`frame_small_people` setting, which the pipeline and the shipped folder turn on): the cut is the one
`embed_people` embeds that person from; a photo framed like the training photos is left as it is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.processing.people_in_image import PeopleInImage
from sapiensid_hf.processing.small_person_frame import (
    SMALL_PERSON_SHARE,
    chosen_person,
    cut_points_in_photo,
    frame_share,
    small_person_cut,
)


def on_a_wall(photo: np.ndarray, times: int = 3) -> np.ndarray:
    """`photo` in the middle of a plain noisy wall `times` its width and height."""
    height, width = photo.shape[:2]
    rng = np.random.default_rng(0)
    wall = np.clip(150 + rng.normal(0, 6, (times * height, times * width, 3)), 0, 255).astype(np.uint8)
    top, left = (times * height - height) // 2, (times * width - width) // 2
    wall[top : top + height, left : left + width] = photo
    return wall


@pytest.fixture(scope="module")
def face_photo(people_dir) -> np.ndarray:
    """A portrait whose face fills most of it, at a size that keeps the tests quick."""
    photo = Image.open(people_dir / "face_a_1.jpg").convert("RGB")
    photo.thumbnail((400, 400))
    return np.asarray(photo)


def frame_shares(features) -> list[float]:
    """The share of each photo its chosen person's frame covers, from processor outputs of the photos."""
    shares = []
    for row, (height, width) in enumerate(np.asarray(features["original_sizes"])):
        person = chosen_person(np.asarray(features["keypoints"][row]), np.asarray(features["person_box"][row]), height, width)
        shares.append(frame_share(person, height, width))
    return shares


def test_a_frame_covers_the_same_part_of_the_person_wherever_the_photo_is_pasted(pipeline, face_photo):
    pictures = [face_photo, on_a_wall(face_photo)]
    features = pipeline.processor(pictures, return_tensors="np")
    alone, pasted = frame_shares(features)
    assert alone >= SMALL_PERSON_SHARE  # a portrait: left as it is
    # Nine times the picture around the same face: the frame covers a ninth of the share (the frame is the
    # face's, found by the detector on two pictures, so only about).
    assert pasted == pytest.approx(alone / 9, rel=0.25) and pasted < SMALL_PERSON_SHARE
    framed = pipeline.processor(pictures, return_tensors="np", frame_small_people=True)
    assert framed["framed"].tolist() == [False, True] and not features["framed"].any()
    height, width = pictures[1].shape[:2]
    assert framed["original_sizes"].tolist() == [list(face_photo.shape[:2]), [height, width]]
    left, top, right, bottom = framed["frame_box"][1]
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert (right - left) * (bottom - top) < SMALL_PERSON_SHARE * height * width
    assert framed["frame_box"][0].tolist() == [-1, -1, -1, -1] and framed["num_people"][1] == features["num_people"][1]
    # A picture the detector takes for a crop of one person, or given keypoints, is never cut.
    keypoints, box = features["keypoints"][1], features["person_box"][1]
    assert small_person_cut(pictures[1], keypoints, box, "pose") is not None
    for source in ("crop", "prior", "given"):
        assert small_person_cut(pictures[1], keypoints, box, source) is None
    given = pipeline.processor(pictures, keypoints=features["keypoints"], return_tensors="np", frame_small_people=True)
    assert not given["framed"].any()


def test_points_of_the_cut_map_back_into_the_photo():
    # A 300 x 200 (h x w) photo, a 100 x 50 cut at (20, 40): the cut's square is 100 wide, its content from 25.
    cut, height, width = np.array([20, 40, 70, 140]), 300, 200
    centre_of_cut = np.array([[0.5, 0.5], [-1, -1]], dtype=np.float32)
    mapped = cut_points_in_photo(centre_of_cut, cut, height, width)
    # The photo's square is 300 wide, its content from x = 50: the cut's centre (45, 90) is at (95, 90) / 300.
    np.testing.assert_allclose(mapped, [[95 / 300, 90 / 300], [-1, -1]], atol=1e-6)


def test_points_in_the_photo_map_into_its_padded_square_and_back():
    from sapiensid_hf.processing.photo_cuts import to_padded_square, to_photo_pixels
    from sapiensid_hf.processing.square_resampling import SquarePadding

    padding = SquarePadding.of(300, 200)  # the square is 300 wide, the photo's content from x = 50
    pixels = np.array([[0, 0], [100, 150], [-1, -1]], dtype=np.float32)
    square = to_padded_square(pixels, padding)
    np.testing.assert_allclose(square, [[50 / 300, 0], [150 / 300, 150 / 300], [-1, -1]], atol=1e-6)
    np.testing.assert_allclose(to_photo_pixels(square, padding), pixels, atol=1e-4)


def test_a_small_person_is_embedded_from_the_cut_embed_people_makes_of_them(pipeline, face_photo):
    picture = on_a_wall(face_photo)
    result = pipeline.embed([face_photo, picture])
    assert result.framed.tolist() == [False, True]
    whole = pipeline.embed([face_photo, picture], frame_small_people=False)
    assert not whole.framed.any()
    np.testing.assert_allclose(result.embeddings[0], whole.embeddings[0], atol=1e-6)  # a portrait is left as it is
    assert float(result.embeddings[1] @ whole.embeddings[1]) < 0.999  # the small person's embedding changed
    # The same person, framed as detect_people frames them and embedded as embed_people embeds one cut.
    person, _ = small_person_cut(picture, whole.keypoints[1], whole.person_box[1], "pose")
    height, width = picture.shape[:2]
    expected = pipeline.embed_people([picture], detections=[PeopleInImage([person], width, height, found=1)], frame_scales=(1.0,))
    np.testing.assert_allclose(result.embeddings[1], expected.rows[0].embedding, atol=1e-5)
    # Keypoints and boxes are reported in the whole picture's square: found again on the cut, where the
    # photo's detection put them (within a hundredth of the picture).
    both = (result.keypoints[1] != -1).all(axis=1) & (whole.keypoints[1] != -1).all(axis=1)
    assert both.sum() >= 5 and np.abs(result.keypoints[1][both] - whole.keypoints[1][both]).max() < 0.01
    assert np.abs(result.roi_boxes[1][0] - whole.roi_boxes[1][0]).max() < 0.02  # the face box


def test_the_shipped_folder_cuts_a_small_person_for_hugging_face_users_as_the_tools_do(face_photo):
    import torch
    from conftest import REPO_ROOT

    from sapiensid_hf.inference import load_pipeline
    from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

    shipped = REPO_ROOT / "pretrained" / "sapiensid-small"
    street = Image.open(REPO_ROOT.parent / "shared" / "data" / "people" / "street_bus.jpg").convert("RGB")
    street.thumbnail((400, 400))
    # A portrait, the portrait small on a wall, and a street photo small on a wall, whose people the
    # detector's first look misses and the people search finds.
    pictures = [face_photo, on_a_wall(face_photo), on_a_wall(np.asarray(street), 4)]
    processor = SapiensIDImageProcessor.from_pretrained(shipped)
    assert processor.frame_small_people  # preprocessor_config.json records it, as it records the views
    inputs = processor(pictures, return_tensors="pt")
    assert inputs["framed"].tolist() == [False, True, True]
    tools = load_pipeline(str(shipped))
    with torch.no_grad():
        hub = tools.model(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(hub, tools.embed(pictures).embeddings, atol=1e-5)


def test_the_cut_is_made_with_data_workers_too(pipeline, face_photo, tmp_path):
    paths = []
    for index, picture in enumerate((face_photo, on_a_wall(face_photo), on_a_wall(face_photo, 2))):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(picture).save(paths[-1])
    in_process = pipeline.embed(paths, batch_size=2)
    with_workers = pipeline.embed(paths, batch_size=2, num_workers=2)
    assert in_process.framed.tolist() == with_workers.framed.tolist() == [False, True, True]
    np.testing.assert_allclose(in_process.embeddings, with_workers.embeddings, atol=1e-5)
    # Two people cut in one batch go through the model together, each row still its own photo's person.
    together = pipeline.embed(paths[1:], batch_size=2)
    assert together.framed.tolist() == [True, True]
    np.testing.assert_allclose(together.embeddings, in_process.embeddings[1:], atol=1e-5)


def test_a_photo_with_nobody_is_not_framed(pipeline):
    wall = on_a_wall(np.full((120, 90, 3), 150, np.uint8))
    result = pipeline.embed([wall])
    assert not result.person_found[0] and not result.framed[0]
    assert not pipeline.processor([wall], frame_small_people=True)["framed"][0]


def test_a_person_the_first_look_misses_is_found_by_the_people_search_and_cut(pipeline, people_dir):
    # Street photo's pedestrians at a quarter of the picture's side: the detector's first look (the whole
    # picture at 224 pixels) misses them, the people search (its tiles) finds them.
    photo = Image.open(people_dir / "street_bus.jpg").convert("RGB")
    photo.thumbnail((400, 400))
    picture = on_a_wall(np.asarray(photo), 4)
    assert not pipeline.embed([picture], frame_small_people=False).person_found[0]  # first look only (--person-crops)
    result = pipeline.embed([picture])
    assert result.person_found.tolist() == [True] and result.framed.tolist() == [True]
    with_workers = pipeline.embed([picture, picture], num_workers=2)  # as `embed` runs by default: data workers
    np.testing.assert_allclose(with_workers.embeddings, np.repeat(result.embeddings, 2, axis=0), atol=1e-5)
    # The most prominent person the search finds, embedded as embed_people embeds them (one cut).
    people = pipeline.processor.detect_people(picture)
    assert result.num_people[0] == len(people.people) >= 1
    height, width = picture.shape[:2]
    expected = pipeline.embed_people([picture], detections=[PeopleInImage(people.people[:1], width, height, found=1)], frame_scales=(1.0,))
    np.testing.assert_allclose(result.embeddings[0], expected.rows[0].embedding, atol=1e-5)
    features = pipeline.processor([picture], return_tensors="np", frame_small_people=True)
    assert tuple(features["frame_box"][0]) == people.people[0].crop_box(width, height)


def test_without_a_people_search_in_the_detector_a_photo_the_first_look_misses_stays_without_a_person():
    from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
    from sapiensid_hf.processing.keypoint_detector import KeypointResult

    class FindsNobody:  # a user's detector: `detect` only
        def detect(self, image: np.ndarray) -> KeypointResult:
            return KeypointResult()

    processor = SapiensIDImageProcessor(detector=FindsNobody(), frame_small_people=True)
    features = processor([np.full((200, 300, 3), 128, np.uint8)], return_tensors="np")
    assert not features["person_found"][0] and not features["framed"][0] and features["keypoint_source"] == ["none"]


def test_embed_files_say_which_photos_were_cut_and_search_notes_a_gallery_made_before(
    pipeline, face_photo, tmp_path, capsys
):
    import pyarrow.parquet as pq

    from sapiensid_cli import main

    paths = []
    for index, picture in enumerate((face_photo, on_a_wall(face_photo))):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(picture).save(paths[-1])
    model = str(pipeline.source)
    gallery = tmp_path / "gallery.parquet"
    assert main(["embed", *paths, "--model", model, "--output", str(gallery)]) == 0
    assert "1 of them: the person fills little of the photo and was cut from it first" in capsys.readouterr().out
    table = pq.read_table(gallery)
    assert table.column("framed").to_pylist() == [False, True]
    assert table.schema.metadata[b"sapiensid.small_person_share"] == str(SMALL_PERSON_SHARE).encode()
    np.testing.assert_allclose(
        np.stack(table.column("embedding").to_pylist()), pipeline.embed(paths).embeddings, atol=1e-5
    )  # what the library gives, data workers and all
    assert main(["search", paths[0], "--gallery", str(gallery), "--model", model]) == 0
    assert "note:" not in capsys.readouterr().err.replace("note: no false-match rates", "")  # the tiny model has no curves
    # --person-crops: every picture is a crop of one person, framed already; nobody is cut from it.
    crops = tmp_path / "crops.parquet"
    assert main(["embed", *paths, "--model", model, "--person-crops", "--output", str(crops)]) == 0
    assert pq.read_table(crops).column("framed").to_pylist() == [False, False]
    assert "no person is cut from an image" in capsys.readouterr().err
    # A gallery written before small people were cut: it still searches, and says why it may rank worse.
    metadata = {key: value for key, value in table.schema.metadata.items() if key != b"sapiensid.small_person_share"}
    older = tmp_path / "older.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), older)
    assert main(["search", paths[0], "--gallery", str(older), "--model", model]) == 0
    err = capsys.readouterr().err
    assert "was embedded before people who fill little of their photo were cut from it" in err and "embed the gallery again" in err
    broken = tmp_path / "broken.parquet"
    pq.write_table(table.replace_schema_metadata({**metadata, b"sapiensid.small_person_share": b"half"}), broken)
    assert main(["search", paths[0], "--gallery", str(broken), "--model", model]) == 1
    assert "small_person_share is 'half', not a share of the photo in [0, 1]" in capsys.readouterr().err


def test_a_photo_index_records_the_rule_and_search_notes_one_built_before(pipeline, face_photo, tmp_path, capsys):
    import json

    from sapiensid_cli import main
    from sapiensid_hf.photo_index import PhotoIndex

    album = tmp_path / "album"
    album.mkdir()
    for index, picture in enumerate((face_photo, on_a_wall(face_photo))):
        Image.fromarray(picture).save(album / f"{index}.png")
    model, folder = str(pipeline.source), tmp_path / "album.sidx"
    assert main(["index", "build", str(album), "--output", str(folder), "--model", model]) == 0
    assert PhotoIndex.open(folder).manifest.small_person_share == SMALL_PERSON_SHARE
    np.testing.assert_allclose(
        PhotoIndex.open(folder).rows.embeddings, pipeline.embed(sorted(str(path) for path in album.iterdir())).embeddings, atol=1e-5
    )  # the small person of 1.png is cut, as `embed` cuts it
    capsys.readouterr()
    assert main(["index", "info", str(folder)]) == 0
    assert "a person whose frame covers less than 0.5 of the photo cut from it first" in capsys.readouterr().out
    assert main(["search", str(album / "0.png"), "--index", str(folder), "--model", model]) == 0
    assert "note:" not in capsys.readouterr().err.replace("note: no false-match rates", "")  # the tiny model has no curves
    # An index built before the rule: it still searches, and says why it may rank worse.
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({key: value for key, value in manifest.items() if key != "small_person_share"}))
    assert main(["search", str(album / "0.png"), "--index", str(folder), "--model", model]) == 0
    assert "the index was built before people who fill little of their photo were cut from it" in capsys.readouterr().err
    manifest_file.write_text(json.dumps({**manifest, "small_person_share": "half"}))
    assert main(["search", str(album / "0.png"), "--index", str(folder), "--model", model]) == 1
    assert "small_person_share is not a share of the photo in [0, 1] ('half')" in capsys.readouterr().err


def test_compare_says_which_photo_it_cut_the_person_from(pipeline, face_photo, tmp_path, capsys):
    import json

    from sapiensid_cli import main

    portrait, wide = tmp_path / "portrait.png", tmp_path / "wide.png"
    Image.fromarray(face_photo).save(portrait)
    Image.fromarray(on_a_wall(face_photo)).save(wide)
    assert main(["compare", str(portrait), str(wide), "--model", str(pipeline.source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cut_from_photo"] == [False, True]
    expected = pipeline.verify(str(portrait), str(wide))
    assert report["score"] == pytest.approx(expected.score, abs=1e-5)  # the library's verdict, the cut included
    assert main(["compare", str(portrait), str(wide), "--model", str(pipeline.source)]) == 0
    assert "the person fills little of the photo: cut from it first" in capsys.readouterr().out


def test_without_opencv_a_small_face_is_framed_from_its_keypoints_and_a_warning_says_so(pipeline, face_photo, monkeypatch, caplog):
    from sapiensid_hf.processing import face_frame, small_person_frame
    from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError

    picture = on_a_wall(face_photo)
    features = pipeline.processor([picture], return_tensors="np")
    keypoints, box = features["keypoints"][0], features["person_box"][0]
    with_box, cut = small_person_cut(picture, keypoints, box, "pose")
    assert with_box.face_box is not None  # OpenCV found the face: framed around its box

    def no_opencv(needed_for: str):
        raise DetectorNotAvailableError("OpenCV is not installed.")

    monkeypatch.setattr(face_frame, "import_opencv", no_opencv)
    monkeypatch.setattr(small_person_frame, "_said_without_opencv", False)
    with caplog.at_level("WARNING"):
        person, keypoint_cut = small_person_cut(picture, keypoints, box, "pose")
        small_person_cut(picture, keypoints, box, "pose")
    assert person.face_box is None and keypoint_cut != cut  # the keypoints' frame, not the box's
    assert [record.getMessage() for record in caplog.records] == [
        "OpenCV is not installed. A small person's face is framed from its keypoints instead."
    ]  # said once
