"""What the single-person path reports for a person cut from a wider photo, in that photo's terms.

The processor cuts a person who fills little of the photo before embedding them (its `frame_small_people`
setting, processing/small_person_frame.py): then its keypoints and boxes are the cut's. The tools draw
and save them over the photo, so `in_photo` carries them back into the photo's padded square.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .processing.small_person_frame import FRAMED_SOURCES, SMALL_PERSON_SHARE, cut_points_in_photo


def in_photo(features: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints (B, 19, 2), roi_boxes (B, 2, 4), person_box (B, 4)) of a processor batch, normalised to
    each photo's padded square: as they are for a photo used whole, mapped from the cut for a framed one."""
    keypoints = np.asarray(features["keypoints"], dtype=np.float32).copy()
    roi_boxes = np.asarray(features["roi_boxes"], dtype=np.float32).copy()
    person_box = np.asarray(features["person_box"], dtype=np.float32).copy()
    framed = np.asarray(features.get("framed", np.zeros(len(keypoints), dtype=bool)), dtype=bool)
    for row in np.flatnonzero(framed):
        cut = np.asarray(features["frame_box"][row])
        height, width = (int(value) for value in np.asarray(features["original_sizes"][row]))
        keypoints[row] = cut_points_in_photo(keypoints[row], cut, height, width)
        roi_boxes[row] = cut_points_in_photo(roi_boxes[row].reshape(2, 2, 2), cut, height, width).reshape(2, 4)
        person_box[row] = cut_points_in_photo(person_box[row].reshape(2, 2), cut, height, width).reshape(4)
    return keypoints, roi_boxes, person_box


__all__ = ["FRAMED_SOURCES", "SMALL_PERSON_SHARE", "in_photo"]
