"""The standing-person prior: keypoints for person crops in which the detector finds nobody, opt-in only."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult
from sapiensid_hf.processing.keypoint_layout import BODY_POINTS, FACE_POINTS, LEFT_RIGHT_PAIRS, visible
from sapiensid_hf.processing.standing_person_prior import (
    standing_person_keypoints,
    with_standing_person_prior,
)


class NobodyDetector:
    def detect(self, image):
        return KeypointResult(np.full((19, 2), -1.0, np.float32), np.zeros((0, 4), np.float32), source="none")


class OnePersonDetector:
    def detect(self, image):
        keypoints = np.full((19, 2), -1.0, np.float32)
        keypoints[7], keypoints[8] = (0.6, 0.3), (0.4, 0.3)
        return KeypointResult(keypoints, np.array([[0.3, 0.1, 0.7, 0.9]], np.float32), 0, "pose")


def test_the_template_is_an_upright_person_inside_the_box_without_a_face():
    box = (0.25, 0.1, 0.75, 0.9)
    keypoints = standing_person_keypoints(box)
    shown = visible(keypoints)
    assert shown[list(BODY_POINTS)].all() and not shown[list(FACE_POINTS)].any()
    body = keypoints[list(BODY_POINTS)]
    assert (body[:, 0] > box[0]).all() and (body[:, 0] < box[2]).all()
    assert (body[:, 1] > box[1]).all() and (body[:, 1] < box[3]).all()
    for left, right in LEFT_RIGHT_PAIRS[1:]:  # the official convention: "left" has the larger image x
        assert keypoints[left, 0] > keypoints[right, 0]
    shoulders, hips, knees, ankles = (keypoints[index, 1] for index in (7, 13, 15, 17))
    assert shoulders < hips < knees < ankles
    with pytest.raises(ValueError, match="right > left"):
        standing_person_keypoints((0.5, 0.1, 0.5, 0.9))


def test_only_rows_without_keypoints_get_the_prior_and_only_they_are_asked_for_a_box():
    keypoints = np.full((3, 19, 2), -1.0, np.float32)
    keypoints[1, 0] = (0.5, 0.2)  # a nose: this row has a person
    asked = []

    def box_of(row):
        asked.append(row)
        return (0.0, 0.0, 1.0, 1.0)

    placed, applied = with_standing_person_prior(keypoints, box_of)
    assert asked == [0, 2] and applied.tolist() == [True, False, True]
    np.testing.assert_array_equal(placed[1], keypoints[1])
    np.testing.assert_array_equal(placed[0], standing_person_keypoints((0.0, 0.0, 1.0, 1.0)))
    assert (keypoints[0] == -1).all()  # the input is not modified


def _processor(detector, **settings):
    return SapiensIDImageProcessor(size=64, detector=detector, **settings)


def test_off_by_default_a_crop_without_a_person_has_no_keypoints():
    crop = Image.new("RGB", (20, 40), (90, 120, 60))
    features = _processor(NobodyDetector())(crop, return_tensors="np")
    assert features["keypoint_source"] == ["none"] and not features["person_found"][0]


def test_with_the_prior_a_crop_without_a_person_gets_a_standing_person_on_the_crop():
    crop = Image.new("RGB", (20, 40), (90, 120, 60))
    processor = _processor(NobodyDetector(), standing_person_prior=True)
    features = processor(crop, return_tensors="np")
    assert features["keypoint_source"] == ["prior"] and features["person_found"][0]
    assert features["chosen_person"][0] == -1 and (features["person_box"][0] == -1).all()  # no detected box
    # 20 x 40 centred in a 40-pixel square: the crop spans x 0.25 to 0.75.
    np.testing.assert_allclose(features["keypoints"][0], standing_person_keypoints((0.25, 0.0, 0.75, 1.0)))
    assert (features["roi_boxes"][0] == -1).all()  # two shoulders make no upper-body box: the full image only
    # Detected people and given keypoints are used as they are.
    found = _processor(OnePersonDetector(), standing_person_prior=True)(crop, return_tensors="np")
    assert found["keypoint_source"] == ["pose"]
    given = np.full((19, 2), -1.0, np.float32)
    assert processor(crop, keypoints=given, return_tensors="np")["keypoint_source"] == ["given"]
    # Per call, like the other call settings.
    assert _processor(NobodyDetector())(crop, return_tensors="np", standing_person_prior=True)["keypoint_source"] == ["prior"]


def test_the_setting_is_saved_and_keeps_keypoint_caches_apart(tmp_path):
    processor = _processor(None, standing_person_prior=True)
    processor.save_pretrained(tmp_path)
    assert SapiensIDImageProcessor.from_pretrained(tmp_path).standing_person_prior is True
    assert processor.keypoint_rules["standing_person_prior"] is True
    assert "standing_person_prior" not in _processor(None).keypoint_rules  # default rules unchanged
