"""Pictures without a person: the tools' single-person path (`frame_small_people`) holds a face that the
detector's first look found alone to the people search's standard (FACE_ONLY_MIN_SCORE), and keeps a person
cut to their frame only where the detector sees somebody in that frame; `embed_people` keeps the same rule.
So a flower or a gift-box print is "no person found", never somebody's embedding; evaluation's rules do
not move."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from matplotlib import cbook
from PIL import Image, ImageOps
from sklearn.datasets import load_sample_image

from sapiensid_hf.processing import image_processing_sapiensid
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult, sees_somebody, shows_too_little
from sapiensid_hf.processing.keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_HIP,
    LEFT_SHOULDER,
    NOSE,
    RIGHT_SHOULDER,
    empty_keypoints,
)
from sapiensid_hf.processing.people_detection import FACE_ONLY_MIN_SCORE, MIN_PERSON_POINTS
from sapiensid_hf.processing.standing_person_prior import standing_person_keypoints


class LoneFaceDetector:
    """A user's detector (`detect` only) that finds one face without a body, at a given score."""

    def __init__(self, score: float | None):
        self.score = score

    def detect(self, image: np.ndarray) -> KeypointResult:
        keypoints = empty_keypoints()
        keypoints[[EYE_1, EYE_2, NOSE]] = [[0.4, 0.4], [0.6, 0.4], [0.5, 0.5]]
        box = np.array([[0.3, 0.25, 0.7, 0.7]], dtype=np.float32)
        return KeypointResult(keypoints, box, 0, "face", self.score)


def found(detector, frame_small_people: bool) -> tuple[bool, str]:
    processor = SapiensIDImageProcessor(detector=detector, frame_small_people=frame_small_people)
    features = processor([np.full((240, 240, 3), 128, np.uint8)], return_tensors="np")
    return bool(features["person_found"][0]), features["keypoint_source"][0]


def test_a_lone_face_is_weak_below_the_people_search_standard_only():
    face = LoneFaceDetector(FACE_ONLY_MIN_SCORE - 0.01).detect(np.zeros((8, 8, 3), np.uint8))
    assert face.is_weak_lone_face
    assert not LoneFaceDetector(FACE_ONLY_MIN_SCORE).detect(np.zeros((8, 8, 3), np.uint8)).is_weak_lone_face
    assert not LoneFaceDetector(None).detect(np.zeros((8, 8, 3), np.uint8)).is_weak_lone_face  # no score: trusted
    body = KeypointResult(face.keypoints, face.person_boxes, 0, "pose", 0.3)
    assert not body.is_weak_lone_face  # the body detector's score is another scale; bodies are judged there


def test_the_tools_refuse_a_weak_lone_face_and_evaluation_keeps_its_rules(monkeypatch):
    assert found(LoneFaceDetector(0.55), frame_small_people=True) == (False, "none")
    assert found(LoneFaceDetector(0.55), frame_small_people=False) == (True, "face")  # evaluate / calibrate
    # The detector's face fills the grey picture: the face check (YuNet, tests/test_face_check.py) finds no
    # face on the grey, so the tools refuse even a strong one; where it confirms the face, a strong one counts.
    assert found(LoneFaceDetector(0.8), frame_small_people=True) == (False, "none")
    monkeypatch.setattr(image_processing_sapiensid, "face_confirmed", lambda *args: True)
    assert found(LoneFaceDetector(0.8), frame_small_people=True)[0]
    assert found(LoneFaceDetector(None), frame_small_people=True)[0]


def test_a_gift_box_print_is_no_person_where_the_first_look_saw_a_face(pipeline):
    # matplotlib's sample picture of a gift box: BlazeFace scores a "face" in it at about 0.53-0.56.
    with cbook.get_sample_data("Minduka_Present_Blue_Pack.png") as file:
        picture = np.asarray(Image.open(file).convert("RGB"))
    first_look = pipeline.processor([picture], return_tensors="np", frame_small_people=False)
    assert first_look["keypoint_source"] == ["face"]  # what the tools embedded before
    assert 0.5 <= first_look["detection_score"][0] < FACE_ONLY_MIN_SCORE
    result = pipeline.embed([picture])
    assert result.person_found.tolist() == [False] and not result.framed[0]


def test_a_face_the_first_look_scores_weakly_is_still_found_by_the_people_search(pipeline):
    # A greyscale copy of an unlabelled face photo: the first look finds the face alone at about 0.75, just
    # under the standard; the people search finds the person's body, and that is the person embedded.
    path = SHARED_DATA / "faces" / "caltech" / "00011.jpg"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/faces beside the repo)")
    picture = np.asarray(ImageOps.grayscale(Image.open(path)).convert("RGB"))
    first_look = pipeline.processor([picture], return_tensors="np", frame_small_people=False)
    assert first_look["keypoint_source"] == ["face"]
    searched = pipeline.processor([picture], return_tensors="np", frame_small_people=True)
    assert searched["person_found"].tolist() == [True] and searched["keypoint_source"] == ["pose"]
    assert pipeline.embed([picture]).person_found.tolist() == [True]


# A body find showing these points, one more each time: a nose, then an eye, then a shoulder (no face check:
# not both eyes), then both shoulders and a hip.
FEW_POINTS = (NOSE, EYE_1, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP)
FEW_POINT_PLACES = ((0.5, 0.3), (0.45, 0.27), (0.4, 0.45), (0.6, 0.45), (0.42, 0.7))


def few_points(count: int) -> np.ndarray:
    keypoints = empty_keypoints()
    for index, place in zip(FEW_POINTS[:count], FEW_POINT_PLACES, strict=False):
        keypoints[index] = place
    return keypoints


class FewPointsDetector:
    """A user's detector that finds a body showing `count` keypoints, confidently."""

    def __init__(self, count: int):
        self.count = count

    def detect(self, image: np.ndarray) -> KeypointResult:
        box = np.array([[0.3, 0.2, 0.7, 0.8]], dtype=np.float32)
        return KeypointResult(few_points(self.count), box, 0, "pose", 0.95)


def test_a_find_needs_min_person_points_to_be_somebody():
    assert MIN_PERSON_POINTS == 3
    assert [shows_too_little(few_points(count)) for count in range(5)] == [False, True, True, False, False]
    assert [sees_somebody(few_points(count), "pose", 0.95) for count in range(5)] == [False, False, False, True, True]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_the_tools_refuse_a_find_of_one_or_two_points_and_evaluation_keeps_it(count):
    # The grey picture holds nobody for the people search either, so too few points is "no person found".
    assert found(FewPointsDetector(count), frame_small_people=True) == ((True, "pose") if count >= 3 else (False, "none"))
    assert found(FewPointsDetector(count), frame_small_people=False) == (True, "pose")  # evaluate / calibrate


def test_a_crying_babys_mouth_found_as_a_nose_alone_is_no_person(pipeline):
    # A close crop of a crying baby's mouth under a watermark: the first look finds a "person" of one point
    # (a nose), which the tools used to embed; the people search then finds nobody it can confirm.
    path = SHARED_DATA / "faces" / "utkface" / "05065.jpg"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/faces beside the repo)")
    first_look = pipeline.processor([str(path)], return_tensors="np", frame_small_people=False)
    assert first_look["person_found"].tolist() == [True] and int((first_look["keypoints"][0] != -1).all(-1).sum()) == 1
    assert pipeline.embed([str(path)]).person_found.tolist() == [False]


class SmallPersonDetector:
    """A standing person small in the middle of the whole (600-pixel) photo; in their frame, `in_frame`."""

    def __init__(self, in_frame: str):
        self.in_frame = in_frame

    def detect(self, square: np.ndarray) -> KeypointResult:
        if square.shape[0] >= 500:  # the whole photo
            box = (0.4, 0.3, 0.6, 0.7)
            return KeypointResult(standing_person_keypoints(box), np.array([box], np.float32), 0, "pose", 0.9)
        if self.in_frame == "the person":
            box = (0.3, 0.1, 0.7, 0.9)
            return KeypointResult(standing_person_keypoints(box), np.array([box], np.float32), 0, "pose", 0.9)
        if self.in_frame == "a weak face":
            return LoneFaceDetector(0.55).detect(square)
        if self.in_frame == "two points":
            return FewPointsDetector(2).detect(square)
        return KeypointResult()


@pytest.mark.parametrize(
    ("in_frame", "kept"), [("the person", True), ("nobody", False), ("a weak face", False), ("two points", False)]
)
def test_a_person_cut_to_their_frame_is_kept_only_where_the_detector_sees_somebody_there(in_frame, kept):
    processor = SapiensIDImageProcessor(detector=SmallPersonDetector(in_frame), frame_small_people=True)
    features = processor([np.full((600, 600, 3), 128, np.uint8)], return_tensors="np")
    assert features["person_found"].tolist() == [kept] and features["framed"].tolist() == [kept]
    assert features["keypoint_source"] == (["pose"] if kept else ["none"])
    # Without the cut (evaluation, --person-crops) the photo's person is used as the first look found them.
    whole = processor([np.full((600, 600, 3), 128, np.uint8)], return_tensors="np", frame_small_people=False)
    assert whole["person_found"].tolist() == [True] and whole["detection_score"].tolist() == [pytest.approx(0.9)]


@pytest.fixture(scope="module")
def flower_crop() -> np.ndarray:
    """Part of scikit-learn's sample photo of a dahlia, in which the people search fits a "person" (a body
    at detector score about 0.87) whom the detector does not see again in that person's frame."""
    return np.ascontiguousarray(load_sample_image("flower.jpg")[152:342, 46:330])


def test_a_flower_the_people_search_takes_for_a_person_is_no_person_for_the_tools(pipeline, flower_crop):
    assert len(pipeline.processor.detect_people(flower_crop).people) == 1  # the search's find, as it is
    result = pipeline.embed([flower_crop])
    assert result.person_found.tolist() == [False]
    people = pipeline.embed_people([flower_crop])
    assert people.rows == [] and people.images[0].people == [] and people.images[0].unseen_in_frame == 1
    assert people.images[0].summary() == "0 people (1 not seen again in their own frame left out)"


def test_a_photo_summary_counts_each_person_left_out_once():
    from sapiensid_hf.processing.people_in_image import PeopleInImage

    person = object()  # summary() only counts people
    found = PeopleInImage([person] * 2, 100, 100, found=6, too_small=1, max_people=2, unseen_in_frame=1)
    assert found.beyond_cap == 2 and found.cap_reached
    assert found.summary() == (
        "2 people (1 too small to recognise; 1 not seen again in their own frame; 2 more beyond max_people=2 left out)"
    )
    assert not PeopleInImage([person], 100, 100, found=2, unseen_in_frame=1).cap_reached
