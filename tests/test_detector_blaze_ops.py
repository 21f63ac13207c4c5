"""MediaPipe post-processing steps (processing/blaze_ops.py) against hand-worked cases."""

import math

import numpy as np
import pytest
import torch

from sapiensid_hf.processing.blaze_ops import (
    Detections,
    Roi,
    alignment_roi,
    crop_roi,
    decode_detections,
    decode_landmarks,
    on_silhouette,
    project_from_roi,
    refine_with_heatmap,
    roi_bounds,
    ssd_anchor_centers,
    weighted_nms,
)


def test_anchor_counts_match_the_models_outputs():
    # pose_detection.tflite outputs 2254 boxes, face_detection_short_range.tflite 896.
    assert ssd_anchor_centers(224, (8, 16, 32, 32, 32)).shape == (2254, 2)
    assert ssd_anchor_centers(128, (8, 16, 16, 16)).shape == (896, 2)


def test_anchor_order_is_row_major_with_repeats_per_cell():
    anchors = ssd_anchor_centers(128, (8, 16, 16, 16))
    # Stride 8: 16 x 16 cells, 2 anchors each; the first two anchors share the first cell centre.
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])  # next cell along x
    # The three stride-16 layers merge into one 8 x 8 map with 6 anchors per cell.
    np.testing.assert_allclose(anchors[512 : 512 + 6], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_decode_detections_scales_offsets_and_thresholds():
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    raw = np.zeros((2, 8), dtype=np.float32)
    raw[0] = [12.8, -25.6, 64.0, 32.0, 0.0, 0.0, 128.0, 12.8]  # input size 128
    scores = np.array([2.0, -3.0], dtype=np.float32)
    detections = decode_detections(raw, scores, anchors, input_size=128, num_keypoints=2, min_score=0.5)
    assert len(detections) == 1
    np.testing.assert_allclose(detections.scores, [1 / (1 + math.exp(-2.0))])
    # centre (0.6, 0.3), size (0.5, 0.25)
    np.testing.assert_allclose(detections.boxes[0], [0.35, 0.175, 0.85, 0.425], atol=1e-6)
    np.testing.assert_allclose(detections.keypoints[0], [[0.5, 0.5], [1.5, 0.6]], atol=1e-6)


def test_scores_are_clipped_before_the_sigmoid():
    anchors = np.zeros((1, 2), dtype=np.float32)
    detections = decode_detections(np.zeros((1, 4)), np.array([1e6]), anchors, 128, 0, 0.5)
    assert detections.scores[0] == pytest.approx(1.0)


def test_weighted_nms_averages_a_cluster_and_keeps_the_best_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [2.0, 2.0, 3.0, 3.0]])
    keypoints = np.array([[[0.0, 0.0]], [[1.0, 1.0]], [[5.0, 5.0]]])
    detections = Detections(np.array([0.6, 0.9, 0.7]), boxes, keypoints)
    merged = weighted_nms(detections, iou_threshold=0.3)
    assert len(merged) == 2
    np.testing.assert_allclose(merged.scores, [0.9, 0.7])
    # The first cluster averages boxes 0 and 1 with weights 0.6 / 1.5 and 0.9 / 1.5.
    np.testing.assert_allclose(merged.boxes[0], [0.06, 0.0, 1.06, 1.0])
    np.testing.assert_allclose(merged.keypoints[0], [[0.6, 0.6]])
    np.testing.assert_allclose(merged.boxes[1], boxes[2])


def test_weighted_nms_of_nothing_is_nothing():
    empty = Detections(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 4, 2)))
    assert len(weighted_nms(empty, 0.3)) == 0


def test_alignment_roi_of_an_upright_person():
    # Scale point straight above the centre: rotation 0, side 2 * distance * scale.
    roi = alignment_roi(np.array([0.5, 0.6]), np.array([0.5, 0.4]), scale=1.25, target_angle=math.pi / 2)
    assert roi.rotation == pytest.approx(0.0)
    assert roi.size == pytest.approx(0.5)
    assert (roi.center_x, roi.center_y) == pytest.approx((0.5, 0.6))


def test_alignment_roi_of_a_person_lying_down():
    # Head to the right of the hips: the ROI is rotated by +90 degrees (clockwise on screen).
    roi = alignment_roi(np.array([0.5, 0.5]), np.array([0.7, 0.5]), scale=1.0, target_angle=math.pi / 2)
    assert roi.rotation == pytest.approx(math.pi / 2)
    # The top centre of the ROI (head direction) lands on the scale point side.
    np.testing.assert_allclose(project_from_roi(np.array([0.5, 0.0]), roi), [0.7, 0.5], atol=1e-9)


def test_roi_bounds_of_an_axis_aligned_roi():
    np.testing.assert_allclose(roi_bounds(Roi(0.5, 0.5, 0.4, 0.0)), [0.3, 0.3, 0.7, 0.7])
    np.testing.assert_allclose(roi_bounds(Roi(0.1, 0.5, 0.4, 0.0)), [0.0, 0.3, 0.3, 0.7])


def test_crop_roi_samples_the_rotated_square():
    # A 4 x 4 image whose pixel value encodes its column; crop the left half rotated by 180 degrees.
    image = torch.arange(4, dtype=torch.float32).repeat(3, 4, 1)
    crop = crop_roi(image, Roi(0.25, 0.5, 0.5, math.pi), output_size=2)
    assert crop.shape == (2, 2, 3)
    # Rotated by 180 degrees: the crop's left column reads image column 1, its right column column 0.
    np.testing.assert_allclose(crop[0, :, 0].numpy(), [1.0, 0.0], atol=1e-5)


def test_crop_then_project_round_trips_a_point():
    image = torch.zeros(3, 64, 64)
    image[:, 40, 20] = 1.0  # bright pixel centred at (20.5 / 64, 40.5 / 64)
    roi = Roi(0.4, 0.55, 0.5, 0.3)
    crop = crop_roi(image, roi, output_size=256)[..., 0].numpy()
    row, col = np.unravel_index(np.argmax(crop), crop.shape)
    point = project_from_roi(np.array([(col + 0.5) / 256, (row + 0.5) / 256]), roi)
    np.testing.assert_allclose(point, [20.5 / 64, 40.5 / 64], atol=1.5 / 64)


def test_heatmap_refinement_moves_to_the_weighted_peak_when_confident():
    heatmap = np.full((64, 64, 2), -20.0, dtype=np.float32)
    heatmap[10, 20, 0] = 20.0  # confident peak for point 0
    heatmap[10, 20, 1] = -1.0  # weak peak for point 1 (sigmoid < 0.5)
    points = np.array([[21.5 / 64, 11.2 / 64], [21.5 / 64, 11.2 / 64]])
    refined = refine_with_heatmap(points, heatmap, kernel_size=7, min_confidence=0.5)
    np.testing.assert_allclose(
        refined[0], [20 / 64, 10 / 64], atol=1e-6
    )  # MediaPipe returns the cell index / size
    np.testing.assert_allclose(refined[1], points[1])


def test_heatmap_refinement_leaves_points_outside_the_map():
    heatmap = np.full((64, 64, 1), 20.0, dtype=np.float32)
    points = np.array([[1.2, 0.5]])
    np.testing.assert_allclose(refine_with_heatmap(points, heatmap, 7, 0.5), points)


def test_decode_landmarks_normalises_and_applies_sigmoids():
    raw = np.zeros((2, 5), dtype=np.float32)
    raw[0] = [128.0, 64.0, 0.0, 0.0, 100.0]
    raw[1] = [256.0, 0.0, 0.0, -100.0, 0.0]
    heatmap = np.full((64, 64, 2), -20.0, dtype=np.float32)  # never confident: no refinement
    points, visibility, presence = decode_landmarks(raw.ravel(), heatmap, input_size=256, num_landmarks=2)
    np.testing.assert_allclose(points, [[0.5, 0.25], [1.0, 0.0]])
    np.testing.assert_allclose(visibility, [0.5, 0.0], atol=1e-9)
    np.testing.assert_allclose(presence, [1.0, 0.5], atol=1e-9)


def test_a_point_is_on_the_silhouette_only_where_the_segmentation_says_person_nearby():
    segmentation = np.full((256, 256), -5.0, dtype=np.float32)
    segmentation[40:120, 100:160] = 3.0  # a head and shoulders in the upper middle of the crop
    points = np.array([
        [130 / 256, 80 / 256],   # inside it
        [163 / 256, 80 / 256],   # 4 cells right of its last column (159): within the radius
        [168 / 256, 80 / 256],   # 9 cells right of it
        [130 / 256, 220 / 256],  # far below it: a leg placed on the empty wall
        [1.2, 0.5],              # off the crop
    ])
    assert on_silhouette(points, segmentation, radius=4).tolist() == [True, True, False, False, False]
    assert on_silhouette(points, segmentation, radius=10).tolist() == [True, True, True, False, False]
    # The logit's sign is the decision (probability 0.5), not its size.
    assert on_silhouette(points[:1], np.zeros((256, 256), np.float32), radius=0).tolist() == [True]
