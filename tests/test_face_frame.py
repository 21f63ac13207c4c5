"""A face in a photo of several people is framed as the model's face photos were: OpenCV's face box,
widened as LFW widened it (processing/face_frame.py), with the keypoint rule where no box is found."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import SHARED_DATA, box_iou
from detector_files import hide_opencv, require_detector_files
from PIL import Image

from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError
from sapiensid_hf.processing.face_frame import PHOTO_SIDE_PER_BOX_SIDE, cascade_face_box, photo_frame_of_box
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.people_in_image import PeopleInImage, Person, with_face_boxes

IDENTITIES = SHARED_DATA / "identities"


@pytest.fixture(scope="module")
def processor():
    require_detector_files()
    return SapiensIDImageProcessor()


def development_faces(count: int) -> list[Image.Image]:
    """The first LFW fold-7 photos of the manifest (development people, never trained on)."""
    rows = csv.DictReader(open(IDENTITIES / "manifest.csv", encoding="utf-8"))
    paths = sorted(IDENTITIES / row["path"] for row in rows if row["source"] == "lfw" and row["split"] == "val")
    return [Image.open(path).convert("RGB") for path in paths[:count]]


def grey_wall(height: int, width: int) -> np.ndarray:
    return np.clip(150 + np.random.default_rng(0).normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)


def test_an_lfw_photo_pasted_into_a_scene_is_framed_where_it_was_pasted(processor):
    # Each photo was cut from a news photo around OpenCV's face box widened 2.2 times: the same kind of box,
    # found on the pasted face, gives back where the photo lies in the scene.
    canvas, pasted = grey_wall(700, 1500), []
    for index, photo in enumerate(development_faces(4)):
        side = 280 + 20 * index
        left, top = 40 + 340 * index, 120 + 30 * index
        canvas[top : top + side, left : left + side] = np.asarray(photo.resize((side, side), Image.Resampling.BILINEAR))
        pasted.append((left, top, left + side, top + side))
    found = processor.detect_people(canvas)
    framed = []
    for box in pasted:
        inside = [person for person in found.people if box_iou(person.box, box) > 0 and not person.legs_seen]
        person = max(inside, key=lambda person: box_iou(person.box, box))
        assert person.face_box is not None
        framed.append(box_iou(photo_frame_of_box(person.face_box), box))
        tightened = person.crop_box(canvas.shape[1], canvas.shape[0])
        assert (tightened[2] - tightened[0]) == pytest.approx(
            PHOTO_SIDE_PER_BOX_SIDE * (person.face_box[2] - person.face_box[0]), abs=2
        )
    assert np.median(framed) > 0.85 and min(framed) > 0.7
    without_boxes = processor.detect_people(canvas, face_boxes=False)
    assert [person.box for person in without_boxes.people] == [person.box for person in found.people]
    assert all(person.face_box is None for person in without_boxes.people)


def test_the_box_frame_replaces_the_keypoint_frame_and_is_scaled_about_its_centre():
    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[1], keypoints[2] = (430, 440), (470, 440)  # eyes
    keypoints[7], keypoints[8] = (380, 560), (520, 560)  # shoulders: a head and shoulders
    by_keypoints = Person((380.0, 400.0, 520.0, 600.0), keypoints, 0.9, True, True, "pose")
    boxed = Person((380.0, 400.0, 520.0, 600.0), keypoints, 0.9, True, True, "pose", face_box=(400.0, 410.0, 500.0, 510.0))
    half = PHOTO_SIDE_PER_BOX_SIDE * 100 / 2
    expected = (int(np.floor(450 - half)), int(np.floor(460 - half)), int(np.ceil(450 + half)), int(np.ceil(460 + half)))
    assert boxed.crop_box(2000, 2000) == expected
    assert by_keypoints.crop_box(2000, 2000) != expected
    wider = boxed.crop_box(2000, 2000, 1.05)
    assert (wider[2] - wider[0]) == pytest.approx(1.05 * 2 * half, abs=2)
    assert (wider[0] + wider[2]) / 2 == pytest.approx(450, abs=1)


def test_only_faces_seen_without_legs_look_for_a_box_where_the_keypoints_expect_it(monkeypatch):
    from sapiensid_hf.processing import people_in_image

    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[1], keypoints[2] = (300, 200), (340, 200)
    to_the_hips = keypoints.copy()
    to_the_hips[13:15] = (300, 420), (340, 420)  # hips without legs: still framed as a face
    walking = to_the_hips.copy()
    walking[15:17] = (300, 560), (340, 560)  # knees: framed as a body, no face box sought
    portrait = Person((250.0, 150.0, 390.0, 300.0), keypoints, 0.9, True, True, "pose")
    people = PeopleInImage(
        [portrait, Person((250.0, 150.0, 390.0, 600.0), walking, 0.9, True, True, "pose"),
         Person((250.0, 150.0, 390.0, 440.0), to_the_hips, 0.9, True, True, "pose")], 800, 800, 3, 0)  # fmt: skip
    asked = []

    def recorded(rgb, eyes_midpoint, expected_box_side):
        asked.append((eyes_midpoint, expected_box_side))
        return (280.0, 180.0, 360.0, 260.0)

    monkeypatch.setattr(people_in_image, "cascade_face_box", recorded)
    framed = with_face_boxes(people, grey_wall(800, 800))
    predicted = portrait.keypoint_face_frame()
    expected_side = pytest.approx((predicted[2] - predicted[0]) / PHOTO_SIDE_PER_BOX_SIDE)
    assert asked == [((320.0, 200.0), expected_side), ((320.0, 200.0), expected_side)]
    assert [person.face_box for person in framed.people] == [(280.0, 180.0, 360.0, 260.0), None, (280.0, 180.0, 360.0, 260.0)]
    assert [person.box for person in framed.people] == [person.box for person in people.people]


def test_a_wall_holds_no_face_box():
    wall = grey_wall(800, 800)
    assert cascade_face_box(wall, (320.0, 200.0), 80.0) is None
    assert cascade_face_box(wall, (320.0, 200.0), 0.0) is None


def test_a_missing_opencv_is_named_with_the_way_out(monkeypatch):
    hide_opencv(monkeypatch)
    with pytest.raises(DetectorNotAvailableError, match="face_boxes=False"):
        cascade_face_box(grey_wall(200, 200), (100.0, 100.0), 40.0)
