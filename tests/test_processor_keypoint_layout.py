"""The 19-point layout, the detector mappings and the official left / right and outlier rules."""

import numpy as np

from sapiensid_hf.modeling.configuration_sapiensid import FLIP_PAIRS
from sapiensid_hf.modeling.configuration_sapiensid import KEYPOINT_NAMES as MODEL_KEYPOINT_NAMES
from sapiensid_hf.processing import keypoint_layout as layout


def _points(**named):
    keypoints = layout.empty_keypoints()
    for name, xy in named.items():
        keypoints[layout.KEYPOINT_NAMES.index(name)] = xy
    return keypoints


def test_layout_matches_the_model_config():
    assert layout.KEYPOINT_NAMES == tuple(MODEL_KEYPOINT_NAMES)
    assert layout.NUM_KEYPOINTS == len(MODEL_KEYPOINT_NAMES)
    # flip_keypoints swaps the layout's pairs; the model's config states the same pairs.
    assert tuple(layout.IMAGE_ORDERED_PAIRS + layout.LEFT_RIGHT_PAIRS) == FLIP_PAIRS


def test_blazepose_mapping_takes_the_named_landmarks():
    landmarks = np.stack([np.full(2, index / 100.0) for index in range(33)])
    confident = np.ones(33, dtype=bool)
    confident[27] = False  # left ankle not confident
    keypoints = layout.from_blazepose(landmarks, confident)
    expected = {"nose": 0, "eye_1": 2, "eye_2": 5, "mouth_1": 9, "mouth_2": 10, "left_ear": 7, "right_ear": 8,
                "left_shoulder": 11, "right_hip": 24, "right_ankle": 28}  # fmt: skip
    for name, landmark in expected.items():
        np.testing.assert_allclose(keypoints[layout.KEYPOINT_NAMES.index(name)], landmark / 100.0, rtol=1e-6)
    assert (keypoints[layout.LEFT_ANKLE] == layout.MISSING).all()


def test_blazeface_mapping_has_no_mouth_corners():
    face = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.5, 0.6], [0.3, 0.45], [0.7, 0.45]])
    keypoints = layout.from_blazeface(face)
    np.testing.assert_allclose(keypoints[layout.NOSE], [0.5, 0.5])
    np.testing.assert_allclose(keypoints[layout.LEFT_EAR], [0.7, 0.45])  # left tragion
    np.testing.assert_allclose(keypoints[layout.RIGHT_EAR], [0.3, 0.45])
    assert not layout.visible(keypoints)[[layout.MOUTH_1, layout.MOUTH_2]].any()
    assert not layout.visible(keypoints)[list(layout.BODY_POINTS)].any()


def test_face_pairs_are_ordered_by_image_x():
    keypoints = _points(eye_1=(0.6, 0.4), eye_2=(0.4, 0.4), mouth_1=(0.45, 0.6), mouth_2=(0.55, 0.6))
    ordered = layout.apply_official_rules(keypoints)
    np.testing.assert_allclose(ordered[layout.EYE_1], [0.4, 0.4])
    np.testing.assert_allclose(ordered[layout.EYE_2], [0.6, 0.4])
    np.testing.assert_allclose(ordered[layout.MOUTH_1], [0.45, 0.6])  # already ordered: unchanged


def test_left_is_the_larger_x_when_both_points_are_visible():
    # Person seen from the back: their left shoulder appears at the smaller x, so the pair is swapped.
    keypoints = _points(
        left_shoulder=(0.3, 0.5), right_shoulder=(0.7, 0.5), left_knee=(0.6, 0.8), right_knee=(0.4, 0.8)
    )
    fixed = layout.apply_official_rules(keypoints)
    np.testing.assert_allclose(fixed[layout.LEFT_SHOULDER], [0.7, 0.5])
    np.testing.assert_allclose(fixed[layout.RIGHT_SHOULDER], [0.3, 0.5])
    np.testing.assert_allclose(fixed[layout.LEFT_KNEE], [0.6, 0.8])  # already canonical


def test_a_lone_point_goes_to_the_side_of_the_image_it_is_on():
    keypoints = _points(left_ear=(0.2, 0.3), right_wrist=(0.8, 0.6), left_hip=(0.7, 0.6))
    fixed = layout.apply_official_rules(keypoints)
    np.testing.assert_allclose(fixed[layout.RIGHT_EAR], [0.2, 0.3])  # left half -> "right"
    assert (fixed[layout.LEFT_EAR] == layout.MISSING).all()
    np.testing.assert_allclose(fixed[layout.LEFT_WRIST], [0.8, 0.6])  # right half -> "left"
    np.testing.assert_allclose(fixed[layout.LEFT_HIP], [0.7, 0.6])  # already on its side


def test_nose_and_eyes_outside_ears_and_shoulders_are_dropped():
    keypoints = _points(
        nose=(0.9, 0.3), eye_1=(0.45, 0.25), eye_2=(0.05, 0.25),
        left_ear=(0.6, 0.3), right_ear=(0.4, 0.3), left_shoulder=(0.7, 0.5), right_shoulder=(0.3, 0.5),
    )  # fmt: skip
    fixed = layout.apply_official_rules(keypoints)
    # eye_2 (0.05) was ordered before the outlier check: eyes become (0.05, 0.45), then 0.05 is dropped.
    assert (fixed[layout.NOSE] == layout.MISSING).all()
    assert (fixed[layout.EYE_1] == layout.MISSING).all()
    np.testing.assert_allclose(fixed[layout.EYE_2], [0.45, 0.25])


def test_outlier_rule_needs_all_four_anchor_points():
    keypoints = _points(
        nose=(0.9, 0.3), left_ear=(0.6, 0.3), left_shoulder=(0.7, 0.5), right_shoulder=(0.3, 0.5)
    )
    fixed = layout.apply_official_rules(keypoints)
    np.testing.assert_allclose(fixed[layout.NOSE], [0.9, 0.3])


def test_rules_are_idempotent_and_batched():
    rng = np.random.default_rng(0)
    batch = rng.random((16, 19, 2)).astype(np.float32)
    batch[rng.random((16, 19)) < 0.3] = layout.MISSING
    once = layout.apply_official_rules(batch)
    np.testing.assert_array_equal(layout.apply_official_rules(once), once)
    np.testing.assert_array_equal(once[3], layout.apply_official_rules(batch[3]))


def official_pair_rules(keypoints: np.ndarray) -> np.ndarray:
    """The official fix-ups written out pair by pair (eye / mouth order, then adjust_left_right_keypoints)."""
    keypoints = keypoints.copy()
    for row in keypoints:
        for first, second in layout.IMAGE_ORDERED_PAIRS:
            if (row[[first, second]] != layout.MISSING).all() and row[first, 0] > row[second, 0]:
                row[[first, second]] = row[[second, first]]
        for left, right in layout.LEFT_RIGHT_PAIRS:
            shown_left, shown_right = (row[left] != layout.MISSING).all(), (row[right] != layout.MISSING).all()
            if shown_left and shown_right:
                swap = row[left, 0] < row[right, 0]
            else:
                swap = (shown_left and row[left, 0] < 0.5) or (shown_right and row[right, 0] > 0.5)
            if swap:
                row[[left, right]] = row[[right, left]]
    return keypoints


def test_pair_rules_equal_the_official_pair_by_pair_rules():
    rng = np.random.default_rng(7)
    batch = rng.random((400, 19, 2)).astype(np.float32)
    batch[:100, :, 0] = np.round(batch[:100, :, 0] * 4) / 4  # ties and points on the centre line
    batch[rng.random((400, 19)) < 0.35] = layout.MISSING
    expected = official_pair_rules(batch)
    np.testing.assert_array_equal(layout.canonicalize_left_right(layout.order_face_pairs(batch)), expected)
    assert (expected != batch).any()  # the rules did swap points


def test_drop_outside_removes_points_in_the_padding():
    keypoints = _points(nose=(0.5, 0.1), left_ankle=(0.5, 0.95), right_ankle=(0.5, 0.5))
    kept = layout.drop_outside(keypoints, (0.0, 0.2, 1.0, 0.8))
    assert not layout.visible(kept)[[layout.NOSE, layout.LEFT_ANKLE]].any()
    np.testing.assert_allclose(kept[layout.RIGHT_ANKLE], [0.5, 0.5])
