"""The real BlazePose / BlazeFace detector through the processor, on the real photos in ../shared/data/people.

Skipped (with the reason) only when the detector files are not in the cache; CI runs
`sapiensid download-detector` first.
"""

import io
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.processing.detector_assets import (
    DetectorNotAvailableError,
    detector_dir,
    locate_detector_files,
)
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import KEYPOINT_NAMES

INDEX = {name: index for index, name in enumerate(KEYPOINT_NAMES)}
FACE_FIVE = ("nose", "eye_1", "eye_2", "mouth_1", "mouth_2")
# Generous face regions, normalised to each photo's padded square, read off the photos by eye.
FACE_REGIONS = {
    "face_a_1.jpg": (0.30, 0.10, 0.70, 0.62),
    "face_a_2.jpg": (0.33, 0.22, 0.70, 0.62),
    "face_a_3.jpg": (0.18, 0.22, 0.54, 0.66),
    "face_b_1.jpg": (0.32, 0.15, 0.72, 0.63),
}
PHOTOS = ("face_a_1.jpg", "face_a_2.jpg", "face_a_3.jpg", "face_b_1.jpg", "street_bus.jpg", "two_men.jpg",
          "couple.jpg", "selfie-many-people.jpg")  # fmt: skip


@pytest.fixture(scope="module")
def processor():
    try:
        locate_detector_files()
    except DetectorNotAvailableError as error:
        pytest.skip(f"detector files not in {detector_dir()}; run `sapiensid download-detector` ({error})")
    return SapiensIDImageProcessor()


@pytest.fixture(scope="module")
def photos(processor, people_dir):
    out = processor([people_dir / name for name in PHOTOS])
    return {name: {key: value[index] for key, value in out.items()} for index, name in enumerate(PHOTOS)}


def _point(result, name):
    return result["keypoints"][INDEX[name]].numpy()


def _visible(result, name):
    return bool((result["keypoints"][INDEX[name]] != -1).all())


def _inside(point, box):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.mark.parametrize("name", sorted(FACE_REGIONS))
def test_face_photos_get_face_keypoints_inside_the_face(photos, name):
    result, region = photos[name], FACE_REGIONS[name]
    assert result["person_found"] and result["face_found"]
    for point in FACE_FIVE:
        assert _visible(result, point), point
        assert _inside(_point(result, point), region), (point, _point(result, point))
    eye_1, eye_2 = _point(result, "eye_1"), _point(result, "eye_2")
    mouth_1, mouth_2 = _point(result, "mouth_1"), _point(result, "mouth_2")
    assert eye_1[0] < eye_2[0] and mouth_1[0] < mouth_2[0]  # eye_1 / mouth_1: smaller x
    assert max(eye_1[1], eye_2[1]) < _point(result, "nose")[1] < min(mouth_1[1], mouth_2[1])
    face_box = result["roi_boxes"][0].numpy()
    assert _inside((face_box[:2] + face_box[2:]) / 2, region)


def test_street_bus_gets_a_full_body_down_to_the_ankles(photos):
    result = photos["street_bus.jpg"]
    assert result["keypoint_source"] == "pose" and result["num_people"] >= 1
    for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee",
                 "left_ankle", "right_ankle"):  # fmt: skip
        assert _visible(result, name), name
    heights = [np.mean([_point(result, f"{side}_{part}")[1] for side in ("left", "right")])
               for part in ("shoulder", "hip", "knee", "ankle")]  # fmt: skip
    assert heights == sorted(heights) and _point(result, "nose")[1] < heights[0]
    assert heights[-1] - _point(result, "nose")[1] > 0.3  # the largest person, head to ankles
    assert _point(result, "left_ankle")[0] > _point(result, "right_ankle")[0]  # official left = larger x
    assert (result["roi_boxes"] != -1).all()


def test_two_men_gets_upper_body_keypoints(photos):
    result = photos["two_men.jpg"]
    assert result["person_found"] and result["keypoint_source"] == "pose"
    for name in ("nose", "eye_1", "eye_2", "left_shoulder", "right_shoulder"):
        assert _visible(result, name), name
    assert (result["roi_boxes"][1] != -1).all()  # an upper-body box
    # Keypoints of the bottom of the body, below the photo (in the square's padding), are dropped.
    for name in ("left_ankle", "right_ankle"):
        assert not _visible(result, name) or _point(result, name)[1] <= 0.78


@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg"])
def test_group_photos_pick_one_person_and_say_so(photos, name):
    result = photos[name]
    assert result["person_found"] and result["num_people"] >= 2
    assert 0 <= result["chosen_person"] < result["num_people"]
    assert len(result["person_boxes"]) == result["num_people"]
    assert (result["person_box"] == result["person_boxes"][result["chosen_person"]]).all()


def test_a_selfie_crowd_falls_back_to_the_face_detector(photos):
    result = photos["selfie-many-people.jpg"]
    assert result["keypoint_source"] == "face" and result["face_found"]
    face_points = [_visible(result, name) for name in ("nose", "eye_1", "eye_2")]
    assert all(face_points)
    assert not _visible(result, "mouth_1") and not _visible(
        result, "mouth_2"
    )  # BlazeFace has no mouth corners
    assert (result["keypoints"][7:] == -1).all()
    chosen = result["person_box"].numpy()
    assert _inside(_point(result, "nose"), chosen)


def test_a_photo_with_nobody_falls_back_to_the_full_image(processor):
    ramp = np.linspace(0, 255, 300, dtype=np.uint8)
    landscape = np.stack(
        [np.tile(ramp, (200, 1)), np.tile(ramp[::-1], (200, 1)), np.full((200, 300), 90, np.uint8)], -1
    )
    out = processor(landscape)
    assert out["person_found"].tolist() == [False] and out["face_found"].tolist() == [False]
    assert (out["keypoints"] == -1).all() and (out["roi_boxes"] == -1).all()
    assert out["num_people"].tolist() == [0] and out["chosen_person"].tolist() == [-1]
    assert (out["person_box"] == -1).all() and out["keypoint_source"] == ["none"]


def test_other_modes_of_a_face_photo_still_find_the_face(processor, people_dir):
    with Image.open(people_dir / "face_a_2.jpg") as photo:
        photo.load()
        rgba = photo.convert("RGBA")
        rgba.putalpha(200)
        cmyk = io.BytesIO()
        photo.convert("CMYK").save(cmyk, "JPEG", quality=90)
        variants = [photo.convert("L"), rgba, cmyk.getvalue(), photo.convert("P")]
    out = processor(variants)
    for index in range(len(variants)):
        for point in ("nose", "eye_1", "eye_2"):
            assert _inside(out["keypoints"][index, INDEX[point]].numpy(), FACE_REGIONS["face_a_2.jpg"]), (
                index,
                point,
            )


def test_exif_rotated_photo_gives_the_same_keypoints(processor, photos, people_dir):
    with Image.open(people_dir / "face_a_2.jpg") as photo:
        stored = photo.transpose(Image.Transpose.ROTATE_90)  # pixels stored sideways ...
        exif = Image.Exif()
        exif[0x0112] = 6  # ... with the tag that turns them upright
        buffer = io.BytesIO()
        stored.save(buffer, "JPEG", quality=95, exif=exif)
    out = processor(buffer.getvalue())
    upright = photos["face_a_2.jpg"]["keypoints"]
    both = (out["keypoints"][0] != -1).all(-1) & (upright != -1).all(-1)
    assert both[:5].all()
    np.testing.assert_allclose(out["keypoints"][0][both].numpy(), upright[both].numpy(), atol=0.02)


def test_keypoints_do_not_depend_on_the_output_size_and_are_deterministic(processor, photos, people_dir):
    small = SapiensIDImageProcessor(size=96)
    small.detector = processor.detector
    out = small(people_dir / "two_men.jpg")
    np.testing.assert_array_equal(out["keypoints"][0].numpy(), photos["two_men.jpg"]["keypoints"].numpy())


def test_a_processor_with_a_loaded_detector_pickles(processor):
    assert processor.detector is not None
    restored = pickle.loads(pickle.dumps(processor))
    assert restored._detector is None  # rebuilt lazily from the cache on first use
    assert restored.to_dict() == processor.to_dict()


def test_changing_a_detector_setting_rebuilds_the_default_detector(processor, monkeypatch):
    tuned = SapiensIDImageProcessor()
    first = tuned.detector
    assert tuned.detector is first
    tuned.min_keypoint_confidence = 0.9
    second = tuned.detector
    assert second is not first and second.min_keypoint_confidence == 0.9
    monkeypatch.setattr(os, "getpid", lambda: -12345)  # as seen from a forked worker
    assert tuned.detector is not second


def test_native_detector_log_lines_are_hidden_unless_verbose(processor, people_dir):
    import os
    import subprocess
    import sys

    # LiteRT logs its XNNPACK line once per process: each case runs in a fresh one.
    script = (
        "from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor; "
        f"print(SapiensIDImageProcessor()({str(people_dir / 'two_men.jpg')!r})['person_found'].tolist())"
    )
    for verbose, shown in (("", False), ("1", True)):
        environment = {**os.environ, "SAPIENSID_VERBOSE": verbose, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=120)
        assert done.returncode == 0 and "[True]" in done.stdout, done.stderr[-2000:]
        assert ("XNNPACK" in done.stderr) is shown, done.stderr[-2000:]


@pytest.mark.parametrize("name", ["couple.jpg"])  # the photo in which the person detector sees 2+ people
def test_person_choice_rules_on_group_photos(processor, people_dir, name):
    from sapiensid_hf.processing.square_resampling import detector_square

    prominent = processor.detector
    confident = SapiensIDImageProcessor(person_choice="confidence").detector
    with Image.open(people_dir / name) as photo:
        square = detector_square(np.asarray(photo.convert("RGB")), processor.detector_max_side)
    by_prominence = prominent._find_people(square, 0.5)
    by_confidence = confident._find_people(square, 0.5)
    assert len(by_prominence) >= 2 and len(by_prominence) == len(by_confidence)
    scores = [person.score for person in by_confidence]
    assert scores == sorted(scores, reverse=True)  # the official rule: top detection score first
    prominence = [person.prominence for person in by_prominence]
    assert prominence == sorted(prominence, reverse=True)
    out = SapiensIDImageProcessor(person_choice="confidence")(people_dir / name)
    assert out["person_found"].tolist() == [True] and out["chosen_person"].tolist() == [0]
    with pytest.raises(ValueError, match="person_choice must be one of"):
        SapiensIDImageProcessor(person_choice="tallest")


def test_the_two_person_rules_disagree_where_they_should():
    from sapiensid_hf.processing.blaze_ops import Roi
    from sapiensid_hf.processing.keypoint_detector import _Person, rank_people

    box = np.zeros(4, dtype=np.float32)
    near = _Person(score=0.70, roi=Roi(0.5, 0.5, 0.9, 0.0), upper_body_box=box)  # the person the photo is about
    far = _Person(score=0.95, roi=Roi(0.1, 0.1, 0.2, 0.0), upper_body_box=box)  # a confident bystander
    assert rank_people([far, near], "prominent") == [near, far]
    assert rank_people([near, far], "confidence") == [far, near]
