"""Stand-in keypoint detectors for the tests of a model folder's rule of centre cuts: they see the 200-pixel
test photos one way and their (smaller) cuts another."""

import numpy as np

from sapiensid_hf.processing.keypoint_detector import KeypointResult


class FailsOnCuts:
    """Finds a person in the 200-pixel photos and fails on anything else (their cuts)."""

    def detect(self, square):
        if square.shape[0] != 200:
            raise OSError("the detector's model file went missing")
        keypoints = np.full((19, 2), -1.0, np.float32)
        keypoints[5:7] = [(0.4, 0.3), (0.6, 0.3)]
        return KeypointResult(keypoints=keypoints, person_boxes=np.zeros((0, 4), np.float32), source="pose")


class OnlyInWholePhotos:
    """A person (shoulders, hips, knees) in the 200-pixel photos; in their cuts nobody, or somebody else in a
    corner: either way the cut must use the photo's person."""

    def __init__(self, in_cuts: str):
        self.in_cuts = in_cuts

    def detect(self, square):
        keypoints = np.full((19, 2), -1.0, np.float32)
        if square.shape[0] == 200:
            keypoints[5:11] = [(0.4, 0.3), (0.6, 0.3), (0.42, 0.55), (0.58, 0.55), (0.43, 0.75), (0.57, 0.75)]
        elif self.in_cuts == "somebody else":
            keypoints[5:7] = [(0.02, 0.02), (0.06, 0.02)]
        source = "pose" if (keypoints != -1).any() else "none"
        return KeypointResult(keypoints=keypoints, person_boxes=np.zeros((0, 4), np.float32), source=source)
